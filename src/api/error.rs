//! The one place where failures become HTTP answers, all with the contract's body
//! `{"success": false, "error": "...", "detail": ...}`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::node::NodeError;
use crate::rooms::ServiceError;
use crate::store::StoreError;

/// An API failure; each variant is one status code.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400: invalid input (name, room_id, limit, cursor, volume, urls, malformed JSON).
    BadRequest { error: String, detail: Value },
    /// 401: missing or wrong X-App-ID / X-API-Key.
    Unauthorized,
    /// 403: the room or session belongs to another application.
    Forbidden(String),
    /// 404: no such room or session, or the session is in no conference.
    NotFound(String),
    /// 405: the path exists but not with this method (the router adds `Allow`).
    MethodNotAllowed,
    /// 409: the request conflicts with the state (name taken, other room, still joining…).
    Conflict { error: String, detail: Value },
    /// 413: the body is longer than the API accepts (`limit` bytes).
    PayloadTooLarge { limit: usize },
    /// 415: a body that is not declared `application/json`.
    UnsupportedMediaType,
    /// 422: a `command_uid` already used for a different request.
    Unprocessable { error: String, detail: Value },
    /// 408: the request's body did not arrive whole within `limit_ms`.
    RequestTimeout { limit_ms: u64 },
    /// 429: the app holds its whole share of something shared (requests in progress, event
    /// streams, a quota); worth a retry once one of its own ends.
    TooMany { error: String, detail: Value },
    /// 429: a cooldown group (or the global per-app limit) refuses for `wait` more.
    RateLimited { group: &'static str, wait: Duration },
    /// 502: the media node answered `-ERR`.
    NodeRejected(String),
    /// 503: the media node (or the store) cannot be reached.
    Unavailable { error: String, detail: Value },
    /// 504: the media node did not answer in time.
    NodeTimeout,
    /// 500: stored data could not be read.
    Internal(String),
}

