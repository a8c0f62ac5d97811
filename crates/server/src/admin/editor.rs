//! The rule editor (create; edit with `If-Match`; validation errors at the field they name; a
//! conflict shown with what changed meanwhile; the unsaved edit tried as a draft beside the
//! saved rules), and a rule's history, diffs and rollback.
//!
//! The form is turned into the rule document the API takes and nothing more is checked here:
//! the API validates, and its error paths (`priority`, `actions[0].type`, for a draft
//! `drafts[0].condition`) are mapped back to the form field they start with. Only what the API
//! cannot see is the page's to say: a JSON text area that does not parse, and a missing reason
//! (the admin asks one for every change).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::client::{encode, Answer, Call};
use super::pages::{evaluate, parse_context, sample_context, short_time, shown, Shown};
use super::session::Session;
use super::{
    api_error_page, csrf_refusal, message_page, page, pretty, render, AdminState, Frame, SignedIn,
};

/// Every field of the editor, as the browser sends it.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RuleForm {
    #[serde(skip_serializing)]
    csrf: String,
    id: String,
    entry_point: String,
    name: String,
    description: String,
    category: String,
    priority: String,
    enabled: Option<String>,
    stop_processing: Option<String>,
    tags: String,
    active_from: String,
    active_until: String,
    condition: String,
    actions: String,
    params: String,
    param_schema: String,
    reason: String,
    /// The version being edited (absent for a new rule).
    version: String,
    /// The sample context for trying the edit.
    context: String,
    /// `save` or `try`.
    #[serde(skip_serializing)]
    action: String,
}

