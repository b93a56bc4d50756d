//! What the stores keep about webhook delivery: attempts, dead letters, and the order of outbox
//! entry ids.

use std::future::Future;
use std::time::Duration;

use super::StoreError;
use crate::conference::{AppId, DomainEvent, Micros, RoomId};

/// How many dead letters a store keeps per app.
pub const DEAD_LETTERS_KEPT: usize = 10_000;

/// How many delivery attempts a store keeps per app.
pub const DELIVERY_LOG_KEPT: usize = 10_000;

/// One attempt to deliver a webhook message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryAttempt {
    /// The `webhook-id` of the message.
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: crate::conference::EventKind,
    pub room: RoomId,
    pub seq: u64,
    /// 1 for the first attempt of the message.
    pub attempt: u32,
    /// `delivered`, `retry` (another attempt follows) or `dead_letter`.
    pub outcome: String,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at: Micros,
    pub duration_ms: u64,
}

/// A webhook message given up on: after its last attempt, or refused by the receiver.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// The outbox entry (the `webhook-id` is derived from it).
    pub outbox_id: String,
    pub event: DomainEvent,
    pub attempts: u32,
    /// The last HTTP status, if the receiver answered.
    pub status: Option<u16>,
    pub last_error: String,
    pub at: Micros,
}

/// The order of outbox ids (`<ms>-<seq>`, as Redis streams number entries); `None` if malformed.
pub fn outbox_order(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// What a store keeps for the webhook dispatchers: each app's position in its outbox, the
/// entries acknowledged ahead of it, dead letters, the delivery log, and the leases that make one
/// dispatcher per app deliver at a time. (A part of [`super::Store`].)
pub trait Deliveries: Send + Sync + 'static {
    /// The webhook dispatcher's position in the app's outbox (a [`super::Position`]): every
    /// entry up to and including it was delivered or dead-lettered. `None`: nothing yet. The
    /// newest position recorded, by [`Deliveries::settle_outbox`] or by the `*_outbox` writes
    /// below.
    fn outbox_position(
        &self,
        app: &AppId,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Moves the position to `id` (a position) and forgets the acknowledgments
    /// ([`Deliveries::ack_outbox`]) of entries up to and including it.
    fn set_outbox_position(
        &self,
        app: &AppId,
        id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves the position to `id` and forgets the acknowledgments of `forget`: the entries it
    /// now passes that the caller acknowledged, or found acknowledged (one write when there are
    /// none; [`Deliveries::set_outbox_position`] looks for them all, in the store).
    fn advance_outbox(
        &self,
        app: &AppId,
        id: &str,
        forget: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records what one batch of verdicts settled, in one round trip: the settled messages'
    /// last attempts in the delivery log, the entries settled `ahead` of the position (as
    /// [`Deliveries::ack_outbox`]), and the new `position`, if it moved, forgetting the
    /// acknowledgments it passes (`forget`, as [`Deliveries::advance_outbox`]). A store may
    /// keep the position with the log's entries rather than where [`Deliveries::advance_outbox`]
    /// puts it (Redis does: one command fewer per batch); with no attempts to carry it, it goes
    /// there. [`Deliveries::outbox_position`] finds it either way.
    fn settle_outbox(
        &self,
        app: &AppId,
        attempts: &[DeliveryAttempt],
        position: Option<&str>,
        ahead: &[&str],
        forget: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that an entry (by its id) after the position was delivered (an earlier one is
    /// still being retried), so a restarted dispatcher does not send it again.
    fn ack_outbox(
        &self,
        app: &AppId,
        id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The entries after the position recorded by [`Deliveries::ack_outbox`].
    fn outbox_acked(
        &self,
        app: &AppId,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Keeps a message that could not be delivered (the newest [`DEAD_LETTERS_KEPT`] are kept).
    fn dead_letter(
        &self,
        app: &AppId,
        letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records one delivery attempt in the app's delivery log (the newest
    /// [`DELIVERY_LOG_KEPT`] are kept). Returns the log entry's id.
    fn log_delivery(
        &self,
        app: &AppId,
        attempt: &DeliveryAttempt,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// The app's delivery log, newest first, before the entry `before` (exclusive).
    fn delivery_log(
        &self,
        app: &AppId,
        before: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, DeliveryAttempt)>, StoreError>> + Send;

    /// Takes or renews the lease `name` of the app for `holder`, for `ttl`: true if `holder`
    /// holds it now. (One webhook dispatcher per app across controller instances.)
    fn lease(
        &self,
        app: &AppId,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives the lease up, if `holder` holds it.
    fn release_lease(
        &self,
        app: &AppId,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The app's dead letters, oldest first, at most `limit`.
    fn dead_letters(
        &self,
        app: &AppId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send;
}
