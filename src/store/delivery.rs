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

/// What a write made on the strength of a lease carries: the lease, its holder, and the
/// generation the holder took it with (its fencing token). A store refuses the write
/// ([`StoreError::Fenced`]) unless, as it writes, the lease is held by `holder` under
/// `generation`: a holder that lost the lease (paused past it, say) changes nothing, even if it
/// took the lease again since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name (as given to [`Deliveries::lease`]).
    pub lease: String,
    pub holder: String,
    pub generation: u64,
}

/// The order of outbox ids (`<ms>-<seq>`, as Redis streams number entries); `None` if malformed.
pub fn outbox_order(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A delivery log id: a log entry's (an outbox-ordered id, `<ms>-<seq>`) for an entry of one
/// attempt, else `<ms>-<seq>.<k>`, the `k`-th attempt (from 0, oldest first) of an entry that
/// holds several (a batch of verdicts written together). The entry's id and `k`; `None` if
/// malformed.
pub fn log_id(id: &str) -> Option<(&str, Option<usize>)> {
    let (entry, k) = match id.split_once('.') {
        Some((entry, k)) => (entry, Some(k.parse().ok()?)),
        None => (id, None),
    };
    outbox_order(entry)?;
    Some((entry, k))
}

/// What a store keeps for the webhook dispatchers: each app's position in its outbox, the
/// entries acknowledged ahead of it, dead letters, the delivery log, and the leases that make one
/// dispatcher per app deliver at a time. (A part of [`super::Store`].)
///
/// The dispatcher's writes carry the [`Fence`] of the lease it delivers under, and each is
/// refused with [`StoreError::Fenced`], changing nothing, unless the lease is held as the fence
/// says: checked in the same atomic step as the write.
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
    /// ([`Deliveries::ack_outbox`]) of entries up to and including it. Fenced.
    fn set_outbox_position(
        &self,
        app: &AppId,
        id: &str,
        fence: &Fence,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Moves the position to `id` and forgets the acknowledgments of `forget`: the entries it
    /// now passes that the caller acknowledged, or found acknowledged (one write when there are
    /// none; [`Deliveries::set_outbox_position`] looks for them all, in the store). Fenced.
    fn advance_outbox(
        &self,
        app: &AppId,
        id: &str,
        forget: &[String],
        fence: &Fence,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records what one batch of verdicts settled, in one round trip: the settled messages'
    /// last attempts in the delivery log, the entries settled `ahead` of the position (as
    /// [`Deliveries::ack_outbox`]), and the new `position`, if it moved, forgetting the
    /// acknowledgments it passes (`forget`, as [`Deliveries::advance_outbox`]). A store may
    /// keep the position with the log's entries rather than where [`Deliveries::advance_outbox`]
    /// puts it (Redis does: one command fewer per batch); with no attempts to carry it, it goes
    /// there. [`Deliveries::outbox_position`] finds it either way. Fenced: all of it or
    /// nothing.
    fn settle_outbox(
        &self,
        app: &AppId,
        attempts: &[DeliveryAttempt],
        position: Option<&str>,
        ahead: &[&str],
        forget: &[String],
        fence: &Fence,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that an entry (by its id) after the position was delivered (an earlier one is
    /// still being retried), so a restarted dispatcher does not send it again. Fenced.
    fn ack_outbox(
        &self,
        app: &AppId,
        id: &str,
        fence: &Fence,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The entries after the position recorded by [`Deliveries::ack_outbox`].
    fn outbox_acked(
        &self,
        app: &AppId,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Keeps a message that could not be delivered (the newest [`DEAD_LETTERS_KEPT`] are kept).
    /// Fenced.
    fn dead_letter(
        &self,
        app: &AppId,
        letter: &DeadLetter,
        fence: &Fence,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records one delivery attempt in the app's delivery log (the newest
    /// [`DELIVERY_LOG_KEPT`] are kept). Returns the log entry's id. Fenced when given a fence
    /// (the dispatcher's attempts).
    fn log_delivery(
        &self,
        app: &AppId,
        attempt: &DeliveryAttempt,
        fence: Option<&Fence>,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// The app's delivery log, newest first, before the attempt `before` (exclusive; a
    /// [`log_id`], as this returns them).
    fn delivery_log(
        &self,
        app: &AppId,
        before: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, DeliveryAttempt)>, StoreError>> + Send;

    /// Takes or renews the lease `name` of the app for `holder`, for `ttl`: its generation if
    /// `holder` holds it now (`None`: another holder does). The generation grows by one each
    /// time the lease is taken by a holder that did not hold it (its time ran out, or it was
    /// given up), and stays the same when it is renewed: a holder that finds another one
    /// than it had lost the lease in between. (One webhook dispatcher per app across
    /// controller instances; the writes it makes carry it in a [`Fence`].)
    fn lease(
        &self,
        app: &AppId,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

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
