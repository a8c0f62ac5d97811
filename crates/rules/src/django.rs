//! Django `dumpdata` output as rules: what `rulebook rules import FILE --format django` and
//! `POST /v1/rules/import` with `"format": "django"` read.
//!
//! **The format.** `python manage.py dumpdata app.Rule` writes a list of entries, one per row:
//! `{"model": "rules_engine.actedrule", "pk": 1, "fields": {"rule_code": "...", ...}}` (JSON, or
//! YAML with `--format yaml`). Each entry whose model is the rule model becomes one rule document,
//! which is then checked exactly as any other rule ([`Rule::from_json_value`]).
//!
//! **The mapping** ([`DjangoMapping`]) renames Django fields to rule fields. Its defaults fit the
//! models Django teams write: `rule_code` → `id`, `active` → `enabled`, and every other field
//! under its own name (`name`, `entry_point`, `priority`, `condition`, `actions`, ...). A field
//! can be renamed (`--map code=id`, in the API `"map": {"code": "id"}`) or dropped (`--ignore
//! metadata`, `"ignore": ["metadata"]`). A Django field that lands on no rule field is a problem,
//! not silently dropped: the import would otherwise lose data nobody chose to lose. The entry's
//! `pk` is the rule's id only when no field maps to `id`.
//!
//! **Conditions.** `{"always": true}` (the always-true condition of such models) becomes `true`,
//! and `{"always": false}` becomes `false`, wherever it appears in a condition. Actions are kept
//! exactly as written.
//!
//! **Models.** A full `dumpdata` holds other tables too (`auth.user`, `contenttypes`, ...). Without
//! a model ([`DjangoMapping::model`]) every entry must be of one model, and a dump of several is
//! one problem that lists them, so nothing is imported by guess. With a model, entries of other
//! models are skipped, and a model that no entry has is a problem.
//!
//! **Problems.** Every problem of every entry is reported at once, each with the entry's index and
//! its path in the dump (`[3].fields.condition`, `[0].pk`), including the problems found when the
//! mapped document is checked as a rule, whose paths are translated back to the Django field.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::rule::RULE_FIELDS;
use crate::validation::describe;
use crate::{FieldError, Rule};

/// The model label of a `dumpdata` entry, compared without regard to case (Django writes labels
/// in lower case, people often write `rules_engine.ActedRule`).
fn same_model(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// How Django fields become rule fields (see the module docs). [`Default`] is the mapping that
/// fits `rule_code`/`active` models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DjangoMapping {
    /// Django field → rule field.
    renames: BTreeMap<String, String>,
    /// Django fields dropped.
    ignored: Vec<String>,
    /// The rule model, when the dump holds several.
    model: Option<String>,
}

impl Default for DjangoMapping {
    /// `rule_code` → `id`, `active` → `enabled`, every other field under its own name, any model.
    fn default() -> DjangoMapping {
        DjangoMapping {
            renames: [("rule_code", "id"), ("active", "enabled")]
                .into_iter()
                .map(|(d, r)| (d.to_owned(), r.to_owned()))
                .collect(),
            ignored: Vec::new(),
            model: None,
        }
    }
}

impl DjangoMapping {
    /// Maps the Django field `django` to the rule field `rule_field`, replacing a default for the
    /// same Django field.
    ///
    /// # Errors
    ///
    /// A problem at path `django` when `rule_field` is not a field a rule has.
    pub fn map(&mut self, django: &str, rule_field: &str) -> Result<(), FieldError> {
        let django = django.trim();
        let rule_field = rule_field.trim();
        if django.is_empty() {
            return Err(FieldError::new(
                "",
                format!("`={rule_field}` names no Django field: write `FIELD={rule_field}`"),
            ));
        }
        if rule_field.is_empty() {
            return Err(FieldError::new(
                django,
                format!("`{django}=` names no rule field: name one after `=`, or drop the field with `--ignore {django}`"),
            ));
        }
        if !RULE_FIELDS.contains(&rule_field) {
            return Err(FieldError::new(
                django,
                format!(
                    "`{rule_field}` is not a rule field: map `{django}` to one of {}, or drop it with `--ignore {django}`",
                    RULE_FIELDS.join(", ")
                ),
            ));
        }
        self.renames
            .insert(django.to_owned(), rule_field.to_owned());
        Ok(())
    }

    /// Reads one `--map` flag, `DJANGO=RULE` (`rule_code=id`).
    ///
    /// # Errors
    ///
    /// A spec without `=`, or one [`DjangoMapping::map`] refuses.
    pub fn map_spec(&mut self, spec: &str) -> Result<(), FieldError> {
        match spec.split_once('=') {
            Some((django, rule_field)) => self.map(django, rule_field),
            None => Err(FieldError::new(
                spec,
                format!("`{spec}` is not a mapping: write `DJANGO_FIELD=RULE_FIELD`, such as `rule_code=id`"),
            )),
        }
    }

