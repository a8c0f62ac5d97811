//! Example rules: what the store seeds on first start, and what the docs and tests use.
//!
//! Three entry points with action rules (`checkout_terms`, `vat_calculation`,
//! `home_page_mount`), parameter rules, and the `pad_trade` scorecard for personal-account
//! dealing, whose factors are parameter rules too (`RF-002` holds `lookbackDays`, `RF-005` the
//! position-size thresholds, `RF-007` `minimumHoldDays`).

use serde_json::{json, Map, Value};

use crate::{Action, EntryPoint, OrderedPair, ParamSchema, ParamSpec, ParamType, Rule};

/// The name of the example scorecard.
pub const PAD_TRADE: &str = "pad_trade";

/// The benchmark entry point `checkout`: 50 rules `checkout_rule_00` to `checkout_rule_49`, each
/// with a three-part condition (`in` a list, `>` a threshold, `!` `in` a block list) and two
/// computed actions, which the rules crate's, the replica's and the server's benchmarks share.
pub fn benchmark_rules() -> Vec<Rule> {
    (0..50)
        .map(|i| {
            let mut rule = Rule::new(format!("checkout_rule_{i:02}"));
            rule.entry_point = EntryPoint::parse("checkout").ok();
            rule.priority = i % 7;
            rule.params
                .insert("rate".into(), json!(0.01 * f64::from(i)));
            rule.condition = json!({"and": [
                {"in": [{"var": "country"}, ["GB", "DE", "FR", format!("C{i}")]]},
                {">": [{"var": "cart.total"}, i * 10]},
                {"!": {"in": [{"var": "cart.coupon"}, ["BLOCKED", "EXPIRED"]]}}
            ]});
            rule.actions = vec![
                Action::new("set_value")
                    .with("field", format!("discount_{i}"))
                    .with(
                        "value",
                        json!({"*": [{"var": "cart.total"}, {"var": "params.rate"}]}),
                    ),
                Action::new("display_message").with(
                    "message",
                    json!({"cat": ["Rule ", i, " applies to ", {"var": "country"}]}),
                ),
            ];
            rule
        })
        .collect()
}

/// The load benchmark's entry point `load_test`: 50 rules `LOAD-00` to `LOAD-49` (priority `i`),
/// each matching when `country` is `FR` (even `i`) or `DE` (odd `i`) and `total` is over its
/// param `threshold` (`10 * i`), with one computed action (`flag_i` set to `total * 0.2`). The
/// server's load benchmark and the decision log's benchmark share them (`scripts/bench-http`
/// writes the same rules as JSON).
pub fn load_rules() -> Vec<Rule> {
    (0..50)
        .map(|i| {
            let mut rule = Rule::new(format!("LOAD-{i:02}"));
            rule.entry_point = EntryPoint::parse("load_test").ok();
            rule.priority = i;
            rule.condition = json!({"and": [
                {"==": [{"var": "country"}, if i % 2 == 0 { "FR" } else { "DE" }]},
                {">": [{"var": "total"}, {"var": "params.threshold"}]}
            ]});
            rule.params.insert("threshold".into(), json!(i * 10));
            rule.actions = vec![Action::new("set_value")
                .with("field", format!("flag_{i}"))
                .with("value", json!({"*": [{"var": "total"}, 0.2]}))];
            rule
        })
        .collect()
}

/// Every example rule for `tenant`, each passing [`Rule::validate`].
pub fn seed_rules(tenant: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    rules.extend(action_rules());
    rules.extend(parameter_rules());
    rules.extend(pad_trade_rules());
    for rule in &mut rules {
        rule.tenant = tenant.to_owned();
        rule.version = 1;
        rule.created_by = Some("rulebook seed".to_owned());
        rule.updated_by = Some("rulebook seed".to_owned());
    }
    rules
}

