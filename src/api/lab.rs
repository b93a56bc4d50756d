//! Lab-only routes (absent from `serve`): make calls happen on the simulated nodes.
//! `POST /lab/v1/calls` `{"did", "caller_id"[, "caller_name", "node"]}` → 201 `{"uuid"}`: an inbound call,
//! answered, parked and owned by the calling app; `DELETE /lab/v1/calls/{uuid}`: the caller
//! hangs up; `POST /lab/v1/calls/{uuid}/talk` `{"talking"}`: the caller starts or stops
//! speaking (a member's talking events, for apps that get them).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::extract::{IdPath, JsonBody};
use super::openapi::errors::{BadRequest, Forbidden, NodeRejected, NodeTimeout, NotFound};
use super::openapi::params::SessionPath;
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller};
use crate::conference::{AppId, NodePrefix, SessionId, SessionState};
use crate::sim::Simulator;
use crate::store::Store;

/// The simulated nodes of a lab, by prefix (the first is the default for new calls).
#[derive(Clone, Default)]
pub struct LabNodes {
    nodes: Vec<(NodePrefix, Arc<Simulator>)>,
}

impl LabNodes {
    pub fn new(nodes: Vec<(NodePrefix, Arc<Simulator>)>) -> LabNodes {
        LabNodes { nodes }
    }

    fn get(&self, prefix: &NodePrefix) -> Option<&Arc<Simulator>> {
        self.nodes.iter().find(|(p, _)| p == prefix).map(|(_, s)| s)
    }

