//! Validation: every problem with a rule at once, each with a field path and a way to fix it.
//!
//! Two entry points: [`Rule::validate`] checks a rule that is already typed (params against their
//! schema, the schedule window, ids, conditions and action expressions); [`Rule::from_json_value`]
//! (and its text and YAML twins) first checks the raw document field by field, so unknown fields,
//! wrong types and unknown action types are all reported together, each with its path, and then
//! runs [`Rule::validate`].

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::logic::Logic;
use crate::rule::{ParamSchema, Rule, RULE_FIELDS};
use crate::{Action, Level, RESERVED_ACTION_FIELDS, ROUTE, SCORE};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Where: `id`, `params.lowThreshold`, `actions[2].type`, ...
    pub path: String,
    /// What is wrong and how to fix it, in lower case.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.path, self.message)
        }
    }
}

/// Every problem found, in document order. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationErrors {
    /// The problems.
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// The problems at exactly `path`.
    pub fn at<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a FieldError> + 'a {
        self.errors.iter().filter(move |e| e.path == path)
    }

    /// Whether some problem is at `path`.
    pub fn has(&self, path: &str) -> bool {
        self.at(path).next().is_some()
    }

    fn from_vec(errors: Vec<FieldError>) -> Result<(), ValidationErrors> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors { errors })
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "{n} problem{}: ", if n == 1 { "" } else { "s" })?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// The longest rule id accepted.
pub const MAX_ID_LEN: usize = 128;

impl Rule {
    /// Checks everything about the rule that its types cannot: ids, tags, the schedule window,
    /// params against `param_schema`, the schema itself, and that the condition and every action
    /// expression compile. Returns every problem at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        check_id(&self.id, &mut errors);
        if self.tenant.trim().is_empty() {
            errors.push(FieldError::new(
                "tenant",
                "tenant is empty; name the tenant, such as `default`",
            ));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.trim().is_empty() {
                errors.push(FieldError::new(
                    format!("tags[{i}]"),
                    "tag is empty; remove it or write a label such as `currency:USD`",
                ));
            }
        }
        if self.version < 0 {
            errors.push(FieldError::new(
                "version",
                format!(
                    "version `{}` is negative; leave it out and the store sets it",
                    self.version
                ),
            ));
        }
        if let (Some(from), Some(until)) = (self.active_from, self.active_until) {
            if from >= until {
                errors.push(FieldError::new(
                    "active_from",
                    format!(
                        "active_from `{}` is not before active_until `{}`; swap them or move one",
                        from.to_rfc3339(),
                        until.to_rfc3339()
                    ),
                ));
            }
        }
        if let Err(e) = Logic::compile(&self.condition) {
            errors.push(FieldError::new("condition", e.to_string()));
        }
        for (i, action) in self.actions.iter().enumerate() {
            check_action(action, &format!("actions[{i}]"), &mut errors);
        }
        self.param_schema.check_schema("param_schema", &mut errors);
        self.param_schema
            .check_params(&self.params, "params", &mut errors);
        ValidationErrors::from_vec(errors)
    }

    /// Reads a rule from a JSON value, reporting every unknown field, wrong type and unknown
    /// action type with its path, then runs [`Rule::validate`].
    pub fn from_json_value(value: Value) -> Result<Rule, ValidationErrors> {
        let Value::Object(fields) = &value else {
            return Err(ValidationErrors {
                errors: vec![FieldError::new(
                    "",
                    format!(
                        "a rule must be an object with at least an `id`, got {}",
                        describe(&value)
                    ),
                )],
            });
        };
        let mut errors = Vec::new();
        check_fields(fields, &mut errors);
        ValidationErrors::from_vec(errors)?;
        let rule: Rule =
            deserialize_at(&value, "").map_err(|e| ValidationErrors { errors: vec![e] })?;
        rule.validate()?;
        Ok(rule)
    }

    /// Reads a rule from JSON text; see [`Rule::from_json_value`].
    pub fn from_json_str(text: &str) -> Result<Rule, ValidationErrors> {
        let value: Value = serde_json::from_str(text).map_err(|e| ValidationErrors {
            errors: vec![FieldError::new(
                "",
                format!("the rule is not valid JSON: {e}; fix the syntax at that line and column"),
            )],
        })?;
        Rule::from_json_value(value)
    }

    /// Reads a rule from YAML text; see [`Rule::from_json_value`].
    pub fn from_yaml_str(text: &str) -> Result<Rule, ValidationErrors> {
        let value: Value = serde_yaml::from_str(text).map_err(|e| ValidationErrors {
            errors: vec![FieldError::new(
                "",
                format!("the rule is not valid YAML: {e}; fix the syntax there"),
            )],
        })?;
        Rule::from_json_value(value)
    }
}

