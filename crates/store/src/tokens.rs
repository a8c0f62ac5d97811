//! API tokens for the server: stored hashed, with a role and a tenant scope.
//!
//! A token's secret is 32 random bytes, shown once when it is created. The store keeps only its
//! SHA-256: the secrets are random and long, so a fast hash is enough (a slow password hash
//! guards guessable secrets, which these are not), and lookups stay one indexed query.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::args;
use crate::error::{db_error, StoreError};
use crate::model::now;
use crate::Store;

/// What a token may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Read rules, evaluate, score.
    Read,
    /// Also write rules.
    Write,
    /// Also manage the cache.
    Admin,
}

impl TokenRole {
    /// `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Read => "read",
            TokenRole::Write => "write",
            TokenRole::Admin => "admin",
        }
    }
}

impl std::str::FromStr for TokenRole {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<TokenRole, StoreError> {
        match s {
            "read" => Ok(TokenRole::Read),
            "write" => Ok(TokenRole::Write),
            "admin" => Ok(TokenRole::Admin),
            other => Err(StoreError::Invalid(format!(
                "role `{other}` does not exist: use `read`, `write` or `admin`"
            ))),
        }
    }
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// The token's public id (for listing and revoking).
    pub id: String,
    /// Who or what it is for; recorded as the author of its writes.
    pub name: String,
    /// What it may do.
    pub role: TokenRole,
    /// The one tenant it may act on, or `None` for every tenant.
    pub tenant: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    /// Whether the token may act on `tenant`.
    pub fn covers_tenant(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    role: String,
    tenant: Option<String>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    fn into_record(self) -> Result<TokenRecord, StoreError> {
        Ok(TokenRecord {
            role: self.role.parse()?,
            id: self.id,
            name: self.name,
            tenant: self.tenant,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

const TOKEN_COLUMNS: &str = "id, name, role, tenant, created_at, revoked_at";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Makes a token and returns it with its secret, which is not stored and cannot be shown
    /// again. `tenant` limits it to one tenant, which must exist.
    pub async fn create_token(
        &self,
        name: &str,
        role: TokenRole,
        tenant: Option<&str>,
    ) -> Result<(TokenRecord, String), StoreError> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a token needs a name saying who or what uses it".into(),
            ));
        }
        if let Some(t) = tenant {
            if !self.tenant_exists(t).await? {
                return Err(StoreError::UnknownTenant(t.to_owned()));
            }
        }
        let mut rng = rand::thread_rng();
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut id);
        rng.fill_bytes(&mut secret);
        let record = TokenRecord {
            id: format!("tok_{}", hex(&id)),
            name: name.trim().to_owned(),
            role,
            tenant: tenant.map(str::to_owned),
            created_at: now(),
            revoked_at: None,
        };
        let secret = format!("rb_{}", hex(&secret));
        let mut held = self.pool().acquire().await?;
        held.conn()
            .execute(
                "INSERT INTO api_tokens (id, name, secret_hash, role, tenant, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![
                    record.id.clone(),
                    record.name.clone(),
                    hash_secret(&secret),
                    role.as_str(),
                    record.tenant.clone(),
                    record.created_at,
                ],
            )
            .await
            .map_err(|e| db_error("creating a token", e))?;
        Ok((record, secret))
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut held = self.pool().acquire().await?;
        let rows: Vec<TokenRow> = held
            .conn()
            .fetch_all(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"),
                args![],
            )
            .await
            .map_err(|e| db_error("listing tokens", e))?;
        rows.into_iter().map(TokenRow::into_record).collect()
    }

    /// Revokes token `id`; revoking a revoked token changes nothing.
    pub async fn revoke_token(&self, id: &str) -> Result<(), StoreError> {
        let mut held = self.pool().acquire().await?;
        let mut conn = held.conn();
        let found: Option<(String,)> = conn
            .fetch_optional("SELECT id FROM api_tokens WHERE id = $1", args![id])
            .await
            .map_err(|e| db_error("revoking a token", e))?;
        if found.is_none() {
            return Err(StoreError::TokenNotFound(id.to_owned()));
        }
        conn.execute(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            args![id, now()],
        )
        .await
        .map_err(|e| db_error("revoking a token", e))?;
        Ok(())
    }

    /// The live token whose secret is `secret`, if there is one.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<TokenRecord>, StoreError> {
        let mut held = self.pool().acquire().await?;
        let row: Option<TokenRow> = held
            .conn()
            .fetch_optional(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL"
                ),
                args![hash_secret(secret)],
            )
            .await
            .map_err(|e| db_error("checking a token", e))?;
        row.map(TokenRow::into_record).transpose()
    }

    /// Whether any token is live (the server makes an admin token on first start if not).
    pub async fn has_live_tokens(&self) -> Result<bool, StoreError> {
        let mut held = self.pool().acquire().await?;
        let row: Option<(String,)> = held
            .conn()
            .fetch_optional(
                "SELECT id FROM api_tokens WHERE revoked_at IS NULL LIMIT 1",
                args![],
            )
            .await
            .map_err(|e| db_error("checking tokens", e))?;
        Ok(row.is_some())
    }
}
