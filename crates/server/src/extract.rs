//! Extractors whose rejections are [`ApiError`]s, so axum's plain-text rejections never reach a
//! client: a JSON body ([`JsonBody`]), a raw body ([`RawBody`]), path parameters ([`PathParams`]) and the query string
//! ([`QueryParams`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body read into `T`. An empty body, or `null`, reads as `{}`, so bodies that
/// only carry optional fields (such as `reason`) may be left out (the OpenAPI document says such
/// a body is optional, which it writes as "`null` or the object").
///
/// Malformed JSON and wrong types are 400 with the path of the offending field; a body over the
/// limit is 413.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The raw request body, read within the configured limit (413 `body_too_large` beyond it).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        read_body(request, state).await.map(RawBody)
    }
}

/// Reads the whole body within the configured limit.
pub(crate) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the server's limit (RULEBOOK_BODY_LIMIT): send less, or raise the limit",
            )
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("the request body could not be read ({rejection}); send it again"),
            )
        }
    })
}

/// Parses `bytes` (empty or `null` meaning `{}`) as JSON into `T`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.trim_ascii().is_empty() || bytes.trim_ascii() == b"null" {
        b"{}"
    } else {
        bytes
    };
    // The fast path parses without tracking paths; only a body that fails is parsed again
    // with path tracking, to say which field is wrong.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(
                "malformed_json",
                format!("the request body is not valid JSON ({inner}); fix the syntax there"),
            )
        } else if path == "." {
            ApiError::bad_request(
                "invalid_body",
                format!("the request body is not what this endpoint takes: {inner}"),
            )
        } else {
            ApiError::bad_request(
                "invalid_body",
                format!("field `{path}` of the request body is wrong: {inner}"),
            )
        }
    })?;
    deserializer.end().map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("the request body has text after its JSON value ({e}); send one JSON value"),
        )
    })?;
    Ok(value)
}

/// Path parameters.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParams(value))
            .map_err(|rejection| {
                ApiError::bad_request(
                    "bad_path",
                    format!(
                        "the path is not valid ({}); check the ids in the URL",
                        rejection.body_text()
                    ),
                )
            })
    }
}

/// The query string.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|rejection| {
                ApiError::bad_request(
                    "bad_query",
                    format!(
                        "the query string is not valid ({}); check its parameters",
                        rejection.body_text()
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        count: u32,
    }

    #[test]
    fn an_empty_or_null_body_reads_as_an_empty_object() {
        #[derive(serde::Deserialize, Debug, PartialEq, Default)]
        #[serde(deny_unknown_fields)]
        struct Optional {
            reason: Option<String>,
        }
        for body in [&b""[..], b"  ", b"null", b" null\n"] {
            assert_eq!(parse_json::<Optional>(body).unwrap(), Optional::default());
        }
        assert_eq!(
            parse_json::<Optional>(b"nul").unwrap_err().code(),
            "malformed_json"
        );
    }

    #[test]
    fn json_errors_say_where() {
        let e = parse_json::<Body>(b"{\"count\": ").unwrap_err();
        assert_eq!(e.code(), "malformed_json");
        let e = parse_json::<Body>(b"{\"count\": \"x\"}").unwrap_err();
        assert_eq!(e.code(), "invalid_body");
        assert!(e.message().contains("`count`"), "{}", e.message());
        let e = parse_json::<Body>(b"{\"count\": 1} {}").unwrap_err();
        assert_eq!(e.code(), "malformed_json");
    }
}
