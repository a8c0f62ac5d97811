//! The OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! The document is generated, never written by hand: each handler carries a `#[utoipa::path]`
//! annotation beside its code, its bodies are the handler's own types (deriving
//! `utoipa::ToSchema` beside their serde derives; the library crates' types behind their
//! `utoipa` feature), and [`super::app`] builds the router and the document from one list of
//! handlers with utoipa-axum's `OpenApiRouter`, so a route cannot be served without being
//! documented. The test `every_route_is_in_the_openapi_document` checks it from the other side.
//!
//! What is shared by many endpoints lives here, once: the bearer scheme, the error answers that
//! the extractors and the middleware give on every endpoint ([`Errors`], [`TooLarge`]), and the
//! rule-write body ([`RuleBody`]). The headers a request may send are documented by the
//! extractor that reads them ([`crate::auth::Reader`] and its siblings for `X-Tenant-ID`,
//! [`crate::freshness::Fresh`] for `min_seq`), so they are named in one place.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use rulebook_rules::{Evaluation, Rule};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::api::answer::{DecisionAnswer, DraftAnswer};
use crate::error::ApiError;

/// The document's fixed parts; the paths are added by [`super::app`]'s route list.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Rulebook",
        description = "Rules as data: evaluate entry points, read parameters and scorecards, \
                       write rules with history and optimistic concurrency (`ETag`/`If-Match`). \
                       Every error is `{\"error\": {\"code\", \"message\", \"errors\"?, \
                       \"current_version\"?}}`. Reads carry the change-log position they \
                       reflect as `seq` and in `X-Rulebook-Seq`, and wait for `min_seq` (or \
                       `X-Rulebook-Min-Seq`) when sent. `X-Tenant-ID` picks the tenant \
                       (`default` when left out)."
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer),
    tags(
        (name = "evaluate", description = "Evaluations, scores, parameters and flags"),
        (name = "rules", description = "Rules: read, write, import, history"),
        (name = "ofrep", description = "OpenFeature Remote Evaluation Protocol: rules as boolean flags, params as typed flags"),
        (name = "decisions", description = "The decision log"),
        (name = "replicas", description = "Snapshots and the change stream"),
        (name = "cache", description = "The cache by hand"),
        (name = "ops", description = "Health, metrics, this document"),
    )
)]
pub(crate) struct ApiDoc;

/// The one error shape, as a path annotation's `body` names it (`Error` in the document).
pub(crate) type ErrorBody = crate::error::Envelope<'static>;

/// The name of the security scheme: `Authorization: Bearer <token>`.
pub(crate) const BEARER: &str = "bearer";

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token made by `rulebook tokens create` (or `RULEBOOK_ADMIN_TOKEN`), \
                         with the role the endpoint needs: read, write or admin",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as served, made once.
static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| super::openapi().to_json().map_err(|e| e.to_string()));

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn document() -> Response {
    match &*DOCUMENT {
        Ok(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json.clone(),
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// The error answers every `/v1` endpoint may give, whatever it does: 400 for a bad
/// `X-Tenant-ID`, `min_seq`, path or query, or an unknown tenant; 401 and 403 from the token
/// checks (reads too, when reads need a token); 500; 503 while the store is unavailable or the
/// instance has not reached `min_seq` (with `Retry-After`); 504 past the request time limit.
pub(crate) struct Errors;

impl utoipa::IntoResponses for Errors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        [
            (
                "400",
                error("The request is not valid: `message` says what to fix"),
            ),
            (
                "401",
                error("A token is needed, or the one sent is not valid"),
            ),
            (
                "403",
                error("The token's role or tenant does not allow this"),
            ),
            ("500", error("The server failed; its log has the detail")),
            ("503", unavailable()),
            (
                "504",
                error("The request took longer than the server's limit"),
            ),
        ]
        .into_iter()
        .map(|(status, response)| (status.to_owned(), RefOr::T(response)))
        .collect()
    }
}

/// 413 for a request body over the limit, on every endpoint that reads a body.
pub(crate) struct TooLarge;

impl utoipa::IntoResponses for TooLarge {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        BTreeMap::from([(
            "413".to_owned(),
            RefOr::T(error(
                "The request body is larger than the server's limit (`RULEBOOK_BODY_LIMIT`)",
            )),
        )])
    }
}

/// An error answer: the one error shape, as JSON.
fn error(description: &str) -> utoipa::openapi::response::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build(),
        )
        .build()
}

fn unavailable() -> utoipa::openapi::response::Response {
    let mut response = error(
        "The store is unavailable, or this instance has not yet applied `min_seq`: retry after \
         `Retry-After` seconds",
    );
    response.headers.insert(
        "Retry-After".to_owned(),
        HeaderBuilder::new()
            .schema(integer())
            .description(Some("Seconds to wait before retrying"))
            .build(),
    );
    response.headers.insert(
        "X-Rulebook-Seq".to_owned(),
        HeaderBuilder::new()
            .schema(integer())
            .description(Some(
                "With `not_yet_current`: the position this instance has applied",
            ))
            .build(),
    );
    response
}

fn integer() -> Schema {
    Schema::Object(ObjectBuilder::new().schema_type(Type::Integer).build())
}

