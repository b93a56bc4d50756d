//! `GET /metrics` (the Prometheus text exposition of [`crate::telemetry`]) and the middleware
//! that counts and times every API request under its route template.
//!
//! The exposition names every application and node, so it is the operator's, never the
//! world's. On the API's port it takes the operator's key, as `X-Admin-Key` or as
//! `Authorization: Bearer` (what Prometheus's `authorization` scrape setting sends): without
//! it, 401, and no operator key configured means no scrape there at all. With
//! `metrics_listen`, `serve` serves [`standalone_router`] on that address instead (no key: an
//! address only the scraper reaches) and the API's port answers 404. The lab takes the key too:
//! its dashboard does not read `/metrics`.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, ApiState};
use crate::store::Store;
use crate::telemetry;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new().route("/metrics", get(exposition::<S>))
}

/// `/metrics` alone, with no key, for a listener of its own (`metrics_listen`): whoever reaches
/// that address may scrape. Scrapes are counted like API requests; any other path is 404.
pub fn standalone_router() -> Router {
    Router::new()
        .route("/metrics", get(|| async { text() }))
        .fallback(|| async { ApiError::NotFound("Not found".into()) })
        .layer(axum::middleware::from_fn(track))
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "The Prometheus text exposition: API requests and latency by route template \
        and status, ESL commands and events by node, node state, reconciler lag, webhook \
        outcomes by application. It names every application, so it takes the operator's key: \
        `X-Admin-Key`, or `Authorization: Bearer <key>` (Prometheus's `authorization` scrape \
        setting); 401 without it, or when no operator key is configured. When the controller \
        serves metrics on an address of their own (`metrics_listen`), they are served there \
        without a key and this path answers 404.",
    responses(
        (status = 200, description = "Metrics", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 404, response = super::openapi::errors::NotFound),
    )
)]
async fn exposition<S: Store>(
    State(state): State<ApiState<S>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.shared.metrics_on_api {
        return Err(ApiError::NotFound("Not found".into()));
    }
    match operator_key(&headers) {
        Some(key) if state.keys().check_admin(key) => Ok(text()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// The key a scraper presents: `X-Admin-Key`, else an `Authorization: Bearer` token.
fn operator_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-admin-key") {
        return key.to_str().ok();
    }
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn text() -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        telemetry::render(),
    )
        .into_response()
}

/// Counts and times one request by its route template (`/api/v1/conferences/{room_id}`), never
/// by the raw path, so ids never become labels.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry::http_request(
        route.as_deref(),
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_operator_key_comes_as_x_admin_key_or_a_bearer_token() {
        assert_eq!(operator_key(&headers(&[("x-admin-key", "k")])), Some("k"));
        for bearer in ["Bearer k", "bearer k", "BEARER  k "] {
            let h = headers(&[("authorization", bearer)]);
            assert_eq!(operator_key(&h), Some("k"), "{bearer}");
        }
        for other in ["Basic azpr", "Bearer", "k"] {
            let h = headers(&[("authorization", other)]);
            assert_eq!(operator_key(&h), None, "{other}");
        }
        assert_eq!(operator_key(&HeaderMap::new()), None);
    }
}
