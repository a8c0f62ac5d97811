//! The hot reads: evaluation, parameters, enabled flags and scorecards, all from the registry
//! (or, with `as_of`, built from the history). Each answer carries the applied position it
//! reflects (`seq`) and waits for `min_seq` when asked (see [`crate::freshness`]). Evaluations and
//! scores answer with [`crate::api::answer::DecisionAnswer`].

use std::collections::BTreeMap;

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use rulebook_rules::{EntryPoint, Limits, OnError, Ruleset, ScoreRequest, ScoreResult};
use rulebook_store::{DecisionKind, VersionsUsed};
use serde::Deserialize;
use serde_json::{Map, Value};

use rulebook_client::refusal::Refusal;
pub use rulebook_client::wire::{EnabledAnswer, ParamAnswer};

use crate::api::answer::{encode, json_response, AsOf, Decision, DecisionAnswer, ToLog};
use crate::api::drafts::{self, Drafts};
use crate::api::openapi::{
    ErrorBody, Errors, EvaluateAnswer, FreshEnabledAnswer, FreshParamAnswer, TooLarge,
};
use crate::auth::Reader;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};
use crate::freshness::{Answer, Fresh};
use crate::state::AppState;

/// The most contexts one request may evaluate.
pub const MAX_CONTEXTS: usize = 100;

/// The body of `POST /v1/evaluate/{entry_point}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateBody {
    /// The input the rules' conditions see (`{}` when left out; `null` is refused, as any
    /// context that is not an object).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Object, example = json!({"country": "FR", "total": 120}))]
    pub context: Option<Value>,
    /// Several inputs instead of `context` (1 to 100): the answer is then
    /// `{"seq": ..., "results": [...]}`, one answer per context in the order sent.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>, min_items = 1, max_items = 100)]
    pub contexts: Option<Vec<Value>>,
    /// Rule documents that are not saved, evaluated in place of the saved rules with the same ids
    /// and beside the rest; nothing is written, cached or logged (see [`crate::api::drafts`]).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub drafts: Option<Vec<Value>>,
    /// `true`: the answer explains how every rule was decided (`explain`, see
    /// [`crate::api::answer`]).
    #[serde(default)]
    pub explain: bool,
    /// The evaluation time (RFC 3339) the schedule windows are checked against; now when left
    /// out, or `as_of` when that is given.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Evaluate with the rules as they stood at this time (RFC 3339), built from the history.
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,
    /// `"continue"` (the default): a rule that fails at run time is listed in the answer's
    /// `errors` and counts as not matched. `"fail"`: any such failure is a 422 instead.
    #[serde(default)]
    pub on_error: OnError,
}

/// A field that is present, even as `null`, is `Some`: only a missing one is `None`.
fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(value).map(Some)
}

/// `POST /v1/evaluate/{entry_point}`: the matched rules with their versions, and their actions,
/// as a [`DecisionAnswer`]; with `contexts`, one answer per context; with `drafts`, evaluated with
/// rules that are not saved (see [`crate::api::drafts`]).
#[utoipa::path(
    post,
    path = "/v1/evaluate/{entry_point}",
    tag = "evaluate",
    params(Reader, Fresh, ("entry_point" = EntryPoint, Path, example = "checkout_terms", description = "The entry point, such as `checkout_terms` (normalised: `Checkout Terms` names it too)")),
    request_body(content = Option<EvaluateBody>, description = "Optional: an empty body evaluates an empty context now"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The matched rules with their versions, and their actions (with `explain`, how every rule was decided; with `drafts`, the drafts' ids and no `decision_id`); with `contexts`, `{\"seq\", \"results\": [...]}`, one such answer per context", body = EvaluateAnswer, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 422, description = "A rule failed at run time and `on_error` is `fail` (`evaluation_failed`; `errors` lists the rules), or a draft is not a valid rule of this entry point (`errors` lists every problem at `drafts[i]`)", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn evaluate(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams(entry_point): PathParams<String>,
    JsonBody(body): JsonBody<EvaluateBody>,
) -> Result<Response, ApiError> {
    let entry_point = EntryPoint::parse(&entry_point)?;
    let many = body.contexts.is_some();
    let contexts = contexts(body.context, body.contexts)?;
    let answers = match body.drafts {
        Some(documents) => {
            let drafts = Drafts::check(&caller.tenant, &entry_point, documents)?;
            let (base, as_of) =
                saved_ruleset(&state, &caller.tenant, &entry_point, body.as_of).await?;
            drafts::evaluate(
                seq,
                base,
                as_of.as_ref(),
                drafts,
                &contexts,
                body.at,
                body.on_error,
                body.explain,
            )?
            .into_iter()
            .map(bytes::Bytes::from)
            .collect()
        }
        None => {
            let mut answers = Vec::with_capacity(contexts.len());
            for context in &contexts {
                answers.push(
                    evaluate_entry_point(
                        &state,
                        seq,
                        &caller.tenant,
                        &entry_point,
                        context,
                        body.at,
                        body.as_of,
                        body.on_error,
                        body.explain,
                    )
                    .await?,
                );
            }
            answers
        }
    };
    if !many {
        if let Some(answer) = answers.into_iter().next() {
            return Ok(json_response(seq, answer));
        }
        return Err(ApiError::internal(
            "an evaluation of one context gave no answer",
        ));
    }
    // Each answer is already encoded JSON; the list is written around them.
    let mut out = Vec::with_capacity(32 + answers.iter().map(|a| a.len() + 1).sum::<usize>());
    out.extend_from_slice(format!("{{\"seq\":{seq},\"results\":[").as_bytes());
    for (i, answer) in answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(answer);
    }
    out.extend_from_slice(b"]}");
    Ok(json_response(seq, out))
}