/// An optional parameter in `place` named `name`, with `schema`.
pub(crate) fn optional(
    name: &str,
    place: ParameterIn,
    schema: impl Into<RefOr<Schema>>,
    description: &str,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(Required::False)
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

/// The body of `POST /v1/rules` and `PUT /v1/rules/{id}`: a [`Rule`] (as `GET /v1/rules/{id}`
/// answers it: the read-only fields and `seq` are accepted and ignored, `version` is the version
/// replaced when there is no `If-Match`), and `reason`, recorded in the history.
///
/// Documentation only: the handlers read the body as JSON, take `reason` and `seq` out and read
/// the rest as a [`Rule`], which is what this schema says, built from [`Rule`]'s own schema.
pub(crate) struct RuleBody;

impl PartialSchema for RuleBody {
    fn schema() -> RefOr<Schema> {
        let mut schema = Rule::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.properties.insert(
                "reason".to_owned(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("Why, recorded in the history"))
                    .into(),
            );
            object.properties.insert(
                "seq".to_owned(),
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("Read-only: what a read answered with; ignored"))
                    .into(),
            );
            object.description = Some(
                "A rule, as `GET /v1/rules/{id}` answers it (read-only fields ignored), with an \
                 optional `reason`"
                    .to_owned(),
            );
        }
        schema
    }
}

impl ToSchema for RuleBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <Rule as ToSchema>::schemas(schemas);
    }
}

/// Names, for the document, the body of an [`Answer<T>`](crate::freshness::Answer): `T`'s
/// fields with `seq` ([`rulebook_client::wire::Fresh<T>`]). Each is `T`'s own object schema with
/// `seq` added, not an `allOf` of the two: `T` may refuse unknown fields (a [`Rule`] does), and
/// no object could then satisfy both halves of an `allOf`.
macro_rules! fresh {
    ($($name:ident: $inner:ty),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($inner), "` with `seq` (documentation only).")]
        #[derive(Debug)]
        pub(crate) struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                with_seq(<$inner as PartialSchema>::schema())
            }
        }

        impl ToSchema for $name {
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                <$inner as ToSchema>::schemas(schemas);
            }
        }
    )*};
}

fresh!(
    FreshRule: Rule,
    FreshRuleList: crate::api::rules::RuleList,
    FreshDeleted: crate::api::rules::Deleted,
    FreshHistory: crate::api::rules::History,
    FreshImportAnswer: crate::api::rules::ImportAnswer,
    FreshHistoryEntry: rulebook_store::HistoryEntry,
    FreshVersionDiff: rulebook_store::VersionDiff,
    FreshDecision: rulebook_store::Decision,
    FreshDecisionList: crate::api::decisions::DecisionList,
    FreshParamAnswer: rulebook_client::wire::ParamAnswer,
    FreshEnabledAnswer: rulebook_client::wire::EnabledAnswer,
    FreshSnapshot: rulebook_client::wire::Snapshot,
);

/// The answer of `POST /v1/evaluate/{entry_point}` (documentation only): one evaluation answer
/// (a logged decision, or one computed with `drafts`), or with `contexts`
/// `{"seq": ..., "results": [...]}`, one such answer per context.
#[derive(Debug)]
pub(crate) struct EvaluateAnswer;

/// One evaluation answer: a decision, or one computed with drafts.
fn one_evaluation() -> RefOr<Schema> {
    AnyOfBuilder::new()
        .item(<DecisionAnswer<'static, Evaluation> as PartialSchema>::schema())
        .item(<DraftAnswer<'static> as PartialSchema>::schema())
        .into()
}

impl PartialSchema for EvaluateAnswer {
    fn schema() -> RefOr<Schema> {
        let results = ObjectBuilder::new()
            .property(
                "seq",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("The change-log position the answers reflect")),
            )
            .required("seq")
            .property(
                "results",
                ArrayBuilder::new()
                    .items(one_evaluation())
                    .min_items(Some(1))
                    .max_items(Some(crate::api::evaluate::MAX_CONTEXTS))
                    .description(Some("One answer per context, in the order sent")),
            )
            .required("results")
            .description(Some("With `contexts`: one answer per context"));
        AnyOfBuilder::new()
            .item(one_evaluation())
            .item(results)
            .into()
    }
}

impl ToSchema for EvaluateAnswer {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <DecisionAnswer<'static, Evaluation> as ToSchema>::schemas(schemas);
        <DraftAnswer<'static> as ToSchema>::schemas(schemas);
    }
}

/// `schema` (an object) with a required `seq` first.
fn with_seq(schema: RefOr<Schema>) -> RefOr<Schema> {
    let seq = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some(
            "For a read, the change-log position it reflects; for a write, the `seq` of its \
             change (also in `X-Rulebook-Seq`)",
        ))
        .build();
    match schema {
        RefOr::T(Schema::Object(mut object)) => {
            object
                .properties
                .shift_insert(0, "seq".to_owned(), seq.into());
            object.required.insert(0, "seq".to_owned());
            RefOr::T(Schema::Object(object))
        }
        other => AllOfBuilder::new()
            .item(other)
            .item(ObjectBuilder::new().property("seq", seq).required("seq"))
            .into(),
    }
}
