//! Hot standby (issue 35): an instance that does not apply a node's events still listens to
//! them and keeps those the owner may not have applied yet, so that when it takes the node over
//! (the owner stopped, was killed, or handed the node to a joining instance) it replays what
//! the node did in between instead of losing it. What it keeps is bounded twice: events the
//! owner recorded as applied are dropped (after a grace period: FreeSWITCH numbers events when
//! it fires them, and delivers those of different threads a little out of that order), and at
//! most [`Backlog::CAP`] are kept (past that the oldest go, and a takeover says it has a gap).
//!
//! An event heard on standby is kept as it came off the wire: the event connection tapes it
//! ([`Tape`]: copied out of the read buffer into blocks the tape reuses, only its name,
//! `Core-UUID` and `Event-Sequence` read) and it is read whole only at a takeover. A standby
//! then costs about what reading its socket costs (issue 59). What the connection does not tape
//! (heartbeats, job results) still arrives as an [`Event`] ([`Backlog::hear`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conference::{Fact, Observed, from_event};
use crate::esl::{Event, EventName, Tape, Taped};
use crate::store::fleet::NodePosition;

/// One event kept.
#[derive(Debug, Clone)]
pub enum Kept {
    /// Heard on standby, unread but for its process and number ([`Event::origin`]).
    Heard(Event),
    /// Applied by this instance as owner (kept until the store's replicas have it).
    Applied(Observed),
}

impl Kept {
    /// The node's process and the event's number.
    fn origin(&self) -> (Cow<'_, str>, u64) {
        match self {
            Kept::Heard(event) => {
                let (core, sequence) = event.origin();
                (core.unwrap_or_default(), sequence.unwrap_or(0))
            }
            Kept::Applied(o) => (Cow::Borrowed(&o.core_uuid), o.sequence),
        }
    }

    /// What the event says, read now (`None`: nothing a room or session applies).
    fn observed(self) -> Option<Observed> {
        match self {
            Kept::Heard(event) => from_event(&event),
            Kept::Applied(o) => Some(o),
        }
    }
}

/// The events of one node kept on standby, oldest first.
#[derive(Debug, Default)]
pub struct Backlog {
    kept: VecDeque<(Instant, Kept)>,
    /// The `Event-Sequence` of the first event heard on this connection: every event fired
    /// after it reached this instance.
    first: Option<u64>,
    /// The newest event dropped for want of room (0: none).
    dropped: u64,
    /// Where the event connection keeps what it hears after `kept`, while it tapes.
    tape: Option<Arc<Tape>>,
    /// How far this instance applied the node's events itself before it stood by: a position
    /// the store may not have recorded yet (its lease lapsed before a renewal recorded it).
    own: Option<u64>,
}

/// What a takeover replays.
#[derive(Debug, Default)]
pub struct Replay {
    /// The kept events, in the order the node delivered them, read as they are replayed.
    kept: Vec<Kept>,
    /// Whether they hold every event after the position the previous owner recorded.
    pub covered: bool,
    /// What coverage was judged on (for the log): the first event heard, the newest dropped
    /// for want of room, and how far this instance had applied the node itself.
    pub first: Option<u64>,
    pub dropped: u64,
    pub own: Option<u64>,
}

impl Replay {
    /// How many events are kept (some may turn out to say nothing a room applies).
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The events read, `n` at a time: a takeover reads a batch and applies it before it reads
    /// the next, so other tasks (the lease's renewal) run in between.
    pub fn batches(self, n: usize) -> impl Iterator<Item = Vec<Observed>> {
        let mut kept = self.kept.into_iter().peekable();
        std::iter::from_fn(move || {
            kept.peek()?;
            Some(
                kept.by_ref()
                    .take(n.max(1))
                    .filter_map(Kept::observed)
                    .collect(),
            )
        })
    }

    /// Every event, read.
    pub fn events(self) -> Vec<Observed> {
        self.batches(usize::MAX).flatten().collect()
    }
}

impl Backlog {
    /// At most this many events are kept per node (a bound on memory should the owner stop
    /// recording its position).
    pub const CAP: usize = 50_000;
    /// How long an event the owner has applied is still kept: events fired close together on
    /// different threads reach listeners in either order.
    pub const GRACE: Duration = Duration::from_secs(1);

    /// A backlog whose connection has been read, and its events applied by this instance, up
    /// to `sequence` already (an owner going on standby keeps reading the connection it
    /// applied).
    pub fn after(sequence: Option<u64>) -> Backlog {
        Backlog {
            first: sequence,
            own: sequence,
            ..Backlog::default()
        }
    }

