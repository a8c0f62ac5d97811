//! `rulebook evaluate EP --context JSON [--explain]`, and the printing of an evaluation answer
//! that `rules test` shares.

use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{segment, Client, ClientOpts};
use super::{out, out_json, CliError};

/// `rulebook evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    client: ClientOpts,
    /// The entry point, such as `checkout_terms` (spaces and capitals are normalised).
    entry_point: String,
    /// The input as a JSON object, or `@FILE` to read it from a file.
    #[arg(long, default_value = "{}")]
    context: String,
    /// The evaluation time (RFC 3339), now by default.
    #[arg(long)]
    at: Option<String>,
    /// `continue`: a rule that fails at run time is reported and counts as not matched;
    /// `fail`: any such failure fails the evaluation.
    #[arg(long, value_parser = ["continue", "fail"], default_value = "continue")]
    on_error: String,
    /// Explain how every rule was decided, as a table (rule, outcome, detail).
    #[arg(long)]
    explain: bool,
}

impl EvaluateArgs {
    /// Runs the command.
    pub async fn run(self) -> Result<(), CliError> {
        let client = Client::new(&self.client)?;
        let context = read_context(&self.context)?;
        let mut body = json!({ "context": context });
        if let Some(at) = &self.at {
            body["at"] = Value::String(at.clone());
        }
        body["on_error"] = Value::String(self.on_error.clone());
        if self.explain {
            body["explain"] = Value::Bool(true);
        }
        let answer = client
            .send(
                Method::POST,
                &format!("/v1/evaluate/{}", segment(&self.entry_point)),
                Some(&body),
                None,
            )
            .await?;
        if client.json() {
            out_json(&answer.body);
        } else {
            print_answer(&answer.body);
        }
        Ok(())
    }
}

/// A `--context` argument: a JSON object, or `@FILE` holding one.
pub(crate) fn read_context(arg: &str) -> Result<Value, CliError> {
    let text = match arg.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| CliError::usage(format!("cannot read `{file}`: {e}")))?,
        None => arg.to_owned(),
    };
    serde_json::from_str(&text).map_err(|e| {
        CliError::usage(format!(
            "--context `{arg}` is not valid JSON ({e}): give an object such as '{{\"country\": \"FR\"}}', or @FILE"
        ))
    })
}

/// Prints one evaluation answer for people: the matched rules, the actions, what stopped the
/// evaluation, the failures, and, when the answer explains itself, a table of every rule.
pub(crate) fn print_answer(body: &Value) {
    let list = |field: &str| body[field].as_array().map_or(&[][..], |m| m);
    let matched = list("matched");
    out(format!(
        "{}: {} rule{} matched",
        body["entry_point"].as_str().unwrap_or_default(),
        matched.len(),
        if matched.len() == 1 { "" } else { "s" }
    ));
    for rule in matched {
        out(format!(
            "  {} ({})",
            rule["id"].as_str().unwrap_or_default(),
            version(&rule["version"])
        ));
    }
    for action in list("actions") {
        let mut fields = action.clone();
        let kind = fields["type"].as_str().unwrap_or_default().to_owned();
        let rule = fields["rule_id"].as_str().unwrap_or_default().to_owned();
        if let Some(map) = fields.as_object_mut() {
            map.shift_remove("type");
            map.shift_remove("rule_id");
        }
        out(format!("  -> {kind} {fields} (from {rule})"));
    }
    if let Some(stopper) = body["stopped_by"].as_str() {
        out(format!("  stopped by {stopper}"));
    }
    for error in list("errors") {
        out(format!(
            "  ! {} ({}) failed and was skipped: {}",
            error["rule_id"].as_str().unwrap_or_default(),
            version(&error["version"]),
            error["message"].as_str().unwrap_or_default()
        ));
    }
    if let Some(explain) = body["explain"].as_array() {
        out("");
        print_explain(explain);
    }
}

/// `version 3`, or `draft` for a rule that is not saved (version 0).
fn version(version: &Value) -> String {
    match version.as_i64() {
        Some(0) => "draft".to_owned(),
        _ => format!("version {version}"),
    }
}

/// The explanation as a table: one row per rule (or factor), in evaluation order, with its
/// outcome and what decided it; columns aligned to their widest cell.
pub(crate) fn print_explain(rows: &[Value]) {
    let cells: Vec<[String; 3]> = rows
        .iter()
        .map(|row| {
            let name = match (row["id"].as_str(), row["factor"].as_str()) {
                (Some(id), _) => id.to_owned(),
                (None, Some(factor)) => {
                    format!("{factor} ({})", row["rule_id"].as_str().unwrap_or_default())
                }
                (None, None) => row["rule_id"].as_str().unwrap_or_default().to_owned(),
            };
            let outcome = row["outcome"].as_str().unwrap_or_default();
            [
                format!("{name} {}", short_version(&row["version"])),
                outcome.replace('_', " "),
                detail(outcome, row),
            ]
        })
        .collect();
    let header = ["RULE".to_owned(), "OUTCOME".to_owned(), "DETAIL".to_owned()];
    let width = |i: usize| {
        cells
            .iter()
            .chain(std::iter::once(&header))
            .map(|c| c[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0), width(1));
    for [rule, outcome, detail] in std::iter::once(&header).chain(&cells) {
        out(format!("{rule:<w0$}  {outcome:<w1$}  {detail}").trim_end());
    }
}

fn short_version(version: &Value) -> String {
    match version.as_i64() {
        Some(0) => "(draft)".to_owned(),
        Some(v) => format!("v{v}"),
        None => String::new(),
    }
}

/// What decided an outcome, in words.
fn detail(outcome: &str, row: &Value) -> String {
    let time = |field: &str| row[field].as_str().map(str::to_owned);
    match outcome {
        "condition_false" => {
            let operands = match row["operands"].as_array() {
                Some(values) => values
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "(not computed: over the rule's limits)".to_owned(),
            };
            let pair = row["operands"].as_array().filter(|v| v.len() == 2);
            match (row["operator"].as_str(), pair) {
                // A comparison reads best the way it is written: `250 > 1000` is false.
                (
                    Some(op @ ("==" | "===" | "!=" | "!==" | "<" | "<=" | ">" | ">=" | "in")),
                    Some(pair),
                ) => {
                    format!("{} {op} {} is false", pair[0], pair[1])
                }
                (Some(op), _) => format!("`{op}` of {operands}"),
                (None, _) => format!("value {operands}"),
            }
        }
        "outside_window" => format!(
            "window {} to {}",
            time("active_from").unwrap_or_else(|| "the start".to_owned()),
            time("active_until").unwrap_or_else(|| "no end".to_owned())
        ),
        "condition_error" | "action_error" => row["reason"].as_str().unwrap_or_default().to_owned(),
        "not_reached" => format!(
            "`{}` matched and stops processing",
            row["stopped_by"].as_str().unwrap_or_default()
        ),
        _ => String::new(),
    }
}
