//! One message's life in the dispatcher: attempts (each holding one of the endpoint's request
//! slots) until a verdict, with the retry waits in between. A retried attempt is logged before
//! its wait; the last attempt goes back to the dispatcher with the verdict, which records both.
//! No attempt is sent on a lapsed hold of the lease ([`Tenure::confirmed`], checked right
//! before each request): a dispatcher that lost the lease sends nothing more. Knows nothing of
//! the outbox window or the persisted position.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::deliver::{self, RetrySchedule, Verdict};
use super::dispatcher::Tenure;
use super::envelope::Envelope;
use super::sign::Signer;
use crate::conference::{AppId, DomainEvent, RoomId};
use crate::store::{DeadLetter, DeliveryAttempt, Store};
use crate::telemetry::{self, WebhookOutcome};

/// What every delivery task of one dispatcher shares.
pub(super) struct Endpoint {
    pub(super) app: AppId,
    pub(super) client: reqwest::Client,
    /// Where to and how signed; replaced by a configuration reload ([`super::Webhook`]): an
    /// attempt takes the target of its start.
    pub(super) target: arc_swap::ArcSwap<Target>,
    pub(super) retry: RetrySchedule,
    pub(super) allow_private: bool,
    pub(super) slots: Semaphore,
}

/// An endpoint's URL and the signer of its requests.
pub(super) struct Target {
    pub(super) url: Url,
    pub(super) signer: Signer,
}

/// A message that reached a verdict: delivered (`dead` is `None`) or given up on.
pub(super) struct Settled {
    pub(super) outbox_id: String,
    pub(super) room: RoomId,
    pub(super) dead: Option<DeadLetter>,
    /// The last attempt, for the delivery log (written with the progress, not by the task).
    pub(super) last_attempt: DeliveryAttempt,
}

/// Attempts one message until it is delivered, refused, or out of retries. Each failed attempt
/// that is retried is logged before the wait; the last attempt is returned for the dispatcher
/// to log with the verdict. `None`: the term ended before an attempt was sent (nothing more
/// is sent on its strength).
pub(super) async fn deliver_until_settled<S: Store>(
    store: Arc<S>,
    endpoint: Arc<Endpoint>,
    tenure: Arc<Tenure>,
    outbox_id: String,
    event: DomainEvent,
) -> Option<Settled> {
    let envelope = Envelope::new(&outbox_id, &event);
    let body = envelope.body();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let (verdict, took) = send(&endpoint, &tenure, &envelope.id, &body).await?;
        let (outcome, status, error, wait) = judge(&endpoint.retry, verdict, attempt);
        telemetry::webhook_attempt(endpoint.app.as_str(), outcome, took, event.at);
        let logged = DeliveryAttempt {
            message_id: envelope.id.clone(),
            kind: event.kind,
            room: event.room.clone(),
            seq: event.seq,
            attempt,
            outcome: outcome.as_str().to_owned(),
            status,
            error: error.clone(),
            at: now_micros(),
            duration_ms: took.as_millis() as u64,
        };
        let error = error.unwrap_or_default();
        let dead = match (outcome, wait) {
            (WebhookOutcome::Delivered, _) => None,
            (_, Some(wait)) => {
                keep_log(&*store, &endpoint.app, &tenure, &logged).await;
                tracing::debug!(
                    app = %endpoint.app,
                    room = %event.room,
                    message_id = %envelope.id,
                    event_type = event.kind.as_str(),
                    seq = event.seq,
                    attempt,
                    %error,
                    ?wait,
                    "webhook attempt failed; will retry"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            (_, None) => {
                // Self-contained: the dispatcher's spans may be off at the level logged.
                tracing::warn!(
                    app = %endpoint.app,
                    room = %event.room,
                    message_id = %envelope.id,
                    event_type = event.kind.as_str(),
                    seq = event.seq,
                    attempts = attempt,
                    status,
                    %error,
                    "webhook dead-lettered"
                );
                Some(DeadLetter {
                    outbox_id: outbox_id.clone(),
                    event: event.clone(),
                    attempts: attempt,
                    status,
                    last_error: error,
                    at: now_micros(),
                })
            }
        };
        return Some(Settled {
            outbox_id,
            room: event.room.clone(),
            dead,
            last_attempt: logged,
        });
    }
}

/// One request, holding a request slot while it is in progress; how long it took. Sent only
/// once the hold on the lease is confirmed, right before (`None`: the term ended instead).
async fn send(
    endpoint: &Endpoint,
    tenure: &Tenure,
    id: &str,
    body: &[u8],
) -> Option<(Verdict, Duration)> {
    let _slot = endpoint.slots.acquire().await;
    if !tenure.confirmed().await {
        return None;
    }
    let started = Instant::now();
    let target = endpoint.target.load_full();
    let verdict = deliver::attempt(
        &endpoint.client,
        &target.url,
        endpoint.allow_private,
        &target.signer,
        id,
        body,
    )
    .await;
    Some((verdict, started.elapsed()))
}

/// What attempt number `attempt` came to: its outcome, the HTTP status, the error, and the wait
/// before the next attempt (`None` when there is none).
fn judge(
    retry: &RetrySchedule,
    verdict: Verdict,
    attempt: u32,
) -> (
    WebhookOutcome,
    Option<u16>,
    Option<String>,
    Option<Duration>,
) {
    match verdict {
        Verdict::Delivered { status } => (WebhookOutcome::Delivered, Some(status), None, None),
        Verdict::GiveUp { status, error } => {
            (WebhookOutcome::DeadLetter, status, Some(error), None)
        }
        Verdict::Retry {
            status,
            error,
            retry_after,
        } => match retry.delay(attempt as usize - 1, retry_after) {
            Some(wait) => (WebhookOutcome::Retry, status, Some(error), Some(wait)),
            None => (WebhookOutcome::DeadLetter, status, Some(error), None),
        },
    }
}

/// Writes an attempt to the delivery log; the log is for people, so a failure only warns,
/// unless the store refused it for its fence (the term ends).
async fn keep_log<S: Store>(store: &S, app: &AppId, tenure: &Tenure, attempt: &DeliveryAttempt) {
    if let Err(e) = store.log_delivery(app, attempt, Some(tenure.fence())).await
        && !tenure.refused(&e)
    {
        tracing::warn!(error = %e, "delivery attempt not logged");
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
