//! Rulesets: the compiled form of one entry point's rules, and their evaluation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::explain::{Explainer, RuleOutcome, Unwitnessed, Witness};
use crate::index::{Index, Test};
use crate::logic::{dispose, is_operation, Budget, Logic, Scope};
use crate::params::Flag;
use crate::rule::in_window;
use crate::{
    Action, CompileError, EntryPoint, EvalError, FieldError, Limits, OnError, Rule, RuleError,
    ValidationErrors,
};

/// The compiled rules of one entry point, sorted by priority then id.
///
/// Compiled once per set of rule versions and shared (it is immutable, `Send + Sync`). Nothing
/// about time is baked in: `enabled` and the schedule window are checked on every evaluation
/// against the time the caller gives, so a cached ruleset stays correct when `active_from` passes.
#[derive(Debug, Clone)]
pub struct Ruleset {
    entry_point: EntryPoint,
    rules: Vec<CompiledRule>,
    /// How many actions the rules have in all: room reserved once an evaluation matches.
    actions: usize,
    /// The rules filed under their equality and `in` tests, so an evaluation runs only those
    /// that can match (see `index.rs`).
    index: Index,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    /// Shared with every answer that names the rule, so that an evaluation copies no id.
    pub(crate) id: Arc<str>,
    pub(crate) version: i64,
    pub(crate) priority: i32,
    pub(crate) enabled: bool,
    pub(crate) stop_processing: bool,
    pub(crate) active_from: Option<DateTime<Utc>>,
    pub(crate) active_until: Option<DateTime<Utc>>,
    pub(crate) params: Value,
    /// The compiled expressions, or why the rule cannot run (a stored rule that no longer
    /// validates): reported each time the rule would run, never failing its neighbours.
    pub(crate) body: Result<Body, EvalError>,
    /// The equality or `in` test the index files the rule under, if it has one.
    pub(crate) test: Option<Test>,
}

#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub(crate) condition: Logic,
    /// The condition's top-level operator as written (`>`, `and`, ...), for explanations.
    pub(crate) operator: Option<String>,
    pub(crate) actions: Vec<CompiledAction>,
    /// The deepest and the largest of the rule's expressions, so that the usual evaluation, well
    /// within its limits, checks them with two comparisons.
    pub(crate) deepest: usize,
    pub(crate) largest: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledAction {
    /// The action as written, except that each computed field holds `null`, with its rule's id
    /// and its JSON: a firing shares it (nothing of it is copied) and adds the computed values
    /// beside it (see [`FiredAction`]). The fields a reserved action reads ([`Action::reserved`]:
    /// a score's `factor`, a route's `level` and `route`) are never computed, so they are here.
    pub(crate) template: Arc<Template>,
    /// The fields computed when the action fires, by name, in the order written.
    pub(crate) computed: Vec<(String, Logic)>,
    /// For each field of `template` in order, whether it is computed (the next of `computed`).
    is_computed: Vec<bool>,
}

impl CompiledRule {
    /// Validates and compiles one rule. A rule that does not validate still compiles, into one
    /// that reports why each time it would run.
    pub(crate) fn compile(mut rule: Rule) -> CompiledRule {
        let id: Arc<str> = rule.id.as_str().into();
        let body = Body::compile(&rule, &id);
        let test = body.as_ref().ok().and_then(|_| Test::of(&rule.condition));
        // A condition built by a program may be nested thousands of levels deep (and refused by
        // the compiler); drop it without recursion.
        dispose(std::mem::take(&mut rule.condition));
        CompiledRule {
            id,
            version: rule.version,
            priority: rule.priority,
            enabled: rule.enabled,
            stop_processing: rule.stop_processing,
            active_from: rule.active_from,
            active_until: rule.active_until,
            params: Value::Object(rule.params),
            body,
            test,
        }
    }

    pub(crate) fn applies_at(&self, at: DateTime<Utc>) -> bool {
        self.enabled && in_window(self.active_from, self.active_until, at)
    }

