//! `rulebook rules ...`: the rules API for people and scripts.

use std::io::{IsTerminal, Read as _, Write as _};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use rulebook_rules::Rule;
use serde_json::{json, Value};

use super::client::{segment, Client, ClientOpts};
use super::{note, out, out_json, CliError, Exit};

/// `rulebook rules`.
#[derive(Args, Debug)]
pub struct RulesArgs {
    #[command(flatten)]
    client: ClientOpts,
    #[command(subcommand)]
    command: RulesCommand,
}

/// The rules subcommands.
#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// List rules, all or those of one entry point.
    List {
        /// Only this entry point.
        #[arg(long)]
        entry_point: Option<String>,
    },
    /// Print one rule as JSON (what `update --file` takes back).
    Get {
        /// The rule id.
        id: String,
    },
    /// Create a rule from a JSON or YAML file (`-` for standard input).
    Create {
        /// The file.
        #[arg(long, short)]
        file: PathBuf,
        /// Why, recorded in the history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Replace a rule with the content of a file, if it is still at the version read.
    Update {
        /// The rule id.
        id: String,
        /// The file (`-` for standard input), usually edited from `rules get`.
        #[arg(long, short)]
        file: PathBuf,
        /// The version you read; by default the file's `version`.
        #[arg(long)]
        if_match: Option<i64>,
        /// Why, recorded in the history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Enable a rule.
    Enable {
        /// The rule id.
        id: String,
        /// Why, recorded in the history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Disable a rule.
    Disable {
        /// The rule id.
        id: String,
        /// Why, recorded in the history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delete a rule (its history stays).
    Delete {
        /// The rule id.
        id: String,
        /// Why, recorded in the history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show a rule's audit trail.
    History {
        /// The rule id.
        id: String,
    },
    /// Create or update rules from a file or a folder of files (JSON or YAML; one rule or a
    /// list per file). Rules whose content is unchanged are left alone.
    Import {
        /// A file, a folder, or `-` for standard input.
        path: PathBuf,
        /// Why, recorded in the history of every rule written.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print rules as a JSON or YAML list that `import` takes back.
    Export {
        /// Only this entry point.
        #[arg(long)]
        entry_point: Option<String>,
        /// The format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
}

/// An export format.
#[derive(ValueEnum, Debug, Clone, Copy)]
enum Format {
    Json,
    Yaml,
}

impl RulesArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> Result<(), CliError> {
        let client = Client::new(&self.client)?;
        match self.command {
            RulesCommand::List { entry_point } => {
                let path = match &entry_point {
                    Some(ep) => format!("/v1/rules?entry_point={}", segment(ep)),
                    None => "/v1/rules".to_owned(),
                };
                let answer = client.get(&path).await?;
                if client.json() {
                    out_json(&answer.body);
                } else {
                    print_table(answer.body["rules"].as_array().map_or(&[][..], |r| r));
                }
            }
            RulesCommand::Get { id } => {
                let answer = client.get(&format!("/v1/rules/{}", segment(&id))).await?;
                out_json(&answer.body);
            }
            RulesCommand::Create { file, reason } => {
                let mut rule = single(read_rules(&file)?, &file)?;
                with_reason(&mut rule, reason);
                let answer = client
                    .send(Method::POST, "/v1/rules", Some(&rule), None)
                    .await?;
                report(&client, &answer.body, "created");
            }
            RulesCommand::Update {
                id,
                file,
                if_match,
                reason,
            } => {
                let mut rule = single(read_rules(&file)?, &file)?;
                let version = if_match.or_else(|| rule["version"].as_i64());
                let Some(version) = version else {
                    return Err(CliError::usage(format!(
                        "`{}` has no `version`: give the version you read with --if-match",
                        file.display()
                    )));
                };
                if let Some(map) = rule.as_object_mut() {
                    map.remove("version");
                }
                with_reason(&mut rule, reason);
                let answer = client
                    .send(
                        Method::PUT,
                        &format!("/v1/rules/{}", segment(&id)),
                        Some(&rule),
                        Some(version),
                    )
                    .await?;
                report(&client, &answer.body, "updated");
            }
            RulesCommand::Enable { id, reason } => {
                let answer = write(
                    &client,
                    Method::POST,
                    &format!("/v1/rules/{}/enable", segment(&id)),
                    reason,
                )
                .await?;
                report(&client, &answer, "enabled");
            }
            RulesCommand::Disable { id, reason } => {
                let answer = write(
                    &client,
                    Method::POST,
                    &format!("/v1/rules/{}/disable", segment(&id)),
                    reason,
                )
                .await?;
                report(&client, &answer, "disabled");
            }
            RulesCommand::Delete { id, reason } => {
                let answer = write(
                    &client,
                    Method::DELETE,
                    &format!("/v1/rules/{}", segment(&id)),
                    reason,
                )
                .await?;
                if client.json() {
                    out_json(&answer);
                } else {
                    out(format!(
                        "deleted rule `{id}` (it was at version {}); its history stays",
                        answer["deleted"]["version"]
                    ));
                }
            }
            RulesCommand::History { id } => {
                let answer = client
                    .get(&format!("/v1/rules/{}/history", segment(&id)))
                    .await?;
                if client.json() {
                    out_json(&answer.body);
                } else {
                    for entry in answer.body["history"].as_array().map_or(&[][..], |h| h) {
                        out(format!(
                            "v{:<4} {:<8} {:<28} {:<20} {}",
                            entry["version"],
                            entry["kind"].as_str().unwrap_or_default(),
                            entry["changed_at"].as_str().unwrap_or_default(),
                            entry["changed_by"].as_str().unwrap_or_default(),
                            entry["reason"].as_str().unwrap_or_default()
                        ));
                    }
                }
            }
            RulesCommand::Import { path, reason } => import(&client, &path, reason).await?,
            RulesCommand::Export {
                entry_point,
                format,
            } => {
                let path = match &entry_point {
                    Some(ep) => format!("/v1/rules?entry_point={}", segment(ep)),
                    None => "/v1/rules".to_owned(),
                };
                let answer = client.get(&path).await?;
                let rules = answer.body["rules"].clone();
                match format {
                    Format::Json => out_json(&rules),
                    Format::Yaml => out(serde_yaml::to_string(&rules).map_err(|e| {
                        CliError::new(Exit::Server, format!("cannot write YAML: {e}"))
                    })?),
                }
            }
        }
        Ok(())
    }
}

async fn write(
    client: &Client,
    method: Method,
    path: &str,
    reason: Option<String>,
) -> Result<Value, CliError> {
    let body = match reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    Ok(client.send(method, path, Some(&body), None).await?.body)
}

fn with_reason(rule: &mut Value, reason: Option<String>) {
    if let (Some(map), Some(reason)) = (rule.as_object_mut(), reason) {
        map.insert("reason".to_owned(), Value::String(reason));
    }
}

fn report(client: &Client, rule: &Value, what: &str) {
    if client.json() {
        out_json(rule);
    } else {
        out(format!(
            "{what} rule `{}`, now at version {}",
            rule["id"].as_str().unwrap_or_default(),
            rule["version"]
        ));
    }
}

fn print_table(rules: &[Value]) {
    out(format!(
        "{:<32} {:<24} {:<8} {:>8} {:>7}  NAME",
        "ID", "ENTRY POINT", "ENABLED", "PRIORITY", "VERSION"
    ));
    for r in rules {
        out(format!(
            "{:<32} {:<24} {:<8} {:>8} {:>7}  {}",
            r["id"].as_str().unwrap_or_default(),
            r["entry_point"].as_str().unwrap_or("-"),
            if r["enabled"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            r["priority"],
            r["version"],
            r["name"].as_str().unwrap_or_default()
        ));
    }
    out(format!(
        "{} rule{}",
        rules.len(),
        if rules.len() == 1 { "" } else { "s" }
    ));
}

fn single(mut rules: Vec<Value>, file: &Path) -> Result<Value, CliError> {
    if rules.len() != 1 {
        return Err(CliError::usage(format!(
            "`{}` holds {} rules; this command takes exactly one (use `rules import` for many)",
            file.display(),
            rules.len()
        )));
    }
    Ok(rules.remove(0))
}

/// The rules in a file, a folder of files, or standard input (`-`): each file one rule or a list.
fn read_rules(path: &Path) -> Result<Vec<Value>, CliError> {
    let read_error =
        |e: std::io::Error| CliError::usage(format!("cannot read `{}`: {e}", path.display()));
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
        return parse_rules(&text, path);
    }
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_error)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "json" | "yaml" | "yml"))
            })
            .collect();
        files.sort();
        let mut rules = Vec::new();
        for file in files {
            rules.extend(read_rules(&file)?);
        }
        return Ok(rules);
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    parse_rules(&text, path)
}

