//! A bound on the API requests one instance works on at once. Past it, a request is answered
//! 503 (`Retry-After: 1`) at once, for a few microseconds of work, instead of joining the
//! others: an instance offered more commands than its CPU can carry otherwise spends it all on
//! requests that time out, and the nodes' events wait behind them (`benches/scale.rs` at 8,000
//! events a second: 14 applied a second before this bound). The bound keeps a share of the
//! CPU for applying events, and the callers learn at once to retry here or elsewhere.
//!
//! Counted: `/api/v1/…`, except the event stream (a stream is held open for as long as its
//! reader wants). Not counted: health, readiness, metrics, the dashboard's pages.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, ApiState};
use crate::store::Store;

/// Requests worked on at once unless configured otherwise (`[limits] requests_in_flight`).
pub const DEFAULT_REQUESTS_IN_FLIGHT: usize = 1024;

/// The bound, shared by every request of the router.
pub(super) struct Bound {
    working: tokio::sync::Semaphore,
    most: usize,
}

impl Bound {
    /// `None` for 0: no bound.
    pub(super) fn new(most: usize) -> Option<Bound> {
        (most > 0).then(|| Bound {
            working: tokio::sync::Semaphore::new(most),
            most,
        })
    }
}

fn counted(path: &str) -> bool {
    path.starts_with("/api/v1/") && path != "/api/v1/events/stream"
}

pub(super) async fn bound<S: Store>(
    State(state): State<ApiState<S>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(bound) = state.shared.requests.as_ref() else {
        return next.run(request).await;
    };
    if !counted(request.uri().path()) {
        return next.run(request).await;
    }
    match bound.working.try_acquire() {
        Ok(_working) => next.run(request).await,
        Err(_) => ApiError::Unavailable {
            error: "Too many requests in progress on this instance".into(),
            detail: json!({ "requests_in_flight": bound.most }),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_counted_and_the_event_stream_and_probes_are_not() {
        assert!(counted("/api/v1/conferences"));
        assert!(counted("/api/v1/sessions/s1/conference/mute"));
        assert!(!counted("/api/v1/events/stream"));
        assert!(counted("/api/v1/events"));
        for path in ["/healthz", "/readyz", "/metrics", "/ui/", "/lab/v1/calls"] {
            assert!(!counted(path), "{path}");
        }
    }
}
