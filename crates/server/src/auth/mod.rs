//! Authentication: who is asking, from a bearer token or a login session, and the CSRF token their forms carry.
//!
//! Off by default. `DASHBOARD_AUTH_TOKEN` or `[[auth.tokens]]` in the config file turn it on for every route but
//! the public ones of the route table. Tokens are kept only as their SHA-256 and compared in constant time; a login
//! session lives in memory (lost at a restart: sign in again), or in the store when several instances share one,
//! behind an HttpOnly, SameSite=Strict cookie. The
//! checks themselves (401, 403, CSRF) are in `guard.rs`; the login form is a page (`pages/login.rs`). docs/security.md says who can
//! do what.

pub(crate) mod guard;
mod session;

use std::sync::Arc;

use actix_web::HttpRequest;
use dashboard_backend_api::{Principal, Scope};
use dashboard_store::{Cluster, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub(crate) use session::Sessions;

/// A signed-in browser: who it is now, and the token its forms carry.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The principal of the token that signed in, as that token is configured now.
    pub principal: Principal,
    /// The token its forms carry.
    pub csrf: String,
}

/// The name the token of `DASHBOARD_AUTH_TOKEN` is known by (and recorded as `triggered_by`).
pub const ENV_TOKEN_NAME: &str = "admin";

/// One token that may use the dashboard: its name, the SHA-256 of its secret, its scope and, optionally, the only
/// backends it may use.
#[derive(Clone, PartialEq)]
pub struct TokenSpec {
    /// Shown as `triggered_by` and in the header of the pages.
    pub name: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// What it may do.
    pub scope: Scope,
    /// The backends it may trigger, cancel and retry on; `None` means all.
    pub backends: Option<Vec<String>>,
    /// What its executions may cost in one UTC day, in US dollars (`daily_cost_usd`); `None` means no limit.
    pub daily_cost_usd: Option<f64>,
}

impl TokenSpec {
    /// A token from its secret (as `DASHBOARD_AUTH_TOKEN` gives it); only the hash is kept.
    pub fn from_secret(name: impl Into<String>, secret: &str, scope: Scope) -> Self {
        Self { name: name.into(), sha256: sha256(secret), scope, backends: None, daily_cost_usd: None }
    }

    /// Parses the hex SHA-256 of a config file entry.
    pub fn parse_sha256(hex: &str) -> Result<[u8; 32], String> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(
                "must be the SHA-256 of the token as 64 hex digits (`printf %s TOKEN | sha256sum`)".into()
            );
        }
        let mut hash = [0; 32];
        for (index, byte) in hash.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).map_err(|error| error.to_string())?;
        }
        Ok(hash)
    }

    pub(crate) fn principal(&self) -> Principal {
        Principal::token(self.name.clone(), self.scope, self.backends.clone())
    }
}

impl std::fmt::Debug for TokenSpec {
    /// Never prints the hash: a log line shows the name and what the token may do.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSpec")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 of a token.
pub(crate) fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The tokens and sessions of a running server.
pub(crate) struct Auth {
    tokens: Vec<TokenSpec>,
    sessions: Sessions,
    /// Drawn at start-up: the key of the CSRF tokens of browsers without a session.
    csrf_key: String,
    /// The host of `DASHBOARD_PUBLIC_URL`, which a dashboard without auth answers to besides localhost and IPs.
    public_host: Option<String>,
}

impl Auth {
    /// Auth with `tokens` (none means auth is off), for a server reached at `public_url`.
    pub(crate) fn new(tokens: Vec<TokenSpec>, public_url: Option<&str>) -> Self {
        let public_host = public_url.and_then(guard::url_host).map(str::to_owned);
        Self { tokens, sessions: Sessions::default(), csrf_key: random_token(), public_host }
    }

    /// Keeps login sessions in the store that `cluster` is the shared side of, so that every instance knows them.
    pub(crate) fn share_sessions(&mut self, cluster: Arc<dyn Cluster>) {
        self.sessions = Sessions::shared(cluster);
    }

    /// Starts a login session for `token`; returns its id, the cookie's value.
    pub(crate) async fn start_session(&self, token: &TokenSpec) -> Result<String, StoreError> {
        self.sessions.start(&token.name).await
    }