impl RuleForm {
    /// The form showing `rule`.
    fn of(rule: &Value) -> RuleForm {
        let text = |field: &str| rule[field].as_str().unwrap_or_default().to_owned();
        let json_or = |field: &str, empty: &str| match &rule[field] {
            Value::Null => empty.to_owned(),
            value => pretty(value),
        };
        RuleForm {
            id: text("id"),
            entry_point: text("entry_point"),
            name: text("name"),
            description: text("description"),
            category: text("category"),
            priority: rule["priority"].as_i64().unwrap_or_default().to_string(),
            enabled: rule["enabled"].as_bool().unwrap_or(true).then(String::new),
            stop_processing: rule["stop_processing"]
                .as_bool()
                .unwrap_or(false)
                .then(String::new),
            tags: rule["tags"]
                .as_array()
                .map(|tags| {
                    tags.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            active_from: text("active_from"),
            active_until: text("active_until"),
            condition: json_or("condition", "true"),
            actions: json_or("actions", "[]"),
            params: json_or("params", "{}"),
            param_schema: json_or("param_schema", ""),
            version: rule["version"]
                .as_i64()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            ..RuleForm::default()
        }
    }

    /// The rule document the API takes, or the errors of the text areas that do not parse.
    fn document(&self) -> Result<Map<String, Value>, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut doc = Map::new();
        doc.insert("id".into(), json!(self.id.trim()));
        let entry_point = self.entry_point.trim();
        if !entry_point.is_empty() {
            doc.insert("entry_point".into(), json!(entry_point));
        }
        for (field, value) in [
            ("name", &self.name),
            ("description", &self.description),
            ("category", &self.category),
        ] {
            doc.insert(field.into(), json!(value));
        }
        let priority = self.priority.trim();
        // Not a number is sent as written, so that the API's message names it at `priority`.
        doc.insert(
            "priority".into(),
            match priority.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) if priority.is_empty() => json!(0),
                Err(_) => json!(priority),
            },
        );
        doc.insert("enabled".into(), json!(self.enabled.is_some()));
        doc.insert(
            "stop_processing".into(),
            json!(self.stop_processing.is_some()),
        );
        let tags: Vec<&str> = self
            .tags
            .split([',', '\n'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        doc.insert("tags".into(), json!(tags));
        for (field, value) in [
            ("active_from", &self.active_from),
            ("active_until", &self.active_until),
        ] {
            if !value.trim().is_empty() {
                doc.insert(field.into(), json!(value.trim()));
            }
        }
        for (field, value, empty) in [
            ("condition", &self.condition, Some(json!(true))),
            ("actions", &self.actions, Some(json!([]))),
            ("params", &self.params, Some(json!({}))),
            ("param_schema", &self.param_schema, None),
        ] {
            if value.trim().is_empty() {
                if let Some(empty) = empty {
                    doc.insert(field.into(), empty);
                }
                continue;
            }
            match serde_json::from_str::<Value>(value) {
                Ok(parsed) => {
                    doc.insert(field.into(), parsed);
                }
                Err(e) => errors.add(field, format!("not valid JSON: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(doc)
        } else {
            Err(errors)
        }
    }
}

/// Errors by the form field they belong to; `_form` for those of no field.
#[derive(Debug, Default, Serialize)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

/// The fields of the editor, in the order they show.
const FIELDS: [&str; 16] = [
    "id",
    "entry_point",
    "name",
    "description",
    "category",
    "priority",
    "enabled",
    "stop_processing",
    "tags",
    "active_from",
    "active_until",
    "condition",
    "actions",
    "params",
    "param_schema",
    "reason",
];

impl FieldErrors {
    fn add(&mut self, field: &str, message: String) {
        self.0.entry(field.to_owned()).or_default().push(message);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The API's `errors[]` (path and message) placed at the fields their paths start with;
    /// `prefix` (`drafts[0].`) is taken off first.
    fn from_api(body: &Value, prefix: &str) -> FieldErrors {
        let mut errors = FieldErrors::default();
        for error in body["error"]["errors"].as_array().into_iter().flatten() {
            let path = error["path"].as_str().unwrap_or_default();
            let path = path.strip_prefix(prefix).unwrap_or(path);
            let head = path.split(['.', '[']).next().unwrap_or_default();
            let message = error["message"].as_str().unwrap_or_default();
            if FIELDS.contains(&head) {
                let inner = &path[head.len()..];
                let message = if inner.is_empty() {
                    message.to_owned()
                } else {
                    format!("at `{}`: {message}", inner.trim_start_matches('.'))
                };
                errors.add(head, message);
            } else {
                errors.add("_form", format!("`{path}`: {message}"));
            }
        }
        if errors.is_empty() {
            errors.add(
                "_form",
                body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        errors
    }
}

/// What the editor page shows besides the form.
#[derive(Debug, Default, Serialize)]
struct Extras {
    /// A message at the top (a refusal such as a wrong role; never a field's error).
    error: Option<String>,
    /// `Saved version N.` after a save.
    notice: Option<String>,
    /// A conflict: the version saved meanwhile and what changed.
    conflict: Option<Conflict>,
    /// The unsaved edit tried beside the saved rules.
    saved_result: Option<Shown>,
    draft_result: Option<Shown>,
}

#[derive(Debug, Serialize)]
struct Conflict {
    base: i64,
    current: i64,
    changed_by: String,
    changed_at: String,
    reason: String,
    changes: Vec<Change>,
}

#[derive(Debug, Serialize)]
struct Change {
    field: String,
    change: String,
    before: String,
    after: String,
}

fn changes_of(diff: &Value) -> Vec<Change> {
    let show = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => pretty(other),
    };
    diff["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|c| Change {
                    field: c["field"].as_str().unwrap_or_default().to_owned(),
                    change: c["change"].as_str().unwrap_or_default().to_owned(),
                    before: show(&c["before"]),
                    after: show(&c["after"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn editor(
    frame: &Frame,
    status: StatusCode,
    form: &RuleForm,
    is_new: bool,
    errors: &FieldErrors,
    extras: Extras,
) -> Response {
    render(
        status,
        "edit.html",
        page! { frame, form, is_new, errors, extras },
    )
}

/// The query of the new-rule page.
#[derive(Debug, Deserialize)]
pub struct NewQuery {
    #[serde(default)]
    entry_point: String,
}

/// `GET /admin/new[?entry_point=EP]`: an empty editor.
pub async fn new_rule(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Query(query): Query<NewQuery>,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    let form = RuleForm {
        context: sample_context(&session, &query.entry_point),
        entry_point: query.entry_point,
        priority: "0".into(),
        enabled: Some(String::new()),
        condition: "true".into(),
        actions: "[]".into(),
        params: "{}".into(),
        ..RuleForm::default()
    };
    editor(
        &frame,
        StatusCode::OK,
        &form,
        true,
        &FieldErrors::default(),
        Extras::default(),
    )
}

/// The query of the editor.
#[derive(Debug, Deserialize)]
pub struct EditQuery {
    /// The version just saved.
    #[serde(default)]
    saved: Option<i64>,
}

async fn read_rule(state: &AdminState, session: &Session, id: &str) -> Answer {
    Call::new(
        &state.api,
        session,
        Method::GET,
        format!("/v1/rules/{}", encode(id)),
    )
    .send()
    .await
}

/// `GET /admin/rule/{id}`: the editor with the rule as it is now.
pub async fn edit(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Query(query): Query<EditQuery>,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    let answer = read_rule(&state, &session, &id).await;
    if !answer.ok() {
        return api_error_page(&frame, &answer, "/admin");
    }
    let mut form = RuleForm::of(&answer.body);
    form.context = sample_context(&session, &form.entry_point);
    let extras = Extras {
        notice: query.saved.map(|v| format!("Saved version {v}.")),
        ..Extras::default()
    };
    editor(
        &frame,
        StatusCode::OK,
        &form,
        false,
        &FieldErrors::default(),
        extras,
    )
}

/// `POST /admin/new`: creates the rule (or tries it as a draft).
pub async fn create(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Form(form): Form<RuleForm>,
) -> Response {
    submit(state, session, None, form).await
}

/// `POST /admin/rule/{id}`: saves the edit with `If-Match` (or tries it as a draft).
pub async fn save(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Form(form): Form<RuleForm>,
) -> Response {
    submit(state, session, Some(id), form).await
}

async fn submit(
    state: AdminState,
    session: std::sync::Arc<Session>,
    id: Option<String>,
    mut form: RuleForm,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    if let Some(refused) = csrf_refusal(&frame, &session, &form.csrf) {
        return refused;
    }
    let is_new = id.is_none();
    if let Some(id) = &id {
        // The id of a saved rule is its URL's; the form shows it read-only.
        form.id = id.clone();
    }
    let mut doc = match form.document() {
        Ok(doc) => doc,
        Err(errors) => {
            return editor(
                &frame,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                is_new,
                &errors,
                Extras::default(),
            )
        }
    };
    if form.action == "try" {
        return try_draft(&state, &session, &frame, &form, is_new, doc).await;
    }
    if form.reason.trim().is_empty() {
        let mut errors = FieldErrors::default();
        errors.add(
            "reason",
            "say why you make this change: the reason is kept in the rule's history".to_owned(),
        );
        return editor(
            &frame,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            is_new,
            &errors,
            Extras::default(),
        );
    }
    doc.insert("reason".into(), json!(form.reason.trim()));
    let answer = match &id {
        None => {
            Call::new(&state.api, &session, Method::POST, "/v1/rules".to_owned())
                .json(Value::Object(doc))
                .send()
                .await
        }
        Some(id) => {
            let Ok(base) = form.version.trim().parse::<i64>() else {
                return message_page(
                    Some(&frame),
                    StatusCode::BAD_REQUEST,
                    "No version to replace",
                    "the form does not say which version it edits: open the rule again and redo the edit",
                    &format!("/admin/rule/{}", encode(id)),
                );
            };
            Call::new(
                &state.api,
                &session,
                Method::PUT,
                format!("/v1/rules/{}", encode(id)),
            )
            .if_match(base)
            .json(Value::Object(doc))
            .send()
            .await
        }
    };
    if answer.ok() {
        let saved_id = answer.body["id"].as_str().unwrap_or(&form.id);
        let version = answer.body["version"].as_i64().unwrap_or_default();
        return Redirect::to(&format!("/admin/rule/{}?saved={version}", encode(saved_id)))
            .into_response();
    }
    match (answer.status, answer.code()) {
        (StatusCode::UNPROCESSABLE_ENTITY, _) => editor(
            &frame,
            answer.status,
            &form,
            is_new,
            &FieldErrors::from_api(&answer.body, ""),
            Extras::default(),
        ),
        (StatusCode::CONFLICT, "rule_exists") => {
            let mut errors = FieldErrors::default();
            errors.add("id", answer.message());
            editor(
                &frame,
                answer.status,
                &form,
                is_new,
                &errors,
                Extras::default(),
            )
        }
        (StatusCode::CONFLICT, _) => {
            let conflict = match &id {
                Some(id) => conflict(&state, &session, id, &form, &answer).await,
                None => None,
            };
            let extras = Extras {
                error: conflict.is_none().then(|| answer.message()),
                conflict,
                ..Extras::default()
            };
            editor(
                &frame,
                answer.status,
                &form,
                is_new,
                &FieldErrors::default(),
                extras,
            )
        }
        _ => {
            let extras = Extras {
                error: Some(answer.message()),
                ..Extras::default()
            };
            editor(
                &frame,
                answer.status,
                &form,
                is_new,
                &FieldErrors::default(),
                extras,
            )
        }
    }
}

/// What changed between the version the form edits and the one saved meanwhile.
async fn conflict(
    state: &AdminState,
    session: &Session,
    id: &str,
    form: &RuleForm,
    answer: &Answer,
) -> Option<Conflict> {
    let base = form.version.trim().parse::<i64>().ok()?;
    let current = answer.body["error"]["current_version"].as_i64()?;
    let diff = Call::new(
        &state.api,
        session,
        Method::GET,
        format!("/v1/rules/{}/diff?from={base}&to={current}", encode(id)),
    )
    .send()
    .await;
    let entry = Call::new(
        &state.api,
        session,
        Method::GET,
        format!("/v1/rules/{}/history/{current}", encode(id)),
    )
    .send()
    .await;
    let text = |field: &str| entry.body[field].as_str().unwrap_or_default().to_owned();
    Some(Conflict {
        base,
        current,
        changed_by: text("changed_by"),
        changed_at: short_time(&text("changed_at")),
        reason: text("reason"),
        changes: changes_of(&diff.body),
    })
}

/// Evaluates the entry point on the form's context twice, without and with the edit as a
/// draft, and shows both beside the form.
async fn try_draft(
    state: &AdminState,
    session: &Session,
    frame: &Frame,
    form: &RuleForm,
    is_new: bool,
    doc: Map<String, Value>,
) -> Response {
    let mut errors = FieldErrors::default();
    let entry_point = form.entry_point.trim();
    if entry_point.is_empty() {
        errors.add(
            "entry_point",
            "a rule without an entry point is never evaluated: name one to try the rule".to_owned(),
        );
    }
    let context = match parse_context(&form.context) {
        Ok(context) => Some(context),
        Err(e) => {
            errors.add("context", e);
            None
        }
    };
    let Some(context) = context.filter(|_| errors.is_empty()) else {
        return editor(
            frame,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            is_new,
            &errors,
            Extras::default(),
        );
    };
    session.remember_context(entry_point, &form.context);
    let saved = evaluate(state, session, entry_point, &context, None).await;
    let draft = evaluate(
        state,
        session,
        entry_point,
        &context,
        Some(vec![Value::Object(doc)]),
    )
    .await;
    if draft.status == StatusCode::UNPROCESSABLE_ENTITY {
        return editor(
            frame,
            draft.status,
            form,
            is_new,
            &FieldErrors::from_api(&draft.body, "drafts[0]."),
            Extras::default(),
        );
    }
    let error = [&saved, &draft]
        .iter()
        .find(|a| !a.ok())
        .map(|a| a.message());
    let extras = Extras {
        error,
        saved_result: saved.ok().then(|| shown(&saved.body)),
        draft_result: draft.ok().then(|| shown(&draft.body)),
        ..Extras::default()
    };
    editor(frame, StatusCode::OK, form, is_new, &errors, extras)
}

/// One version in the history page.
#[derive(Debug, Serialize)]
struct VersionRow {
    version: i64,
    kind: String,
    changed_by: String,
    changed_at: String,
    reason: String,
}

/// The query of the history page.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// The version just written by a rollback.
    #[serde(default)]
    rolled_back: Option<i64>,
}

async fn history_page(
    state: &AdminState,
    session: &Session,
    id: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let frame = Frame::of(state, session).await;
    let mut versions = Vec::new();
    let mut cursor: Option<String> = None;
    // At most 50 pages of 1000 versions: a bound, far beyond a rule's history.
    for _ in 0..50 {
        let mut path = format!("/v1/rules/{}/history?limit=1000", encode(id));
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", encode(cursor)));
        }
        let answer = Call::new(&state.api, session, Method::GET, path)
            .send()
            .await;
        if !answer.ok() {
            return api_error_page(&frame, &answer, "/admin");
        }
        for entry in answer.body["history"].as_array().into_iter().flatten() {
            let text = |field: &str| entry[field].as_str().unwrap_or_default().to_owned();
            versions.push(VersionRow {
                version: entry["version"].as_i64().unwrap_or_default(),
                kind: text("kind"),
                changed_by: text("changed_by"),
                changed_at: short_time(&text("changed_at")),
                reason: text("reason"),
            });
        }
        match answer.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let latest = versions.first().map(|v| v.version);
    let previous = versions.get(1).map(|v| v.version);
    render(
        status,
        "history.html",
        page! { frame, id, versions, latest, previous, notice, error },
    )
}

/// `GET /admin/rule/{id}/history`: every version with who, when and why.
pub async fn history(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let notice = query
        .rolled_back
        .map(|v| format!("Rolled back: the rule is now at version {v}."));
    history_page(&state, &session, &id, StatusCode::OK, notice, None).await
}

/// The query of the diff page.
#[derive(Debug, Deserialize)]
pub struct DiffQuery {
    from: i64,
    to: i64,
}

/// `GET /admin/rule/{id}/diff?from=V1&to=V2`: what changed between two versions.
pub async fn diff(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Query(query): Query<DiffQuery>,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    let answer = Call::new(
        &state.api,
        &session,
        Method::GET,
        format!(
            "/v1/rules/{}/diff?from={}&to={}",
            encode(&id),
            query.from,
            query.to
        ),
    )
    .send()
    .await;
    if !answer.ok() {
        return api_error_page(
            &frame,
            &answer,
            &format!("/admin/rule/{}/history", encode(&id)),
        );
    }
    let changes = changes_of(&answer.body);
    render(
        StatusCode::OK,
        "diff.html",
        page! { frame, id, from => query.from, to => query.to, changes },
    )
}

/// The rollback form.
#[derive(Debug, Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    reason: String,
}

/// `POST /admin/rule/{id}/rollback`: writes version V's content as the next version.
pub async fn rollback(
    State(state): State<AdminState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Response {
    let frame = Frame::of(&state, &session).await;
    if let Some(refused) = csrf_refusal(&frame, &session, &form.csrf) {
        return refused;
    }
    let Ok(version) = form.version.trim().parse::<i64>() else {
        return history_page(
            &state,
            &session,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(format!("`{}` is not a version number", form.version)),
        )
        .await;
    };
    if form.reason.trim().is_empty() {
        return history_page(
            &state,
            &session,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(format!(
                "say why you roll back to version {version}: the reason is kept in the rule's history"
            )),
        )
        .await;
    }
    let answer = Call::new(
        &state.api,
        &session,
        Method::POST,
        format!("/v1/rules/{}/rollback", encode(&id)),
    )
    .json(json!({"version": version, "reason": form.reason.trim()}))
    .send()
    .await;
    if answer.ok() {
        let now = answer.body["version"].as_i64().unwrap_or_default();
        Redirect::to(&format!(
            "/admin/rule/{}/history?rolled_back={now}",
            encode(&id)
        ))
        .into_response()
    } else {
        history_page(
            &state,
            &session,
            &id,
            answer.status,
            None,
            Some(answer.message()),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn api_error_paths_land_on_the_field_they_start_with() {
        let body = json!({"error": {"code": "validation_failed", "message": "m", "errors": [
            {"path": "priority", "message": "must be a whole number"},
            {"path": "drafts[0].actions[0].type", "message": "unknown action"},
            {"path": "somewhere", "message": "odd"},
        ]}});
        let errors = FieldErrors::from_api(&body, "drafts[0].");
        assert_eq!(errors.0["priority"], ["must be a whole number"]);
        assert_eq!(errors.0["actions"], ["at `[0].type`: unknown action"]);
        assert_eq!(errors.0["_form"], ["`somewhere`: odd"]);
    }

    #[test]
    fn a_rule_survives_the_form_and_back() {
        let rule = json!({"id": "R1", "entry_point": "landing", "name": "n", "description": "",
            "category": "", "priority": 7, "enabled": false, "stop_processing": true,
            "tags": ["a", "b:c"], "condition": {"==": [1, 1]},
            "actions": [{"type": "display_message", "message": "hi"}], "params": {"x": 1},
            "active_from": "2026-01-01T00:00:00Z", "version": 3});
        let doc = RuleForm::of(&rule).document().unwrap();
        for field in [
            "id",
            "entry_point",
            "priority",
            "enabled",
            "stop_processing",
            "tags",
            "condition",
            "actions",
            "params",
            "active_from",
        ] {
            assert_eq!(doc[field], rule[field], "{field}");
        }
        assert!(!doc.contains_key("version"));
    }

    #[test]
    fn a_text_area_that_does_not_parse_is_an_error_at_its_field() {
        let form = RuleForm {
            condition: "{\"==\": [1, ".into(),
            ..RuleForm::default()
        };
        let errors = form.document().unwrap_err();
        assert!(
            errors.0["condition"][0].starts_with("not valid JSON"),
            "{errors:?}"
        );
    }
}