    /// The rule's compiled expressions, once they are known to be within `limits`.
    pub(crate) fn body(&self, limits: &Limits) -> Result<&Body, EvalError> {
        let body = self.body.as_ref().map_err(Clone::clone)?;
        body.check(limits, &self.id)?;
        Ok(body)
    }

    /// Whether the condition holds for `scope`: the body and what is left of the rule's budget
    /// when it does. With `test_holds` (the index found the rule's test true), only the rest of
    /// the condition runs, after the test's budget is spent (see `index.rs`).
    fn decide(
        &self,
        scope: &Scope<'_>,
        limits: &Limits,
        test_holds: bool,
    ) -> Result<Option<(&Body, Budget)>, EvalError> {
        let body = self.body(limits)?;
        let mut budget = Budget::new(limits.max_ops);
        let holds = match &self.test {
            Some(test) if test_holds => {
                budget.spend(test.cost)?;
                match &test.then {
                    Some(rest) => rest.holds_in(scope, &mut budget)?,
                    None => true,
                }
            }
            _ => body.condition.is_always_true() || body.condition.holds_in(scope, &mut budget)?,
        };
        Ok(holds.then_some((body, budget)))
    }

    /// The rule as a boolean flag for `input` at `at` (see [`crate::Params::flag`]): decided by
    /// the same checks, in the same order, as an evaluation decides the rule, without its
    /// actions.
    pub(crate) fn flag(&self, input: &Value, at: DateTime<Utc>, limits: &Limits) -> Flag {
        if !self.enabled {
            return Flag::Disabled;
        }
        if !self.applies_at(at) {
            return Flag::OutsideWindow;
        }
        let scope = Scope::Rule {
            input,
            params: &self.params,
        };
        match self.decide(&scope, limits, false) {
            Ok(Some((body, _))) if body.condition.is_always_true() => Flag::Always,
            Ok(Some(_)) => Flag::Matched,
            Ok(None) => Flag::ConditionFalse,
            Err(e) => Flag::Failed(e),
        }
    }

