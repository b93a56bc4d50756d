//! A request id on every answer, carried by every log line the request causes.
//!
//! The caller's `X-Request-Id` is kept when it is sane (1 to [`MAX_LEN`] visible ASCII
//! characters: no spaces, no control characters); otherwise, or when there is none, a new one
//! is made (a v4 UUID, 32 hex digits). The answer carries it in `X-Request-Id` whatever its
//! status (401, 404 fallbacks and other errors too). The request runs in a `request` span with
//! `request_id`, `method` and `route` (the route template, never the raw path, or
//! `unmatched`), and one line per request says how it ended (status, duration): at `info`,
//! or `debug` for the probes and the scrape (`/healthz`, `/readyz`, `/metrics`). Headers and
//! bodies are never logged, so neither is `X-API-Key`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header read from the request and set on the answer.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The longest id taken from a caller.
pub const MAX_LEN: usize = 128;
/// The `route` of a request no route matched.
const UNMATCHED: &str = "unmatched";
/// Routes polled by machines, logged at `debug` only.
const QUIET_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The caller's id, when it is 1 to [`MAX_LEN`] visible ASCII characters.
pub fn sane(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(u8::is_ascii_graphic);
    // Visible ASCII is always valid UTF-8.
    ok.then(|| value.to_str().ok()).flatten()
}

/// A new id: a v4 UUID as 32 hex digits.
pub fn generate() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The middleware (`axum::middleware::from_fn(request_id::layer)`), outermost in
/// [`super::router`] so it sees every answer.
pub async fn layer(request: Request, next: Next) -> Response {
    // The header value itself is kept (no copy, no second validation); a generated id is
    // hex, always a valid header value.
    let id = request
        .headers()
        .get(&HEADER)
        .filter(|v| sane(v).is_some())
        .cloned()
        .or_else(|| HeaderValue::try_from(generate()).ok());
    let id_text = id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // `MatchedPath` is an `Arc<str>`: cloned, not copied.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let method = request.method().clone();
    let span = tracing::info_span!("request", request_id = %id_text, method = %method, route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    // Milliseconds to the microsecond.
    let duration_ms = started.elapsed().as_micros() as f64 / 1000.0;
    span.in_scope(|| {
        if QUIET_ROUTES.contains(&route) {
            tracing::debug!(status, duration_ms, "request");
        } else {
            tracing::info!(status, duration_ms, "request");
        }
    });
    if let Some(id) = id {
        response.headers_mut().insert(HEADER, id);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sane_ids_are_short_visible_ascii() {
        let ok = |s: &str| sane(&HeaderValue::from_str(s).unwrap()).map(str::to_owned);
        assert_eq!(ok("req-1").as_deref(), Some("req-1"));
        assert_eq!(ok(&"a".repeat(128)).map(|s| s.len()), Some(128));
        assert_eq!(ok(&"a".repeat(129)), None);
        assert_eq!(ok(""), None);
        assert_eq!(ok("two words"), None);
        assert_eq!(ok("tab\there"), None);
        let high = HeaderValue::from_bytes("café".as_bytes()).unwrap();
        assert_eq!(sane(&high), None);
        let made = generate();
        assert_eq!(made.len(), 32);
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(made, generate());
    }
}