    fn first(&self) -> Option<&(NodePrefix, Arc<Simulator>)> {
        self.nodes.first()
    }
}

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/lab/v1/calls", post(call::<S>))
        .route("/lab/v1/calls/{uuid}", delete(hang_up::<S>))
        .route("/lab/v1/calls/{uuid}/talk", post(talk::<S>))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TalkBody {
    /// Whether the caller speaks from now on.
    talking: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CallBody {
    /// The number dialled: `[A-Za-z0-9+*#._-]{1,64}`.
    #[schema(pattern = r"^[A-Za-z0-9+*#._-]{1,64}$", example = "15551230000")]
    did: String,
    /// The caller's number: `[A-Za-z0-9+*#._-]{1,64}`.
    #[schema(pattern = r"^[A-Za-z0-9+*#._-]{1,64}$", example = "1001")]
    caller_id: String,
    /// The caller's name (default: its number): `[A-Za-z0-9+*#._-]{1,64}`.
    #[schema(pattern = r"^[A-Za-z0-9+*#._-]{1,64}$", example = "Alice")]
    caller_name: Option<String>,
    /// The node prefix to call into (default: the first node); an unknown one is a 404.
    #[schema(pattern = r"^[A-Za-z0-9]{5}$", example = "lab01")]
    node: Option<String>,
}

/// A number that can be written into a dial string: `[A-Za-z0-9+*#._-]{1,64}`.
fn valid_number(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+*#._-".contains(&b))
}

fn lab<S: Store>(st: &ApiState<S>) -> Result<&LabNodes, ApiError> {
    st.lab()
        .ok_or_else(|| ApiError::NotFound("Not found".into()))
}

#[utoipa::path(
    post,
    path = "/lab/v1/calls",
    operation_id = "lab_call",
    tag = "lab",
    summary = "Make an inbound call",
    description = "A call to `did` on a simulated node, answered, parked and owned by the \
        calling application; answered once the controller has stored it.",
    request_body = CallBody,
    responses(
        (status = 201, description = "The call is parked", body = doc::CallCreated),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn call<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    JsonBody(body): JsonBody<CallBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = body.caller_name.as_deref().unwrap_or(&body.caller_id);
    if !valid_number(&body.did) || !valid_number(&body.caller_id) || !valid_number(name) {
        return Err(ApiError::bad_request_with(
            "Invalid did, caller_id or caller_name: 1 to 64 characters [A-Za-z0-9+*#._-]",
            json!({ "did": body.did, "caller_id": body.caller_id, "caller_name": name }),
        ));
    }
    let nodes = lab(&st)?;
    let (prefix, sim) = match &body.node {
        Some(p) => {
            let prefix = NodePrefix::parse(p).map_err(|_| {
                ApiError::bad_request_with(
                    "Invalid node: a node prefix, 5 characters [A-Za-z0-9]",
                    json!({ "node": p }),
                )
            })?;
            let sim = nodes
                .get(&prefix)
                .ok_or_else(|| ApiError::NotFound("Node not found".into()))?;
            (prefix, sim.clone())
        }
        None => nodes
            .first()
            .cloned()
            .ok_or_else(|| ApiError::bad_request("The lab has no node"))?,
    };
    let channel = uuid::Uuid::new_v4().to_string();
    let reply = sim.api(&originate(&app, &channel, &body.did, &body.caller_id, name));
    if !reply.starts_with("+OK") {
        return Err(ApiError::NodeRejected(reply.trim().to_owned()));
    }
    let id = SessionId::new(&prefix, &channel);
    wait_parked(&st, &app, &id).await?;
    Ok((StatusCode::CREATED, Json(json!({ "uuid": id }))))
}

/// An inbound call as the lab dialplan would route it: owned by `app`, parked.
fn originate(app: &AppId, channel: &str, did: &str, caller: &str, name: &str) -> String {
    format!(
        "originate {{origination_uuid={channel},switchyard_app_id={app},switchyard_did={did},origination_caller_id_number={caller},origination_caller_id_name={name}}}null/{did} &park"
    )
}

/// The call is usable once the controller has stored it as parked.
async fn wait_parked<S: Store>(
    st: &ApiState<S>,
    app: &AppId,
    id: &SessionId,
) -> Result<(), ApiError> {
    for _ in 0..500 {
        let s = st.rooms().store().session(app, id).await?;
        if s.is_some_and(|s| s.state == SessionState::Parked) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(ApiError::NodeTimeout)
}

/// The app's session named `raw` and the simulated node it is on (403 for another app's).
async fn lab_session<S: Store>(
    st: &ApiState<S>,
    app: &AppId,
    raw: &str,
) -> Result<(SessionId, Arc<Simulator>), ApiError> {
    let id = SessionId::parse(raw).map_err(|_| ApiError::NotFound("Session not found".into()))?;
    st.rooms().session(app, &id).await?;
    let sim = lab(st)?
        .get(&id.prefix())
        .ok_or_else(|| ApiError::NotFound("Session not found".into()))?;
    Ok((id, sim.clone()))
}

#[utoipa::path(
    delete,
    path = "/lab/v1/calls/{uuid}",
    operation_id = "lab_hang_up",
    tag = "lab",
    summary = "The caller hangs up",
    params(SessionPath),
    responses(
        (status = 200, description = "Hung up", body = doc::CallEnded),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn hang_up<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Result<Json<Value>, ApiError> {
    let (id, sim) = lab_session(&st, &app, &raw).await?;
    let reply = sim.api(&format!("uuid_kill {}", id.channel()));
    if !reply.starts_with("+OK") {
        return Err(ApiError::NotFound("Session not found".into()));
    }
    Ok(Json(json!({ "uuid": id, "status": "hangup" })))
}

#[utoipa::path(
    post,
    path = "/lab/v1/calls/{uuid}/talk",
    operation_id = "lab_talk",
    tag = "lab",
    summary = "The caller starts or stops speaking",
    description = "In a room the member then talks (`conference.member.talking`, the member's \
        `talking`) unless muted or held, for applications that get talking events \
        (`switchyard lab --talking-events`).",
    params(SessionPath),
    request_body = TalkBody,
    responses(
        (status = 200, description = "The caller speaks or is silent", body = doc::CallTalking),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn talk<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<TalkBody>,
) -> Result<Json<Value>, ApiError> {
    let (id, sim) = lab_session(&st, &app, &raw).await?;
    if !sim.caller_talk(id.channel(), body.talking) {
        return Err(ApiError::NotFound("Session not found".into()));
    }
    Ok(Json(json!({ "uuid": id, "talking": body.talking })))
}