fn parse_rules(text: &str, path: &Path) -> Result<Vec<Value>, CliError> {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(json_error) => serde_yaml::from_str(text).map_err(|yaml_error| {
            CliError::usage(format!(
                "`{}` is neither JSON ({json_error}) nor YAML ({yaml_error}): fix its syntax",
                path.display()
            ))
        })?,
    };
    match value {
        Value::Array(rules) => Ok(rules),
        Value::Object(_) => Ok(vec![value]),
        _ => Err(CliError::usage(format!(
            "`{}` holds neither a rule nor a list of rules",
            path.display()
        ))),
    }
}

/// The content of a rule without the bookkeeping, for telling whether an import changes it.
fn content(value: &Value, tenant: &str) -> Option<Rule> {
    let mut map = value.as_object()?.clone();
    for field in [
        "version",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "reason",
    ] {
        map.remove(field);
    }
    map.insert("tenant".to_owned(), Value::String(tenant.to_owned()));
    serde_json::from_value(Value::Object(map)).ok()
}

async fn import(client: &Client, path: &Path, reason: Option<String>) -> Result<(), CliError> {
    let rules = read_rules(path)?;
    let total = rules.len();
    let progress = std::io::stderr().is_terminal();
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    for (done, mut rule) in rules.into_iter().enumerate() {
        let Some(id) = rule["id"].as_str().map(str::to_owned) else {
            return Err(CliError::new(
                Exit::Refused,
                format!(
                    "rule {} of `{}` has no `id`: give every rule an id",
                    done + 1,
                    path.display()
                ),
            ));
        };
        with_reason(&mut rule, reason.clone());
        let current = match client.get(&format!("/v1/rules/{}", segment(&id))).await {
            Ok(answer) => Some(answer.body),
            Err(e) if e.exit == Exit::NotFound => None,
            Err(e) => return Err(e),
        };
        match current {
            None => {
                client
                    .send(Method::POST, "/v1/rules", Some(&rule), None)
                    .await?;
                created += 1;
            }
            Some(current) => {
                let tenant = current["tenant"].as_str().unwrap_or_default();
                if content(&current, tenant).is_some()
                    && content(&current, tenant) == content(&rule, tenant)
                {
                    unchanged += 1;
                } else {
                    if let Some(map) = rule.as_object_mut() {
                        map.remove("version");
                    }
                    let version = current["version"].as_i64();
                    client
                        .send(
                            Method::PUT,
                            &format!("/v1/rules/{}", segment(&id)),
                            Some(&rule),
                            version,
                        )
                        .await?;
                    updated += 1;
                }
            }
        }
        if progress {
            let _ = write!(std::io::stderr(), "\rimporting: {}/{total}", done + 1);
        }
    }
    if progress {
        note("");
    }
    if client.json() {
        out_json(
            &json!({ "total": total, "created": created, "updated": updated, "unchanged": unchanged }),
        );
    } else {
        out(format!(
            "imported {total} rules: {created} created, {updated} updated, {unchanged} unchanged"
        ));
    }
    Ok(())
}
