//! What an API request must pass before a handler works on it, in order:
//! 1. its client address is not throttled for wrong keys ([`super::throttle`]);
//! 2. its keys are right, or it presents none (a handler then answers 401 for a route that
//!    needs them): a wrong key is answered 401 here, and counted against its address;
//! 3. a place among the requests this instance works on at once (503 past it: an instance
//!    offered more commands than its CPU carries would otherwise spend it all on requests
//!    that time out, and the nodes' events would wait behind them, `benches/scale.rs`);
//! 4. a place among its own app's share of them (429 past it: one app cannot take every
//!    place), or among its app's event streams;
//! 5. its whole body, within the body time limit (408 past it), before the handler runs: a
//!    body trickled in byte by byte holds a place for seconds, not for ever.
//!
//! The identity found in step 2 is handed to the [`super::Caller`] extractor, which does not
//! check the keys again.
//!
//! Counted: `/api/v1/…` and `/v1.0/…`. Not counted: health, readiness, the dashboard's pages, and metrics,
//! whose wrong operator keys are throttled all the same.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;

use super::throttle::Throttle;
use super::{ApiError, ApiState, AppKeys};
use crate::conference::AppId;
use crate::server::http::ClientKey;
use crate::store::Store;
use crate::tally::Tally;

/// Requests worked on at once unless configured otherwise (`[limits] requests_in_flight`).
pub const DEFAULT_REQUESTS_IN_FLIGHT: usize = 1024;
/// One app's share of them unless configured otherwise (`[limits] requests_in_flight_per_app`).
pub const DEFAULT_REQUESTS_PER_APP: usize = 256;
/// Event streams one app may hold open at once (`[limits] event_streams_per_app`).
pub const DEFAULT_STREAMS_PER_APP: usize = 32;
/// How long a request's body may take to arrive whole (`[limits] body_timeout_ms`).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits of this module, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionLimits {
    /// 0: no bound.
    pub requests_in_flight: usize,
    /// 0: no per-app share.
    pub requests_per_app: usize,
    /// 0: no bound.
    pub streams_per_app: usize,
    pub body_timeout: Duration,
    /// Wrong keys one client address may send a minute before it is answered 429 (0: off).
    pub auth_failures_per_minute: u32,
}

impl Default for AdmissionLimits {
    fn default() -> AdmissionLimits {
        AdmissionLimits {
            requests_in_flight: DEFAULT_REQUESTS_IN_FLIGHT,
            requests_per_app: DEFAULT_REQUESTS_PER_APP,
            streams_per_app: DEFAULT_STREAMS_PER_APP,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            auth_failures_per_minute: super::throttle::DEFAULT_FAILURES_PER_MINUTE,
        }
    }
}

/// Who a request is, once its keys are checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An app, by its key or by the operator's key acting as it.
    App(AppId),
    /// The operator alone (`X-Admin-Key` without `X-App-ID`).
    Operator,
}

/// The admission state shared by every request of the router.
pub(super) struct Admission {
    limits: AdmissionLimits,
    working: Option<tokio::sync::Semaphore>,
    requests: Shares,
    streams: Shares,
    pub(super) throttle: Throttle,
}

impl Admission {
    pub(super) fn new(limits: AdmissionLimits) -> Admission {
        Admission {
            limits,
            working: (limits.requests_in_flight > 0)
                .then(|| tokio::sync::Semaphore::new(limits.requests_in_flight)),
            requests: Shares::new(limits.requests_per_app),
            streams: Shares::new(limits.streams_per_app),
            throttle: Throttle::new(limits.auth_failures_per_minute),
        }
    }
}

/// A bounded place per principal (0 `most`: no bound).
struct Shares {
    most: usize,
    held: Tally<Principal>,
}

type Place = crate::tally::Place<Principal>;

impl Shares {
    fn new(most: usize) -> Shares {
        Shares {
            most,
            held: Tally::default(),
        }
    }

