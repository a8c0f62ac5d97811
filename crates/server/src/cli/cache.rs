//! `rulebook cache stats|clear`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use super::client::{Client, ClientOpts};
use super::{out, out_json, CliError};

/// `rulebook cache`.
#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(flatten)]
    client: ClientOpts,
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Show the cache's counters and the loads per entry point.
    Stats,
    /// Drop cached entries of the tenant by hand (needs an admin token). Writes already
    /// invalidate what they touch; this is for operators.
    Clear {
        /// An entry point whose ruleset to drop (repeatable).
        #[arg(long = "entry-point")]
        entry_points: Vec<String>,
        /// A tag (such as `currency:USD` or `rule:RF-002`) whose entries to drop (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Drop every entry of the tenant.
        #[arg(long)]
        all: bool,
    },
}

impl CacheArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> Result<(), CliError> {
        let client = Client::new(&self.client)?;
        match self.command {
            CacheCommand::Stats => {
                let answer = client.get("/v1/cache/stats").await?;
                if client.json() {
                    out_json(&answer.body);
                    return Ok(());
                }
                let body = &answer.body;
                out(format!(
                    "entries {}  tenants cached {}",
                    body["entries"], body["tenants_cached"]
                ));
                if let Some(counters) = body["counters"].as_object() {
                    for (name, value) in counters {
                        out(format!("  {name:<24} {value}"));
                    }
                }
                out(format!(
                    "loads in tenant `{}`:",
                    body["tenant"].as_str().unwrap_or_default()
                ));
                for load in body["loads"].as_array().map_or(&[][..], |l| l) {
                    out(format!(
                        "  {:<40} {}",
                        load["item"].as_str().unwrap_or_default(),
                        load["loads"]
                    ));
                }
            }
            CacheCommand::Clear {
                entry_points,
                tags,
                all,
            } => {
                if entry_points.is_empty() && tags.is_empty() && !all {
                    return Err(CliError::usage(
                        "say what to clear: --entry-point EP, --tag T (each repeatable) or --all",
                    ));
                }
                let body = json!({ "entry_points": entry_points, "tags": tags, "all": all });
                let answer = client
                    .send(Method::POST, "/v1/cache/invalidate", Some(&body), None)
                    .await?;
                if client.json() {
                    out_json(&answer.body);
                } else {
                    out(format!("cleared: {}", answer.body));
                }
            }
        }
        Ok(())
    }
}
