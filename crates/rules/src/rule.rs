//! The rule model: what a rule is, as stored, sent over HTTP and written in rule files.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{EntryPoint, Level};

/// One rule. See the crate docs for the three shapes a rule takes (action rule, parameter rule,
/// scorecard factor).
///
/// Deserialisation rejects unknown fields. The bookkeeping fields (`version`, `created_*`,
/// `updated_*`) are optional on input so that what a client read can be sent back after editing;
/// the store sets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A code such as `RF-002` or `checkout_terms_banner`, unique within its tenant.
    #[cfg_attr(feature = "utoipa", schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$"))]
    pub id: String,
    /// The tenant that owns the rule.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Labels such as `currency:USD`, `entity:E001` or `scorecard:pad_trade`; each is a cache tag.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Where the rule is evaluated; parameter-only rules and scorecard factors have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<EntryPoint>,
    /// A short human name.
    #[serde(default)]
    pub name: String,
    /// What the rule is for.
    #[serde(default)]
    pub description: String,
    /// A free grouping such as `compliance` or `pricing`.
    #[serde(default)]
    pub category: String,
    /// Lower runs first; ties are broken by `id`.
    #[serde(default)]
    pub priority: i32,
    /// A disabled rule never matches and scores nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Stop evaluating the entry point after this rule matches.
    #[serde(default)]
    pub stop_processing: bool,
    /// A JSONLogic expression; `true` (the default) always matches.
    #[serde(default = "default_condition")]
    pub condition: Value,
    /// What happens when the rule matches, in order.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Named values, read by name (`Params::value`) and by expressions as `params.<name>`.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The type and bounds of each param; every write of `params` is checked against it.
    #[serde(default, skip_serializing_if = "ParamSchema::is_empty")]
    pub param_schema: ParamSchema,
    /// The rule applies from this time on (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<DateTime<Utc>>,
    /// The rule stops applying at this time (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<DateTime<Utc>>,
    /// Bumped by the store on every write (read-only for clients).
    #[serde(default)]
    pub version: i64,
    /// When the rule was created (read-only for clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Who created the rule (read-only for clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When the rule last changed (read-only for clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Who last changed the rule (read-only for clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// The tenant a rule belongs to when none is named, and the one that exists on every database
/// (example rules are seeded into it).
pub const DEFAULT_TENANT: &str = "default";

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

fn default_true() -> bool {
    true
}

fn default_condition() -> Value {
    Value::Bool(true)
}

/// The field names a rule accepts, in the order they are documented.
pub const RULE_FIELDS: &[&str] = &[
    "id",
    "tenant",
    "tags",
    "entry_point",
    "name",
    "description",
    "category",
    "priority",
    "enabled",
    "stop_processing",
    "condition",
    "actions",
    "params",
    "param_schema",
    "active_from",
    "active_until",
    "version",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
];

impl Rule {
    /// A rule with the given id and every other field at its default: tenant `default`, enabled,
    /// condition `true`, no actions, no params.
    pub fn new(id: impl Into<String>) -> Rule {
        Rule {
            id: id.into(),
            tenant: default_tenant(),
            tags: Vec::new(),
            entry_point: None,
            name: String::new(),
            description: String::new(),
            category: String::new(),
            priority: 0,
            enabled: true,
            stop_processing: false,
            condition: default_condition(),
            actions: Vec::new(),
            params: Map::new(),
            param_schema: ParamSchema::default(),
            active_from: None,
            active_until: None,
            version: 0,
            created_at: None,
            created_by: None,
            updated_at: None,
            updated_by: None,
        }
    }

    /// Whether the rule's schedule window contains `at` (`active_from` inclusive, `active_until`
    /// exclusive). Says nothing about `enabled`.
    pub fn is_active_at(&self, at: DateTime<Utc>) -> bool {
        in_window(self.active_from, self.active_until, at)
    }

    /// Whether the rule carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

pub(crate) fn in_window(
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> bool {
    from.is_none_or(|from| from <= at) && until.is_none_or(|until| at < until)
}

/// One action: a `type` the application names (such as `display_message`, `set_value` or
/// `notify.slack`) and its fields, kept exactly as written and in the order written.
///
/// Written and returned inline: `{"type": "display_message", "content": "Test"}`. Rulebook gives
/// meaning to two types only, [`SCORE`] and [`ROUTE`] (scorecards), whose fields are fixed
/// (checked by [`Rule::validate`]); every other type belongs to the application.
///
/// When the action fires, a field whose value is a JSONLogic operation (an object with one key
/// naming an operator, such as `{"var": "user.name"}`, or a list holding one) is computed against
/// the input and the rule's params; every other value is returned as written. To return an
/// object that looks like an operation literally, wrap it in `preserve`:
/// `{"preserve": {"var": "not computed"}}` gives `{"var": "not computed"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// The action's `type`: any non-empty name.
    pub kind: String,
    /// The other fields, in the order written.
    pub fields: Map<String, Value>,
}

/// The action type of a scorecard factor: `{"type": "score", "factor": NAME, "level": EXPR}`,
/// where the level expression gives `LOW`, `MEDIUM` or `HIGH`.
pub const SCORE: &str = "score";
/// The action type of a scorecard's approval route for one overall level:
/// `{"type": "route", "level": "HIGH", "route": "compliance_review"}`.
pub const ROUTE: &str = "route";
/// The action types whose fields Rulebook defines; every other type is the application's.
pub const RESERVED_ACTION_TYPES: &[&str] = &[SCORE, ROUTE];
/// Field names an action may not use: the evaluation answer writes `rule_id` beside each action's
/// fields, and `type` is the action's type.
pub const RESERVED_ACTION_FIELDS: &[&str] = &["type", "rule_id"];

/// What a reserved action says, read from its fields (see [`Action::reserved`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reserved<'a> {
    /// A scorecard factor.
    Score {
        /// The factor's name, such as `position_size`.
        factor: &'a str,
        /// The level expression.
        level: &'a Value,
    },
    /// A scorecard's route for one overall level.
    Route {
        /// The overall level.
        level: Level,
        /// The route's name.
        route: &'a str,
    },
}

