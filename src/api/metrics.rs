//! `GET /metrics` (the Prometheus text exposition of [`crate::telemetry`]) and the middleware
//! that counts and times every API request under its route template.
//!
//! `/metrics` needs no application key, like `/healthz`: operators keep it off the public
//! internet (serve it only to the scraper, or block the path at the proxy).

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use crate::store::Store;
use crate::telemetry;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new().route("/metrics", get(exposition))
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "The Prometheus text exposition: API requests and latency by route template \
        and status, ESL commands and events by node, node state, reconciler lag, webhook \
        outcomes.",
    responses((status = 200, description = "Metrics", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8"))
)]
async fn exposition() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        telemetry::render(),
    )
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
