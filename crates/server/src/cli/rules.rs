//! `rulebook rules ...`: the rules API for people and scripts.

use std::io::{IsTerminal, Read as _, Write as _};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use std::sync::Arc;

use indicatif::ProgressBar;
use parking_lot::Mutex;
use rulebook_client::ClientError;
use rulebook_rules::{Document, DocumentErrors, DocumentSource, ReadProgress, Rule, RuleDocument};
use serde_json::{json, Value};

use super::client::{segment, Client, ClientOpts};
use super::progress::Progress;
use super::{note, out, out_json, CliError, Exit};
use crate::api::bounded::{human, NDJSON};

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
    /// Show what changed between two versions of a rule, one field a line (`--json`: with the
    /// RFC 6902 JSON Patch).
    Diff {
        /// The rule id.
        id: String,
        /// The version to diff from.
        from: i64,
        /// The version to diff to.
        to: i64,
    },
    /// Write the content of an earlier version as the rule's next version (also restores a
    /// deleted rule); recorded in the history as a rollback.
    Rollback {
        /// The rule id.
        id: String,
        /// The version whose content to restore.
        #[arg(long)]
        to: i64,
        /// Why, recorded in the history.
        #[arg(long)]
        reason: Option<String>,
        /// Only if the rule is still at this version (for a deleted rule: the version that
        /// recorded the deletion).
        #[arg(long)]
        if_match: Option<i64>,
    },
    /// Create or update rules from a file or a folder of files (JSON or YAML; one rule or a
    /// list per file), in one transaction: every rule is checked first, and if any is bad nothing
    /// is written. Rules whose content is unchanged are left alone. The rules are streamed to the
    /// server one a line (NDJSON) under its import limit (`serve --import-body-limit`, 256 MiB
    /// by default: about a million rules); on a terminal, progress bars show the reading,
    /// checking and sending.
    ///
    /// With `--format django`, the file is the output of Django's `manage.py dumpdata` (JSON or
    /// YAML): `rule_code` becomes `id`, `active` becomes `enabled`, other fields keep their names
    /// (change this with `--map` and `--ignore`), and `{"always": true}` becomes `true`.
    Import {
        /// A file, a folder, or `-` for standard input (with `--format django`: one file or `-`).
        path: PathBuf,
        /// What the file holds.
        #[arg(long, value_enum, default_value_t = ImportFormat::Rulebook)]
        format: ImportFormat,
        /// Django: read the Django field DJANGO as the rule field RULE (`--map code=id`); may be
        /// repeated. The defaults are `rule_code=id` and `active=enabled`.
        #[arg(long = "map", value_name = "DJANGO=RULE")]
        map: Vec<String>,
        /// Django: drop this Django field; may be repeated.
        #[arg(long, value_name = "FIELD")]
        ignore: Vec<String>,
        /// Django: import the entries of this model (`app_label.modelname`) and skip the others,
        /// for a dump of several models.
        #[arg(long, value_name = "APP.MODEL")]
        model: Option<String>,
        /// Why, recorded in the history of every rule written.
        #[arg(long)]
        reason: Option<String>,
        /// Check every rule and say what would change, without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Evaluate rules from a file without saving them (drafts): each in place of the saved rule
    /// with its id and beside the other rules of its entry point, against each --context; one
    /// request per entry point in the file. Nothing is written. With --json: the answer, or a
    /// list of answers when the file names several entry points.
    Test {
        /// A file, a folder, or `-` for standard input (JSON or YAML; one rule or a list).
        path: PathBuf,
        /// The input as a JSON object, or `@FILE`; give it several times for several inputs.
        #[arg(long)]
        context: Vec<String>,
        /// The evaluation time (RFC 3339), now by default.
        #[arg(long)]
        at: Option<String>,
        /// Explain how every rule was decided, as a table (rule, outcome, detail).
        #[arg(long)]
        explain: bool,
    },
    /// Print rules as a JSON or YAML list that `import` takes back, written a page at a time as
    /// the pages arrive (so memory stays flat however many rules there are).
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

/// What an imported file holds.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ImportFormat {
    /// Rules as `rules get` and `rules export` print them.
    Rulebook,
    /// The output of Django's `manage.py dumpdata`.
    Django,
}

/// The Django options of `rules import`.
struct DjangoFlags {
    map: Vec<String>,
    ignore: Vec<String>,
    model: Option<String>,
}

