//! Rulebook's rules engine (see the README below for a tour).
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod entry_point;
mod level;
mod limits;
pub mod logic;
mod rule;
mod validation;

pub use entry_point::{EntryPoint, EntryPointError, MAX_ENTRY_POINT_LEN};
pub use level::Level;
pub use limits::{CompileError, EvalError, EvalLimits};
pub use rule::{
    Action, OrderedPair, ParamSchema, ParamSpec, ParamType, Rule, ACTION_TYPES, DEFAULT_TENANT,
    RULE_FIELDS,
};
pub use validation::{FieldError, ValidationErrors, MAX_ID_LEN};

pub mod examples;
mod params;
mod ruleset;
mod scorecard;

pub use params::Params;
pub use ruleset::{Evaluation, FiredAction, MatchedRule, Ruleset};
pub use scorecard::{FactorScore, ScoreRequest, ScoreResult, Scorecard, ESCALATION_PARAM};
