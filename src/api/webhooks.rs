//! The app's webhook deliveries: `GET /api/v1/webhooks/deliveries` (every attempt, newest
//! first, with its outcome, HTTP status and error) and
//! `POST /api/v1/webhooks/deliveries/{id}/retry` (send a dead-lettered message again).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{IdPath, QueryParams, iso8601, known_params, positive};
use super::openapi::errors::{BadRequest, Conflict, NotFound};
use super::openapi::params::{LogQuery as LogParams, MessagePath};
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller};
use crate::rooms::ServiceError;
use crate::store::{Store, outbox_order};
use crate::webhook::redeliver::{RedeliverError, redeliver};

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/api/v1/webhooks/deliveries", get(list::<S>))
        .route("/api/v1/webhooks/deliveries/{id}/retry", post(retry::<S>))
}

#[derive(Deserialize)]
struct LogQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/deliveries",
    operation_id = "webhooks_deliveries",
    tag = "webhooks",
    summary = "The app's webhook delivery attempts, newest first",
    params(LogParams),
    responses(
        (status = 200, description = "A page of attempts", body = doc::DeliveryPage),
        (status = 400, response = BadRequest),
    )
)]
async fn list<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    QueryParams(q): QueryParams<LogQuery>,
    QueryParams(query): QueryParams<Vec<(String, String)>>,
) -> Answer {
    known_params(&query, &["cursor", "limit"])?;
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) if outbox_order(c).is_some() => Some(c.to_owned()),
        Some(_) => return Err(ApiError::bad_request("Invalid cursor")),
    };
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => positive("limit", l)?.min(500) as usize,
    };
    let rows = st
        .rooms()
        .store()
        .delivery_log(&app, before.as_deref(), limit + 1)
        .await
        .map_err(ServiceError::from)?;
    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let deliveries: Vec<Value> = rows
        .iter()
        .map(|(_, a)| {
            json!({
                "id": a.message_id,
                "type": a.kind,
                "room_id": a.room,
                "seq": a.seq,
                "attempt": a.attempt,
                "outcome": a.outcome,
                "status": a.status,
                "error": a.error,
                "at": iso8601(a.at),
                "duration_ms": a.duration_ms,
            })
        })
        .collect();
    let cursor = if more {
        rows.last().map(|(id, _)| id.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok((
        StatusCode::OK,
        Json(json!({ "deliveries": deliveries, "cursor": cursor })),
    ))
}

/// 202: the message is back in the outbox with its id; 404 when no dead letter has that id,
/// 409 when it was sent again already.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/deliveries/{id}/retry",
    operation_id = "webhooks_retry",
    tag = "webhooks",
    summary = "Send a dead-lettered webhook again",
    description = "It goes back in the outbox with its original `webhook-id` and `seq`, behind \
        its room's pending events. Once per dead letter.",
    params(MessagePath),
    responses(
        (status = 202, description = "Queued", body = doc::RetryQueued),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
async fn retry<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(id): IdPath,
) -> Answer {
    match redeliver(st.rooms().store(), &app, &id).await {
        Ok(letter) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "type": letter.event.kind, "status": "queued" })),
        )),
        Err(RedeliverError::NotDead) => Err(ApiError::NotFound(
            "No dead-lettered delivery with this id".into(),
        )),
        Err(RedeliverError::AlreadyRedelivered) => Err(ApiError::Conflict {
            error: "This delivery was already retried".into(),
            detail: Value::Null,
        }),
        Err(RedeliverError::Store(e)) => Err(ServiceError::from(e).into()),
    }
}