    /// Appends to `fired` the actions of a rule whose condition held, computed with the rest of
    /// its budget; on failure `fired` is left as it was.
    fn fire(
        &self,
        body: &Body,
        scope: &Scope<'_>,
        mut budget: Budget,
        fired: &mut Vec<FiredAction>,
    ) -> Result<(), EvalError> {
        let before = fired.len();
        for action in &body.actions {
            match action.evaluate(scope, &mut budget) {
                Ok(computed) => fired.push(FiredAction {
                    template: action.template.clone(),
                    computed,
                }),
                Err(e) => {
                    fired.truncate(before);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl Body {
    fn compile(rule: &Rule, id: &Arc<str>) -> Result<Body, EvalError> {
        let invalid = |errors| EvalError::Invalid {
            rule_id: rule.id.clone(),
            errors,
        };
        rule.validate().map_err(invalid)?;
        // `validate` compiled every expression within the same limits; a failure here would be a
        // bug, still reported as the rule's own error.
        let logic_error = |field: String| {
            move |e: crate::logic::LogicError| {
                invalid(ValidationErrors {
                    errors: vec![FieldError::new(field, e.to_string())],
                })
            }
        };
        let condition = Logic::compile(&rule.condition).map_err(logic_error("condition".into()))?;
        let mut actions = Vec::with_capacity(rule.actions.len());
        for (i, action) in rule.actions.iter().enumerate() {
            let mut computed = Vec::new();
            for (field, expr) in action.expressions() {
                let logic =
                    Logic::compile(expr).map_err(logic_error(format!("actions[{i}].{field}")))?;
                computed.push((field.to_owned(), logic));
            }
            let mut template = action.clone();
            let mut is_computed = Vec::with_capacity(template.fields.len());
            let mut next = computed.iter().map(|(name, _)| name).peekable();
            for (name, value) in template.fields.iter_mut() {
                let here = next.next_if(|computed| *computed == name).is_some();
                if here {
                    dispose(std::mem::take(value));
                }
                is_computed.push(here);
            }
            let template = Template::new(id.clone(), template, &is_computed);
            actions.push(CompiledAction {
                template: Arc::new(template),
                computed,
                is_computed,
            });
        }
        let expressions = || {
            std::iter::once(&condition).chain(
                actions
                    .iter()
                    .flat_map(|a| a.computed.iter().map(|(_, l)| l)),
            )
        };
        let deepest = expressions().map(Logic::depth).max().unwrap_or(0);
        let largest = expressions().map(Logic::nodes).max().unwrap_or(0);
        let operator = match &rule.condition {
            Value::Object(map) if is_operation(&rule.condition) => map.keys().next().cloned(),
            _ => None,
        };
        Ok(Body {
            condition,
            operator,
            actions,
            deepest,
            largest,
        })
    }

    /// Checks every expression of the rule against the size limits.
    fn check(&self, limits: &Limits, rule_id: &str) -> Result<(), EvalError> {
        if self.deepest <= limits.max_depth && self.largest <= limits.max_nodes {
            return Ok(());
        }
        // Over a limit: find the expression to name, in the order they would run.
        self.condition.check(limits, rule_id)?;
        self.actions
            .iter()
            .flat_map(|a| a.computed.iter().map(|(_, l)| l))
            .try_for_each(|e| e.check(limits, rule_id))
    }
}

impl CompiledAction {
    /// The values of the computed fields, each with its place in the template.
    pub(crate) fn evaluate(
        &self,
        scope: &Scope<'_>,
        budget: &mut Budget,
    ) -> Result<Computed, EvalError> {
        let mut places = self
            .is_computed
            .iter()
            .enumerate()
            .filter(|(_, is_computed)| **is_computed)
            .map(|(place, _)| place);
        Ok(match self.computed.as_slice() {
            [] => Computed::None,
            [(_, logic)] => {
                let place = places.next().unwrap_or_default();
                Computed::One(place, logic.eval_in(scope, budget)?)
            }
            many => Computed::Many(
                many.iter()
                    .zip(places)
                    .map(|((_, logic), place)| Ok((place, logic.eval_in(scope, budget)?)))
                    .collect::<Result<_, EvalError>>()?,
            ),
        })
    }
}

/// What an evaluation decided: the rules that matched (with their versions, so a caller can tell
/// which rules decided) and their actions in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Evaluation {
    /// The entry point evaluated.
    pub entry_point: EntryPoint,
    /// The evaluation time the schedule windows were checked against.
    pub at: DateTime<Utc>,
    /// Every rule whose condition held, in the order they ran.
    pub matched: Vec<MatchedRule>,
    /// The actions of the matched rules, in order, with expression values evaluated.
    pub actions: Vec<FiredAction>,
    /// The rule whose `stop_processing` ended the evaluation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// Every rule that failed at run time, in the order they ran; each counts as not matched.
    /// Always present (empty when nothing failed).
    #[serde(default)]
    pub errors: Vec<RuleError>,
    /// Only when asked for ([`Ruleset::explain`], `"explain": true`): every rule of the entry
    /// point in evaluation order, each with how it was decided (see [`crate::Outcome`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Vec<RuleOutcome>>,
}

/// A rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct MatchedRule {
    /// The rule's id (shared with the compiled rule: a match copies no id).
    #[cfg_attr(feature = "utoipa", schema(value_type = String))]
    pub id: Arc<str>,
    /// The version that was evaluated.
    pub version: i64,
    /// Its priority.
    pub priority: i32,
}

/// One action of a matched rule, with its expressions evaluated: written
/// `{"rule_id": ..., "type": ..., ...fields}`.
///
/// The rule's id and the action as written are shared with the compiled rule, and only the
/// computed values belong to the evaluation, so that firing an action copies no id, type or
/// field name. Read it with [`FiredAction::rule_id`], [`FiredAction::kind`],
/// [`FiredAction::field`] and [`FiredAction::fields`], or make an [`Action`] of it with
/// [`FiredAction::to_action`].
#[derive(Debug, Clone)]
pub struct FiredAction {
    template: Arc<Template>,
    computed: Computed,
}

/// What a fired action shares with its compiled rule: the rule's id, the action as written (a
/// computed field holds `null`), and the action's JSON written once, with a gap for each
/// computed value.
#[derive(Debug)]
pub(crate) struct Template {
    rule_id: Arc<str>,
    pub(crate) action: Action,
    /// `{"rule_id":...,"type":...,...}` with every computed field's value left out.
    json: Box<[u8]>,
    /// Where each computed value goes: its offset in `json` and its place among the fields, in
    /// order.
    gaps: Box<[(usize, usize)]>,
}

impl Template {
    /// The template of `action` fired by `rule_id`, whose fields marked in `is_computed` are
    /// computed (the others are written as they are).
    fn new(rule_id: Arc<str>, action: Action, is_computed: &[bool]) -> Template {
        let mut json = Vec::with_capacity(64);
        let mut gaps = Vec::new();
        json.extend_from_slice(b"{\"rule_id\":");
        write_json(&mut json, &*rule_id);
        json.extend_from_slice(b",\"type\":");
        write_json(&mut json, &action.kind);
        for (place, (name, value)) in action.fields.iter().enumerate() {
            json.push(b',');
            write_json(&mut json, name);
            json.push(b':');
            if is_computed.get(place).copied().unwrap_or(false) {
                gaps.push((json.len(), place));
            } else {
                write_json(&mut json, value);
            }
        }
        json.push(b'}');
        Template {
            rule_id,
            action,
            json: json.into(),
            gaps: gaps.into(),
        }
    }
}

/// Appends `value`'s JSON, as `serde_json` writes it.
fn write_json(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) {
    // Writing into a Vec fails only for a map with keys that are not strings, which no value
    // written here has.
    let _ = serde_json::to_writer(out, value);
}

/// Writes `at` as JSON exactly as its `Serialize` does: [`write_rfc3339`] between quotes.
fn write_json_time(out: &mut Vec<u8>, at: &DateTime<Utc>) {
    out.push(b'"');
    write_rfc3339(out, at);
    out.push(b'"');
}

/// Appends `at` to `out` as its `Serialize` writes it, without the quotes: chrono's RFC 3339 in
/// UTC with as many decimals as the nanoseconds need (none, 3, 6 or 9) and `Z`, such as
/// `2026-03-03T10:00:00.250Z`. Every answer's `at` is written this way, by the server and by the
/// Python client. It writes the digits itself, two at a time into a buffer on the stack:
/// chrono's `Display` goes through `fmt` a character at a time, more than ten times the cost
/// (`cargo bench -p rulebook-rules --bench evaluate -- answer_time` measures both). A year
/// outside 0 to 9999 or a leap second is left to chrono.
pub fn write_rfc3339(out: &mut Vec<u8>, at: &DateTime<Utc>) {
    use chrono::{Datelike, SecondsFormat, Timelike};
    let at = at.naive_utc();
    let (date, time) = (at.date(), at.time());
    let nanos = time.nanosecond();
    let year = date.year();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.extend_from_slice(
            at.and_utc()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
                .as_bytes(),
        );
        return;
    }
    // The text is made on the stack, two digits at a time, and appended at once.
    let mut text = *b"0000-00-00T00:00:00.000000000Z";
    let seconds = time.num_seconds_from_midnight();
    let year = year.unsigned_abs();
    for (place, value) in [
        (0, year / 100),
        (2, year % 100),
        (5, date.month()),
        (8, date.day()),
        (11, seconds / 3600),
        (14, seconds / 60 % 60),
        (17, seconds % 60),
    ] {
        // Each value is below 100, so its pair is in the table.
        let pair = 2 * value as usize;
        text[place..place + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    let (mut fraction, width) = match nanos {
        0 => (0, 0),
        _ if nanos % 1_000_000 == 0 => (nanos / 1_000_000, 3),
        _ if nanos % 1_000 == 0 => (nanos / 1_000, 6),
        _ => (nanos, 9),
    };
    let end = match width {
        0 => 19,
        _ => {
            for place in (20..20 + width).rev() {
                // A digit: the cast cannot truncate.
                text[place] = b'0' + (fraction % 10) as u8;
                fraction /= 10;
            }
            20 + width
        }
    };
    text[end] = b'Z';
    out.extend_from_slice(&text[..=end]);
}

/// `00` to `99`, each number's two digits at twice its value.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0; 200];
    let mut n = 0;
    while n < 100 {
        // Digits: the casts cannot truncate.
        pairs[2 * n] = b'0' + (n / 10) as u8;
        pairs[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    pairs
};

/// The computed fields of a fired action, each with its place among the action's fields, in
/// order. Most actions compute one field or none: those need no allocation of their own.
#[derive(Debug, Clone)]
pub(crate) enum Computed {
    None,
    One(usize, Value),
    Many(Box<[(usize, Value)]>),
}

impl Computed {
    fn get(&self, place: usize) -> Option<&Value> {
        match self {
            Computed::None => None,
            Computed::One(at, value) => (*at == place).then_some(value),
            Computed::Many(values) => values
                .binary_search_by_key(&place, |(at, _)| *at)
                .ok()
                .map(|i| &values[i].1),
        }
    }
}

impl FiredAction {
    /// `action` fired by rule `rule_id`, its fields as given.
    pub fn new(rule_id: impl Into<Arc<str>>, action: Action) -> FiredAction {
        FiredAction {
            template: Arc::new(Template::new(rule_id.into(), action, &[])),
            computed: Computed::None,
        }
    }

    /// The rule the action belongs to.
    pub fn rule_id(&self) -> &str {
        &self.template.rule_id
    }

    /// The action's `type`.
    pub fn kind(&self) -> &str {
        &self.template.action.kind
    }

    /// A field's value, computed when it was an expression.
    pub fn field(&self, name: &str) -> Option<&Value> {
        // An action has a few fields: a look along them costs less than a hash.
        self.fields()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
    }

    /// The fields other than `type`, in the order written, each computed when it was an
    /// expression.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.template
            .action
            .fields
            .iter()
            .enumerate()
            .map(|(place, (name, value))| {
                (name.as_str(), self.computed.get(place).unwrap_or(value))
            })
    }

    /// The computed fields only (those written as expressions), each as its place among
    /// [`FiredAction::fields`] and its value, in order. Every action fired from one compiled
    /// action computes the same places (the action as written holds `null` there).
    pub fn computed(&self) -> impl Iterator<Item = (usize, &Value)> + '_ {
        let (one, many) = match &self.computed {
            Computed::None => (None, &[][..]),
            Computed::One(place, value) => (Some((*place, value)), &[][..]),
            Computed::Many(values) => (None, &values[..]),
        };
        one.into_iter()
            .chain(many.iter().map(|(place, value)| (*place, value)))
    }

    /// The identity of the compiled action this was fired from (the address of what every
    /// action fired from it shares): equal for two fired actions of one compiled action, and
    /// unique among compiled actions for as long as an action fired from it lives. For a caller
    /// that builds something once per compiled action (the Python client builds each action's
    /// fixed part of its answer once) and keeps it beside a clone of this action, which keeps
    /// the identity from being reused.
    pub fn template_id(&self) -> usize {
        Arc::as_ptr(&self.template) as usize
    }

    /// The action with its computed values in place.
    pub fn to_action(&self) -> Action {
        Action {
            kind: self.template.action.kind.clone(),
            fields: self
                .fields()
                .map(|(name, value)| (name.to_owned(), value.clone()))
                .collect(),
        }
    }
}

/// Equal when the rule, the type and every field are (in any order, as for [`Action`]).
impl PartialEq for FiredAction {
    fn eq(&self, other: &FiredAction) -> bool {
        self.rule_id() == other.rule_id()
            && self.kind() == other.kind()
            && self.fields().len() == other.fields().len()
            && self
                .fields()
                .all(|(name, value)| other.field(name) == Some(value))
    }
}

impl FiredAction {
    /// Appends the action's JSON, the same bytes as its [`Serialize`] with `serde_json`: the
    /// fixed parts as written once at compile time, the computed values between them.
    fn write_json(&self, out: &mut Vec<u8>) {
        let json = &self.template.json;
        let mut from = 0;
        for &(at, place) in self.template.gaps.iter() {
            out.extend_from_slice(&json[from..at]);
            match self.computed.get(place) {
                Some(value) => write_json(out, value),
                None => out.extend_from_slice(b"null"),
            }
            from = at;
        }
        out.extend_from_slice(&json[from..]);
    }
}

impl Serialize for FiredAction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.fields();
        let mut map = serializer.serialize_map(Some(fields.len() + 2))?;
        map.serialize_entry("rule_id", self.rule_id())?;
        map.serialize_entry("type", self.kind())?;
        for (name, value) in fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for FiredAction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = Map::<String, Value>::deserialize(deserializer)?;
        let rule_id = match fields.shift_remove("rule_id") {
            Some(Value::String(id)) => id,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`rule_id` must be a string, found `{other}`"
                )))
            }
            None => return Err(D::Error::missing_field("rule_id")),
        };
        let action = Action::deserialize(Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(FiredAction::new(rule_id, action))
    }
}