fn entry(id: &str, entry_point: &str, name: &str, category: &str, priority: i32) -> Rule {
    let mut rule = Rule::new(id);
    // The names below are fixed and valid; an invalid one would leave the rule without an entry
    // point, which the seed test would catch.
    rule.entry_point = EntryPoint::parse(entry_point).ok();
    rule.name = name.to_owned();
    rule.category = category.to_owned();
    rule.priority = priority;
    rule
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn action_rules() -> Vec<Rule> {
    let mut banner = entry(
        "checkout_terms_banner",
        "checkout_terms",
        "Terms of sale banner",
        "legal",
        10,
    );
    banner.description = "Every checkout shows the terms of sale.".into();
    banner.actions = vec![Action::new("display_message")
        .with(
            "message",
            json!("By placing this order you accept our terms of sale."),
        )
        .with("placement", "banner")];

    let mut marketplace = entry(
        "checkout_terms_marketplace",
        "checkout_terms",
        "Marketplace seller terms",
        "legal",
        20,
    );
    marketplace.description =
        "Orders from marketplace sellers also show the seller's terms.".into();
    marketplace.condition = json!({"==": [{"var": "cart.marketplace"}, true]});
    marketplace.actions = vec![Action::new("display_message")
.with("message", json!({"cat": ["This order is sold by ", {"var": ["cart.seller", "a marketplace seller"]}, "; their terms also apply."]}))
.with("placement", "banner")];

    let mut vat_gb = entry(
        "vat_gb_standard",
        "vat_calculation",
        "UK standard VAT",
        "pricing",
        10,
    );
    vat_gb.description = "UK orders pay VAT at the standard rate.".into();
    vat_gb.tags = vec!["currency:GBP".into()];
    vat_gb.condition = json!({"==": [{"var": "country"}, "GB"]});
    vat_gb.stop_processing = true;
    vat_gb.params = object(json!({"rate": 0.2}));
    vat_gb.param_schema = rate_schema();
    vat_gb.actions = vec![
        Action::new("set_value")
            .with("field", "vat_rate")
            .with("value", json!({"var": "params.rate"})),
        Action::new("set_value").with("field", "vat_amount").with(
            "value",
            json!({"*": [{"var": "net_amount"}, {"var": "params.rate"}]}),
        ),
    ];

    let mut vat_other = entry(
        "vat_zero_rated",
        "vat_calculation",
        "Zero-rated export",
        "pricing",
        100,
    );
    vat_other.description = "Orders outside the UK are zero-rated exports.".into();
    vat_other.params = object(json!({"rate": 0}));
    vat_other.param_schema = rate_schema();
    vat_other.actions = vec![
        Action::new("set_value")
            .with("field", "vat_rate")
            .with("value", json!({"var": "params.rate"})),
        Action::new("set_value")
            .with("field", "vat_amount")
            .with("value", json!(0)),
    ];

    let mut welcome = entry(
        "home_welcome_banner",
        "home_page_mount",
        "Welcome banner",
        "marketing",
        10,
    );
    welcome.actions = vec![Action::new("display_message")
        .with(
            "message",
            json!({"cat": ["Welcome back, ", {"var": ["user.first_name", "guest"]}, "!"]}),
        )
        .with("placement", "banner")];

    vec![banner, marketplace, vat_gb, vat_other, welcome]
}

fn rate_schema() -> ParamSchema {
    let mut schema = ParamSchema::default();
    schema.fields.insert(
        "rate".into(),
        ParamSpec::new(ParamType::Number)
            .between(Some(0.0), Some(1.0))
            .required(),
    );
    schema
}

fn parameter_rules() -> Vec<Rule> {
    let mut cache_ttl = Rule::new("cache_ttl_seconds");
    cache_ttl.name = "Client cache lifetime".into();
    cache_ttl.category = "operations".into();
    cache_ttl.description = "How long clients may keep an answer before asking again.".into();
    cache_ttl.params = object(json!({"seconds": 60}));
    cache_ttl.param_schema.fields.insert(
        "seconds".into(),
        ParamSpec::new(ParamType::Integer)
            .between(Some(0.0), Some(3600.0))
            .required(),
    );
    vec![cache_ttl]
}

fn scorecard_rule(id: &str, name: &str, category: &str, priority: i32) -> Rule {
    let mut rule = Rule::new(id);
    rule.name = name.to_owned();
    rule.category = category.to_owned();
    rule.priority = priority;
    rule.tags = vec![crate::tags::scorecard_tag(PAD_TRADE)];
    rule
}

fn days_spec() -> ParamSpec {
    ParamSpec::new(ParamType::Integer)
        .between(Some(0.0), Some(3650.0))
        .required()
}

fn pad_trade_rules() -> Vec<Rule> {
    let mut instrument = scorecard_rule("RF-001", "Instrument type", "Product risk", 10);
    instrument.description = "Leveraged and speculative instruments are riskier.".into();
    instrument.params = object(json!({
        "highRiskTypes": ["crypto", "cfd", "spread_bet"],
        "mediumRiskTypes": ["option", "future", "warrant"]
    }));
    for field in ["highRiskTypes", "mediumRiskTypes"] {
        instrument
            .param_schema
            .fields
            .insert(field.into(), ParamSpec::new(ParamType::Array).required());
    }
    instrument.actions =
        vec![Action::new("score")
.with("factor", "instrument_type")
.with("level", json!({"if": [
            {"in": [{"var": "input.instrument_type"}, {"var": "params.highRiskTypes"}]}, "HIGH",
            {"in": [{"var": "input.instrument_type"}, {"var": "params.mediumRiskTypes"}]}, "MEDIUM",
            "LOW"
        ]}))];

    let mut firm_traded = scorecard_rule("RF-002", "Firm traded the instrument", "Conflict", 20);
    firm_traded.description =
        "The firm traded the same instrument within the look-back window.".into();
    firm_traded.params = object(json!({"lookbackDays": 30}));
    firm_traded
        .param_schema
        .fields
        .insert("lookbackDays".into(), days_spec());
    firm_traded.actions =
        vec![Action::new("score")
.with("factor", "firm_traded")
.with("level", json!({"if": [
            {"and": [
                {"!==": [{"var": "input.firm_last_traded_days_ago"}, null]},
                {"<=": [{"var": "input.firm_last_traded_days_ago"}, {"var": "params.lookbackDays"}]}
            ]}, "HIGH",
            "LOW"
        ]}))];

    let mut position = scorecard_rule("RF-005", "Position size", "Material trade", 30);
    position.description =
        "A value strictly above the low threshold is MEDIUM, strictly above the high threshold HIGH."
            .into();
    position.params = object(json!({"lowThreshold": 50_000, "highThreshold": 100_000}));
    for field in ["lowThreshold", "highThreshold"] {
        position.param_schema.fields.insert(
            field.into(),
            ParamSpec::new(ParamType::Number)
                .between(Some(0.0), None)
                .required(),
        );
    }
    position.param_schema.ordered.push(OrderedPair {
        low: "lowThreshold".into(),
        high: "highThreshold".into(),
    });
    position.actions = vec![Action::new("score").with("factor", "position_size").with(
        "level",
        json!({"if": [
            {">": [{"var": "input.value"}, {"var": "params.highThreshold"}]}, "HIGH",
            {">": [{"var": "input.value"}, {"var": "params.lowThreshold"}]}, "MEDIUM",
            "LOW"
        ]}),
    )];

    let mut holding = scorecard_rule("RF-007", "Holding period", "Short-term trading", 40);
    holding.description = "Selling sooner than the minimum holding period.".into();
    holding.params = object(json!({"minimumHoldDays": 30}));
    holding
        .param_schema
        .fields
        .insert("minimumHoldDays".into(), days_spec());
    holding.actions = vec![Action::new("score").with("factor", "holding_period").with(
        "level",
        json!({"if": [
            {"and": [
                {"!==": [{"var": "input.holding_days"}, null]},
                {"<": [{"var": "input.holding_days"}, {"var": "params.minimumHoldDays"}]}
            ]}, "MEDIUM",
            "LOW"
        ]}),
    )];

    let mut restricted = scorecard_rule("RF-009", "Restricted list", "Compliance", 50);
    restricted.description = "Instruments on the restricted list need compliance approval.".into();
    restricted.params = object(json!({"instruments": ["ACME", "GLOBEX"]}));
    restricted.param_schema.fields.insert(
        "instruments".into(),
        ParamSpec::new(ParamType::Array).required(),
    );
    restricted.actions = vec![Action::new("score").with("factor", "restricted_list").with(
        "level",
        json!({"if": [
            {"in": [{"var": "input.instrument"}, {"var": "params.instruments"}]}, "HIGH",
            "LOW"
        ]}),
    )];

    let mut routes = scorecard_rule("pad_trade_routing", "PAD approval routes", "Routing", 1000);
    routes.description =
        "Approval route per overall level; two MEDIUM factors make the request HIGH.".into();
    routes.params = object(json!({ crate::scorecard::ESCALATION_PARAM: 2 }));
    routes.param_schema.fields.insert(
        crate::scorecard::ESCALATION_PARAM.into(),
        ParamSpec::new(ParamType::Integer).between(Some(0.0), Some(100.0)),
    );
    routes.actions = vec![
        Action::new("route")
            .with("level", "LOW")
            .with("route", "auto_approve"),
        Action::new("route")
            .with("level", "MEDIUM")
            .with("route", "line_manager"),
        Action::new("route")
            .with("level", "HIGH")
            .with("route", "compliance_review"),
    ];

    vec![
        instrument,
        firm_traded,
        position,
        holding,
        restricted,
        routes,
    ]
}
