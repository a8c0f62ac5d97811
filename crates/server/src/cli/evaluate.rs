//! `rulebook evaluate EP --context JSON`.

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
}

impl EvaluateArgs {
    /// Runs the command.
    pub async fn run(self) -> Result<(), CliError> {
        let client = Client::new(&self.client)?;
        let text = match self.context.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file)
                .map_err(|e| CliError::usage(format!("cannot read `{file}`: {e}")))?,
            None => self.context.clone(),
        };
        let context: Value = serde_json::from_str(&text).map_err(|e| {
            CliError::usage(format!(
                "--context is not valid JSON ({e}): give an object such as '{{\"country\": \"FR\"}}'"
            ))
        })?;
        let mut body = json!({ "context": context });
        if let Some(at) = &self.at {
            body["at"] = Value::String(at.clone());
        }
        body["on_error"] = Value::String(self.on_error.clone());
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
            return Ok(());
        }
        let body = &answer.body;
        let matched = body["matched"].as_array().map_or(&[][..], |m| m);
        out(format!(
            "{}: {} rule{} matched",
            body["entry_point"].as_str().unwrap_or_default(),
            matched.len(),
            if matched.len() == 1 { "" } else { "s" }
        ));
        for rule in matched {
            out(format!(
                "  {} (version {})",
                rule["id"].as_str().unwrap_or_default(),
                rule["version"]
            ));
        }
        for action in body["actions"].as_array().map_or(&[][..], |a| a) {
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
        for error in body["errors"].as_array().map_or(&[][..], |e| e) {
            out(format!(
                "  ! {} (version {}) failed and was skipped: {}",
                error["rule_id"].as_str().unwrap_or_default(),
                error["version"],
                error["message"].as_str().unwrap_or_default()
            ));
        }
        Ok(())
    }
}
