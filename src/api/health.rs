//! `/healthz` (the process answers) and `/readyz` (the store answers and every node is up, and
//! answers: a hung node is listed `hung`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::ApiState;
use super::openapi::schemas as doc;
use crate::conference::RoomId;

use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready::<S>))
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "Alive", body = doc::Health))
)]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness: the store answers and every media node is up",
    responses(
        (status = 200, description = "Ready", body = doc::Readiness),
        (status = 503, description = "Not ready (same body)", body = doc::Readiness),
    )
)]
async fn ready<S: Store>(State(st): State<ApiState<S>>) -> (StatusCode, Json<Value>) {
    let store_ok = match RoomId::parse("00000-room-00000000-0000-0000-0000-000000000000") {
        Ok(probe) => st.rooms().store().room_app(&probe).await.is_ok(),
        Err(_) => false,
    };
    let mut nodes = Map::new();
    let mut applies = Vec::new();
    let mut all_up = !st.rooms().pool().nodes().is_empty();
    for node in st.rooms().pool().nodes().iter() {
        let state = super::nodes::health_of(node);
        all_up &= state == doc::NodeHealth::Up;
        nodes.insert(node.config.prefix.to_string(), json!(state));
        if node.applies_events() {
            applies.push(node.config.prefix.to_string());
        }
    }
    // A draining node is up and serving its rooms: listed, not a reason to be unready.
    let draining: Vec<String> = st
        .rooms()
        .store()
        .draining()
        .await
        .map(|d| d.keys().map(|p| p.to_string()).collect())
        .unwrap_or_default();
    let ready = store_ok && all_up;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "store": if store_ok { "ok" } else { "unavailable" },
            "nodes": nodes,
            "applies_events": applies,
            "draining": draining,
        })),
    )
}