impl Evaluation {
    /// Appends the evaluation's fields as JSON, without the braces around them: the same bytes
    /// as its [`Serialize`] with `serde_json`, for an answer that writes fields of its own around
    /// them (the service's adds `seq` and `decision_id`). Each action's fixed parts were written
    /// when its rule was compiled, so only the computed values are serialised here.
    pub fn write_json_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\"entry_point\":");
        write_json(out, &self.entry_point);
        out.extend_from_slice(b",\"at\":");
        write_json_time(out, &self.at);
        out.extend_from_slice(b",\"matched\":[");
        for (i, rule) in self.matched.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"id\":");
            write_json(out, &*rule.id);
            out.extend_from_slice(b",\"version\":");
            write_json(out, &rule.version);
            out.extend_from_slice(b",\"priority\":");
            write_json(out, &rule.priority);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"actions\":[");
        for (i, action) in self.actions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            action.write_json(out);
        }
        out.push(b']');
        if let Some(stopper) = &self.stopped_by {
            out.extend_from_slice(b",\"stopped_by\":");
            write_json(out, stopper);
        }
        out.extend_from_slice(b",\"errors\":");
        write_json(out, &self.errors);
        if let Some(explain) = &self.explain {
            out.extend_from_slice(b",\"explain\":");
            write_json(out, explain);
        }
    }

    /// The last `value` set for `field` by an action `{"type": "set_value", "field": ...,
    /// "value": ...}` (a convention of the examples, not a reserved type).
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.actions.iter().rev().find_map(|a| {
            (a.kind() == "set_value" && a.field("field").and_then(Value::as_str) == Some(field))
                .then(|| a.field("value"))
                .flatten()
        })
    }

    /// The evaluation under `on_error`: itself, unless a rule failed and `on_error` is
    /// [`OnError::Fail`], when the failures are the error (every one, in order).
    pub fn into_result(self, on_error: OnError) -> Result<Evaluation, Vec<RuleError>> {
        if on_error == OnError::Fail && !self.errors.is_empty() {
            Err(self.errors)
        } else {
            Ok(self)
        }
    }

    /// The ids of the matched rules, in order.
    pub fn matched_ids(&self) -> Vec<&str> {
        self.matched.iter().map(|m| &*m.id).collect()
    }
}