impl RulesArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> Result<(), CliError> {
        let client = Client::new(&self.client)?;
        match self.command {
            RulesCommand::List { entry_point } => {
                let (rules, seq) = every_rule(&client, entry_point.as_deref()).await?;
                if client.json() {
                    out_json(&json!({ "rules": rules, "seq": seq }));
                } else {
                    print_table(&rules);
                }
            }
            RulesCommand::Get { id } => {
                let mut answer = client.get(&format!("/v1/rules/{}", segment(&id))).await?;
                // A rule document to edit and send back: the answer's `seq` (the server's
                // position) is not part of the rule.
                if let Some(map) = answer.body.as_object_mut() {
                    map.remove("seq");
                }
                out_json(&answer.body);
            }
            RulesCommand::Create { file, reason } => {
                let mut rule = single(read_documents(&file)?, &file)?;
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
                let mut rule = single(read_documents(&file)?, &file)?;
                let version = if_match.or_else(|| rule["version"].as_i64());
                let Some(version) = version else {
                    return Err(CliError::usage(format!(
                        "`{}` has no `version`: give the version you read with --if-match",
                        file.display()
                    )));
                };
                if let Some(map) = rule.as_object_mut() {
                    map.shift_remove("version");
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
            RulesCommand::Diff { id, from, to } => {
                super::history::diff(&client, &id, from, to).await?;
            }
            RulesCommand::Rollback {
                id,
                to,
                reason,
                if_match,
            } => {
                super::history::rollback(&client, &id, to, reason, if_match).await?;
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
            RulesCommand::Import {
                path,
                format,
                map,
                ignore,
                model,
                reason,
                dry_run,
            } => match format {
                ImportFormat::Rulebook => {
                    if let Some(flag) = [
                        (!map.is_empty()).then_some("--map"),
                        (!ignore.is_empty()).then_some("--ignore"),
                        model.is_some().then_some("--model"),
                    ]
                    .into_iter()
                    .flatten()
                    .next()
                    {
                        return Err(CliError::usage(format!(
                            "`{flag}` applies to Django dumps only: add `--format django`, or leave it out"
                        )));
                    }
                    import(&client, &path, reason, dry_run).await?
                }
                ImportFormat::Django => {
                    let flags = DjangoFlags { map, ignore, model };
                    import_django(&client, &path, &flags, reason, dry_run).await?
                }
            },
            RulesCommand::Test {
                path,
                context,
                at,
                explain,
            } => {
                let options = super::drafts::TestOptions {
                    contexts: context,
                    at,
                    explain,
                };
                super::drafts::test(&client, &path, &options).await?;
            }
            RulesCommand::Export {
                entry_point,
                format,
            } => export(&client, entry_point.as_deref(), format).await?,
        }
        Ok(())
    }
}

/// `rules export`: pages through `GET /v1/rules` and writes each page as it arrives, as one JSON
/// or YAML list.
async fn export(
    client: &Client,
    entry_point: Option<&str>,
    format: Format,
) -> Result<(), CliError> {
    let mut written = 0usize;
    let mut out = std::io::stdout().lock();
    let broken =
        |e: std::io::Error| CliError::new(Exit::Server, format!("cannot write the rules: {e}"));
    let mut pages = Pages::new(entry_point);
    while let Some(page) = pages.next(client).await? {
        let mut text = String::new();
        for rule in &page {
            match format {
                Format::Json => {
                    text.push_str(if written == 0 { "[\n  " } else { ",\n  " });
                    let pretty = serde_json::to_string_pretty(rule).map_err(|e| {
                        CliError::new(Exit::Server, format!("cannot write the rule as JSON: {e}"))
                    })?;
                    text.push_str(&pretty.replace('\n', "\n  "));
                }
                Format::Yaml => {
                    text.push_str(&serde_yaml::to_string(std::slice::from_ref(rule)).map_err(
                        |e| CliError::new(Exit::Server, format!("cannot write YAML: {e}")),
                    )?);
                }
            }
            written += 1;
        }
        // One write and flush a page: the page is out before the next is asked for.
        out.write_all(text.as_bytes()).map_err(broken)?;
        out.flush().map_err(broken)?;
    }
    let end = match (format, written) {
        (Format::Json, 0) => "[]\n",
        (Format::Json, _) => "\n]\n",
        (Format::Yaml, 0) => "[]\n",
        (Format::Yaml, _) => "",
    };
    out.write_all(end.as_bytes()).map_err(broken)?;
    out.flush().map_err(broken)
}

/// The pages of `GET /v1/rules` (of one entry point, when given), the largest the server gives.
struct Pages {
    entry_point: Option<String>,
    cursor: Option<String>,
    seq: Option<Value>,
    done: bool,
}

impl Pages {
    fn new(entry_point: Option<&str>) -> Pages {
        Pages {
            entry_point: entry_point.map(str::to_owned),
            cursor: None,
            seq: None,
            done: false,
        }
    }

    /// The next page's rules; `None` after the last.
    async fn next(&mut self, client: &Client) -> Result<Option<Vec<Value>>, CliError> {
        if self.done {
            return Ok(None);
        }
        let mut path = format!("/v1/rules?limit={}", crate::api::page::MAX_LIMIT);
        if let Some(ep) = &self.entry_point {
            path.push_str(&format!("&entry_point={}", segment(ep)));
        }
        if let Some(cursor) = &self.cursor {
            path.push_str(&format!("&cursor={}", segment(cursor)));
        }
        let mut answer = client.get(&path).await?;
        self.seq.get_or_insert_with(|| answer.body["seq"].clone());
        let rules = match answer.body.get_mut("rules").map(Value::take) {
            Some(Value::Array(page)) => page,
            _ => Vec::new(),
        };
        match answer.body["next_cursor"].as_str() {
            Some(next) => self.cursor = Some(next.to_owned()),
            None => self.done = true,
        }
        Ok(Some(rules))
    }
}

/// Every rule (of `entry_point`, when given), paging through `GET /v1/rules` with the largest
/// pages the server gives, and the `seq` of the first page (the answer reflects at least it).
async fn every_rule(
    client: &Client,
    entry_point: Option<&str>,
) -> Result<(Vec<Value>, Value), CliError> {
    let mut rules = Vec::new();
    let mut pages = Pages::new(entry_point);
    while let Some(page) = pages.next(client).await? {
        rules.extend(page);
    }
    Ok((rules, pages.seq.unwrap_or(Value::Null)))
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

fn single(mut documents: Vec<Document>, file: &Path) -> Result<Value, CliError> {
    if documents.len() != 1 {
        return Err(CliError::usage(format!(
            "`{}` holds {} rules; this command takes exactly one (use `rules import` for many)",
            file.display(),
            documents.len()
        )));
    }
    Ok(documents.remove(0).value)
}

/// The documents in a file, a folder of files (subfolders too), or standard input (`-`), as the
/// rules crate's reader reads them; the server checks them as rules.
fn read_documents(path: &Path) -> Result<Vec<Document>, CliError> {
    if path == Path::new("-") {
        rulebook_rules::parse_documents(path, &stdin()?)
    } else {
        rulebook_rules::read_documents(path)
    }
    .map_err(refused)
}

/// The rules in a file, a folder of files or standard input, read and checked by the rules
/// crate's reader, which names every problem's file, rule and field.
pub(crate) fn read_rules(path: &Path) -> Result<Vec<RuleDocument>, CliError> {
    if path == Path::new("-") {
        rulebook_rules::parse_rules(path, &stdin()?)
    } else {
        rulebook_rules::read_rules(path)
    }
    .map_err(refused)
}

fn stdin() -> Result<Vec<u8>, CliError> {
    let mut text = Vec::new();
    std::io::stdin()
        .read_to_end(&mut text)
        .map_err(|e| CliError::usage(format!("cannot read standard input: {e}")))?;
    Ok(text)
}

/// The reader's problems, one per line: nothing was sent.
fn refused(errors: DocumentErrors) -> CliError {
    let n = errors.problems.len();
    CliError::new(
        Exit::Refused,
        format!(
            "nothing was sent: fix {} and try again\n{}",
            if n == 1 {
                "this problem".to_owned()
            } else {
                format!("these {n} problems")
            },
            errors
                .problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )
}

/// A checked rule as the JSON the API takes.
pub(crate) fn rule_value(rule: &Rule) -> Result<Value, CliError> {
    serde_json::to_value(rule)
        .map_err(|e| CliError::new(Exit::Server, format!("cannot write the rule as JSON: {e}")))
}

/// `rules import`: reads every file, checks every rule, and streams them to the server one a
/// line (NDJSON) in one request, which the server checks again and writes in one transaction.
async fn import(
    client: &Client,
    path: &Path,
    reason: Option<String>,
    dry_run: bool,
) -> Result<(), CliError> {
    let progress = Progress::new(client.json());
    let documents = if path == Path::new("-") {
        rulebook_rules::parse_rules(path, &stdin()?).map_err(refused)?
    } else {
        let reading = progress.bar("reading", 0, false);
        let checking = progress.bar("checking", 0, false);
        let read = rulebook_rules::read_rules_with(path, |step| match step {
            ReadProgress::Read { done, total } => {
                reading.set_length(total as u64);
                reading.set_position(done as u64);
            }
            ReadProgress::Checked { done, total } => {
                checking.set_length(total as u64);
                checking.set_position(done as u64);
            }
        });
        reading.finish_and_clear();
        checking.finish_and_clear();
        read.map_err(refused)?
    };
    if documents.is_empty() {
        return Err(CliError::usage(format!(
            "`{}` holds no rules: give a JSON or YAML file, or a folder of them",
            path.display()
        )));
    }
    // One line a rule, gathered in chunks of about 64 KiB: the request's body.
    let mut chunks = Vec::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut sources = Vec::with_capacity(documents.len());
    for document in documents {
        serde_json::to_writer(&mut chunk, &document.rule).map_err(|e| {
            CliError::new(Exit::Server, format!("cannot write the rule as JSON: {e}"))
        })?;
        chunk.push(b'\n');
        if chunk.len() >= CHUNK {
            chunks.push(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
        }
        sources.push(document.source);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    let size: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    let sent = sources.len();

    let mut query = format!("/v1/rules/import?dry_run={dry_run}");
    if let Some(reason) = &reason {
        query.push_str(&format!("&reason={}", segment(reason)));
    }
    let sending = progress.bar("sending", size, true);
    // Once the body is out, a spinner turns until the answer comes.
    let waiting: Arc<Mutex<Option<ProgressBar>>> = Arc::default();
    let spinner = waiting.clone();
    let what = if dry_run { "check" } else { "check and write" };
    let last = chunks.len();
    let stream =
        futures_util::stream::iter(chunks.into_iter().enumerate().map(move |(i, chunk)| {
            sending.inc(chunk.len() as u64);
            if i + 1 == last {
                sending.finish_and_clear();
                *spinner.lock() = Some(
                    progress.spinner(&format!("waiting for the server to {what} {sent} rules")),
                );
            }
            Ok::<_, std::io::Error>(chunk)
        }));
    let answer = client
        .send_stream(&query, NDJSON, reqwest::Body::wrap_stream(stream), size)
        .await;
    if let Some(spinner) = waiting.lock().take() {
        spinner.finish_and_clear();
    }
    let answer = match answer {
        Ok(answer) => answer.body,
        Err(ClientError::TooLarge {
            limit: Some(limit),
            code,
            ..
        }) if code == "import_too_large" => {
            return Err(CliError::new(
                Exit::Refused,
                format!(
                    "too large: the import is {size} bytes ({}), {} bytes over the server's import \
                     limit of {limit} bytes ({}); raise --import-body-limit \
                     (RULEBOOK_IMPORT_BODY_LIMIT) on the server, or split the import",
                    human(size),
                    size.saturating_sub(limit),
                    human(limit)
                ),
            ));
        }
        Err(e) => {
            let mut e = client.error_of(e);
            if let Some(api) = &mut e.api {
                for problem in &mut api.errors {
                    problem.origin = import_index(&problem.path)
                        .and_then(|i| sources.get(i))
                        .map(ToString::to_string);
                }
            }
            return Err(e);
        }
    };
    report_import(client, &answer, dry_run);
    Ok(())
}

/// About how many bytes of rules go in one piece of a streamed import.
const CHUNK: usize = 64 << 10;

/// Sends an import and reports its answer; a problem the server finds is mapped back to the
/// place in `sources` its path's index names (`rules[3]...` is `sources[3]`).
async fn send_import(
    client: &Client,
    body: &Value,
    sources: &[DocumentSource],
    sent: usize,
    dry_run: bool,
) -> Result<(), CliError> {
    if std::io::stderr().is_terminal() {
        note(format!(
            "sending {sent} {} in one request{}",
            if body["format"] == "django" {
                "entries"
            } else {
                "rules"
            },
            if dry_run { " (dry run)" } else { "" }
        ));
    }
    let answer = match client
        .send(Method::POST, "/v1/rules/import", Some(body), None)
        .await
    {
        Ok(answer) => answer.body,
        Err(mut e) if e.api.as_ref().is_some_and(|a| a.code == "body_too_large") => {
            let size = serde_json::to_vec(body).map_or(0, |b| b.len());
            e.hint = Some(too_large_hint(size));
            return Err(e);
        }
        Err(mut e) => {
            if let Some(api) = &mut e.api {
                for problem in &mut api.errors {
                    problem.origin = import_index(&problem.path)
                        .and_then(|i| sources.get(i))
                        .map(ToString::to_string);
                }
            }
            return Err(e);
        }
    };
    report_import(client, &answer, dry_run);
    Ok(())
}

/// Says what an import did (or, on a dry run, would do).
fn report_import(client: &Client, answer: &Value, dry_run: bool) {
    if client.json() {
        out_json(answer);
        return;
    }
    let count = |field: &str| answer[field].as_u64().unwrap_or(0);
    let total = count("total");
    let mut counts = format!(
        "{} created, {} updated, {} unchanged",
        count("created"),
        count("updated"),
        count("unchanged")
    );
    if count("skipped") > 0 {
        counts.push_str(&format!(
            ", {} entries of other models skipped",
            count("skipped")
        ));
    }
    if dry_run {
        out(format!(
            "would import {total} rules: {counts} (dry run: nothing was written)"
        ));
    } else {
        out(format!("imported {total} rules: {counts}"));
    }
}

/// `rules import --format django`: reads the dump and sends its entries as they are, with the
/// mapping, in one request. The server reads them with the rules crate's reader and reports
/// every problem at once, those of single entries and those of the batch (an id twice), each at
/// its path in the dump (`rules[3].fields.condition`); each is shown with its entry's place in
/// the file. The flags are checked here first.
async fn import_django(
    client: &Client,
    path: &Path,
    flags: &DjangoFlags,
    reason: Option<String>,
    dry_run: bool,
) -> Result<(), CliError> {
    if path.is_dir() {
        return Err(CliError::usage(format!(
            "`{}` is a folder: `--format django` reads one `dumpdata` file (or `-` for standard input)",
            path.display()
        )));
    }
    // The server reads the entries; a mistaken flag is said here, as a flag.
    let mut mapping = rulebook_rules::DjangoMapping::default();
    let mut map = serde_json::Map::new();
    for spec in &flags.map {
        mapping
            .map_spec(spec)
            .map_err(|e| CliError::usage(format!("`--map {spec}`: {}", e.message)))?;
        if let Some((django, rule_field)) = spec.split_once('=') {
            map.insert(
                django.trim().to_owned(),
                Value::String(rule_field.trim().to_owned()),
            );
        }
    }
    let bytes = if path == Path::new("-") {
        stdin()?
    } else {
        std::fs::read(path).map_err(|e| {
            CliError::usage(format!(
                "cannot read `{}` ({e}); check that it exists and is readable",
                path.display()
            ))
        })?
    };
    let entries = rulebook_rules::parse_documents(path, &bytes).map_err(refused)?;
    if entries.is_empty() {
        return Err(CliError::usage(format!(
            "`{}` holds no entries: give the output of `manage.py dumpdata` for the rule model",
            path.display()
        )));
    }
    let sent = entries.len();
    let mut body = json!({
        "format": "django",
        "rules": entries.iter().map(|d| &d.value).collect::<Vec<_>>(),
        "dry_run": dry_run,
    });
    if !map.is_empty() {
        body["map"] = Value::Object(map);
    }
    if !flags.ignore.is_empty() {
        body["ignore"] = json!(flags.ignore);
    }
    if let Some(model) = &flags.model {
        body["model"] = json!(model);
    }
    if let Some(reason) = reason {
        body["reason"] = Value::String(reason);
    }
    let sources: Vec<_> = entries.into_iter().map(|d| d.source).collect();
    send_import(client, &body, &sources, sent, dry_run).await
}

/// What to do when an import is over the server's body limit: it is one request on purpose.
fn too_large_hint(size: usize) -> String {
    let mib = size.div_ceil(1 << 20);
    let suggest = (2 * mib).next_power_of_two().max(2);
    format!(
        "the import is {:.1} MiB and is sent as one request so that it commits as one transaction: \
         start the server with a larger limit, such as `rulebook serve --body-limit {suggest}MiB` \
         (or RULEBOOK_BODY_LIMIT={suggest}MiB), and import again",
        size as f64 / f64::from(1 << 20)
    )
}

/// The index of the imported rule a problem's path names (`rules[17].priority` is 17).
fn import_index(path: &str) -> Option<usize> {
    let (index, _) = path.strip_prefix("rules[")?.split_once(']')?;
    index.parse().ok()
}
