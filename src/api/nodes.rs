//! What the dashboard shows of the media nodes and the apps:
//! `GET /api/v1/nodes` — each node's health, the caller's rooms and members on it, and how
//! fast this controller instance applies its events; `GET /api/v1/operator/overview` — the
//! same across every app, with each app's totals, for the operator's key (`X-Admin-Key`).

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

use super::openapi::schemas::NodeHealth;
use super::{ApiError, ApiState, Caller, Operator};
use crate::conference::AppId;
use crate::node::{NodeHandle, NodeState};
use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/api/v1/nodes", get(nodes::<S>))
        .route("/api/v1/operator/overview", get(overview::<S>))
}

/// The node's link as this instance sees it: its state, or `hung` while it is connected and its
/// probe finds it answering nothing.
pub(super) fn health_of(node: &NodeHandle) -> NodeHealth {
    match node.hung() {
        Some(_) => NodeHealth::Hung,
        None => NodeHealth::from(&node.state()),
    }
}

impl From<&NodeState> for NodeHealth {
    fn from(state: &NodeState) -> NodeHealth {
        match state {
            NodeState::Connecting => NodeHealth::Connecting,
            NodeState::Resyncing => NodeHealth::Resyncing,
            NodeState::Up { .. } => NodeHealth::Up,
            NodeState::Down { .. } => NodeHealth::Down,
            NodeState::Failed { .. } => NodeHealth::Failed,
        }
    }
}

/// One media node.
#[derive(Serialize, ToSchema)]
pub struct NodeView {
    /// The node's 5-character prefix (the start of its rooms' and sessions' ids).
    pub node: String,
    pub state: NodeHealth,
    /// Why the node is down, failed or hung.
    pub reason: Option<String>,
    /// Whether this controller instance applies the node's events (in a fleet, one does).
    pub applies_events: bool,
    /// Live rooms on the node (the caller's; the operator's overview: every app's).
    pub rooms: usize,
    /// Members in those rooms, as the node confirmed them.
    pub members: usize,
    /// Events of the node applied per second by this instance, over the last second or more.
    pub events_per_second: f64,
    /// From the node firing the latest applied batch's oldest event to its write, in ms.
    pub reconciler_lag_ms: f64,
    /// Events of the node this instance has applied since it started.
    pub events_applied: u64,
    /// Taken out of service by the operator (`POST /api/v1/operator/nodes/{node}/drain`): it
    /// takes no new rooms or dial-outs; `rooms` and `members` say what is still on it.
    pub draining: bool,
    /// The drain moves the node's live rooms to other nodes (`migrate: true`).
    pub moving_rooms: bool,
}

#[derive(Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}

/// One application's totals.
#[derive(Serialize, ToSchema)]
pub struct AppView {
    pub app_id: String,
    /// Live rooms.
    pub rooms: usize,
    /// Members in those rooms.
    pub members: usize,
}

#[derive(Serialize, ToSchema)]
pub struct Overview {
    pub nodes: Vec<NodeView>,
    /// Every configured application, by id.
    pub apps: Vec<AppView>,
}

/// Live rooms and members per node, over `apps`; with each app's totals.
async fn count<S: Store>(
    st: &ApiState<S>,
    apps: &[AppId],
) -> Result<(BTreeMap<String, (usize, usize)>, Vec<AppView>), ApiError> {
    let mut per_node: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut per_app = Vec::new();
    for app in apps {
        let (mut rooms, mut members) = (0, 0);
        let mut after = None;
        loop {
            let page = st.rooms().list(app, after, 500, true).await?;
            for room in &page.items {
                let n = room.confirmed_members().count();
                let entry = per_node.entry(room.node.to_string()).or_default();
                entry.0 += 1;
                entry.1 += n;
                rooms += 1;
                members += n;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        per_app.push(AppView {
            app_id: app.to_string(),
            rooms,
            members,
        });
    }
    Ok((per_node, per_app))
}

async fn node_views<S: Store>(
    st: &ApiState<S>,
    counts: &BTreeMap<String, (usize, usize)>,
) -> Result<Vec<NodeView>, ApiError> {
    let draining = st.rooms().store().draining().await?;
    Ok(st
        .rooms()
        .pool()
        .nodes()
        .iter()
        .map(|node| {
            let state = node.state();
            let reason = match (&state, node.hung()) {
                (NodeState::Down { reason } | NodeState::Failed { reason }, _) => {
                    Some(reason.clone())
                }
                (_, Some(hung)) => Some(format!(
                    "answers nothing: a probe unanswered for {:.1} s",
                    hung.as_secs_f64()
                )),
                _ => None,
            };
            let prefix = node.config.prefix.to_string();
            let (rooms, members) = counts.get(&prefix).copied().unwrap_or_default();
            let stats = node.stats();
            NodeView {
                node: prefix,
                state: health_of(node),
                reason,
                applies_events: node.applies_events(),
                rooms,
                members,
                events_per_second: (stats.per_second() * 10.0).round() / 10.0,
                reconciler_lag_ms: stats.lag_us.load(Ordering::Relaxed) as f64 / 1000.0,
                events_applied: stats.applied.load(Ordering::Relaxed),
                draining: draining.contains_key(&node.config.prefix),
                moving_rooms: draining.get(&node.config.prefix).is_some_and(|d| d.migrate),
            }
        })
        .collect())
}

#[utoipa::path(
    get,
    path = "/api/v1/nodes",
    operation_id = "nodes_list",
    tag = "operations",
    summary = "The media nodes, with the app's rooms on each",
    description = "Each node's link as this controller instance sees it, the calling \
        application's live rooms and members on it, and the rate at which this instance \
        applies its events (zero on an instance that does not apply them: see \
        `applies_events`).",
    responses((status = 200, description = "The nodes", body = NodeList))
)]
async fn nodes<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
) -> Result<Json<NodeList>, ApiError> {
    let (counts, _) = count(&st, std::slice::from_ref(&app)).await?;
    Ok(Json(NodeList {
        nodes: node_views(&st, &counts).await?,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/operator/overview",
    operation_id = "operator_overview",
    tag = "operations",
    summary = "Every node and every app, for the operator",
    description = "The nodes as `GET /api/v1/nodes` shows them but counting every \
        application's rooms, and each application's live rooms and members. Needs the \
        operator's key (`X-Admin-Key`, configured as `admin_key_sha256`), which also acts as \
        any application with `X-App-ID` on the other routes.",
    responses((status = 200, description = "The overview", body = Overview))
)]
async fn overview<S: Store>(
    State(st): State<ApiState<S>>,
    _: Operator,
) -> Result<Json<Overview>, ApiError> {
    let mut apps: Vec<AppId> = st.keys().apps().cloned().collect();
    apps.sort();
    let (counts, apps) = count(&st, &apps).await?;
    Ok(Json(Overview {
        nodes: node_views(&st, &counts).await?,
        apps,
    }))
}
