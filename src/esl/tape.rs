//! Events kept as the bytes they came in (issue 59): a connection given a [`Tape`] copies each
//! plain event of one FreeSWITCH process into blocks the tape reuses, straight out of the read
//! buffer, instead of making it a frame, an [`Event`](super::Event) and a channel message. Only
//! the event's top lines are read (its name, `Core-UUID` and `Event-Sequence`), and it is read
//! whole only when the tape is stopped. The read buffer is then reused in place and the memory
//! the events are kept in is the same from one second to the next: a connection that keeps
//! every event of a node it does not apply costs about what reading its socket costs.
//!
//! A tape may start while the connection still holds events it decoded before, in its channel
//! or its backlog: those are older than anything taped. The tape records how many events the
//! stream had been given when it kept its first ([`Taped::after_streamed`]); whoever stops it
//! takes that many from the stream ([`EventStream::received`](super::EventStream::received))
//! before it reads the tape, and so keeps every event in the order it came.
//!
//! Heartbeats and job results are not taped (there is nothing in them to replay, and a job's
//! waiter needs its result): they, and every event of another process or without a number,
//! reach the event stream as before.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::parse;

/// Events are copied into blocks of this size (a larger event gets a block of its own).
const BLOCK: usize = 256 * 1024;
/// Emptied blocks kept for reuse: at least this many, and as many as are in use (so a tape
/// whose trims free a third of its blocks at a time takes fresh pages from the system only
/// while its backlog grows, at twice its live size at most).
const SPARE: usize = 8;

/// Events kept by a connection while it is taping (see the module). Shared by the connection,
/// which appends, and its owner, which trims and stops it.
#[derive(Debug, Default)]
pub struct Tape {
    inner: Mutex<Inner>,
    /// Events the connection has given its stream so far (counted only on a taping connection).
    streamed: AtomicU64,
    /// Whether it tapes now: checked before an event is read at all (an owner's connection
    /// has a tape it does not use).
    taping: AtomicBool,
}

/// What a stopped tape held.
#[derive(Debug, Default)]
pub struct Taped {
    /// The events kept, each a plain event body, in the order they arrived.
    pub events: Vec<Bytes>,
    /// The `Event-Sequence` of the first event taped (`None`: none was).
    pub first: Option<u64>,
    /// The newest event dropped for want of room (0: none).
    pub dropped: u64,
    /// How many events the connection had given its stream when the first was taped: those
    /// came before every taped event (`None`: nothing was taped).
    pub after_streamed: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The `Core-UUID` whose events are taped; `None`: not taping.
    core: Option<Vec<u8>>,
    /// [`Taped::after_streamed`], once an event is taped.
    after_streamed: Option<u64>,
    /// At most this many events are kept (the oldest go past it).
    cap: usize,
    /// Blocks in use, the front one numbered `base`.
    blocks: VecDeque<Vec<u8>>,
    base: u64,
    spare: Vec<Vec<u8>>,
    entries: VecDeque<Entry>,
    first: Option<u64>,
    newest: u64,
    dropped: u64,
}

#[derive(Debug)]
struct Entry {
    block: u64,
    offset: usize,
    len: usize,
    sequence: u64,
    at: Instant,
}

impl Tape {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the tape usable: it holds plain data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts keeping the events of the FreeSWITCH process `core`, at most `cap` of them. A
    /// tape already keeping `core`'s goes on as it was.
    pub fn start(&self, core: &str, cap: usize) {
        let mut inner = self.lock();
        if inner.core.as_deref() == Some(core.as_bytes()) {
            return;
        }
        inner.core = Some(core.as_bytes().to_vec());
        inner.cap = cap.max(1);
        self.taping.store(true, Ordering::Release);
    }

    /// Whether it tapes now (a connection asks before it reads the clock for an event).
    pub(crate) fn taping(&self) -> bool {
        self.taping.load(Ordering::Acquire)
    }

