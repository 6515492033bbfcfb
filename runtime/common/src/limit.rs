//! Brute-force limits of the login: failed attempts counted per account and per
//! client address; past the limit, attempts are refused (429 with `Retry-After`)
//! until the window that began with the first failure has passed, even with the
//! right password, so guessing gains nothing. A successful login clears its
//! account's count.
//!
//! Failures are counted, not attempts (which a rate limiter such as `governor`
//! counts): a user who signs in many times a minute is never refused.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::ApiError;

/// Failures counted per key within a window that starts at the first one.
#[derive(Debug)]
pub struct Failures {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Keys remembered at most: past this the expired ones are forgotten, and if
/// that is not enough, all of them (each scan then pays for many insertions).
const REMEMBERED: usize = 100_000;

impl Failures {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for `key` as failed before it is made (so that attempts
    /// made at once cannot all pass before the first fails), or the seconds to
    /// wait when `key` has failed `max` times in its window.
    pub fn attempt(&self, key: &str) -> Result<(), u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBERED {
            seen.retain(|_, (_, since)| since.elapsed() < self.window);
            if seen.len() >= REMEMBERED / 2 {
                seen.clear();
            }
        }
        let entry = seen.entry(key.to_string()).or_insert((0, Instant::now()));
        let left = self.window.saturating_sub(entry.1.elapsed());
        if left.is_zero() {
            *entry = (0, Instant::now());
        } else if entry.0 >= self.max {
            // Rounded up: a client that waits as told is let in.
            return Err(left.as_secs() + u64::from(left.subsec_nanos() > 0));
        }
        entry.0 += 1;
        Ok(())
    }

    /// The attempt succeeded: it was no failure.
    pub fn succeeded(&self, key: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = seen.get_mut(key) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    pub fn clear(&self, key: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.remove(key);
    }
}

/// The login's two limits: per account and per client address.
#[derive(Debug)]
pub struct LoginLimits {
    accounts: Failures,
    addresses: Failures,
}

impl LoginLimits {
    pub fn new(per_account: u32, per_address: u32, window: Duration) -> Self {
        Self {
            accounts: Failures::new(per_account, window),
            addresses: Failures::new(per_address, window),
        }
    }

    /// Counts the attempt as failed until [`succeeded`](Self::succeeded) says
    /// otherwise; 429 in the envelope, with `Retry-After`, while either limit is
    /// reached.
    pub fn attempt(&self, account: &str, client: &ClientAddr) -> Result<(), ApiError> {
        let refused = |retry_after: u64| ApiError::TooManyRequests {
            message: format!("too many failed logins; try again in {retry_after} s"),
            retry_after,
        };
        self.addresses.attempt(&client.key()).map_err(refused)?;
        if let Err(wait) = self.accounts.attempt(account) {
            self.addresses.succeeded(&client.key());
            return Err(refused(wait));
        }
        Ok(())
    }

    /// The credentials were right: the account starts over, and the address's
    /// attempt was no failure.
    pub fn succeeded(&self, account: &str, client: &ClientAddr) {
        self.accounts.clear(account);
        self.addresses.succeeded(&client.key());
    }
}

/// The client's address: `X-Real-IP`, which the gateway sets (never passing on a
/// client's own), else the peer of the connection (a call made straight to the
/// service, which only the gateway may make where NetworkPolicies are enforced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// IPv6 clients are counted by their /64: one host has many addresses.
    fn key(&self) -> String {
        match self.0.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(ip) => ip.to_string(),
            None => "unknown".to_string(),
        }
    }
}

#[cfg_attr(feature = "axum07", axum::async_trait)]
impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let real_ip = parts
            .headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let peer = || {
            parts
                .extensions
                .get::<ConnectInfo<crate::server::Peer>>()
                .map(|c| c.0 .0.ip())
        };
        Ok(Self(real_ip.or_else(peer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_limit_wait_for_the_window() {
        let limits = LoginLimits::new(2, 5, Duration::from_secs(60));
        let client = ClientAddr(Some([10, 0, 0, 1].into()));
        assert!(limits.attempt("ada", &client).is_ok());
        assert!(limits.attempt("ada", &client).is_ok());
        let err = limits.attempt("ada", &client).unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        let ApiError::TooManyRequests { retry_after, .. } = err else {
            panic!("{err:?}");
        };
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        // Another account from the same address is still let in...
        assert!(limits.attempt("bob", &client).is_ok());
        // ...until the address has failed too often (the refused attempt above
        // was not counted against it).
        assert!(limits.attempt("bob", &client).is_ok());
        assert!(limits.attempt("carol", &client).is_ok());
        assert!(limits.attempt("carol", &client).is_err());
        let other = ClientAddr(Some([10, 0, 0, 2].into()));
        assert!(limits.attempt("dave", &other).is_ok());
    }

    #[test]
    fn a_success_clears_the_account_and_the_window_ends() {
        let limits = LoginLimits::new(1, 100, Duration::from_millis(200));
        let client = ClientAddr(None);
        assert!(limits.attempt("ada", &client).is_ok());
        assert!(limits.attempt("ada", &client).is_err());
        limits.succeeded("ada", &client);
        assert!(limits.attempt("ada", &client).is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limits.attempt("ada", &client).is_ok());
    }

    #[test]
    fn attempts_made_at_once_are_counted_before_they_fail() {
        let limits = std::sync::Arc::new(LoginLimits::new(5, 1000, Duration::from_secs(60)));
        let client = ClientAddr(Some([10, 0, 0, 3].into()));
        let passed: usize = (0..50)
            .map(|_| {
                let limits = std::sync::Arc::clone(&limits);
                std::thread::spawn(move || limits.attempt("ada", &client).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(passed, 5);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a = ClientAddr(Some("2001:db8:1:2::1".parse().unwrap()));
        let b = ClientAddr(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_eq!(a.key(), b.key());
        let v4 = ClientAddr(Some("::ffff:10.0.0.1".parse().unwrap()));
        assert_eq!(v4.key(), "10.0.0.1");
    }
}
