//! Who may call what: bearer tokens, and a token-bucket rate limit per
//! client IP for the endpoints that write.

use std::collections::HashMap;
use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{header, HeaderMap};
use siphasher::sip128::{Hasher128, SipHasher13};

use super::error::ApiError;

/// The two secrets: one to cast ballots, one for admin operations.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub api: String,
    pub admin: String,
}

impl Tokens {
    /// A random token, for `run` when none was given.
    pub fn random() -> String {
        use rand::Rng;
        let bytes: [u8; 16] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Checks `Authorization: Bearer <token>` against `expected`.
pub fn check_bearer(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::MissingToken)?;
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::WrongToken)
    }
}

/// The client a ballot over HTTP is recorded from: the token it was sent
/// with (as a fingerprint: the secret itself is never stored) and the
/// address it came from, so one caller flooding the intake stands out
/// from the many that share a token. `http-<8 hex digits>@<ip>`.
pub fn client_name(token: &str, ip: IpAddr) -> Arc<str> {
    let mut h = SipHasher13::new_with_keys(0x636c_6965, 0x6e74);
    h.write(token.as_bytes());
    let print = h.finish128().as_u128() >> 96;
    Arc::from(format!("http-{print:08x}@{ip}"))
}

/// Compares without an early exit, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

/// A token bucket per client IP: `per_second` refill, `burst` capacity.
/// `per_second == 0` turns it off.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before idle (full) ones are forgotten.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            per_second,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip`, or says how long until one is there.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| ApiError::Internal("rate limiter lock poisoned".into()))?;
        if buckets.len() >= MAX_BUCKETS {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_second).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.per_second;
            Err(ApiError::RateLimited {
                retry_after_secs: wait.ceil().max(1.0) as u64,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused() {
        let l = RateLimiter::new(1.0, 3.0);
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(l.check(ip).is_ok());
        }
        assert!(matches!(l.check(ip), Err(ApiError::RateLimited { .. })));
        // Another client has its own bucket.
        assert!(l.check([127, 0, 0, 2].into()).is_ok());
    }

    #[test]
    fn a_client_names_its_address_and_token_but_never_shows_the_token() {
        let ip: IpAddr = [10, 1, 2, 3].into();
        let a = client_name("secret-token", ip);
        assert!(a.starts_with("http-") && a.ends_with("@10.1.2.3"), "{a}");
        assert_eq!(a.len(), "http-12345678@10.1.2.3".len());
        assert!(!a.contains("secret"));
        assert_eq!(a, client_name("secret-token", ip));
        assert_ne!(a, client_name("other-token", ip));
        assert_ne!(a, client_name("secret-token", [10, 1, 2, 4].into()));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
