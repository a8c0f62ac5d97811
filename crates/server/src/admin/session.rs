//! Sessions and CSRF tokens of the web admin.
//!
//! A session is created by signing in with a token. Its id, 32 bytes from a CSPRNG
//! (`rand::thread_rng`, ChaCha seeded from the operating system), travels only in the
//! `rulebook_session` cookie: `HttpOnly` (no page script can read it), `SameSite=Strict` (no
//! other site's page can send it), `Path=/admin`, and `Secure` when the request reached the
//! server over TLS. `rulebook serve` speaks plain HTTP, so TLS ends at a proxy in front of it;
//! the proxy's `X-Forwarded-Proto: https` is what says so. Trusting that header can do no harm
//! here: a forged `https` only makes the browser keep the cookie for HTTPS, a forged `http`
//! only leaves the flag off on a cookie that is still `SameSite=Strict` and `HttpOnly`.
//!
//! The server keeps the session (the token's secret among it) in a
//! [`rulebook_cache::Cache`] bounded in entries, with a time to idle and a time to live, so a
//! flood of sign-ins evicts old sessions instead of growing memory. The cache is keyed by the
//! SHA-256 of the id, so the id itself is not kept. Each session has its own CSRF token,
//! embedded in every form and compared in constant time on every POST.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use base64::Engine as _;
use parking_lot::Mutex;
use rand::RngCore as _;
use rulebook_cache::{Cache, Loaded};
use rulebook_store::TokenRole;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "rulebook_session";
/// The cookie carrying the sign-in form's CSRF token, before there is a session.
pub const SIGN_IN_COOKIE: &str = "rulebook_sign_in";

/// Sessions kept at most; the least used go first.
const MAX_SESSIONS: u64 = 10_000;
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, used or not.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Sample contexts remembered per session (one per entry point), and the bytes of each.
const MAX_CONTEXTS: usize = 64;
const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// One signed-in user. Its `Debug` leaves out the secret and the CSRF token.
pub struct Session {
    /// The token's secret, sent as the bearer token of every API call the pages make.
    pub secret: String,
    /// The token's name (the author of the session's writes).
    pub name: String,
    /// The token's role: the pages show edit controls from `write` up. The API checks the role
    /// on every call anyway.
    pub role: TokenRole,
    /// The tenant the token is limited to, or `None` for every tenant.
    pub scope: Option<String>,
    /// The CSRF token of the session's forms.
    pub csrf: String,
    /// What the session remembers between pages.
    state: Mutex<SessionState>,
}

#[derive(Debug)]
struct SessionState {
    tenant: String,
    contexts: HashMap<String, String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The tenant the pages act on.
    pub fn tenant(&self) -> String {
        self.state.lock().tenant.clone()
    }

    /// Switches the pages to `tenant` (its access is checked by each API call).
    pub fn set_tenant(&self, tenant: &str) {
        self.state.lock().tenant = tenant.to_owned();
    }

    /// The sample context last tried on `entry_point` in this tenant.
    pub fn context(&self, entry_point: &str) -> Option<String> {
        let state = self.state.lock();
        let key = format!("{}/{entry_point}", state.tenant);
        state.contexts.get(&key).cloned()
    }

    /// Remembers `context` for `entry_point`; a context over 64 KiB, or a 65th entry point, is
    /// not remembered (the page still uses it).
    pub fn remember_context(&self, entry_point: &str, context: &str) {
        let mut state = self.state.lock();
        let key = format!("{}/{entry_point}", state.tenant);
        if context.len() > MAX_CONTEXT_BYTES
            || (state.contexts.len() >= MAX_CONTEXTS && !state.contexts.contains_key(&key))
        {
            return;
        }
        state.contexts.insert(key, context.to_owned());
    }

    /// Whether `sent` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, sent: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(sent.as_bytes()))
    }

    /// Whether the token may write.
    pub fn can_write(&self) -> bool {
        self.role >= TokenRole::Write
    }

    /// Whether the token may clear the cache.
    pub fn is_admin(&self) -> bool {
        self.role >= TokenRole::Admin
    }
}

