//! Rulebook's rules engine (see the README below for a tour).
#![doc = include_str!("../README.md")]
//!
//! ## Where each concept lives
//!
//! - `rule` and `validation`: [`Rule`] and its checks, every problem with its field path.
//! - `documents` ([`read_rules`], [`parse_rules`], [`rule_files`]): the one reader of rule files
//!   and folders (JSON or YAML, one rule or a list, subfolders followed), used by the store's
//!   rules folder and the CLI; every problem names its file, rule and field.
//! - [`django`] ([`DjangoMapping`], [`parse_django`]): Django `dumpdata` output read as rule
//!   documents through a field mapping, for `rules import --format django` and the import
//!   endpoint.
//! - [`tags`]: the tag vocabulary (`entry_point:`, `scorecard:`, `rule:`, `params`), built there
//!   only.
//! - `entry_point`: [`EntryPoint`], the normalised key. [`DEFAULT_TENANT`] is defined in `rule`.
//! - [`logic`]: JSONLogic conditions; `ruleset`, `params`, `scorecard`: what is compiled from
//!   rules; `limits`: bounds on compiling and evaluating; `explain`: why each rule did or did not
//!   match ([`Outcome`]).
//! - `index`: which rules of a ruleset an evaluation runs, from their equality and `in` tests,
//!   and why skipping the others gives the same answer.
//! - `openapi` (feature `utoipa`, turned on by the service only): the OpenAPI schemas of the
//!   types the HTTP API sends and takes. They are derived (`utoipa::ToSchema`) beside each type's
//!   serde derives, so a schema is read from the same fields and attributes as the JSON and
//!   cannot drift from it; only [`EntryPoint`] and [`Action`], whose serde is hand-written, have
//!   hand-written schemas there. Behind a feature, so that a library user of this crate compiles
//!   no OpenAPI code.
#![deny(missing_docs)]

pub mod django;
mod documents;
mod entry_point;
mod error;
mod explain;
mod index;
mod level;
mod limits;
pub mod logic;
#[cfg(feature = "utoipa")]
mod openapi;
mod rule;
pub mod tags;
mod validation;

pub use django::{DjangoMapping, DjangoRule};
pub use documents::{
    is_rule_file, parse_django, parse_documents, parse_rules, read_documents, read_rules,
    read_rules_with, rule_files, Document, DocumentErrors, DocumentProblem, DocumentSource,
    ReadProgress, RuleDocument,
};
pub use entry_point::{EntryPoint, EntryPointError, MAX_ENTRY_POINT_LEN};
pub use error::{CompileError, EvalError, OnError, RuleError};
pub use explain::{FactorOutcome, Outcome, RuleOutcome};
pub use level::Level;
pub use limits::Limits;
pub use rule::{
    Action, OrderedPair, ParamSchema, ParamSpec, ParamType, Reserved, Rule, DEFAULT_TENANT,
    RESERVED_ACTION_FIELDS, RESERVED_ACTION_TYPES, ROUTE, RULE_FIELDS, SCORE,
};
pub use validation::{FieldError, ValidationErrors, MAX_ID_LEN};

pub mod examples;
mod params;
mod ruleset;
mod scorecard;

pub use params::{Flag, Params};
pub use ruleset::{write_rfc3339, Evaluation, FiredAction, MatchedRule, Ruleset};
pub use scorecard::{FactorScore, ScoreRequest, ScoreResult, Scorecard, ESCALATION_PARAM};