    /// The session with this id, with the rights its token has now: none when it expired, was ended, or its token is
    /// no longer configured (removing a token from the config ends its sessions). A store that cannot answer is an
    /// error, never a session.
    pub(crate) async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let Some(login) = self.sessions.get(id).await? else {
            return Ok(None);
        };
        let mut named = self.tokens.iter().filter(|token| token.name == login.token_name);
        // Token names are unique (`ServerConfig::read_config_file`); were two alike, neither would be guessed at.
        Ok(match (named.next(), named.next()) {
            (Some(token), None) => Some(Session { principal: token.principal(), csrf: login.csrf }),
            _ => None,
        })
    }

    /// Ends the session with this id.
    pub(crate) async fn end_session(&self, id: &str) -> Result<(), StoreError> {
        self.sessions.end(id).await
    }

    /// The host of the public URL, when there is one.
    pub(crate) fn public_host(&self) -> Option<&str> {
        self.public_host.as_deref()
    }

    /// The CSRF token of a browser without a session, whose cookie holds `nonce`: the HMAC of the nonce under this
    /// server's key. A cookie planted by another site (a sibling subdomain, another port) is of no use without the
    /// token that goes with it, which only this server's pages show.
    pub(crate) fn csrf_for(&self, nonce: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(self.csrf_key.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(nonce.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether any token is configured.
    pub(crate) fn is_on(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The token whose hash matches `secret`. Every configured token is compared, each in constant time, so the
    /// answer's timing does not tell which one (or how much of one) matched. An empty secret matches nothing.
    pub(crate) fn token(&self, secret: &str) -> Option<&TokenSpec> {
        if secret.trim().is_empty() {
            return None;
        }
        let hash = sha256(secret);
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.sha256.ct_eq(&hash)) {
                found = Some(token);
            }
        }
        found
    }

    /// The principal of a bearer token, when it is one of ours.
    pub(crate) fn bearer(&self, request: &HttpRequest) -> Option<Principal> {
        bearer_token(request).and_then(|secret| self.token(secret)).map(TokenSpec::principal)
    }
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer_token(request: &HttpRequest) -> Option<&str> {
    let header = request.headers().get("Authorization")?.to_str().ok()?;
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 32 random bytes as 64 hex digits: session ids and CSRF tokens.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The kernel's random source does not fail on the systems this runs on; if it did, no secret could be made.
    getrandom::fill(&mut bytes).expect("the system's random source is readable");
    hex(&bytes)
}

/// Bytes as lowercase hex digits.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Two secrets compared in constant time.
pub(crate) fn same_secret(left: &str, right: &str) -> bool {
    !left.is_empty() && bool::from(left.as_bytes().ct_eq(right.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_hash_only() {
        let auth = Auth::new(
            vec![
                TokenSpec::from_secret("ci", "s3cret-ci", Scope::Trigger),
                TokenSpec::from_secret("viewer", "s3cret-viewer", Scope::Read),
            ],
            None,
        );
        assert_eq!(auth.token("s3cret-viewer").map(|token| token.name.as_str()), Some("viewer"));
        assert!(auth.token("s3cret").is_none());
        assert!(auth.token("").is_none());
        let empty = Auth::new(
            vec![TokenSpec { sha256: sha256(""), ..TokenSpec::from_secret("x", "y", Scope::Read) }],
            None,
        );
        assert!(empty.token("").is_none() && empty.token("  ").is_none(), "an empty token never signs in");
        assert!(!format!("{:?}", auth.tokens).contains("sha256"), "Debug shows no hash");
    }

    #[test]
    fn hashes_are_64_hex_digits() {
        let hash = sha256("token");
        assert_eq!(TokenSpec::parse_sha256(&hex(&hash)), Ok(hash));
        assert!(TokenSpec::parse_sha256("abc").is_err());
        assert!(TokenSpec::parse_sha256(&"g".repeat(64)).is_err());
    }

    #[test]
    fn the_public_host_comes_from_the_public_url() {
        let auth = Auth::new(Vec::new(), Some("https://Agents.example.com:8443/dashboard"));
        assert_eq!(auth.public_host(), Some("Agents.example.com"));
        assert_eq!(Auth::new(Vec::new(), Some("not a url")).public_host(), None);
    }

    #[test]
    fn random_tokens_differ_and_secrets_compare_exactly() {
        let (first, second) = (random_token(), random_token());
        assert_eq!(first.len(), 64);
        assert_ne!(first, second);
        assert!(same_secret(&first, &first.clone()));
        assert!(!same_secret(&first, &second));
        assert!(!same_secret("", ""), "an empty token never matches");
    }
}