impl Ruleset {
    /// Validates and compiles the rules of `entry_point`. Every rule must name that entry point;
    /// ids must be unique.
    pub fn compile(entry_point: EntryPoint, rules: Vec<Rule>) -> Result<Ruleset, CompileError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            if rule.entry_point.as_ref() != Some(&entry_point) {
                return Err(CompileError::WrongEntryPoint {
                    rule_id: rule.id,
                    expected: entry_point.to_string(),
                    found: rule
                        .entry_point
                        .map_or_else(|| "none".to_owned(), |e| e.to_string()),
                });
            }
            compiled.push(CompiledRule::compile(rule));
        }
        Ruleset::from_compiled(entry_point, compiled)
    }

    /// Sorts compiled rules into evaluation order, refusing a repeated id.
    fn from_compiled(
        entry_point: EntryPoint,
        mut compiled: Vec<CompiledRule>,
    ) -> Result<Ruleset, CompileError> {
        compiled.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        let mut ids: Vec<&str> = compiled.iter().map(|r| &*r.id).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(CompileError::DuplicateRule {
                rule_id: pair[0].to_owned(),
            });
        }
        let actions = compiled
            .iter()
            .filter_map(|r| r.body.as_ref().ok())
            .map(|b| b.actions.len())
            .sum();
        Ok(Ruleset {
            entry_point,
            index: Index::build(&compiled),
            rules: compiled,
            actions,
        })
    }

    /// A new ruleset: this one with `drafts` (rules that are not saved) in place of its rules with
    /// the same ids, and beside the rest; `self` is left as it was, so a cached ruleset can be the
    /// base. Every draft must name this entry point (else [`CompileError::WrongEntryPoint`]), and
    /// no two drafts may share an id. A draft keeps the `version` it was given (the service gives
    /// 0, which no saved rule has).
    pub fn with_drafts(&self, drafts: Vec<Rule>) -> Result<Ruleset, CompileError> {
        let drafts = Ruleset::compile(self.entry_point.clone(), drafts)?;
        let mut rules: Vec<CompiledRule> = self
            .rules
            .iter()
            .filter(|saved| !drafts.rules.iter().any(|d| d.id == saved.id))
            .cloned()
            .collect();
        rules.extend(drafts.rules);
        Ruleset::from_compiled(self.entry_point.clone(), rules)
    }

    /// The entry point.
    pub fn entry_point(&self) -> &EntryPoint {
        &self.entry_point
    }

    /// How many rules were compiled (enabled or not).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule ids in evaluation order, with their versions.
    pub fn rules(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.rules.iter().map(|r| (&*r.id, r.version))
    }

    /// Evaluates the entry point for `input` at time `at`.
    ///
    /// Keeps the rules that are enabled and whose window contains `at`, runs their conditions in
    /// priority order (ties by id), collects the actions of every match with their expressions
    /// evaluated, and stops after a matching rule with `stop_processing`. Conditions and action
    /// expressions see the input (`{"var": "country"}` or `{"var": "input.country"}`) and the
    /// rule's own params (`{"var": "params.rate"}`).
    ///
    /// A rule that fails (over a limit, out of its work budget, or stored invalid) is listed in
    /// [`Evaluation::errors`] and counts as not matched; the other rules run as usual, each with
    /// its own budget of `limits.max_ops`. See [`Evaluation::into_result`] for all-or-nothing.
    ///
    /// Only the rules that can match run: a rule whose equality or `in` test of a variable cannot
    /// hold for the input's value is skipped, with the same answer as if it had run.
    pub fn evaluate(&self, input: &Value, at: DateTime<Utc>, limits: &Limits) -> Evaluation {
        let witness = &mut Unwitnessed;
        match self.index.select(input, limits) {
            Some(order) => self.run(
                order
                    .iter()
                    .map(|selected| (selected.position as usize, selected.test_holds)),
                input,
                at,
                limits,
                witness,
            ),
            None => self.run(every(self.rules.len()), input, at, limits, witness),
        }
    }

    /// Evaluates like [`Ruleset::evaluate`] (with the same answer) and adds
    /// [`Evaluation::explain`]: for every rule in evaluation order, whether it matched, its
    /// condition was false (with the values of the condition's top-level operands), it was
    /// disabled, outside its window, failed, or was not reached after a `stop_processing` rule.
    pub fn explain(&self, input: &Value, at: DateTime<Utc>, limits: &Limits) -> Evaluation {
        let mut explainer = Explainer::default();
        let mut evaluation = self.run(every(self.rules.len()), input, at, limits, &mut explainer);
        evaluation.explain = Some(explainer.outcomes);
        evaluation
    }

    /// The one evaluation loop over the rules at the positions `order` gives (in evaluation
    /// order, each with whether the index found its test true), telling `witness` how each was
    /// decided. A witness that records (`explain`) is given every rule.
    #[inline(always)]
    fn run<W: Witness>(
        &self,
        order: impl ExactSizeIterator<Item = (usize, bool)>,
        input: &Value,
        at: DateTime<Utc>,
        limits: &Limits,
        witness: &mut W,
    ) -> Evaluation {
        let mut evaluation = Evaluation {
            entry_point: self.entry_point.clone(),
            at,
            matched: Vec::new(),
            actions: Vec::new(),
            stopped_by: None,
            errors: Vec::new(),
            explain: None,
        };
        let room = order.len();
        for (i, test_holds) in order {
            let rule = &self.rules[i];
            if !rule.applies_at(at) {
                witness.not_in_force(rule);
                continue;
            }
            let scope = Scope::Rule {
                input,
                params: &rule.params,
            };
            let (body, budget) = match rule.decide(&scope, limits, test_holds) {
                Ok(Some(decided)) => decided,
                Ok(None) => {
                    witness.condition_false(rule, &scope, limits);
                    continue;
                }
                Err(e) => {
                    witness.failed(rule, &e, false);
                    evaluation
                        .errors
                        .push(RuleError::new(&rule.id, rule.version, &e));
                    continue;
                }
            };
            if evaluation.actions.capacity() == 0 {
                // One allocation instead of a series of doublings; nothing when none match.
                evaluation.actions.reserve_exact(self.actions);
            }
            if let Err(e) = rule.fire(body, &scope, budget, &mut evaluation.actions) {
                witness.failed(rule, &e, true);
                evaluation
                    .errors
                    .push(RuleError::new(&rule.id, rule.version, &e));
                continue;
            }
            if evaluation.matched.is_empty() {
                evaluation.matched.reserve_exact(room);
            }
            evaluation.matched.push(MatchedRule {
                id: rule.id.clone(),
                version: rule.version,
                priority: rule.priority,
            });
            witness.matched(rule);
            if rule.stop_processing {
                evaluation.stopped_by = Some(rule.id.to_string());
                witness.not_reached(&self.rules[i + 1..], &rule.id);
                break;
            }
        }
        evaluation
    }
}