impl Action {
    /// An action of type `kind` with no fields yet.
    pub fn new(kind: impl Into<String>) -> Action {
        Action {
            kind: kind.into(),
            fields: Map::new(),
        }
    }

    /// The same action with `name` set to `value` (appended when new).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Action {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// A field's value as written.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// The meaning of a [`SCORE`] or [`ROUTE`] action whose fields are well formed; `None` for an
    /// application's type (or a reserved one that [`Rule::validate`] would refuse).
    pub fn reserved(&self) -> Option<Reserved<'_>> {
        match self.kind.as_str() {
            SCORE => Some(Reserved::Score {
                factor: self.fields.get("factor")?.as_str()?,
                level: self.fields.get("level")?,
            }),
            ROUTE => Some(Reserved::Route {
                level: self
                    .fields
                    .get("level")?
                    .as_str()
                    .and_then(Level::from_name)?,
                route: self.fields.get("route")?.as_str()?,
            }),
            _ => None,
        }
    }

    /// The fields computed when the action fires, by name: a score's `level`, and for an
    /// application's type every field whose value is a JSONLogic operation.
    pub(crate) fn expressions(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        let kind = self.kind.as_str();
        self.fields
            .iter()
            .filter(move |(name, value)| match kind {
                SCORE => name.as_str() == "level",
                ROUTE => false,
                _ => crate::logic::is_operation(value),
            })
            .map(|(name, value)| (name.as_str(), value))
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len() + 1))?;
        map.serialize_entry("type", &self.kind)?;
        for (name, value) in &self.fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = Map::<String, Value>::deserialize(deserializer)?;
        match fields.shift_remove("type") {
            Some(Value::String(kind)) => Ok(Action { kind, fields }),
            Some(other) => Err(D::Error::custom(format!(
                "action `type` must be a string such as `display_message`, got {}",
                crate::validation::describe(&other)
            ))),
            None => Err(D::Error::custom(
                "action has no `type`; add one, such as `\"type\": \"display_message\"`",
            )),
        }
    }
}

/// The declared shape of a rule's `params`.
///
/// ```json
/// {"fields": {"lowThreshold": {"type": "number", "min": 0},
///             "highThreshold": {"type": "number", "min": 0}},
///  "ordered": [{"low": "lowThreshold", "high": "highThreshold"}]}
/// ```
///
/// When `fields` is not empty, a param it does not declare is an error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ParamSchema {
    /// Each declared param by name.
    #[serde(default)]
    pub fields: BTreeMap<String, ParamSpec>,
    /// Pairs of params that must be ordered: `low <= high`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ordered: Vec<OrderedPair>,
}

impl ParamSchema {
    /// Whether the schema declares nothing.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.ordered.is_empty()
    }
}

/// One declared param.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// The JSON type the value must have.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Smallest allowed value (numbers), length (strings, lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed value (numbers), length (strings, lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The param must be present.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// What the param means.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl ParamSpec {
    /// A spec of the given type with no bounds.
    pub fn new(kind: ParamType) -> ParamSpec {
        ParamSpec {
            kind,
            min: None,
            max: None,
            required: false,
            description: String::new(),
        }
    }

    /// The same spec with bounds.
    pub fn between(mut self, min: Option<f64>, max: Option<f64>) -> ParamSpec {
        self.min = min;
        self.max = max;
        self
    }

    /// The same spec, required.
    pub fn required(mut self) -> ParamSpec {
        self.required = true;
        self
    }
}

/// The JSON type of a param.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// Text.
    String,
    /// `true` or `false`.
    Boolean,
    /// A list.
    Array,
    /// An object.
    Object,
    /// Anything.
    Any,
}

impl ParamType {
    /// How the type is described in messages.
    pub fn describe(self) -> &'static str {
        match self {
            ParamType::Number => "a number",
            ParamType::Integer => "a whole number",
            ParamType::String => "a string",
            ParamType::Boolean => "true or false",
            ParamType::Array => "a list",
            ParamType::Object => "an object",
            ParamType::Any => "any value",
        }
    }

    /// Whether `value` has this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            ParamType::Number => value.is_number(),
            ParamType::Integer => {
                value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            ParamType::String => value.is_string(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::Array => value.is_array(),
            ParamType::Object => value.is_object(),
            ParamType::Any => true,
        }
    }
}

/// Two params that must be ordered: the value of `low` must not exceed the value of `high`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderedPair {
    /// The param that must be smaller or equal.
    pub low: String,
    /// The param that must be greater or equal.
    pub high: String,
}
