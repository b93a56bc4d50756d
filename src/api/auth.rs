//! Who is calling: `X-App-ID` + `X-API-Key`, checked against SHA-256 hashes from the config in
//! constant time; then the global per-app request limit. Keys are never logged or kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::admission::{Principal, identify};
use super::{ApiError, ApiState};
use crate::conference::AppId;
use crate::store::Store;

/// SHA-256 of a key, as lowercase hex (what `switchyard hash-key` prints).
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Whether `key` hashes to one of `stored`, compared in constant time: every stored hash is
/// compared (against zeros when there is none, so a missing entry takes as long and never
/// matches), without stopping at a match.
fn matches(key: &str, stored: &[[u8; 32]]) -> bool {
    let given: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    if stored.is_empty() {
        let _ = given.ct_eq(&[0u8; 32]);
        return false;
    }
    let mut any = subtle::Choice::from(0u8);
    for hash in stored {
        any |= given.ct_eq(hash);
    }
    any.into()
}

/// The applications allowed in, by id, with the hashes of their keys (several while a key is
/// rotated: each is valid until it is removed); and the operator's keys, when configured: they
/// act as any configured app (`X-Admin-Key` with `X-App-ID`) and alone read the operator view
/// across apps.
#[derive(Clone, Default)]
pub struct AppKeys {
    keys: HashMap<AppId, Vec<[u8; 32]>>,
    admin: Vec<[u8; 32]>,
}

impl std::fmt::Debug for AppKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKeys")
            .field("apps", &self.keys.keys().collect::<Vec<_>>())
            .field("admin", &!self.admin.is_empty())
            .finish()
    }
}

impl AppKeys {
    pub fn new() -> AppKeys {
        AppKeys::default()
    }

    /// Adds a key of an app by its hex SHA-256 (an app may have several); `None` if the hash
    /// is not 64 hex digits.
    pub fn add_hashed(&mut self, app: AppId, key_sha256: &str) -> Option<()> {
        let hash = parse_hex32(&key_sha256.to_ascii_lowercase())?;
        self.keys.entry(app).or_default().push(hash);
        Some(())
    }

    /// Adds an app by its plain key (the lab).
    pub fn add_plain(&mut self, app: AppId, key: &str) {
        let hash = Sha256::digest(key.as_bytes()).into();
        self.keys.entry(app).or_default().push(hash);
    }

    pub fn apps(&self) -> impl Iterator<Item = &AppId> {
        self.keys.keys()
    }

    /// How many keys `app` has.
    pub fn key_count(&self, app: &AppId) -> usize {
        self.keys.get(app).map_or(0, Vec::len)
    }

    /// How many operator keys there are.
    pub fn admin_key_count(&self) -> usize {
        self.admin.len()
    }

    /// Adds an operator key by its hex SHA-256; `None` if the hash is not 64 hex digits.
    pub fn set_admin_hashed(&mut self, key_sha256: &str) -> Option<()> {
        self.admin
            .push(parse_hex32(&key_sha256.to_ascii_lowercase())?);
        Some(())
    }

    /// Sets the operator's key in plain (the lab).
    pub fn set_admin_plain(&mut self, key: &str) {
        self.admin = vec![Sha256::digest(key.as_bytes()).into()];
    }

    /// Whether `key` is one of the operator's keys (false when none is configured). The
    /// comparison takes the same time either way.
    pub fn check_admin(&self, key: &str) -> bool {
        matches(key, &self.admin)
    }

    /// The configured app named `app`, for the operator acting as it.
    pub fn app(&self, app: &str) -> Option<AppId> {
        let app = AppId::parse(app).ok()?;
        self.keys.contains_key(&app).then_some(app)
    }

    /// The app, if the pair is right. The comparison takes the same time for an unknown app.
    pub fn check(&self, app: &str, key: &str) -> Option<AppId> {
        let app = AppId::parse(app).ok();
        let stored = app
            .as_ref()
            .and_then(|a| self.keys.get(a))
            .map_or(&[][..], Vec::as_slice);
        matches(key, stored).then_some(app).flatten()
    }
}

/// A token bucket per application: `rate` requests per second, bursts up to `burst`; both
/// may change while it runs (a configuration reload).
pub struct GlobalLimiter {
    // Never held across an `.await`.
    state: Mutex<Limits>,
}

struct Limits {
    rate: f64,
    burst: f64,
    buckets: HashMap<AppId, (f64, Instant)>,
}