/// Every one of `count` rules in order, each with its whole condition to run.
fn every(count: usize) -> impl ExactSizeIterator<Item = (usize, bool)> {
    (0..count).map(|i| (i, false))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    /// What `Serialize` writes for `at`, and what `write_json_time` writes.
    fn both(at: DateTime<Utc>) -> (String, String) {
        let mut written = Vec::new();
        write_json_time(&mut written, &at);
        (
            serde_json::to_string(&at).unwrap(),
            String::from_utf8(written).unwrap(),
        )
    }

    #[test]
    fn times_are_written_as_serde_writes_them() {
        let second = Utc.with_ymd_and_hms(2026, 3, 3, 10, 0, 0).unwrap();
        for nanos in [0, 250_000_000, 1_000, 120_000, 7, 999_999_999] {
            let at = second + chrono::Duration::nanoseconds(nanos);
            let (serde, ours) = both(at);
            assert_eq!(ours, serde);
        }
        assert_eq!(both(second).1, "\"2026-03-03T10:00:00Z\"");
        // Past four digits of year, and a leap second: chrono's own text.
        let far = Utc.with_ymd_and_hms(12_026, 1, 1, 0, 0, 0).unwrap();
        let (serde, ours) = both(far);
        assert_eq!(ours, serde);
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        let (serde, ours) = both(leap);
        assert_eq!(ours, serde);
    }

    proptest! {
        #[test]
        fn any_time_is_written_as_serde_writes_it(
            seconds in -70_000_000_000i64..300_000_000_000,
            nanos in prop_oneof![
                Just(0u32),
                (0u32..1_000).prop_map(|ms| ms * 1_000_000),
                (0u32..1_000_000).prop_map(|us| us * 1_000),
                0u32..1_000_000_000,
            ],
        ) {
            let at = DateTime::from_timestamp(seconds, nanos).unwrap();
            let (serde, ours) = both(at);
            prop_assert_eq!(ours, serde);
        }
    }
}