impl ApiError {
    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            error: error.into(),
            detail: Value::Null,
        }
    }

    pub fn bad_request_with(error: impl Into<String>, detail: Value) -> ApiError {
        ApiError::BadRequest {
            error: error.into(),
            detail,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } | ApiError::TooMany { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::NodeRejected(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NodeTimeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> (String, Value) {
        match self {
            ApiError::BadRequest { error, detail }
            | ApiError::Conflict { error, detail }
            | ApiError::Unprocessable { error, detail }
            | ApiError::TooMany { error, detail } => (error.clone(), detail.clone()),
            ApiError::RequestTimeout { limit_ms } => (
                "Request body not received in time".into(),
                json!({ "limit_ms": limit_ms }),
            ),
            ApiError::MethodNotAllowed => (
                "Method not allowed: the Allow header lists this path's methods".into(),
                Value::Null,
            ),
            ApiError::PayloadTooLarge { limit } => (
                "Request body too large".into(),
                json!({ "limit_bytes": limit }),
            ),
            ApiError::UnsupportedMediaType => (
                "Unsupported Content-Type: send the body as application/json".into(),
                Value::Null,
            ),
            ApiError::Unauthorized => ("Missing or invalid X-API-Key".into(), Value::Null),
            ApiError::Forbidden(e) | ApiError::NotFound(e) => (e.clone(), Value::Null),
            ApiError::RateLimited { group, wait } => (
                "Rate limit exceeded".into(),
                json!({ "group": group, "retry_after_ms": ceil_millis(*wait) }),
            ),
            // The node's own words stay in the log: they can tell an app what the node found
            // at an address (the open and closed ports of a network it must not see).
            ApiError::NodeRejected(_) => (
                "Media node rejected the command".into(),
                json!({ "code": "node_rejected" }),
            ),
            ApiError::Unavailable { error, detail } => (error.clone(), detail.clone()),
            ApiError::NodeTimeout => ("Media node did not answer in time".into(), Value::Null),
            ApiError::Internal(e) => ("Internal error".into(), json!({ "reason": e })),
        }
    }
}

fn ceil_millis(d: Duration) -> u64 {
    d.as_micros().div_ceil(1000) as u64
}

/// Seconds for `Retry-After`, rounded up (at least 1).
fn retry_after_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (error, detail) = self.body();
        let body = json!({ "success": false, "error": error, "detail": detail });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let ApiError::RateLimited { wait, .. } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs(wait).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        // A node or the store out of reach (a node restarting or draining, a store failing
        // over, an instance stopping): worth a retry in a second, here or on another instance.
        if let ApiError::Unavailable { .. } | ApiError::TooMany { .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn capitalized(what: &str) -> String {
    let mut c = what.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Corrupt { .. } | StoreError::Fenced(_) => ApiError::Internal(e.to_string()),
            StoreError::Unavailable(_) | StoreError::Contention(_) => ApiError::Unavailable {
                error: "Store unavailable".into(),
                detail: json!({ "reason": e.to_string() }),
            },
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> ApiError {
        match e {
            NodeError::Rejected(reply) => {
                tracing::warn!(reply = %reply.trim(), "the media node rejected a command");
                ApiError::NodeRejected(reply.trim().to_owned())
            }
            NodeError::Timeout => ApiError::NodeTimeout,
            NodeError::Draining(node) => ApiError::Unavailable {
                error: "Media node is draining".into(),
                detail: json!({ "node": node }),
            },
            NodeError::Full(node) => ApiError::Unavailable {
                error: "Media node has no sessions to spare for a new room or dial-out".into(),
                detail: json!({ "node": node }),
            },
            NodeError::Busy(node) => ApiError::Unavailable {
                error: "Media node busy: too many commands in flight".into(),
                detail: json!({ "node": node }),
            },
            // Connected, answering nothing (its probe past the deadline): refused at once, and
            // served again as soon as it answers.
            NodeError::Hung(node) => ApiError::Unavailable {
                error: "Media node not answering".into(),
                detail: json!({ "node": node, "hung": true }),
            },
            // A command sent on by another instance, whose sender was about to give up.
            NodeError::TooLate => ApiError::Unavailable {
                error: "The command waited too long to be sent; it was not carried out: ask \
                        again"
                    .into(),
                detail: json!({ "retry_after_ms": 1000, "outcome": "not_carried_out" }),
            },
            NodeError::Unavailable(node) | NodeError::Unknown(node) => ApiError::Unavailable {
                error: "Media node unavailable".into(),
                detail: json!({ "node": node }),
            },
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::NotFound(what) => {
                ApiError::NotFound(format!("{} not found", capitalized(what)))
            }
            ServiceError::Forbidden(what) => ApiError::Forbidden(format!(
                "{} belongs to a different application",
                capitalized(what)
            )),
            ServiceError::NotPermitted(msg) => ApiError::Forbidden(capitalized(&msg)),
            ServiceError::Conflict(msg) => ApiError::Conflict {
                error: capitalized(&msg),
                detail: Value::Null,
            },
            ServiceError::NameTaken(existing) => ApiError::Conflict {
                error: "Conference name already taken for this application".into(),
                detail: json!({ "room_id": existing }),
            },
            ServiceError::Invalid(msg) => ApiError::bad_request(msg),
            ServiceError::UidReused { uid, used_for } => ApiError::Unprocessable {
                error: "command_uid was already used for a different request".into(),
                detail: serde_json::json!({ "command_uid": uid, "used_for": used_for }),
            },
            ServiceError::RateLimited { group, wait } => ApiError::RateLimited {
                group: group.as_str(),
                wait,
            },
            ServiceError::Quota(reached) => ApiError::TooMany {
                error: format!(
                    "Quota reached: this application may have at most {} {}",
                    reached.most(),
                    reached.name().replace('_', " ")
                ),
                detail: json!({ "quota": reached.name(), "most": reached.most() }),
            },
            ServiceError::Moving => ApiError::Unavailable {
                error: "Room is moving to another media node".into(),
                detail: json!({}),
            },
            ServiceError::Node(e) => e.into(),
            ServiceError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_node_is_503_with_retry_after() {
        let response = ApiError::from(NodeError::Hung("abcde".into())).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).unwrap(),
            &HeaderValue::from_static("1")
        );
    }

    #[tokio::test]
    async fn a_command_not_sent_in_time_says_it_was_not_carried_out() {
        let response = ApiError::from(NodeError::TooLate).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["detail"]["outcome"], "not_carried_out", "{body}");
    }

    #[test]
    fn waits_round_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(ceil_millis(Duration::from_micros(1500)), 2);
    }
}
