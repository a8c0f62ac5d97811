//! `rulebook tenants create|list`: on the database directly.

use clap::{Args, Subcommand};
use rulebook_store::Store;

use super::{out, out_json, CliError};

/// `rulebook tenants`.
#[derive(Args, Debug)]
pub struct TenantsArgs {
    /// The database (the same as the server's).
    #[arg(
        long,
        env = "RULEBOOK_DATABASE_URL",
        default_value = "rulebook.db",
        global = true
    )]
    database_url: String,
    /// Print JSON, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(Subcommand, Debug)]
enum TenantsCommand {
    /// Create a tenant (1 to 64 of a-z, 0-9, `_`, `-`, `.`); creating one that exists is fine.
    Create {
        /// The tenant id.
        id: String,
    },
    /// List tenants.
    List,
}

impl TenantsArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> Result<(), CliError> {
        let store = Store::open(&self.database_url).await?;
        let result = match self.command {
            TenantsCommand::Create { id } => store.create_tenant(&id).await.map(|created| {
                out(if created {
                    format!("created tenant `{id}`")
                } else {
                    format!("tenant `{id}` already exists")
                })
            }),
            TenantsCommand::List => store.list_tenants().await.map(|tenants| {
                if self.json {
                    out_json(&tenants);
                } else {
                    for t in tenants {
                        out(t);
                    }
                }
            }),
        };
        store.close().await;
        Ok(result?)
    }
}