/// The sessions of this process.
#[derive(Clone)]
pub struct Sessions {
    cache: Arc<Cache<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("open", &self.len())
            .finish()
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            cache: Arc::new(
                Cache::builder()
                    .max_capacity(MAX_SESSIONS)
                    .time_to_idle(IDLE)
                    .time_to_live(LIFETIME)
                    .build(),
            ),
        }
    }
}

impl Sessions {
    /// Starts a session for the token; returns its id (for the cookie).
    pub fn start(
        &self,
        secret: &str,
        name: &str,
        role: TokenRole,
        scope: Option<String>,
        tenant: &str,
    ) -> String {
        let id = random_token();
        let session = Session {
            secret: secret.to_owned(),
            name: name.to_owned(),
            role,
            scope,
            csrf: random_token(),
            state: Mutex::new(SessionState {
                tenant: tenant.to_owned(),
                contexts: HashMap::new(),
            }),
        };
        self.cache.insert(key(&id), Loaded::new(session));
        id
    }

    /// The session named by the request's cookie, if it is still there.
    pub fn of(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        let id = cookie(headers, SESSION_COOKIE)?;
        self.cache.get(&key(&id))
    }

    /// Ends the session named by the request's cookie.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.cache.invalidate(&key(&id));
        }
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

fn key(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(id.as_bytes()))
}

/// 32 random bytes from a CSPRNG, base64url: a session id or a CSRF token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The value of cookie `name` in the request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the request reached us over TLS (see the module doc).
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for `name=value` on `/admin`, lasting `max_age` (zero ends it).
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/admin; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cookie_is_found_among_others_and_an_empty_one_is_none() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; rulebook_session=xyz; b=".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn sessions_are_found_by_their_cookie_and_end_on_sign_out() {
        let sessions = Sessions::default();
        let id = sessions.start("rb_secret", "alice", TokenRole::Write, None, "default");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("{SESSION_COOKIE}={id}").parse().unwrap(),
        );
        let session = sessions.of(&headers).unwrap();
        assert_eq!(session.name, "alice");
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches("nope"));
        assert!(!session.csrf_matches(""));
        sessions.end(&headers);
        assert!(sessions.of(&headers).is_none());
    }

    #[test]
    fn the_cookie_is_secure_only_behind_tls_and_always_http_only_and_strict() {
        let mut headers = HeaderMap::new();
        assert!(!over_tls(&headers));
        headers.insert("x-forwarded-proto", "HTTPS".parse().unwrap());
        assert!(over_tls(&headers));
        let cookie = set_cookie(SESSION_COOKIE, "id", LIFETIME, over_tls(&headers));
        assert_eq!(
            cookie,
            "rulebook_session=id; Path=/admin; Max-Age=43200; HttpOnly; SameSite=Strict; Secure"
        );
        headers.insert("x-forwarded-proto", "http".parse().unwrap());
        assert!(!set_cookie(SESSION_COOKIE, "id", LIFETIME, over_tls(&headers)).contains("Secure"));
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::default();
        for _ in 0..(MAX_SESSIONS + 500) {
            sessions.start("s", "n", TokenRole::Read, None, "default");
        }
        assert!(sessions.len() as u64 <= MAX_SESSIONS, "{}", sessions.len());
    }

    #[test]
    fn contexts_are_remembered_per_tenant_and_entry_point_within_bounds() {
        let sessions = Sessions::default();
        let id = sessions.start("s", "n", TokenRole::Read, None, "default");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("{SESSION_COOKIE}={id}").parse().unwrap(),
        );
        let session = sessions.of(&headers).unwrap();
        session.remember_context("landing", "{\"a\": 1}");
        assert_eq!(session.context("landing").as_deref(), Some("{\"a\": 1}"));
        session.set_tenant("acme");
        assert_eq!(session.context("landing"), None);
        session.remember_context("big", &"x".repeat(MAX_CONTEXT_BYTES + 1));
        assert_eq!(session.context("big"), None);
    }
}