    fn take(&self, who: &Principal) -> Option<Place> {
        self.held.take(who, self.most, 0)
    }
}

/// The routes that take an app's keys: the API of seed 004 and the conference resource of
/// seeds 000–003.
fn counted(path: &str) -> bool {
    (path.starts_with("/api/v1/") && path != "/api/v1/openapi.json") || path.starts_with("/v1.0/")
}

fn is_stream(path: &str) -> bool {
    path == "/api/v1/events/stream"
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A key that does not match (or an operator key acting as an app that is not configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongKey;

/// The principal the headers prove; `Ok(None)` when they present no key; `Err` when a key
/// they present is wrong. Each comparison takes the same time right or wrong.
pub fn identify(headers: &HeaderMap, keys: &AppKeys) -> Result<Option<Principal>, WrongKey> {
    let found = match (
        header(headers, "x-app-id"),
        header(headers, "x-api-key"),
        header(headers, "x-admin-key"),
    ) {
        (None, None, None) => return Ok(None),
        (Some(app), Some(key), None) => keys.check(app, key).map(Principal::App),
        (Some(app), None, Some(admin)) if keys.check_admin(admin) => {
            keys.app(app).map(Principal::App)
        }
        (None, None, Some(admin)) if keys.check_admin(admin) => Some(Principal::Operator),
        (Some(_), None, None) => return Ok(None),
        _ => None,
    };
    found.map(Some).ok_or(WrongKey)
}

pub(super) async fn admit<S: Store>(
    State(state): State<ApiState<S>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let metrics = path == "/metrics";
    if !counted(path) && !metrics {
        return next.run(request).await;
    }
    let stream = is_stream(path);
    let admission = &state.shared.admission;
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| ClientKey::of(c.0.ip()));
    if let Some(wait) = client.and_then(|c| admission.throttle.blocked(c)) {
        crate::telemetry::edge_refused("auth_failures");
        return ApiError::RateLimited {
            group: "auth_failures",
            wait,
        }
        .into_response();
    }
    if metrics {
        return scraped(admission, client, request, next).await;
    }
    let principal = match identify(request.headers(), &state.keys()) {
        Ok(principal) => principal,
        Err(WrongKey) => {
            if let Some(c) = client {
                admission.throttle.failed(c);
            }
            return ApiError::Unauthorized.into_response();
        }
    };
    // A request with no key reads nothing: its handler answers 401 (or it is public).
    let Some(principal) = principal else {
        return next.run(request).await;
    };
    request.extensions_mut().insert(principal.clone());
    if stream {
        let Some(place) = admission.streams.take(&principal) else {
            return share_spent(
                "Too many event streams open for this application",
                admission.limits.streams_per_app,
                "event_streams_per_app",
            );
        };
        let response = next.run(request).await;
        return held_while_streaming(response, place);
    }
    let _working = match admission.working.as_ref().map(|w| w.try_acquire()) {
        None => None,
        Some(Ok(permit)) => Some(permit),
        Some(Err(_)) => {
            crate::telemetry::edge_refused("requests_in_flight");
            return ApiError::Unavailable {
                error: "Too many requests in progress on this instance".into(),
                detail: json!({ "requests_in_flight": admission.limits.requests_in_flight }),
            }
            .into_response();
        }
    };
    let Some(_place) = admission.requests.take(&principal) else {
        return share_spent(
            "Too many requests in progress for this application",
            admission.limits.requests_per_app,
            "requests_in_flight_per_app",
        );
    };
    match whole_body(request, admission.limits.body_timeout).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// `/metrics`, whose handler checks the operator's key (`metrics.rs`): a wrong key there
/// counts against its address like a wrong key anywhere.
async fn scraped(
    admission: &Admission,
    client: Option<ClientKey>,
    request: Request,
    next: Next,
) -> Response {
    let keyed = ["x-admin-key", "authorization"]
        .iter()
        .any(|h| request.headers().contains_key(*h));
    let response = next.run(request).await;
    if let (true, Some(c)) = (keyed, client)
        && response.status() == axum::http::StatusCode::UNAUTHORIZED
    {
        admission.throttle.failed(c);
    }
    response
}

fn share_spent(error: &str, most: usize, limit: &'static str) -> Response {
    crate::telemetry::edge_refused(limit);
    ApiError::TooMany {
        error: error.into(),
        detail: json!({ "limit": limit, "most": most }),
    }
    .into_response()
}

/// The request with its body read whole within `limit`: 408 if it takes longer, 413 if it is
/// longer than the API reads.
async fn whole_body(request: Request, limit: Duration) -> Result<Request, ApiError> {
    if request.body().is_end_stream() {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let max = super::extract::MAX_BODY;
    let bytes = match tokio::time::timeout(limit, axum::body::to_bytes(body, max)).await {
        Err(_) => {
            crate::telemetry::edge_refused("body_timeout");
            return Err(ApiError::RequestTimeout {
                limit_ms: limit.as_millis() as u64,
            });
        }
        Ok(Err(e)) if is_too_long(&e) => return Err(ApiError::PayloadTooLarge { limit: max }),
        Ok(Err(_)) => return Err(ApiError::bad_request("Unreadable body")),
        Ok(Ok(bytes)) => bytes,
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn is_too_long(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The response of a stream, its body holding `place` until the stream ends.
fn held_while_streaming(response: Response, place: Place) -> Response {
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &place;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_counted_and_probes_and_the_spec_are_not() {
        assert!(counted("/api/v1/conferences"));
        assert!(counted("/api/v1/sessions/s1/conference/mute"));
        assert!(counted("/api/v1/events/stream"));
        assert!(counted("/api/v1/events"));
        assert!(counted("/v1.0/conferences"));
        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/ui/",
            "/lab/v1/calls",
            "/api/v1/openapi.json",
        ] {
            assert!(!counted(path), "{path}");
        }
    }

    #[test]
    fn a_share_is_bounded_per_principal_and_given_back() {
        let shares = Shares::new(2);
        let a = Principal::App(AppId::parse("a").unwrap_or_else(|_| unreachable!()));
        let held = [shares.take(&a), shares.take(&a)];
        assert!(held.iter().all(Option::is_some));
        assert!(shares.take(&a).is_none(), "a third place of a's");
        assert!(
            shares.take(&Principal::Operator).is_some(),
            "another's share is its own"
        );
        drop(held);
        assert!(shares.take(&a).is_some());
    }

    #[test]
    fn keys_identify_an_app_the_operator_or_nobody() {
        let mut keys = AppKeys::new();
        let app = AppId::parse("app1").unwrap_or_else(|_| unreachable!());
        keys.add_plain(app.clone(), "k1");
        keys.set_admin_plain("root");
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, axum::http::HeaderValue::from_static(v));
            }
            m
        };
        let id = |pairs| identify(&h(pairs), &keys);
        assert_eq!(id(&[]), Ok(None));
        assert_eq!(id(&[("x-app-id", "app1")]), Ok(None));
        assert_eq!(
            id(&[("x-app-id", "app1"), ("x-api-key", "k1")]),
            Ok(Some(Principal::App(app.clone())))
        );
        assert_eq!(
            id(&[("x-app-id", "app1"), ("x-admin-key", "root")]),
            Ok(Some(Principal::App(app)))
        );
        assert_eq!(
            id(&[("x-admin-key", "root")]),
            Ok(Some(Principal::Operator))
        );
        assert_eq!(
            id(&[("x-app-id", "app1"), ("x-api-key", "no")]),
            Err(WrongKey)
        );
        assert_eq!(id(&[("x-admin-key", "no")]), Err(WrongKey));
        assert_eq!(id(&[("x-api-key", "k1")]), Err(WrongKey));
    }
}