    /// The connection gave its stream an event.
    pub(crate) fn streamed(&self) {
        self.streamed.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops taping and hands over everything kept: events that arrive from now on reach the
    /// event stream.
    pub fn stop(&self) -> Taped {
        let mut inner = self.lock();
        inner.core = None;
        self.taping.store(false, Ordering::Release);
        // The blocks are handed over as they are: each event is a slice of its block.
        let base = inner.base;
        let blocks: Vec<Bytes> = inner.blocks.drain(..).map(Bytes::from).collect();
        inner.base += blocks.len() as u64;
        let events = inner
            .entries
            .drain(..)
            .filter_map(|e| {
                let block = blocks.get(usize::try_from(e.block - base).ok()?)?;
                (e.offset + e.len <= block.len()).then(|| block.slice(e.offset..e.offset + e.len))
            })
            .collect();
        Taped {
            events,
            first: inner.first.take(),
            dropped: std::mem::take(&mut inner.dropped),
            after_streamed: inner.after_streamed.take(),
        }
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `Event-Sequence` of the first event taped since the tape started (`None`: none
    /// was).
    pub fn first(&self) -> Option<u64> {
        self.lock().first
    }

    /// The newest `Event-Sequence` taped (0: none).
    pub fn newest(&self) -> u64 {
        self.lock().newest
    }

    /// Drops, from the oldest, the events of `core` numbered up to `sequence` that were taped
    /// at least `grace` before `now`.
    pub fn trim(&self, core: &str, sequence: u64, now: Instant, grace: Duration) {
        let mut inner = self.lock();
        if inner.core.as_deref() != Some(core.as_bytes()) {
            return;
        }
        while let Some(front) = inner.entries.front() {
            if front.sequence > sequence || now.duration_since(front.at) < grace {
                break;
            }
            inner.entries.pop_front();
            inner.release_unused();
        }
    }

    /// Keeps a plain event body if the tape is taping and it is one to keep; `false`: it was not
    /// kept and goes its usual way.
    pub(crate) fn keep(&self, body: &[u8], now: Instant) -> bool {
        if !self.taping() {
            return false;
        }
        let [name, core, sequence] =
            parse::first_headers(body, [b"Event-Name", b"Core-UUID", b"Event-Sequence"]);
        let mut inner = self.lock();
        let Some(taping) = inner.core.as_deref() else {
            return false;
        };
        if core != Some(taping) || matches!(name, Some(b"HEARTBEAT" | b"BACKGROUND_JOB") | None) {
            return false;
        }
        let Some(sequence) = sequence
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return false;
        };
        if inner.after_streamed.is_none() {
            // The same task counts what it streams: every event counted came before this one.
            inner.after_streamed = Some(self.streamed.load(Ordering::Relaxed));
        }
        inner.push(body, sequence, now);
        true
    }
}

impl Inner {
    fn push(&mut self, body: &[u8], sequence: u64, at: Instant) {
        if self.entries.len() >= self.cap
            && let Some(old) = self.entries.pop_front()
        {
            self.dropped = self.dropped.max(old.sequence);
            self.release_unused();
        }
        let fits = self
            .blocks
            .back()
            .is_some_and(|b| b.capacity() - b.len() >= body.len());
        if !fits {
            let block = match self.spare.pop() {
                Some(b) if b.capacity() >= body.len() => b,
                _ => Vec::with_capacity(BLOCK.max(body.len())),
            };
            self.blocks.push_back(block);
        }
        let block = self.base + self.blocks.len() as u64 - 1;
        let Some(last) = self.blocks.back_mut() else {
            return;
        };
        let offset = last.len();
        last.extend_from_slice(body);
        self.entries.push_back(Entry {
            block,
            offset,
            len: body.len(),
            sequence,
            at,
        });
        self.first.get_or_insert(sequence);
        self.newest = self.newest.max(sequence);
    }

    /// Releases the front blocks no kept event is in any more (the last block stays).
    fn release_unused(&mut self) {
        let oldest = self.entries.front().map(|e| e.block);
        while self.blocks.len() > 1 && oldest.is_none_or(|b| b > self.base) {
            self.release_front();
        }
        if oldest.is_none()
            && let Some(last) = self.blocks.back_mut()
        {
            last.clear();
        }
    }

    /// Releases the front block (emptied, kept for reuse while there are few spares).
    fn release_front(&mut self) -> bool {
        let Some(mut block) = self.blocks.pop_front() else {
            return false;
        };
        self.base += 1;
        if self.spare.len() < SPARE.max(self.blocks.len()) && block.capacity() == BLOCK {
            block.clear();
            self.spare.push(block);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, core: &str, sequence: u64, pad: usize) -> Vec<u8> {
        format!(
            "Event-Name: {name}\nCore-UUID: {core}\nEvent-Sequence: {sequence}\nPad: {}\n\n",
            "x".repeat(pad)
        )
        .into_bytes()
    }

    #[test]
    fn keeps_the_events_of_one_process_in_order_until_stopped() {
        let tape = Tape::default();
        let t0 = Instant::now();
        assert!(!tape.keep(&event("DTMF", "core", 1, 0), t0), "not taping");
        tape.start("core", 100);
        tape.streamed();
        tape.streamed();
        assert!(!tape.keep(&event("HEARTBEAT", "core", 2, 0), t0));
        assert!(!tape.keep(&event("BACKGROUND_JOB", "core", 3, 0), t0));
        assert!(!tape.keep(&event("DTMF", "other", 4, 0), t0));
        assert!(!tape.keep(b"Event-Name: DTMF\nCore-UUID: core\n\n", t0));
        assert_eq!(tape.first(), None);
        let kept: Vec<Vec<u8>> = (5..10).map(|s| event("DTMF", "core", s, 10)).collect();
        for e in &kept {
            assert!(tape.keep(e, t0));
        }
        assert_eq!((tape.len(), tape.newest()), (5, 9));
        tape.start("core", 100);
        assert_eq!(tape.len(), 5, "started again: goes on");
        let taped = tape.stop();
        assert_eq!(taped.first, Some(5));
        assert_eq!(taped.after_streamed, Some(2));
        assert_eq!(taped.events, kept);
        assert!(tape.is_empty());
        assert!(!tape.keep(&event("DTMF", "core", 11, 0), t0), "stopped");
    }

    /// Events span many blocks; trimming frees the blocks at the front for reuse, and what is
    /// left reads back byte for byte.
    #[test]
    fn trims_what_was_applied_after_the_grace_and_reuses_its_blocks() {
        let tape = Tape::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(1);
        tape.start("core", 1_000_000);
        let body = |s| event("CUSTOM", "core", s, 3_000);
        for s in 1..=2_000 {
            assert!(tape.keep(&body(s), t0));
        }
        let blocks = tape.lock().blocks.len();
        assert!(blocks > 20, "{blocks} blocks");
        tape.trim("core", 1_200, t0 + Duration::from_millis(500), grace);
        assert_eq!(tape.len(), 2_000, "within the grace");
        tape.trim("other", 1_200, t0 + grace, grace);
        assert_eq!(tape.len(), 2_000, "another process's position");
        tape.trim("core", 1_200, t0 + grace, grace);
        assert_eq!(tape.len(), 800);
        let inner = tape.lock();
        assert!(inner.blocks.len() < blocks / 2 + 2);
        assert!(inner.spare.len() >= SPARE, "{} spare", inner.spare.len());
        assert!(
            inner.spare.len() < blocks - inner.blocks.len(),
            "not every block kept"
        );
        drop(inner);
        for s in 2_001..=2_100 {
            assert!(tape.keep(&body(s), t0 + grace));
        }
        let spare = tape.lock().spare.len();
        for s in 2_101..=2_200 {
            assert!(tape.keep(&body(s), t0 + grace));
        }
        assert!(tape.lock().spare.len() < spare, "spare blocks reused");
        let taped = tape.stop();
        let expected: Vec<Vec<u8>> = (1_201..=2_200).map(body).collect();
        assert_eq!(taped.events, expected);
    }

    #[test]
    fn past_its_cap_the_oldest_go_and_are_counted() {
        let tape = Tape::default();
        let t0 = Instant::now();
        tape.start("core", 3);
        for s in 1..=5 {
            assert!(tape.keep(&event("DTMF", "core", s, 300_000), t0));
        }
        let taped = tape.stop();
        assert_eq!(taped.dropped, 2);
        assert_eq!(taped.events.len(), 3);
        assert_eq!(taped.events[0], event("DTMF", "core", 3, 300_000));
    }
}