    /// Drops the Django field `django` from every entry.
    pub fn ignore(&mut self, django: &str) {
        self.ignored.push(django.trim().to_owned());
    }

    /// Imports only the entries of `model` (`app_label.modelname`), skipping the others.
    pub fn model(&mut self, model: &str) {
        self.model = Some(model.trim().to_owned());
    }

    /// Whether the Django field `django` lands on the rule field `rule_field`.
    pub fn maps_to(&self, django: &str, rule_field: &str) -> bool {
        self.target(django) == Some(rule_field)
    }

    /// The rule field `django` lands on, or `None` when it is dropped.
    fn target<'a>(&'a self, django: &'a str) -> Option<&'a str> {
        if self.ignored.iter().any(|i| i == django) {
            return None;
        }
        Some(self.renames.get(django).map_or(django, String::as_str))
    }
}

/// A rule read from one `dumpdata` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DjangoRule {
    /// The entry's place in the dump, from 0 (skipped entries of other models count).
    pub index: usize,
    /// The rule.
    pub rule: Rule,
    /// Rule field → where it came from in the entry (`fields.rule_code`, `pk`).
    sources: BTreeMap<String, String>,
}

impl DjangoRule {
    /// The path in the dump of the rule field path `rule_path` (`actions[0].type` →
    /// `[3].fields.actions[0].type`; `id` → `[3].fields.rule_code` or `[3].pk`), for reporting a
    /// problem found later (an id twice in one import) where the user wrote it.
    pub fn path(&self, rule_path: &str) -> String {
        entry_path(self.index, &self.sources, rule_path)
    }
}

fn entry_path(index: usize, sources: &BTreeMap<String, String>, rule_path: &str) -> String {
    let split = rule_path.find(['.', '[']).unwrap_or(rule_path.len());
    let (field, rest) = rule_path.split_at(split);
    match sources.get(field) {
        Some(source) => format!("[{index}].{source}{rest}"),
        None if rule_path.is_empty() => format!("[{index}]"),
        // A field the rule has but the entry did not give (a default, such as `id` when neither
        // a field nor `pk` named one): the problem is with the entry's fields as a whole.
        None => format!("[{index}].fields"),
    }
}

/// The problems of a dump, and the rules of its good entries (for a caller that checks them as
/// a batch too, so that one answer lists every problem).
#[derive(Debug, Clone, PartialEq)]
pub struct DjangoErrors {
    /// Every problem of every entry, in entry order, each with a path starting with the entry's
    /// index (`[3].fields.condition`); a problem of the dump as a whole (several models, none of
    /// the one asked for) has the path `""`.
    pub problems: Vec<FieldError>,
    /// The rules of the entries that had no problem.
    pub readable: Vec<DjangoRule>,
}

/// Reads the entries of a `dumpdata` list as rules (see the module docs).
///
/// # Errors
///
/// Every problem of every entry (see [`DjangoErrors`]).
pub fn django_rules(
    entries: &[Value],
    mapping: &DjangoMapping,
) -> Result<Vec<DjangoRule>, DjangoErrors> {
    let mut problems = Vec::new();
    // Without knowing which entries are rules, their problems would be noise: say only this.
    let model = choose_model(entries, mapping).map_err(|problem| DjangoErrors {
        problems: vec![problem],
        readable: Vec::new(),
    })?;
    let mut rules = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(entry) = entry.as_object() else {
            problems.push(FieldError::new(
                format!("[{index}]"),
                format!(
                    "is {}, not a `dumpdata` entry: each entry is an object {{\"model\": \"app.rule\", \"pk\": 1, \"fields\": {{...}}}}",
                    describe(entry)
                ),
            ));
            continue;
        };
        let entry_model = entry.get("model").and_then(Value::as_str);
        match (entry_model, &model) {
            (None, _) => {
                problems.push(FieldError::new(
                    format!("[{index}].model"),
                    "is missing or not a string: each `dumpdata` entry names its model as `app_label.modelname`",
                ));
                continue;
            }
            (Some(found), Some(wanted)) if !same_model(found, wanted) => continue,
            _ => {}
        }
        match entry_rule(index, entry, mapping) {
            Ok(rule) => rules.push(rule),
            Err(more) => problems.extend(more),
        }
    }
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(DjangoErrors {
            problems,
            readable: rules,
        })
    }
}

