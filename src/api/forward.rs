//! Member commands go to the instance that applies the call's node (issue 59, one writer per
//! room). In a fleet each node's events are applied by one instance; a member command (join,
//! leave, mute and the other switches) taken by another would write its intent into the room
//! before the command, and the owner would write the room again with the node's
//! confirmation, reading it back first since another instance wrote it. Sent on to the owner,
//! the command and its confirmation are one write there (`node/intents.rs`).
//!
//! - **Which**: `POST /api/v1/sessions/{id}/commands/conference/{verb}` for the verbs above,
//!   by an app (its keys checked here first: a wrong key is answered here, as always). The
//!   session id names the call's node; the fleet's assignment of nodes to live instances
//!   (`node/fleet.rs`, [`Owners`]) names its instance, and the instance's id the URL its API
//!   answers at (`advertise_url`). A node this instance applies, or whose instance gave no
//!   URL, is served here.
//! - **How**: the request as it came (its method, path, body and headers, the app's keys
//!   among them), with `Switchyard-Forwarded-By: <this instance>`; the owner never sends a
//!   request so marked on again, so a request makes at most one hop. Its answer goes back
//!   as it is. The owner charges it to the app's limits as it would a request of its own;
//!   this instance does not (it counts among the requests this instance works on, as any).
//! - **When the owner is not there**: a connection that cannot be made (an instance killed,
//!   its heartbeat not yet lapsed) has the request served here, as if it had no URL. A request
//!   sent whose answer does not come (within [`HOP_TIMEOUT`], or the owner killed meanwhile)
//!   is answered 503 with `Retry-After` and `"outcome": "unknown"`, not carried out here: the
//!   owner may have carried it out (asked again, such a command is a repeat, or already so). The owner does
//!   not begin one sent more than [`BEGIN_WITHIN`] ago ([`FORWARD_DEADLINE`], 503), nor send
//!   its command to the node past that (`node::SEND_BEFORE`, 503, the command undone): a
//!   process woken from a stop, or a store stalling before the send, would otherwise carry
//!   out what its sender answered 503 for.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::admission::Principal;
use super::{ApiError, ApiState};
use crate::conference::{NodePrefix, SessionId};
use crate::node::fleet::{Owners, instance_url};
use crate::store::Store;

/// The header that marks a request sent on by another instance.
pub const FORWARDED_BY: &str = "switchyard-forwarded-by";

/// The header that says until when (Unix milliseconds) the owner may begin a request sent on
/// to it: past it, the instance that sent it is about to give up on it ([`HOP_TIMEOUT`]) and
/// answer 503, so the owner must not carry it out (a process woken from a stop finds the
/// requests that queued meanwhile).
pub const FORWARD_DEADLINE: &str = "switchyard-forward-deadline";

/// How long the owner has to answer a request sent on to it.
pub const HOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long after it was sent the owner may begin a request ([`FORWARD_DEADLINE`]): what is
/// left of [`HOP_TIMEOUT`] is for the command itself, and covers the instances' clocks
/// differing.
const BEGIN_WITHIN: Duration = Duration::from_secs(3);

/// How long a connection to the owner may take before the request is served here.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// The member commands sent on to the node's owner.
const VERBS: [&str; 8] = [
    "join", "leave", "mute", "unmute", "deaf", "undeaf", "hold", "unhold",
];

/// Headers not carried over a hop (the connection's own, and the body's length, which the
/// client sets again).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

/// What an instance needs to send member commands on.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// This instance's id in the fleet.
    me: String,
    owners: Owners,
    client: reqwest::Client,
}

