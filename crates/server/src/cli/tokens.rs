//! `rulebook tokens create|list|revoke`: on the database directly.

use clap::{Args, Subcommand, ValueEnum};
use rulebook_store::{Store, TokenRole};

use super::{out, out_json, CliError};

/// `rulebook tokens`.
#[derive(Args, Debug)]
pub struct TokensArgs {
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
    command: TokensCommand,
}

#[derive(Subcommand, Debug)]
enum TokensCommand {
    /// Make a token; its secret is printed once.
    Create {
        /// Who or what uses it; recorded as the author of its writes.
        #[arg(long)]
        name: String,
        /// What it may do: read, write (includes read) or admin (includes write).
        #[arg(long, value_enum)]
        role: Role,
        /// Limit it to one tenant (by default it acts on every tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by its id (`tok_...`).
    Revoke {
        /// The token's id.
        id: String,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Role {
    Read,
    Write,
    Admin,
}

impl From<Role> for TokenRole {
    fn from(role: Role) -> TokenRole {
        match role {
            Role::Read => TokenRole::Read,
            Role::Write => TokenRole::Write,
            Role::Admin => TokenRole::Admin,
        }
    }
}

impl TokensArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> Result<(), CliError> {
        let store = Store::open(&self.database_url).await?;
        let result = self.run_on(&store).await;
        store.close().await;
        result
    }

    async fn run_on(self, store: &Store) -> Result<(), CliError> {
        match self.command {
            TokensCommand::Create { name, role, tenant } => {
                let (record, secret) = store
                    .create_token(&name, role.into(), tenant.as_deref())
                    .await?;
                if self.json {
                    out_json(&serde_json::json!({ "token": record, "secret": secret }));
                } else {
                    out(format!(
                        "created token {} `{}` ({} on {}); its secret, shown once:\n{secret}",
                        record.id,
                        record.name,
                        record.role.as_str(),
                        record
                            .tenant
                            .as_deref()
                            .map_or("every tenant".to_owned(), |t| format!("tenant `{t}`"))
                    ));
                }
            }
            TokensCommand::List => {
                let tokens = store.list_tokens().await?;
                if self.json {
                    out_json(&tokens);
                } else {
                    out(format!(
                        "{:<22} {:<20} {:<6} {:<16} {:<26} REVOKED",
                        "ID", "NAME", "ROLE", "TENANT", "CREATED"
                    ));
                    for t in tokens {
                        out(format!(
                            "{:<22} {:<20} {:<6} {:<16} {:<26} {}",
                            t.id,
                            t.name,
                            t.role.as_str(),
                            t.tenant.as_deref().unwrap_or("*"),
                            t.created_at.to_rfc3339(),
                            t.revoked_at.map_or("-".to_owned(), |r| r.to_rfc3339())
                        ));
                    }
                }
            }
            TokensCommand::Revoke { id } => {
                store.revoke_token(&id).await?;
                out(format!("revoked token {id}"));
            }
        }
        Ok(())
    }
}
