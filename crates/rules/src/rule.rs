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
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A code such as `RF-002` or `checkout_terms_banner`, unique within its tenant.
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

/// One typed action. Fields documented as "expression" may be JSONLogic over the evaluation
/// input (see the crate docs); plain values are returned as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Show a message to the user.
    DisplayMessage {
        /// The message (expression).
        message: Value,
        /// Where to show it, such as `banner` or `modal`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        placement: Option<String>,
    },
    /// Set a named output value, such as a VAT amount.
    SetValue {
        /// The output's name.
        field: String,
        /// The value (expression).
        value: Value,
    },
    /// Refuse the operation.
    Block {
        /// Why (expression).
        reason: Value,
    },
    /// A scorecard factor: the level this factor assigns.
    Score {
        /// The factor's name, such as `position_size`.
        factor: String,
        /// `LOW`, `MEDIUM` or `HIGH` (expression, usually over `input` and `params`).
        level: Value,
    },
    /// A scorecard's approval route for one overall level.
    Route {
        /// The overall level this route is for.
        level: Level,
        /// The route's name, such as `compliance_review`.
        route: String,
    },
}

/// The `type` of every action, as written in rules.
pub const ACTION_TYPES: &[&str] = &["display_message", "set_value", "block", "score", "route"];

impl Action {
    /// The action's `type` as written in rules.
    pub fn type_name(&self) -> &'static str {
        match self {
            Action::DisplayMessage { .. } => "display_message",
            Action::SetValue { .. } => "set_value",
            Action::Block { .. } => "block",
            Action::Score { .. } => "score",
            Action::Route { .. } => "route",
        }
    }

    /// The fields that may hold expressions, with their names.
    pub(crate) fn expressions(&self) -> Vec<(&'static str, &Value)> {
        match self {
            Action::DisplayMessage { message, .. } => vec![("message", message)],
            Action::SetValue { value, .. } => vec![("value", value)],
            Action::Block { reason } => vec![("reason", reason)],
            Action::Score { level, .. } => vec![("level", level)],
            Action::Route { .. } => Vec::new(),
        }
    }

    /// A copy of the action with its expression fields replaced, in the order of
    /// [`Action::expressions`].
    pub(crate) fn with_values(&self, mut values: impl Iterator<Item = Value>) -> Action {
        let mut next = |old: &Value| values.next().unwrap_or_else(|| old.clone());
        match self {
            Action::DisplayMessage { message, placement } => Action::DisplayMessage {
                message: next(message),
                placement: placement.clone(),
            },
            Action::SetValue { field, value } => Action::SetValue {
                field: field.clone(),
                value: next(value),
            },
            Action::Block { reason } => Action::Block {
                reason: next(reason),
            },
            Action::Score { factor, level } => Action::Score {
                factor: factor.clone(),
                level: next(level),
            },
            Action::Route { level, route } => Action::Route {
                level: *level,
                route: route.clone(),
            },
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
#[serde(deny_unknown_fields)]
pub struct OrderedPair {
    /// The param that must be smaller or equal.
    pub low: String,
    /// The param that must be greater or equal.
    pub high: String,
}
