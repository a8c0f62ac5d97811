//! The `rulebook` command line: one file per subcommand group, dispatched through [`Command`].
//!
//! `serve` runs the service. `rules`, `cache` and `evaluate` talk to a running server over HTTP
//! ([`client`]). `tokens` and `tenants` work on the database directly, since a token is needed
//! to talk to the server in the first place.

pub mod cache;
pub mod client;
mod drafts;
pub mod evaluate;
mod history;
pub mod progress;
pub mod rules;
pub mod serve;
pub mod tenants;
pub mod tokens;

use std::io::Write as _;

use clap::{Parser, Subcommand};

const LONG_ABOUT: &str = "\
Rulebook is a rules service. Applications ask it which rules apply at an entry point, what a rule \
parameter is worth and how risky a request is; people change the rules through the API, this CLI, \
the web admin page, rule files or plain SQL, and a committed change is visible to the very next \
question.

`rulebook serve` starts the service on 127.0.0.1:8080 with an SQLite file ./rulebook.db, created \
and seeded with example rules on first start. The other commands talk to a running server \
(--server, RULEBOOK_SERVER; token in RULEBOOK_TOKEN), except `tokens` and `tenants`, which work \
on the database directly.";

const AFTER_HELP: &str = "\
Examples:
  rulebook serve
  RULEBOOK_DATABASE_URL=postgres://rulebook@127.0.0.1/rulebook rulebook serve --listen 0.0.0.0:8080
  rulebook evaluate checkout_terms --context '{\"country\": \"FR\", \"total\": 120}'
  rulebook evaluate checkout_terms --context @order.json --explain
  rulebook rules test edited_rule.yaml --context @order.json --explain
  rulebook rules list --entry-point checkout_terms
  rulebook rules get checkout_terms_banner > rule.json   # edit, then:
  rulebook rules update checkout_terms_banner --file rule.json --reason 'new wording'
  rulebook rules import ./rules/ && rulebook rules export --format yaml > all.yaml
  rulebook rules diff checkout_terms_banner 1 2
  rulebook rules rollback checkout_terms_banner --to 1 --reason 'wrong wording'
  rulebook cache stats
  rulebook tokens create --name ci-deploy --role write --tenant default

Exit codes:
  0  success
  1  the request was refused (bad input, validation failed)
  2  usage error (unknown flag, missing argument)
  3  not found (rule, parameter, token, tenant)
  4  conflict (someone else changed the rule: read it again)
  5  not allowed (missing, invalid or too weak token)
  6  server or database error, or the server cannot be reached";

/// `rulebook`: the service and its command line.
#[derive(Parser, Debug)]
#[command(name = "rulebook", version, about = "Rulebook: a rules service whose answers are never stale", long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service (HTTP API, /metrics, /health, web admin at /admin).
    Serve(serve::ServeArgs),
    /// List, read, create, update, enable, disable, delete, import and export rules.
    Rules(rules::RulesArgs),
    /// Show cache statistics, or clear entries by hand (never needed after writes).
    Cache(cache::CacheArgs),
    /// Evaluate an entry point for a context.
    Evaluate(evaluate::EvaluateArgs),
    /// Create, list and revoke API tokens (works on the database directly).
    Tokens(tokens::TokensArgs),
    /// Create and list tenants (works on the database directly).
    Tenants(tenants::TenantsArgs),
}

impl Command {
    /// Runs the command.
    pub async fn run(self) -> Result<(), CliError> {
        match self {
            Command::Serve(args) => args.run().await,
            Command::Rules(args) => args.run().await,
            Command::Cache(args) => args.run().await,
            Command::Evaluate(args) => args.run().await,
            Command::Tokens(args) => args.run().await,
            Command::Tenants(args) => args.run().await,
        }
    }
}

/// The exit codes, documented in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The request was refused: bad input, validation.
    Refused = 1,
    /// A usage error.
    Usage = 2,
    /// Something named does not exist.
    NotFound = 3,
    /// A version conflict or an existing id.
    Conflict = 4,
    /// Missing, invalid or too weak token.
    NotAllowed = 5,
    /// The server or the database failed or cannot be reached.
    Server = 6,
}

/// A failed command: what to tell the person and how to exit.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong and what to do (for a server's error, its `message`).
    pub message: String,
    /// The server's error as it sent it, when the server refused the request.
    pub api: Option<ApiProblem>,
    /// Advice a command adds after the message, such as how to raise a limit.
    pub hint: Option<String>,
}

/// A server's error answer, `{"error": {"code", "message", "errors": [{"path", "message"}]}}`,
/// kept as data so that commands can act on its code and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiProblem {
    /// The HTTP status.
    pub status: u16,
    /// The machine-readable code, such as `validation_failed` or `body_too_large`.
    pub code: String,
    /// Every field problem the server listed (422), in its order.
    pub errors: Vec<ApiFieldProblem>,
}

/// One field problem of an [`ApiProblem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFieldProblem {
    /// Where, in the request body, such as `rules[17].priority`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Where that part of the request came from, such as a rule file, when the command knows.
    pub origin: Option<String>,
}

impl CliError {
    /// An error with `exit` and `message`.
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
            api: None,
            hint: None,
        }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, message)
    }
}

impl std::fmt::Display for CliError {
    /// The message; for a server's error its code, status and field problems, one per line;
    /// then the hint.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(api) = &self.api {
            write!(f, " ({}, HTTP {})", api.code, api.status)?;
            for problem in &api.errors {
                write!(f, "\n  - `{}`: {}", problem.path, problem.message)?;
                if let Some(origin) = &problem.origin {
                    write!(f, " (in {origin})")?;
                }
            }
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{hint}")?;
        }
        Ok(())
    }
}

impl From<rulebook_store::StoreError> for CliError {
    fn from(error: rulebook_store::StoreError) -> CliError {
        use rulebook_store::StoreError as E;
        let exit = match &error {
            E::NotFound { .. }
            | E::VersionNotFound { .. }
            | E::DecisionNotFound { .. }
            | E::TokenNotFound(_)
            | E::UnknownTenant(_) => Exit::NotFound,
            E::Invalid(_) | E::InvalidUrl { .. } | E::Validation { .. } => Exit::Refused,
            E::AlreadyExists { .. } | E::Conflict { .. } => Exit::Conflict,
            _ => Exit::Server,
        };
        CliError::new(exit, error.to_string())
    }
}

/// Writes a line to standard output, ignoring a closed pipe.
pub(crate) fn out(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Writes a line to standard error.
pub(crate) fn note(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Prints `value` as pretty JSON.
pub(crate) fn out_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => out(text),
        Err(e) => note(format!("cannot print the answer as JSON: {e}")),
    }
}