/// The request's inputs: `context` (or `{}`), or each of `contexts`; every one must be an object.
fn contexts(context: Option<Value>, contexts: Option<Vec<Value>>) -> Result<Vec<Value>, ApiError> {
    let contexts = match (context, contexts) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the body has both `context` and `contexts`: send one input as `context`, or several as `contexts`",
            ))
        }
        (context, None) => vec![context.unwrap_or_else(|| Value::Object(Map::new()))],
        (None, Some(contexts)) => {
            if contexts.is_empty() || contexts.len() > MAX_CONTEXTS {
                return Err(ApiError::bad_request(
                    "bad_contexts",
                    format!(
                        "`contexts` has {} entries: send 1 to {MAX_CONTEXTS} inputs, or several requests",
                        contexts.len()
                    ),
                ));
            }
            contexts
        }
    };
    contexts.iter().try_for_each(check_context)?;
    Ok(contexts)
}

/// Refuses a context that is not a JSON object.
pub(crate) fn check_context(context: &Value) -> Result<(), ApiError> {
    if context.is_object() {
        Ok(())
    } else {
        Err(Refusal::context_not_an_object().into())
    }
}

/// The saved rules of an entry point: the live cached ruleset, or the one built from the history
/// as of a past time (with the versions it used).
pub(crate) async fn saved_ruleset(
    state: &AppState,
    tenant: &str,
    entry_point: &EntryPoint,
    as_of: Option<DateTime<Utc>>,
) -> Result<(Arc<Ruleset>, Option<AsOf>), ApiError> {
    Ok(match as_of {
        None => (state.registry().ruleset(tenant, entry_point).await?, None),
        Some(time) => {
            let ruleset = state
                .store()
                .ruleset_as_of(tenant, entry_point, time)
                .await?;
            let versions = ruleset.rules().map(|(id, v)| (id.to_owned(), v)).collect();
            (Arc::new(ruleset), Some(AsOf { time, versions }))
        }
    })
}

/// Evaluates one entry point: from the live cache, or with the rules as of a past time; logs
/// the decision when the log is on; returns the encoded [`DecisionAnswer`].
// The request's fields, passed one by one from the single and the batch endpoints.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn evaluate_entry_point(
    state: &AppState,
    seq: i64,
    tenant: &str,
    entry_point: &EntryPoint,
    context: &Value,
    at: Option<DateTime<Utc>>,
    as_of: Option<DateTime<Utc>>,
    on_error: OnError,
    explain: bool,
) -> Result<bytes::Bytes, ApiError> {
    let decision = Decision::new();
    let (ruleset, as_of) = saved_ruleset(state, tenant, entry_point, as_of).await?;
    let at = at.or(as_of.as_ref().map(|a| a.time)).unwrap_or(decision.at);
    let limits = Limits::default();
    let evaluation = if explain {
        ruleset.explain(context, at, &limits)
    } else {
        ruleset.evaluate(context, at, &limits)
    }
    .into_result(on_error)
    .map_err(ApiError::rules_failed)?;
    // A 50-rule answer is a few kilobytes; growing from a small buffer would copy it several
    // times.
    let estimate = 320
        + 64 * evaluation.matched.len()
        + 160 * evaluation.actions.len()
        + evaluation.explain.as_ref().map_or(0, |e| 128 * e.len());
    encode(
        state,
        &decision,
        &DecisionAnswer {
            seq,
            decision_id: &decision.id,
            outcome: &evaluation,
            as_of: as_of.as_ref(),
        },
        estimate,
        ToLog {
            tenant,
            kind: DecisionKind::Evaluate,
            name: entry_point.as_str(),
            versions: || VersionsUsed::Ruleset(ruleset.clone()),
            context,
        },
    )
}

