//! Tenants and tokens: who is asking, for which tenant, and whether they may.
//!
//! A handler states what it needs by the extractor it takes: [`Reader`], [`Writer`] or
//! [`Admin`]. Each reads the tenant from `X-Tenant-ID` (default `default`) and, when a token is
//! needed, the bearer token from `Authorization`. The checks run in this order, so a client
//! learns nothing about a tenant it may not see: the token (401), its role (403), its tenant
//! scope (403), and only then whether the tenant exists (400).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use rulebook_rules::DEFAULT_TENANT;
use rulebook_store::{TokenRecord, TokenRole};

use crate::error::ApiError;
use crate::metrics::AuthFailure;
use crate::state::AppState;

/// The tenant header.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// The caller of a request that passed its checks.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant the request acts on.
    pub tenant: String,
    /// The token's name, recorded as the author of writes; `anonymous` for reads without one.
    pub name: String,
}

/// A caller allowed to read (a read token when reads need one).
#[derive(Debug, Clone)]
pub struct Reader(pub Caller);

/// A caller holding a token with the write role for the tenant.
#[derive(Debug, Clone)]
pub struct Writer(pub Caller);

/// A caller holding a token with the admin role for the tenant.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let needed = state.limits().reads_need_token.then_some(TokenRole::Read);
        resolve(parts, state, needed).await.map(Reader)
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        resolve(parts, state, Some(TokenRole::Write))
            .await
            .map(Writer)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        resolve(parts, state, Some(TokenRole::Admin))
            .await
            .map(Admin)
    }
}

async fn resolve(
    parts: &Parts,
    state: &AppState,
    needed: Option<TokenRole>,
) -> Result<Caller, ApiError> {
    let tenant = tenant_of(parts)?;
    let name = match needed {
        None => "anonymous".to_owned(),
        Some(role) => {
            let token = authenticate(parts, state).await?;
            if token.role < role {
                state.metrics().auth_failed(AuthFailure::ForbiddenRole);
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    AuthFailure::ForbiddenRole.label(),
                    format!(
                        "token `{}` has the `{}` role; this needs `{}`: use a token with that role",
                        token.name,
                        token.role.as_str(),
                        role.as_str()
                    ),
                ));
            }
            if !token.covers_tenant(&tenant) {
                state.metrics().auth_failed(AuthFailure::ForbiddenTenant);
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    AuthFailure::ForbiddenTenant.label(),
                    format!(
                        "token `{}` is limited to tenant `{}` and cannot act on tenant `{tenant}`: use a token for that tenant",
                        token.name,
                        token.tenant.as_deref().unwrap_or_default()
                    ),
                ));
            }
            token.name
        }
    };
    state.check_tenant(&tenant).await?;
    Ok(Caller { tenant, name })
}

fn tenant_of(parts: &Parts) -> Result<String, ApiError> {
    match parts.headers.get(TENANT_HEADER) {
        None => Ok(DEFAULT_TENANT.to_owned()),
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::bad_request(
                    "bad_tenant",
                    "the `X-Tenant-ID` header is not plain text: send a tenant id such as `default`",
                )
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(ApiError::bad_request(
                    "bad_tenant",
                    "the `X-Tenant-ID` header is empty: send a tenant id, or leave the header out for `default`",
                ));
            }
            Ok(text.to_owned())
        }
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<TokenRecord, ApiError> {
    // Counted here, where the reason is known; a store failure is not the caller's and is not.
    let unauthorized = |why: AuthFailure, message: &str| {
        state.metrics().auth_failed(why);
        ApiError::new(StatusCode::UNAUTHORIZED, why.label(), message.to_owned())
    };
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            AuthFailure::MissingToken,
            "this needs a token: send `Authorization: Bearer <token>` (create one with `rulebook tokens create`)",
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            unauthorized(
                AuthFailure::BadToken,
                "the `Authorization` header is not `Bearer <token>`: send the token after `Bearer `",
            )
        })?;
    token_for_secret(state, secret).await?.ok_or_else(|| {
        unauthorized(
            AuthFailure::InvalidToken,
            "the token is not valid (unknown or revoked): check it, or create a new one with `rulebook tokens create`",
        )
    })
}

/// The token whose secret is `secret`: the configured admin token or one in the store; `None`
/// when it is unknown or revoked. Not counted as a failure here: the caller knows why it asked.
/// Errors: the store's, when it cannot answer.
pub(crate) async fn token_for_secret(
    state: &AppState,
    secret: &str,
) -> Result<Option<TokenRecord>, ApiError> {
    if state.is_admin_token(secret) {
        return Ok(Some(TokenRecord {
            id: "configured".to_owned(),
            name: "admin".to_owned(),
            role: TokenRole::Admin,
            tenant: None,
            created_at: chrono::Utc::now(),
            revoked_at: None,
        }));
    }
    Ok(state.store().authenticate(secret).await?)
}

/// The request header every extractor here reads, as the OpenAPI document names it.
fn tenant_parameter() -> Vec<utoipa::openapi::path::Parameter> {
    vec![crate::api::openapi::optional(
        "X-Tenant-ID",
        utoipa::openapi::path::ParameterIn::Header,
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            // What a tenant id may be (see `rulebook tenants create`).
            .pattern(Some("^[a-z0-9][a-z0-9_.-]{0,63}$")),
        "The tenant the request acts on; `default` when left out",
    )]
}

impl utoipa::IntoParams for Reader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        tenant_parameter()
    }
}

impl utoipa::IntoParams for Writer {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        tenant_parameter()
    }
}

impl utoipa::IntoParams for Admin {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        tenant_parameter()
    }
}
