//! `rulebook rules diff ID V1 V2` and `rulebook rules rollback ID --to V --reason ...`.

use reqwest::Method;
use serde_json::{json, Value};

use super::client::{segment, Client};
use super::{out, out_json, CliError};

/// Prints what changed from version `from` to version `to` of rule `id`, one field a line
/// (`--json`: the server's answer, with the RFC 6902 JSON Patch).
pub(crate) async fn diff(client: &Client, id: &str, from: i64, to: i64) -> Result<(), CliError> {
    let answer = client
        .get(&format!(
            "/v1/rules/{}/diff?from={from}&to={to}",
            segment(id)
        ))
        .await?;
    if client.json() {
        out_json(&answer.body);
        return Ok(());
    }
    let changes = answer.body["changes"].as_array().map_or(&[][..], |c| c);
    if changes.is_empty() {
        out(format!(
            "rule `{id}`: versions {from} and {to} have the same content"
        ));
        return Ok(());
    }
    out(format!("rule `{id}`, version {from} -> {to}:"));
    let show = |v: &Value| {
        if v.is_null() {
            "-".to_owned()
        } else {
            v.to_string()
        }
    };
    for change in changes {
        out(format!(
            "  {:<8} {}: {} -> {}",
            change["change"].as_str().unwrap_or_default(),
            change["field"].as_str().unwrap_or_default(),
            show(&change["before"]),
            show(&change["after"]),
        ));
    }
    Ok(())
}

/// Writes the content of version `to` as rule `id`'s next version (also restores a deleted rule),
/// if the rule is still at `if_match` when given.
pub(crate) async fn rollback(
    client: &Client,
    id: &str,
    to: i64,
    reason: Option<String>,
    if_match: Option<i64>,
) -> Result<(), CliError> {
    let mut body = json!({ "version": to });
    if let Some(reason) = reason {
        body["reason"] = Value::String(reason);
    }
    let answer = client
        .send(
            Method::POST,
            &format!("/v1/rules/{}/rollback", segment(id)),
            Some(&body),
            if_match,
        )
        .await?;
    if client.json() {
        out_json(&answer.body);
    } else {
        out(format!(
            "rolled back rule `{id}` to the content of version {to}: it is now at version {}",
            answer.body["version"]
        ));
    }
    Ok(())
}