    /// The `Event-Sequence` of the first event heard on this connection, on its stream or
    /// on its tape.
    pub fn first(&self) -> Option<u64> {
        let taped = self.tape.as_ref().and_then(|t| t.first());
        match (self.first, taped) {
            (Some(heard), Some(taped)) => Some(heard.min(taped)),
            (heard, taped) => heard.or(taped),
        }
    }

    /// Whether an event has been heard yet (so [`Backlog::take`] can judge coverage).
    pub fn listening(&self) -> bool {
        self.first().is_some()
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.kept.len() + self.tape.as_ref().map_or(0, |t| t.len())
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Has the event connection keep what it hears of the process `core` on `tape` from now
    /// on (after what is kept already), until [`Backlog::stop_tape`].
    pub fn tape(&mut self, tape: Arc<Tape>, core: &str) {
        tape.start(core, Self::CAP);
        self.tape = Some(tape);
    }

    /// Stops the tape. What it held is kept by [`Backlog::keep_taped`], after the events the
    /// stream had been given before the first of them ([`Taped::after_streamed`]): whoever
    /// stops it takes those from the stream ([`Backlog::hear`]) in between.
    pub fn stop_tape(&mut self) -> Option<Taped> {
        self.tape.take().map(|tape| tape.stop())
    }

    /// Keeps what a stopped tape held, in order, after what is kept already.
    pub fn keep_taped(&mut self, taped: Taped) {
        if let Some(first) = taped.first {
            self.first = Some(self.first.map_or(first, |f| f.min(first)));
        }
        self.dropped = self.dropped.max(taped.dropped);
        let now = Instant::now();
        for body in taped.events {
            self.keep(Kept::Heard(Event::plain(body)), now);
        }
    }

    /// Keeps an event heard at `at` (heartbeats and job results only mark the connection as
    /// listening: there is nothing in them to replay).
    pub fn push(&mut self, observed: Observed, at: Instant) {
        self.first.get_or_insert(observed.sequence);
        if matches!(observed.fact, Fact::Heartbeat | Fact::Job { .. }) {
            return;
        }
        self.keep(Kept::Applied(observed), at);
    }

    /// Keeps an event heard on standby from the node's process `core` (one of another process
    /// is not kept), unread: it is read at a takeover. Heartbeats and job results only mark
    /// the connection as listening.
    pub fn hear(&mut self, event: Event, core: &str, at: Instant) {
        let (origin, sequence) = event.origin();
        if origin.as_deref() != Some(core) {
            return;
        }
        self.first.get_or_insert(sequence.unwrap_or(0));
        if matches!(
            event.name(),
            EventName::Heartbeat | EventName::BackgroundJob
        ) {
            return;
        }
        self.keep(Kept::Heard(event.detached()), at);
    }

    fn keep(&mut self, kept: Kept, at: Instant) {
        if self.kept.len() >= Self::CAP
            && let Some((_, old)) = self.kept.pop_front()
        {
            self.dropped = self.dropped.max(old.origin().1);
        }
        self.kept.push_back((at, kept));
    }

    /// Drops the events the owner has applied (`recorded`) that were heard more than
    /// [`Backlog::GRACE`] before `now`.
    pub fn trim(&mut self, recorded: &NodePosition, now: Instant) {
        while let Some((at, front)) = self.kept.front() {
            let (core, sequence) = front.origin();
            let applied = core == recorded.core && sequence <= recorded.sequence;
            if !applied || now.duration_since(*at) < Self::GRACE {
                break;
            }
            self.kept.pop_front();
        }
        if let Some(tape) = &self.tape {
            tape.trim(&recorded.core, recorded.sequence, now, Self::GRACE);
        }
    }

    /// A copy of the events kept, oldest first (the backlog keeps them).
    pub fn events(&self) -> Vec<Observed> {
        self.kept
            .iter()
            .filter_map(|(_, k)| k.clone().observed())
            .collect()
    }

    /// Everything kept, for a takeover from an owner that stopped at `recorded` (`None`: no
    /// owner recorded anything), emptying the backlog; `core` is the node's process now.
    pub fn take(&mut self, recorded: Option<&NodePosition>, core: &str) -> Replay {
        if let Some(taped) = self.stop_tape() {
            self.keep_taped(taped);
        }
        // Every event up to the recorded position was applied, and so was every one up to
        // where this instance applied them itself (same process: `after`).
        let covered = match (recorded, self.first) {
            (Some(r), Some(first)) => {
                let applied = r.sequence.max(self.own.unwrap_or(0));
                r.core == core && first <= applied.saturating_add(1) && self.dropped <= applied
            }
            _ => false,
        };
        let kept = self.kept.drain(..).map(|(_, k)| k).collect();
        Replay {
            kept,
            covered,
            first: self.first,
            dropped: std::mem::take(&mut self.dropped),
            own: self.own.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: u64) -> Observed {
        Observed {
            core_uuid: "core".into(),
            sequence,
            fact: Fact::Dtmf {
                channel: "c".into(),
                digit: "1".into(),
            },
        }
    }

    fn at(sequence: u64) -> NodePosition {
        NodePosition {
            core: "core".into(),
            sequence,
        }
    }

    #[test]
    fn a_takeover_replays_what_followed_the_recorded_position() {
        let t0 = Instant::now();
        let mut b = Backlog::default();
        for s in 10..20 {
            b.push(event(s), t0);
        }
        // Applied by the owner, but heard less than the grace period ago: kept.
        b.trim(&at(14), t0 + Duration::from_millis(100));
        assert_eq!(b.len(), 10);
        b.trim(&at(14), t0 + Backlog::GRACE);
        assert_eq!(b.len(), 5);
        let replay = b.take(Some(&at(16)), "core");
        assert!(replay.covered);
        let seqs: Vec<u64> = replay.events().iter().map(|o| o.sequence).collect();
        assert_eq!(seqs, [15, 16, 17, 18, 19]);
        assert_eq!(b.len(), 0);
    }

    /// What an owner kept is applied again after each store failover until the replicas
    /// confirm a position past it: copying it out leaves it kept.
    #[test]
    fn an_owner_applies_what_it_kept_again_and_keeps_it_until_confirmed() {
        let t0 = Instant::now();
        let mut b = Backlog::after(Some(9));
        for s in 10..14 {
            b.push(event(s), t0);
        }
        let seqs = |events: Vec<Observed>| events.iter().map(|o| o.sequence).collect::<Vec<_>>();
        assert_eq!(seqs(b.events()), [10, 11, 12, 13]);
        assert_eq!(seqs(b.events()), [10, 11, 12, 13], "still kept");
        b.trim(&at(11), t0 + Backlog::GRACE);
        assert_eq!(seqs(b.events()), [12, 13]);
    }

    #[test]
    fn a_takeover_says_when_events_may_be_missing() {
        let t0 = Instant::now();
        let mut b = Backlog::default();
        b.push(event(50), t0);
        // The owner stopped before this instance heard anything.
        assert!(!b.take(Some(&at(40)), "core").covered);
        // Another process (the node restarted), or nothing recorded.
        b.push(event(51), t0);
        assert!(!b.take(Some(&at(60)), "other").covered);
        assert!(!b.take(None, "core").covered);
        // Events dropped for want of room, newer than the recorded position.
        let mut b = Backlog::default();
        for s in 1..=(Backlog::CAP as u64 + 10) {
            b.push(event(s), t0);
        }
        assert_eq!(b.len(), Backlog::CAP);
        assert!(!b.take(Some(&at(5)), "core").covered);
        let mut b = Backlog::default();
        for s in 1..=(Backlog::CAP as u64 + 10) {
            b.push(event(s), t0);
        }
        assert!(b.take(Some(&at(10)), "core").covered);
    }

    fn heard(name: &str, core: &str, sequence: u64) -> Event {
        let text = format!(
            "Event-Name: {name}\nCore-UUID: {core}\nEvent-Sequence: {sequence}\n\
             Unique-ID: c\nDTMF-Digit: 5\n\n"
        );
        Event::parse_plain(bytes::Bytes::from(text)).unwrap()
    }

    /// A standby keeps what it hears unread, and reads it at the takeover as the owner would
    /// have: the same facts, in the same order; another process's events are not kept.
    #[test]
    fn events_heard_on_standby_are_read_at_the_takeover() {
        let t0 = Instant::now();
        let core = "core";
        let mut b = Backlog::default();
        b.hear(heard("DTMF", "old-core", 3), core, t0);
        assert!(
            !b.listening(),
            "another process's event says nothing of this one"
        );
        b.hear(heard("HEARTBEAT", "core", 9), core, t0);
        assert!(b.listening());
        assert!(b.is_empty(), "a heartbeat is not kept");
        for s in 10..13 {
            b.hear(heard("DTMF", "core", s), core, t0);
        }
        b.push(event(13), t0);
        b.trim(&at(10), t0 + Backlog::GRACE);
        let replay = b.take(Some(&at(10)), "core");
        assert!(replay.covered);
        let read: Vec<(u64, Fact)> = replay
            .events()
            .into_iter()
            .map(|o| (o.sequence, o.fact))
            .collect();
        let dtmf = |digit: &str| Fact::Dtmf {
            channel: "c".into(),
            digit: digit.into(),
        };
        assert_eq!(read, [(11, dtmf("5")), (12, dtmf("5")), (13, dtmf("1"))]);
    }

    /// Where a standby began to listen (what a joining instance waits for its owner to reach,
    /// `fleet.rs::catch_up`) counts what its tape kept: under load the node's events reach the
    /// tape before the first heartbeat or job result reaches the stream.
    #[test]
    fn the_first_event_heard_counts_the_tape() {
        let t0 = Instant::now();
        let mut b = Backlog::default();
        let tape = Arc::new(Tape::default());
        b.tape(tape.clone(), "core");
        assert_eq!(b.first(), None);
        assert!(tape.keep(dtmf_body(40).as_bytes(), t0));
        assert_eq!(b.first(), Some(40), "taped before anything was streamed");
        assert!(b.listening());
        b.hear(heard("BACKGROUND_JOB", "core", 42), "core", t0);
        assert_eq!(b.first(), Some(40), "the earliest of the two");
    }

    #[test]
    fn heartbeats_mark_the_connection_as_listening_and_are_not_kept() {
        let mut b = Backlog::default();
        assert!(!b.listening());
        b.push(
            Observed {
                core_uuid: "core".into(),
                sequence: 7,
                fact: Fact::Heartbeat,
            },
            Instant::now(),
        );
        assert!(b.listening());
        assert_eq!(b.len(), 0);
        assert!(b.take(Some(&at(6)), "core").covered);
    }

    /// A DTMF event of process `core` as a plain body, the way a tape keeps it.
    fn dtmf_body(sequence: u64) -> String {
        format!(
            "Event-Name: DTMF\nCore-UUID: core\nEvent-Sequence: {sequence}\nUnique-ID: c\nDTMF-Digit: 5\n\n"
        )
    }

    /// What an owner kept comes before what the connection taped on standby, and the tape is
    /// trimmed with the rest: a takeover replays both, in order, from the recorded position.
    #[test]
    fn what_was_taped_follows_what_was_kept_and_is_trimmed_alike() {
        let t0 = Instant::now();
        let mut b = Backlog::after(Some(9));
        for s in 10..12 {
            b.push(event(s), t0);
        }
        let tape = Arc::new(Tape::default());
        b.tape(tape.clone(), "core");
        for s in 12..16 {
            assert!(tape.keep(dtmf_body(s).as_bytes(), t0));
        }
        assert_eq!(b.len(), 6);
        b.trim(&at(12), t0 + Backlog::GRACE);
        assert_eq!(b.len(), 3, "kept and taped events up to 12 dropped");
        let replay = b.take(Some(&at(12)), "core");
        assert!(replay.covered);
        let seqs: Vec<u64> = replay.events().iter().map(|o| o.sequence).collect();
        assert_eq!(seqs, [13, 14, 15]);
        assert!(
            !tape.keep(dtmf_body(16).as_bytes(), t0),
            "the takeover stopped the tape"
        );
    }

    /// An owner whose lease lapsed before a renewal recorded how far it had applied stands by
    /// from there: taking the node back is covered by what it applied itself, not judged
    /// against the older position the store still holds.
    #[test]
    fn a_lapsed_owner_taking_back_is_covered_by_what_it_applied() {
        let t0 = Instant::now();
        let mut b = Backlog::after(Some(100));
        let tape = Arc::new(Tape::default());
        b.tape(tape.clone(), "core");
        for s in 101..104 {
            assert!(tape.keep(dtmf_body(s).as_bytes(), t0));
        }
        let replay = b.take(Some(&at(80)), "core");
        assert!(
            replay.covered,
            "events 81-100 were applied by this instance"
        );
        assert_eq!(replay.len(), 3);
        // What it applied says nothing of another process.
        let mut b = Backlog::after(Some(100));
        b.push(event(101), t0);
        assert!(!b.take(Some(&at(80)), "other").covered);
    }
}
