//! The hot reads: evaluation, parameters, enabled flags and scorecards, all from the registry.
//! Each answer carries the applied position it reflects (`seq`) and waits for `min_seq` when
//! asked (see [`crate::freshness`]).

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use rulebook_rules::{EntryPoint, Evaluation, ScoreRequest, ScoreResult};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use rulebook_client::wire::{EnabledAnswer, ParamAnswer};

use crate::auth::Reader;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};
use crate::freshness::{Answer, Fresh};
use crate::state::AppState;

/// The body of `POST /v1/evaluate/{entry_point}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateBody {
    /// The input the rules' conditions see.
    #[serde(default = "empty_object")]
    pub context: Value,
    /// The evaluation time (RFC 3339); now when left out.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// `POST /v1/evaluate/{entry_point}`: the matched rules with their versions, and their actions.
pub async fn evaluate(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams(entry_point): PathParams<String>,
    JsonBody(body): JsonBody<EvaluateBody>,
) -> Result<Answer<Evaluation>, ApiError> {
    let entry_point = EntryPoint::parse(&entry_point)?;
    if !body.context.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "field `context` must be a JSON object such as {\"country\": \"FR\"}",
        ));
    }
    let ruleset = state
        .registry()
        .ruleset(&caller.tenant, &entry_point)
        .await?;
    let evaluation = ruleset.evaluate(
        &body.context,
        body.at.unwrap_or_else(Utc::now),
        &state.limits().eval,
    )?;
    // Written into a buffer sized for it up front (a 50-rule answer is a few kilobytes; growing
    // from a small buffer would copy it several times).
    let estimate = 256 + 64 * evaluation.matched.len() + 160 * evaluation.actions.len();
    Ok(Answer::new(seq, evaluation).with_capacity(estimate))
}

/// `GET /v1/params/{rule_id}/{field}`: a parameter's current value.
pub async fn param(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams((rule_id, field)): PathParams<(String, String)>,
) -> Result<Answer<ParamAnswer>, ApiError> {
    let params = state.registry().params(&caller.tenant).await?;
    let Some(version) = params.version(&rule_id) else {
        return Err(rule_not_found(&caller.tenant, &rule_id));
    };
    let Some(value) = params.value(&rule_id, &field) else {
        let names: Vec<String> = params
            .params(&rule_id)
            .map(|p| p.keys().map(|k| format!("`{k}`")).collect())
            .unwrap_or_default();
        return Err(ApiError::not_found(
            "param_not_found",
            if names.is_empty() {
                format!("rule `{rule_id}` has no param `{field}`; it has no params at all")
            } else {
                format!(
                    "rule `{rule_id}` has no param `{field}`: its params are {}",
                    names.join(", ")
                )
            },
        ));
    };
    Ok(Answer::new(
        seq,
        ParamAnswer {
            rule_id,
            field,
            value: value.clone(),
            version,
        },
    ))
}

/// `GET /v1/rules/{id}/enabled`.
pub async fn enabled(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams(rule_id): PathParams<String>,
) -> Result<Answer<EnabledAnswer>, ApiError> {
    let params = state.registry().params(&caller.tenant).await?;
    match (params.is_enabled(&rule_id), params.version(&rule_id)) {
        (Some(enabled), Some(version)) => Ok(Answer::new(
            seq,
            EnabledAnswer {
                rule_id,
                enabled,
                version,
            },
        )),
        _ => Err(rule_not_found(&caller.tenant, &rule_id)),
    }
}

/// The body of `POST /v1/score/{scorecard}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreBody {
    /// What is scored.
    pub input: Value,
    /// Params to use instead of the stored ones, by rule id then param name.
    #[serde(default)]
    pub overrides: BTreeMap<String, Map<String, Value>>,
    /// The scoring time (RFC 3339); now when left out.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// `POST /v1/score/{scorecard}`: levels per factor, the overall level and the route.
pub async fn score(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<ScoreBody>,
) -> Result<Answer<ScoreResult>, ApiError> {
    let scorecard = state.registry().scorecard(&caller.tenant, &name).await?;
    if scorecard.factors().next().is_none() {
        return Err(ApiError::not_found(
            "scorecard_not_found",
            format!(
                "scorecard `{name}` has no factors in tenant `{}`: tag its rules `scorecard:{name}` and give them `score` actions",
                caller.tenant
            ),
        ));
    }
    let request = ScoreRequest {
        input: body.input,
        overrides: body.overrides,
    };
    let result = scorecard.score(
        &request,
        body.at.unwrap_or_else(Utc::now),
        &state.limits().eval,
    )?;
    Ok(Answer::new(seq, result))
}

pub(crate) fn rule_not_found(tenant: &str, id: &str) -> ApiError {
    ApiError::not_found(
        "rule_not_found",
        format!(
            "rule `{id}` does not exist in tenant `{tenant}`: check the id with `GET /v1/rules`"
        ),
    )
}
