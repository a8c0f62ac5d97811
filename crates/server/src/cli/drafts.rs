//! `rulebook rules test FILE --context JSON`: evaluates rules that are not saved (drafts) against
//! sample contexts, in place of the saved rules with the same ids and beside the rest.
//!
//! The file (or folder, or `-`) is read by the rules crate's reader, like `rules import`. Its
//! rules are grouped by entry point, in the order they first appear, and each group is sent as
//! the `drafts` of one `POST /v1/evaluate/{entry_point}`: nothing is written.

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};

use super::client::{segment, Client};
use super::evaluate::{print_answer, read_context};
use super::rules::{read_rules, rule_value};
use super::{out, out_json, CliError};

/// What `rules test` sends besides the drafts.
#[derive(Debug)]
pub(crate) struct TestOptions {
    /// Each `--context` (a JSON object or `@FILE`); one answer per context.
    pub(crate) contexts: Vec<String>,
    /// The evaluation time (RFC 3339), now by default.
    pub(crate) at: Option<String>,
    /// Whether to explain every rule.
    pub(crate) explain: bool,
}

/// Runs `rules test`.
pub(crate) async fn test(
    client: &Client,
    path: &Path,
    options: &TestOptions,
) -> Result<(), CliError> {
    let documents = read_rules(path)?;
    if documents.is_empty() {
        return Err(CliError::usage(format!(
            "`{}` holds no rules: give a JSON or YAML file, or a folder of them",
            path.display()
        )));
    }
    let mut contexts = options
        .contexts
        .iter()
        .map(|c| read_context(c))
        .collect::<Result<Vec<_>, _>>()?;
    if contexts.is_empty() {
        contexts.push(json!({}));
    }
    // Grouped by entry point, in the order each first appears; each rule keeps its place in the
    // file so that the server's `drafts[i]` can be traced back to it.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, document) in documents.iter().enumerate() {
        let Some(entry_point) = &document.rule.entry_point else {
            return Err(CliError::usage(format!(
                "rule `{}` (in {}) has no `entry_point`, so it cannot be evaluated: give it the entry point to test",
                document.rule.id, document.source
            )));
        };
        match groups.iter_mut().find(|(ep, _)| ep == entry_point.as_str()) {
            Some((_, members)) => members.push(i),
            None => groups.push((entry_point.as_str().to_owned(), vec![i])),
        }
    }
    let mut answers = Vec::with_capacity(groups.len());
    for (entry_point, members) in &groups {
        let drafts = members
            .iter()
            .map(|&i| rule_value(&documents[i].rule))
            .collect::<Result<Vec<_>, _>>()?;
        let mut body = json!({ "drafts": drafts });
        if contexts.len() == 1 {
            body["context"] = contexts[0].clone();
        } else {
            body["contexts"] = Value::Array(contexts.clone());
        }
        if let Some(at) = &options.at {
            body["at"] = Value::String(at.clone());
        }
        if options.explain {
            body["explain"] = Value::Bool(true);
        }
        let answer = client
            .send(
                Method::POST,
                &format!("/v1/evaluate/{}", segment(entry_point)),
                Some(&body),
                None,
            )
            .await
            .map_err(|mut e| {
                if let Some(api) = &mut e.api {
                    for problem in &mut api.errors {
                        problem.origin = draft_index(&problem.path)
                            .and_then(|i| members.get(i))
                            .map(|&i| documents[i].source.to_string());
                    }
                }
                e
            })?;
        answers.push(answer.body);
    }
    if client.json() {
        match <[Value; 1]>::try_from(answers) {
            Ok([answer]) => out_json(&answer),
            Err(answers) => out_json(&answers),
        }
        return Ok(());
    }
    for (i, answer) in answers.iter().enumerate() {
        if i > 0 {
            out("");
        }
        let drafts = answers_of(answer)
            .first()
            .and_then(|a| a["drafts"].as_array())
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out(format!("drafts (not saved): {drafts}"));
        for (n, one) in answers_of(answer).iter().enumerate() {
            if contexts.len() > 1 {
                if n > 0 {
                    out("");
                }
                out(format!("context {}: {}", n + 1, contexts[n]));
            }
            print_answer(one);
        }
    }
    Ok(())
}

/// The answers of one request: itself for one context, its `results` for several.
fn answers_of(answer: &Value) -> Vec<&Value> {
    match answer["results"].as_array() {
        Some(results) => results.iter().collect(),
        None => vec![answer],
    }
}

/// The index of the draft a problem's path names (`drafts[3].priority` is 3).
fn draft_index(path: &str) -> Option<usize> {
    let (index, _) = path.strip_prefix("drafts[")?.split_once(']')?;
    index.parse().ok()
}