/// `GET /v1/params/{rule_id}/{field}`: a parameter's current value.
#[utoipa::path(
    get,
    path = "/v1/params/{rule_id}/{field}",
    tag = "evaluate",
    params(Reader, Fresh, ("rule_id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "cache_ttl_seconds", description = "The rule"), ("field" = String, Path, example = "seconds", description = "The param's name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The param's current value", body = FreshParamAnswer, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 404, description = "No such rule, or the rule has no such param (`message` lists its params)", body = ErrorBody),
        Errors,
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/rules/{id}/enabled",
    tag = "evaluate",
    params(Reader, Fresh, ("id" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "checkout_terms_banner", description = "The rule's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Whether the rule is enabled", body = FreshEnabledAnswer, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 404, description = "No such rule in the tenant", body = ErrorBody),
        Errors,
    )
)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreBody {
    /// What is scored.
    #[schema(example = json!({"instrument_type": "equity", "value": 75000, "holding_days": 10}))]
    pub input: Value,
    /// Params to use instead of the stored ones, by rule id then param name.
    #[serde(default)]
    pub overrides: BTreeMap<String, Map<String, Value>>,
    /// The scoring time (RFC 3339); now when left out, or `as_of` when that is given.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Score with the rules as they stood at this time (RFC 3339), built from the history.
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,
    /// `"continue"` (the default): a factor rule that fails at run time is listed in the answer's
    /// `errors` and left out. `"fail"`: any such failure is a 422 instead.
    #[serde(default)]
    pub on_error: OnError,
    /// `true`: the answer explains how every factor's rule was decided (`explain`, see
    /// [`crate::api::answer`]).
    #[serde(default)]
    pub explain: bool,
}

/// `POST /v1/score/{scorecard}`: levels per factor (each with its rule's version), the overall
/// level and the route, as a [`DecisionAnswer`].
#[utoipa::path(
    post,
    path = "/v1/score/{scorecard}",
    tag = "evaluate",
    params(Reader, Fresh, ("scorecard" = String, Path, example = "pad_trade", description = "The scorecard: its rules are tagged `scorecard:<name>`")),
    request_body = ScoreBody,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The level of each factor (with its rule's version), the overall level and the route", body = DecisionAnswer<ScoreResult>, headers(("X-Rulebook-Seq" = i64, description = "The answer's `seq`"))),
        (status = 404, description = "The scorecard has no factors in the tenant", body = ErrorBody),
        (status = 422, description = "An override is not valid, or a factor rule failed and `on_error` is `fail`", body = ErrorBody),
        TooLarge,
        Errors,
    )
)]
pub async fn score(
    State(state): State<AppState>,
    Reader(caller): Reader,
    Fresh(seq): Fresh,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<ScoreBody>,
) -> Result<Response, ApiError> {
    let decision = Decision::new();
    let (scorecard, as_of) = match body.as_of {
        None => (
            state.registry().scorecard(&caller.tenant, &name).await?,
            None,
        ),
        Some(time) => {
            let card = state
                .store()
                .scorecard_as_of(&caller.tenant, &name, time)
                .await?;
            let versions = card.rules().map(|(id, v)| (id.to_owned(), v)).collect();
            (Arc::new(card), Some(AsOf { time, versions }))
        }
    };
    if scorecard.factors().next().is_none() {
        return Err(Refusal::scorecard_not_found(&name, &caller.tenant).into());
    }
    let request = ScoreRequest {
        input: body.input,
        overrides: body.overrides,
        on_error: body.on_error,
    };
    let at = body
        .at
        .or(as_of.as_ref().map(|a| a.time))
        .unwrap_or(decision.at);
    let result = if body.explain {
        scorecard.score_explained(&request, at, &Limits::default())?
    } else {
        scorecard.score(&request, at, &Limits::default())?
    };
    let answer = encode(
        &state,
        &decision,
        &DecisionAnswer {
            seq,
            decision_id: &decision.id,
            outcome: &result,
            as_of: as_of.as_ref(),
        },
        512,
        ToLog {
            tenant: &caller.tenant,
            kind: DecisionKind::Score,
            name: &name,
            versions: || {
                VersionsUsed::Listed(
                    scorecard
                        .rules()
                        .map(|(id, v)| (id.to_owned(), v))
                        .collect(),
                )
            },
            context: &request.input,
        },
    )?;
    Ok(json_response(seq, answer))
}

pub(crate) fn rule_not_found(tenant: &str, id: &str) -> ApiError {
    ApiError::not_found(
        "rule_not_found",
        format!(
            "rule `{id}` does not exist in tenant `{tenant}`: check the id with `GET /v1/rules`"
        ),
    )
}
