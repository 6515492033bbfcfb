//! JSON Web Tokens (HS256) issued by the auth service and checked by the gateway and
//! by every protected service (`crate::auth`), all with the `JWT_SECRET` they share.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Shorter secrets are refused at start-up: HS256 is only as strong as its key.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub email: String,
    /// `user`, and `admin` for an admin; none in a service's own token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Reads `JWT_SECRET`, refusing a missing or short one.
pub fn secret_from_env() -> anyhow::Result<String> {
    let secret = std::env::var("JWT_SECRET").map_err(|_| {
        anyhow::anyhow!(
            "JWT_SECRET is not set; set it to a random string of at least {MIN_SECRET_LEN} characters (e.g. `openssl rand -hex 32`)"
        )
    })?;
    if secret.len() < MIN_SECRET_LEN {
        anyhow::bail!(
            "JWT_SECRET is too short ({} characters); it needs at least {MIN_SECRET_LEN}",
            secret.len()
        );
    }
    Ok(secret)
}

/// A token without roles: a service's own, or a test's.
pub fn issue(secret: &str, sub: &str, email: &str, ttl: Duration) -> Result<String, ApiError> {
    issue_with_roles(secret, sub, email, &[], ttl)
}

/// A token whose caller has `roles` (`crate::auth::ADMIN` ...).
pub fn issue_with_roles(
    secret: &str,
    sub: &str,
    email: &str,
    roles: &[&str],
    ttl: Duration,
) -> Result<String, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: sub.to_string(),
        email: email.to_string(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        iat: now,
        exp: now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| ApiError::Internal(e.into()))
}

/// Checks signature and expiry.
pub fn verify(secret: &str, token: &str) -> Result<Claims, ApiError> {
    Verifier::new(secret)
        .verify(token)
        .map(Arc::unwrap_or_clone)
}

/// Checks tokens against one secret, with the key and the rules prepared once: the
/// gateway checks a token on every protected request.
///
/// Tokens it verified lately are remembered, with their claims: a client sends the
/// same token with every request until it expires, and checking its signature again
/// would cost the gateway more than the rest of proxying the request. A token is
/// remembered whole, so only the very same bytes skip the check; its expiry is
/// checked again on every use, and a token that failed is never remembered.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    verified: Mutex<HashMap<Box<str>, Arc<Claims>, BuildHasherDefault<SignatureHash>>>,
}

/// Hashes a token by its last 16 bytes, which belong to its signature: an HMAC,
/// whose bytes are as good as random, where hashing all of a token with SipHash
/// cost more than the rest of the check. Only tokens whose signature was verified
/// are ever stored, so a client cannot choose the stored keys to collide;
/// equality still compares the whole token.
#[derive(Default)]
struct SignatureHash(crate::metrics::Fnv);

impl Hasher for SignatureHash {
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.write(&bytes[bytes.len().saturating_sub(16)..]);
    }
}

/// Tokens remembered at most; past this the memory starts over.
const REMEMBERED: usize = 4096;

impl Verifier {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            verified: Mutex::new(HashMap::default()),
        }
    }

    /// Checks signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, ApiError> {
        let refused = || ApiError::Unauthorized("invalid or expired token".into());
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(claims) = verified.get(token) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            // As jsonwebtoken decides with no leeway: expired once `exp` has passed.
            if claims.exp >= i64::try_from(now).unwrap_or(i64::MAX) {
                return Ok(Arc::clone(claims));
            }
            verified.remove(token);
            return Err(refused());
        }
        let claims = decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| Arc::new(data.claims))
            .map_err(|_| refused())?;
        if verified.len() >= REMEMBERED {
            verified.clear();
        }
        verified.insert(token.into(), Arc::clone(&claims));
        Ok(claims)
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_tamper() {
        let token = issue(SECRET, "42", "ada@example.com", Duration::from_secs(60)).unwrap();
        let claims = verify(SECRET, &token).unwrap();
        assert_eq!(claims.sub, "42");
        assert!(verify("another-secret-another-secret-xx", &token).is_err());
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(verify(SECRET, &tampered).is_err());
    }

    #[test]
    fn a_remembered_token_is_still_checked() {
        let verifier = Verifier::new(SECRET);
        let token = issue(SECRET, "42", "ada@example.com", Duration::from_secs(1)).unwrap();
        assert_eq!(verifier.verify(&token).unwrap().sub, "42");
        assert_eq!(verifier.verify(&token).unwrap().sub, "42");
        // The same claims under another signature are other bytes: checked, refused.
        let (unsigned, _) = token.rsplit_once('.').unwrap();
        assert!(verifier.verify(&format!("{unsigned}.AAAA")).is_err());
        // Remembered, and expired all the same.
        std::thread::sleep(Duration::from_millis(2100));
        assert!(verifier.verify(&token).is_err());
        assert!(verifier.verify(&token).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let token = issue(SECRET, "1", "a@b.io", Duration::from_secs(0)).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(verify(SECRET, &token).is_err());
    }
}