impl Forwarding {
    /// `keep_idle`: how long a connection to another instance is kept open unused, below
    /// the time that instance keeps an idle connection open (its `header_timeout_ms`): a
    /// request sent on a connection the other end is closing fails without an answer, and is
    /// not sent again (the owner might have taken it).
    pub fn new(me: String, owners: Owners, keep_idle: Duration) -> Forwarding {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(HOP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(keep_idle)
            .build()
            .unwrap_or_default();
        Forwarding { me, owners, client }
    }

    /// The URL of the instance that applies `node`, unless it is this one or has none.
    fn owner_url(&self, node: &NodePrefix) -> Option<String> {
        let owners = self.owners.load();
        let owner = owners.get(node)?;
        if *owner == self.me {
            return None;
        }
        instance_url(owner).map(str::to_owned)
    }
}

/// The node of the call a member command names, for the commands sent on.
fn member_command_node(method: &Method, path: &str) -> Option<NodePrefix> {
    if method != Method::POST {
        return None;
    }
    let rest = path.strip_prefix("/api/v1/sessions/")?;
    let (session, verb) = rest.split_once("/commands/conference/")?;
    if !VERBS.contains(&verb) {
        return None;
    }
    SessionId::parse(session).ok().map(|s| s.prefix())
}

/// The middleware (see the module's docs).
pub async fn forward<S: Store>(
    State(state): State<ApiState<S>>,
    request: Request,
    next: Next,
) -> Response {
    if request.headers().contains_key(FORWARDED_BY) {
        // Sent on by another instance: begun only before its deadline, and its command sent
        // to the node only before it too (`node::SEND_BEFORE`).
        let Some(left) = time_left(request.headers()) else {
            crate::telemetry::command_forwarded("too_late");
            return too_late_to_begin();
        };
        let until = std::time::Instant::now() + left;
        return crate::node::SEND_BEFORE
            .scope(until, next.run(request))
            .await;
    }
    let Some(forwarding) = state.forwarding() else {
        return next.run(request).await;
    };
    let eligible = !request.headers().contains_key(FORWARDED_BY)
        && matches!(
            request.extensions().get::<Principal>(),
            Some(Principal::App(_))
        );
    let owner = eligible
        .then(|| member_command_node(request.method(), request.uri().path()))
        .flatten()
        .and_then(|node| forwarding.owner_url(&node));
    let Some(owner) = owner else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    // Admission has read the whole body already, within its limits.
    let body = match axum::body::to_bytes(body, super::extract::MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::PayloadTooLarge {
                limit: super::extract::MAX_BODY,
            }
            .into_response();
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let mut sent = forwarding
        .client
        .request(parts.method.clone(), format!("{owner}{path}"))
        .body(body.clone());
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            sent = sent.header(name, value);
        }
    }
    let deadline = unix_ms() + BEGIN_WITHIN.as_millis() as u64;
    sent = sent
        .header(FORWARDED_BY, forwarding.me.as_str())
        .header(FORWARD_DEADLINE, deadline);
    match sent.send().await {
        Ok(answer) => {
            crate::telemetry::command_forwarded("answered");
            relay(answer).await
        }
        Err(e) if e.is_connect() => {
            crate::telemetry::command_forwarded("served_here");
            tracing::debug!(owner = %owner, error = %e, "the node's instance is not reached; the command is served here");
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Err(e) => {
            crate::telemetry::command_forwarded("lost");
            tracing::warn!(owner = %owner, error = %e, "a command sent on to the node's instance had no answer");
            outcome_unknown()
        }
    }
}

/// 503 for a command sent on whose answer never came: the owner may have carried it out
/// (`outcome: unknown`). Asked again (with the same `command_uid`), a command carried out
/// already is answered as a repeat, or as already so.
fn outcome_unknown() -> Response {
    ApiError::Unavailable {
        error: "The instance that applies the call's node did not answer; the command may \
                have been carried out: ask again in a moment, with the same command_uid"
            .into(),
        detail: json!({ "retry_after_ms": 1000, "outcome": "unknown" }),
    }
    .into_response()
}

/// 503 for a command sent on too long ago to begin ([`FORWARD_DEADLINE`]): not carried out.
fn too_late_to_begin() -> Response {
    ApiError::Unavailable {
        error: "The command waited too long to be taken; it was not carried out: ask again".into(),
        detail: json!({ "retry_after_ms": 1000, "outcome": "not_carried_out" }),
    }
    .into_response()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What is left until a request sent on reaches its deadline ([`FORWARD_DEADLINE`]); `None`
/// past it. One without a readable deadline has [`BEGIN_WITHIN`].
fn time_left(headers: &axum::http::HeaderMap) -> Option<Duration> {
    let deadline = headers
        .get(FORWARD_DEADLINE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match deadline {
        None => Some(BEGIN_WITHIN),
        Some(deadline) => deadline
            .checked_sub(unix_ms())
            .filter(|left| *left > 0)
            .map(Duration::from_millis),
    }
}

/// The owner's answer, as it came.
async fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in answer.headers() {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(error = %e, "a forwarded command's answer was cut short");
            return outcome_unknown();
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_sent_on_is_begun_only_before_its_deadline() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(
            time_left(&headers),
            Some(BEGIN_WITHIN),
            "no deadline: begun"
        );
        headers.insert(FORWARD_DEADLINE, HeaderValue::from(unix_ms() - 1));
        assert_eq!(time_left(&headers), None, "past");
        headers.insert(FORWARD_DEADLINE, HeaderValue::from(unix_ms() + 60_000));
        let left = time_left(&headers).expect("a minute left");
        assert!(
            left > Duration::from_secs(59) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        headers.insert(FORWARD_DEADLINE, HeaderValue::from_static("soon"));
        assert_eq!(time_left(&headers), Some(BEGIN_WITHIN), "unreadable: begun");
    }

    #[test]
    fn only_member_commands_name_a_node() {
        let s = "/api/v1/sessions/lab01-3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/commands";
        let node = |m: Method, p: String| member_command_node(&m, &p).map(|n| n.to_string());
        assert_eq!(
            node(Method::POST, format!("{s}/conference/mute")),
            Some("lab01".into())
        );
        assert_eq!(
            node(Method::POST, format!("{s}/conference/join")),
            Some("lab01".into())
        );
        assert_eq!(node(Method::GET, format!("{s}/conference/mute")), None);
        assert_eq!(node(Method::POST, format!("{s}/hangup")), None);
        assert_eq!(node(Method::POST, format!("{s}/conference/announce")), None);
        assert_eq!(
            node(
                Method::POST,
                "/api/v1/sessions/nope/commands/conference/mute".into()
            ),
            None
        );
    }
}