/// The model whose entries are rules: the one asked for, else the only one in the dump.
fn choose_model(entries: &[Value], mapping: &DjangoMapping) -> Result<Option<String>, FieldError> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for model in entries
        .iter()
        .filter_map(|e| e.get("model").and_then(Value::as_str))
    {
        *counts.entry(model.to_ascii_lowercase()).or_default() += 1;
    }
    let listed = || {
        counts
            .iter()
            .map(|(m, n)| format!("`{m}` ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &mapping.model {
        Some(wanted) if !counts.keys().any(|m| same_model(m, wanted)) => Err(FieldError::new(
            "",
            if counts.is_empty() {
                format!("no entry is of model `{wanted}`: the dump holds no entries with a model")
            } else {
                format!(
                    "no entry is of model `{wanted}`: the dump holds {}; name the rule model with `--model`",
                    listed()
                )
            },
        )),
        Some(wanted) => Ok(Some(wanted.clone())),
        None if counts.len() > 1 => Err(FieldError::new(
            "",
            format!(
                "the dump holds entries of {} models, {}: name the rule model with `--model`, such as `--model {}`",
                counts.len(),
                listed(),
                rule_like_model(entries, mapping)
                    .or_else(|| counts.keys().next().cloned())
                    .unwrap_or_default()
            ),
        )),
        None => Ok(None),
    }
}

/// The model of the first entry that has a condition or actions, to suggest.
fn rule_like_model(entries: &[Value], mapping: &DjangoMapping) -> Option<String> {
    entries.iter().find_map(|entry| {
        let fields = entry.get("fields")?.as_object()?;
        fields
            .keys()
            .any(|name| mapping.maps_to(name, "condition") || mapping.maps_to(name, "actions"))
            .then(|| entry.get("model")?.as_str().map(str::to_ascii_lowercase))?
    })
}

/// One entry as a rule, or every problem of it.
fn entry_rule(
    index: usize,
    entry: &Map<String, Value>,
    mapping: &DjangoMapping,
) -> Result<DjangoRule, Vec<FieldError>> {
    let at = |path: &str| format!("[{index}].{path}");
    let Some(fields) = entry.get("fields").and_then(Value::as_object) else {
        return Err(vec![FieldError::new(
            at("fields"),
            "is missing or not an object: a `dumpdata` entry holds its row in `fields`",
        )]);
    };
    let mut problems = Vec::new();
    let mut document = Map::new();
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in fields {
        let Some(target) = mapping.target(name) else {
            continue;
        };
        let source = format!("fields.{name}");
        if !RULE_FIELDS.contains(&target) {
            problems.push(FieldError::new(
                at(&source),
                format!(
                    "`{name}` is not a rule field: map it to one with `--map {name}=FIELD` (in the API `\"map\": {{\"{name}\": FIELD}}`; fields: {}), or drop it with `--ignore {name}` (`\"ignore\": [\"{name}\"]`)",
                    RULE_FIELDS.join(", ")
                ),
            ));
            continue;
        }
        if let Some(first) = sources.get(target) {
            problems.push(FieldError::new(
                at(&source),
                format!(
                    "`{name}` and `{}` both map to `{target}`: drop one with `--ignore`, or map it elsewhere with `--map`",
                    first.trim_start_matches("fields.")
                ),
            ));
            continue;
        }
        let value = if target == "condition" {
            match always_as_bool(value) {
                Ok(value) => value,
                Err(message) => {
                    problems.push(FieldError::new(at(&source), message));
                    continue;
                }
            }
        } else {
            value.clone()
        };
        sources.insert(target.to_owned(), source);
        document.insert(target.to_owned(), value);
    }
    if !document.contains_key("id") {
        match entry.get("pk") {
            Some(Value::String(pk)) => {
                document.insert("id".to_owned(), Value::String(pk.clone()));
                sources.insert("id".to_owned(), "pk".to_owned());
            }
            Some(Value::Number(pk)) => {
                document.insert("id".to_owned(), Value::String(pk.to_string()));
                sources.insert("id".to_owned(), "pk".to_owned());
            }
            _ => problems.push(FieldError::new(
                at("fields"),
                "has no id: map the field that holds the rule's code to `id` (`--map FIELD=id`, in the API `\"map\": {\"FIELD\": \"id\"}`), or give the entry a `pk`",
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    match Rule::from_json_value(Value::Object(document)) {
        Ok(rule) => Ok(DjangoRule {
            index,
            rule,
            sources,
        }),
        Err(errors) => Err(errors
            .errors
            .into_iter()
            .map(|e| FieldError::new(entry_path(index, &sources, &e.path), e.message))
            .collect()),
    }
}

/// The condition with every `{"always": true|false}` replaced by `true`/`false`.
fn always_as_bool(value: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("always") => match &map["always"] {
            Value::Bool(b) => Value::Bool(*b),
            other => {
                return Err(format!(
                    "`always` takes true or false, not {}: write `{{\"always\": true}}` or `{{\"always\": false}}`",
                    describe(other)
                ))
            }
        },
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), always_as_bool(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(always_as_bool)
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn seed_entry(pk: i64, code: &str) -> Value {
        json!({"model": "rules_engine.actedrule", "pk": pk, "fields": {
            "rule_code": code, "name": "Test Rule", "entry_point": "home page mount",
            "priority": 100, "active": true, "condition": {"always": true},
            "actions": [{"type": "display_message", "content": "Test"}]
        }})
    }

    #[test]
    fn the_default_mapping_reads_a_seed_rule() {
        let rules = django_rules(&[seed_entry(7, "banner")], &DjangoMapping::default()).unwrap();
        let rule = &rules[0].rule;
        assert_eq!(rule.id, "banner");
        assert!(rule.enabled);
        assert_eq!(rule.condition, json!(true));
        assert_eq!(
            rule.entry_point.as_ref().map(|e| e.as_str().to_owned()),
            Some("home_page_mount".to_owned())
        );
        assert_eq!(
            serde_json::to_value(&rule.actions).unwrap(),
            json!([{"type": "display_message", "content": "Test"}])
        );
        assert_eq!(rules[0].path("id"), "[0].fields.rule_code");
    }

    #[test]
    fn always_false_is_false_wherever_it_is_and_anything_else_is_refused() {
        let mut entry = seed_entry(1, "r");
        entry["fields"]["condition"] = json!({"and": [{"always": false}, {"==": [1, 1]}]});
        let rules = django_rules(&[entry.clone()], &DjangoMapping::default()).unwrap();
        assert_eq!(
            rules[0].rule.condition,
            json!({"and": [false, {"==": [1, 1]}]})
        );
        entry["fields"]["condition"] = json!({"always": "yes"});
        let problems = django_rules(&[entry], &DjangoMapping::default())
            .unwrap_err()
            .problems;
        assert_eq!(problems[0].path, "[0].fields.condition");
        assert!(
            problems[0].message.contains("true or false"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_pk_is_the_id_only_when_no_field_maps_to_id() {
        let mut entry = seed_entry(42, "ignored");
        let mut mapping = DjangoMapping::default();
        mapping.ignore("rule_code");
        let rules = django_rules(&[entry.clone()], &mapping).unwrap();
        assert_eq!(
            (rules[0].rule.id.as_str(), rules[0].path("id")),
            ("42", "[0].pk".to_owned())
        );
        entry["fields"]["code"] = json!("from_code");
        mapping.map_spec("code=id").unwrap();
        let rules = django_rules(&[entry], &mapping).unwrap();
        assert_eq!(rules[0].rule.id, "from_code");
    }

    #[test]
    fn every_problem_of_every_entry_is_reported_with_its_path() {
        let mut unknown = seed_entry(1, "a");
        unknown["fields"]["metadata"] = json!({});
        let mut bad_priority = seed_entry(2, "b");
        bad_priority["fields"]["priority"] = json!("high");
        let mut two_ids = seed_entry(3, "c");
        two_ids["fields"]["code"] = json!("c2");
        let mut mapping = DjangoMapping::default();
        mapping.map("code", "id").unwrap();
        let entries = [
            seed_entry(0, "ok"),
            unknown,
            bad_priority,
            two_ids,
            json!("not an entry"),
            json!({"model": "rules_engine.actedrule", "pk": 5}),
        ];
        let problems = django_rules(&entries, &mapping).unwrap_err().problems;
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "[1].fields.metadata",
                "[2].fields.priority",
                "[3].fields.code",
                "[4]",
                "[5].fields"
            ]
        );
        assert!(
            problems[0].message.contains("--ignore metadata"),
            "{problems:?}"
        );
    }

    #[test]
    fn other_models_are_refused_unless_one_is_named_then_skipped() {
        let user = json!({"model": "auth.user", "pk": 1, "fields": {"username": "ann"}});
        let entries = [user, seed_entry(1, "r")];
        let problems = django_rules(&entries, &DjangoMapping::default())
            .unwrap_err()
            .problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("`auth.user` (1)")
                && problems[0]
                    .message
                    .contains("--model rules_engine.actedrule"),
            "{problems:?}"
        );
        let mut mapping = DjangoMapping::default();
        mapping.model("rules_engine.ActedRule");
        let rules = django_rules(&entries, &mapping).unwrap();
        assert_eq!((rules.len(), rules[0].index), (1, 1));
        mapping.model("rules_engine.rule");
        let problems = django_rules(&entries, &mapping).unwrap_err().problems;
        assert!(
            problems[0].message.contains("no entry is of model"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_mapping_names_a_rule_field() {
        let mut mapping = DjangoMapping::default();
        assert!(mapping
            .map_spec("metadata=meta")
            .unwrap_err()
            .message
            .contains("not a rule field"));
        assert!(mapping.map_spec("metadata").is_err());
        assert!(mapping.map_spec("metadata=").is_err());
        assert!(mapping.map_spec("metadata=params").is_ok());
    }
}