impl GlobalLimiter {
    /// `rate` 0 turns the limit off.
    pub fn new(rate: f64, burst: f64) -> GlobalLimiter {
        GlobalLimiter {
            state: Mutex::new(Limits {
                rate,
                burst: burst.max(1.0),
                buckets: HashMap::new(),
            }),
        }
    }

    /// New limits; each app's bucket keeps what it holds, up to the new burst.
    pub fn set(&self, rate: f64, burst: f64) {
        if let Ok(mut s) = self.state.lock() {
            s.rate = rate;
            s.burst = burst.max(1.0);
        }
    }

    /// Takes one request from the app's bucket, or says how long until one is there.
    pub fn take(&self, app: &AppId) -> Result<(), Duration> {
        let Ok(mut s) = self.state.lock() else {
            return Ok(());
        };
        let (rate, burst) = (s.rate, s.burst);
        if rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let (tokens, last) = s.buckets.entry(app.clone()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
    }
}

/// The authenticated application of a request: `X-App-ID` with its `X-API-Key`, or with the
/// operator's `X-Admin-Key` (the dashboard's operator view acting as that app).
#[derive(Debug, Clone)]
pub struct Caller(pub AppId);

/// The operator, by `X-Admin-Key`: reads across every app.
#[derive(Debug, Clone)]
pub struct Operator;

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

impl<S: Store> FromRequestParts<ApiState<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState<S>,
    ) -> Result<Caller, ApiError> {
        // Admission checked the keys already (see `admission`), and said who it found.
        let known = match parts.extensions.get::<Principal>() {
            Some(principal) => Some(principal.clone()),
            None => identify(&parts.headers, &state.keys()).ok().flatten(),
        };
        let Some(Principal::App(app)) = known else {
            return Err(ApiError::Unauthorized);
        };
        state
            .limiter()
            .take(&app)
            .map_err(|wait| ApiError::RateLimited {
                group: "global",
                wait,
            })?;
        Ok(Caller(app))
    }
}

impl<S: Store> FromRequestParts<ApiState<S>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState<S>,
    ) -> Result<Operator, ApiError> {
        match header(parts, "x-admin-key") {
            Some(key) if state.keys().check_admin(key) => Ok(Operator),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_by_hash() {
        let mut keys = AppKeys::new();
        let app = AppId::parse("app1").unwrap();
        assert!(keys.add_hashed(app.clone(), &hash_key("s3cret")).is_some());
        assert!(keys.add_hashed(app.clone(), "nothex").is_none());
        assert_eq!(keys.check("app1", "s3cret"), Some(app));
        assert_eq!(keys.check("app1", "wrong"), None);
        assert_eq!(keys.check("app2", "s3cret"), None);
        assert_eq!(keys.check("bad id!", "s3cret"), None);
        assert!(!keys.check_admin(""), "no operator key configured");
        assert!(keys.set_admin_hashed(&hash_key("root")).is_some());
        assert!(keys.check_admin("root"));
        assert!(!keys.check_admin("s3cret"));
        assert_eq!(keys.app("app1"), Some(AppId::parse("app1").unwrap()));
        assert_eq!(keys.app("app9"), None);
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn an_app_and_the_operator_may_have_several_keys_each_valid() {
        let mut keys = AppKeys::new();
        let app = AppId::parse("app1").unwrap();
        keys.add_hashed(app.clone(), &hash_key("old")).unwrap();
        keys.add_hashed(app.clone(), &hash_key("new")).unwrap();
        assert_eq!(keys.check("app1", "old"), Some(app.clone()));
        assert_eq!(keys.check("app1", "new"), Some(app.clone()));
        assert_eq!(keys.check("app1", "other"), None);
        assert_eq!(keys.key_count(&app), 2);
        keys.set_admin_hashed(&hash_key("root1")).unwrap();
        keys.set_admin_hashed(&hash_key("root2")).unwrap();
        assert!(keys.check_admin("root1") && keys.check_admin("root2"));
        assert!(!keys.check_admin("old"));
        assert_eq!(keys.admin_key_count(), 2);
    }

    #[test]
    fn the_global_limit_refills() {
        let limiter = GlobalLimiter::new(10.0, 2.0);
        let app = AppId::parse("a").unwrap();
        assert!(limiter.take(&app).is_ok());
        assert!(limiter.take(&app).is_ok());
        let wait = limiter.take(&app).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(GlobalLimiter::new(0.0, 0.0).take(&app).is_ok());
    }
}