fn check_id(id: &str, errors: &mut Vec<FieldError>) {
    if id.trim().is_empty() {
        errors.push(FieldError::new(
            "id",
            "id is empty; give the rule a short code such as `RF-002` or `checkout_terms_banner`",
        ));
    } else if id.len() > MAX_ID_LEN {
        errors.push(FieldError::new(
            "id",
            format!("id is longer than {MAX_ID_LEN} characters; shorten it"),
        ));
    } else if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        errors.push(FieldError::new(
            "id",
            format!(
                "id `{id}` has a character `{c}` outside [A-Za-z0-9_.:-]; remove or replace it"
            ),
        ));
    }
}

/// Checks each top-level field on its own, so one bad field does not hide the next.
fn check_fields(fields: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    if !fields.contains_key("id") {
        errors.push(FieldError::new(
            "id",
            "id is missing; give the rule a short code such as `RF-002`",
        ));
    }
    for (name, value) in fields {
        let path = name.as_str();
        let result = match path {
            "id" | "tenant" | "name" | "description" | "category" => {
                expect::<String>(value, path, "a string")
            }
            "created_by" | "updated_by" => expect::<Option<String>>(value, path, "a string"),
            "tags" => expect::<Vec<String>>(value, path, "a list of strings"),
            "entry_point" => expect::<Option<String>>(value, path, "a string").and_then(|()| {
                match value.as_str().map(crate::EntryPoint::parse) {
                    Some(Err(e)) => Err(FieldError::new(path, e.to_string())),
                    _ => Ok(()),
                }
            }),
            "priority" => {
                expect::<i32>(value, path, "a whole number from -2147483648 to 2147483647")
            }
            "version" => expect::<i64>(value, path, "a whole number"),
            "enabled" | "stop_processing" => expect::<bool>(value, path, "true or false"),
            "condition" => Ok(()),
            "params" => expect::<Map<String, Value>>(value, path, "an object of named values"),
            "param_schema" => deserialize_at::<ParamSchema>(value, path).map(drop),
            "active_from" | "active_until" | "created_at" | "updated_at" => {
                expect::<Option<chrono::DateTime<chrono::Utc>>>(
                    value,
                    path,
                    "a time such as `2025-01-31T00:00:00Z`",
                )
            }
            "actions" => {
                check_actions(value, errors);
                Ok(())
            }
            other => Err(FieldError::new(
                other,
                format!(
                    "unknown field `{other}`; remove it or use one of {}",
                    RULE_FIELDS
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
}

fn check_actions(value: &Value, errors: &mut Vec<FieldError>) {
    let Value::Array(actions) = value else {
        errors.push(FieldError::new(
            "actions",
            format!("must be a list of actions, got {}", describe(value)),
        ));
        return;
    };
    for (i, action) in actions.iter().enumerate() {
        let path = format!("actions[{i}]");
        match action {
            Value::Object(fields) => match fields.get("type") {
                None => errors.push(FieldError::new(
                    format!("{path}.type"),
                    "action has no `type`; add one naming what the application should do, such as `display_message`",
                )),
                Some(Value::String(_)) => {}
                Some(other) => errors.push(FieldError::new(
                    format!("{path}.type"),
                    format!("must be a string such as `display_message`, got {}", describe(other)),
                )),
            },
            other => errors.push(FieldError::new(
                path,
                format!(
                    "an action must be an object such as {{\"type\": \"display_message\", \"content\": \"Hello\"}}, got {}",
                    describe(other)
                ),
            )),
        }
    }
}

/// Checks what Rulebook can know about an action: a non-empty `type`, no reserved field names, the
/// fixed fields of `score` and `route`, and that every computed field compiles.
fn check_action(action: &Action, path: &str, errors: &mut Vec<FieldError>) {
    if action.kind.trim().is_empty() {
        errors.push(FieldError::new(
            format!("{path}.type"),
            "action type is empty; name what the application should do, such as `display_message`",
        ));
    }
    for name in action.fields.keys() {
        if RESERVED_ACTION_FIELDS.contains(&name.as_str()) {
            errors.push(FieldError::new(
                format!("{path}.{name}"),
                format!("`{name}` is reserved (the answer writes it beside the action's fields); rename the field"),
            ));
        }
    }
    let fixed: &[(&str, &str)] = match action.kind.as_str() {
        SCORE => &[
            ("factor", "the factor's name, such as `position_size`"),
            ("level", "an expression giving `LOW`, `MEDIUM` or `HIGH`"),
        ],
        ROUTE => &[
            ("level", "`LOW`, `MEDIUM` or `HIGH`"),
            ("route", "the approval route, such as `compliance_review`"),
        ],
        _ => &[],
    };
    if !fixed.is_empty() {
        let names = fixed
            .iter()
            .map(|(n, _)| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(" and ");
        for name in action.fields.keys() {
            if !fixed.iter().any(|(n, _)| n == name) {
                errors.push(FieldError::new(
                    format!("{path}.{name}"),
                    format!(
                        "unknown field `{name}` of a `{}` action, whose fields Rulebook defines; use only {names}",
                        action.kind
                    ),
                ));
            }
        }
        for (name, what) in fixed {
            let field_path = format!("{path}.{name}");
            let value = action.fields.get(*name);
            let ok = match (action.kind.as_str(), *name, value) {
                (_, _, None) => false,
                (ROUTE, "level", Some(v)) => v.as_str().and_then(Level::from_name).is_some(),
                (_, "level", Some(_)) => true,
                (_, _, Some(v)) => v.as_str().is_some_and(|t| !t.trim().is_empty()),
            };
            if !ok {
                errors.push(FieldError::new(
                    field_path,
                    match value {
                        None => format!("`{name}` is missing; add {what}"),
                        Some(v) => format!("must be {what}, got {}", describe(v)),
                    },
                ));
            }
        }
    }
    for (field, expr) in action.expressions() {
        if let Err(e) = Logic::compile(expr) {
            errors.push(FieldError::new(format!("{path}.{field}"), e.to_string()));
        }
    }
}

/// Deserialises one field, replacing serde's wording with `expected` when the type is wrong.
fn expect<T: DeserializeOwned>(
    value: &Value,
    path: &str,
    expected: &str,
) -> Result<(), FieldError> {
    match T::deserialize(value) {
        Ok(_) => Ok(()),
        Err(_) => Err(FieldError::new(
            path,
            format!("must be {expected}, got {}", describe(value)),
        )),
    }
}

/// Deserialises `value`, naming the inner path of the first problem.
fn deserialize_at<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (prefix.is_empty(), inner.as_str()) {
            (_, ".") => prefix.to_owned(),
            (true, inner) => inner.to_owned(),
            (false, inner) if inner.starts_with('[') => format!("{prefix}{inner}"),
            (false, inner) => format!("{prefix}.{inner}"),
        };
        FieldError::new(path, humanise(&e.into_inner().to_string()))
    })
}

/// Rewrites serde's type names into words a rule author knows.
fn humanise(message: &str) -> String {
    let mut out = message.to_owned();
    for (from, to) in [
        ("expected f64", "expected a number"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected an object"),
        ("expected struct ", "expected an object "),
    ] {
        out = out.replace(from, to);
    }
    out
}

/// A short description of a JSON value for messages: its kind and, when short, the value.
pub(crate) fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => return "a list".to_owned(),
        Value::Object(_) => return "an object".to_owned(),
    };
    let text = value.to_string();
    if text.len() <= 40 {
        format!("{kind} `{text}`")
    } else {
        kind.to_owned()
    }
}

impl ParamSchema {
    /// Checks the schema itself: bounds in order, ordered pairs naming declared numeric fields.
    pub(crate) fn check_schema(&self, path: &str, errors: &mut Vec<FieldError>) {
        for (name, spec) in &self.fields {
            if name.trim().is_empty() {
                errors.push(FieldError::new(
                    format!("{path}.fields"),
                    "a param has an empty name; name it",
                ));
            }
            if let (Some(min), Some(max)) = (spec.min, spec.max) {
                if min > max {
                    errors.push(FieldError::new(
                        format!("{path}.fields.{name}.min"),
                        format!("min `{min}` is greater than max `{max}`; swap them"),
                    ));
                }
            }
        }
        for (i, pair) in self.ordered.iter().enumerate() {
            for (side, name) in [("low", &pair.low), ("high", &pair.high)] {
                if !self.fields.contains_key(name) {
                    errors.push(FieldError::new(
                        format!("{path}.ordered[{i}].{side}"),
                        format!("param `{name}` is not declared in `fields`; declare it or fix the name"),
                    ));
                }
            }
        }
    }

    /// Checks `params` against the schema: declared names, types, bounds, required params and
    /// ordered pairs. Paths start with `path`.
    pub fn check_params(
        &self,
        params: &Map<String, Value>,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        if !self.fields.is_empty() {
            for name in params.keys() {
                if !self.fields.contains_key(name) {
                    errors.push(FieldError::new(
                        format!("{path}.{name}"),
                        format!(
                            "param `{name}` is not declared in param_schema; declare it or use one of {}",
                            self.fields
                                .keys()
                                .map(|f| format!("`{f}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        for (name, spec) in &self.fields {
            let field_path = format!("{path}.{name}");
            let Some(value) = params.get(name) else {
                if spec.required {
                    errors.push(FieldError::new(
                        field_path,
                        format!("param `{name}` is required; add {}", spec.kind.describe()),
                    ));
                }
                continue;
            };
            if !spec.kind.accepts(value) {
                errors.push(FieldError::new(
                    field_path,
                    format!("must be {}, got {}", spec.kind.describe(), describe(value)),
                ));
                continue;
            }
            let (measure, what) = match value {
                Value::Number(n) => (n.as_f64(), "value"),
                Value::String(s) => (Some(s.chars().count() as f64), "length"),
                Value::Array(a) => (Some(a.len() as f64), "length"),
                _ => (None, ""),
            };
            if let Some(m) = measure {
                if let Some(min) = spec.min.filter(|min| m < *min) {
                    errors.push(FieldError::new(
                        field_path.clone(),
                        format!("{what} `{m}` is below the minimum `{min}`; raise it"),
                    ));
                }
                if let Some(max) = spec.max.filter(|max| m > *max) {
                    errors.push(FieldError::new(
                        field_path,
                        format!("{what} `{m}` is above the maximum `{max}`; lower it"),
                    ));
                }
            }
        }
        for pair in &self.ordered {
            let low = params.get(&pair.low).and_then(Value::as_f64);
            let high = params.get(&pair.high).and_then(Value::as_f64);
            if let (Some(low), Some(high)) = (low, high) {
                if low > high {
                    errors.push(FieldError::new(
                        format!("{path}.{}", pair.low),
                        format!(
                            "`{}` ({low}) must not exceed `{}` ({high}); lower `{}` or raise `{}`",
                            pair.low, pair.high, pair.low, pair.high
                        ),
                    ));
                }
            }
        }
    }

    /// Checks `params` against the schema and returns every problem.
    pub fn validate_params(&self, params: &Map<String, Value>) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        self.check_params(params, "params", &mut errors);
        ValidationErrors::from_vec(errors)
    }
}
