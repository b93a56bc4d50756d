//! Waking FreeSWITCH's side of a connection while events are expected on it.
//!
//! mod_event_socket serves each connection on a thread of its own. When that thread finds
//! nothing to read and nothing queued for it, it waits on the socket for up to 20 ms
//! (`read_packet`: `switch_poll(…, 20000)`) before it looks at the connection's event queue
//! again; any byte that arrives ends the wait. So an event fired while the thread waits reaches
//! the client up to 20 ms late, unless the client sends something. A lone line feed is such a
//! byte that means nothing: a command's leading CR and LF are skipped.
//!
//! A [`Waker`] is how the layers above say that events are expected soon (a command that
//! causes them was just sent on another connection): for the window they give, the connection
//! task writes one `\n` every [`ClientConfig::wake_interval`](super::ClientConfig), and
//! nothing otherwise. A command that names the event it causes ([`ApiCommand::awaiting`])
//! keeps the connection awake only until an event with those headers arrives on it (or the
//! window ends): FreeSWITCH fires a mute's event before it answers the command, so a line
//! feed or two wake the thread for it, where a whole window would be a hundred.
//!
//! [`ApiCommand::awaiting`]: super::ApiCommand::awaiting

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::codec::Encoder;

use super::codec::EslCodec;
use super::error::CodecError;
use super::event::Event;

/// The most events awaited at once on one connection; a command past it wakes the connection
/// for its whole window instead.
const MOST_AWAITED: usize = 1024;

/// An event awaited: its headers, and until when (µs after [`WakeState::base`]).
#[derive(Debug)]
struct Awaited {
    headers: Vec<(&'static str, String)>,
    until: u64,
}

/// The byte written to wake the node's connection thread.
pub(crate) struct Nudge;

impl Encoder<Nudge> for EslCodec {
    type Error = CodecError;

    fn encode(&mut self, _: Nudge, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(b"\n");
        Ok(())
    }
}

/// Shared between a connection's [`Waker`]s and its task.
#[derive(Debug)]
pub(crate) struct WakeState {
    base: Instant,
    /// Until when to nudge, in µs after `base` (0: never asked).
    until: AtomicU64,
    /// Told when a window opens while none was open.
    opened: Notify,
    /// Told when a line feed should go at once ([`Waker::nudge_now`]).
    now: Notify,
    /// Events awaited, each until it arrives or its window ends.
    awaited: Mutex<Vec<Awaited>>,
    /// How many are in `awaited`: an event is looked at only while some are.
    awaiting: AtomicUsize,
}

impl WakeState {
    pub(crate) fn new() -> Arc<WakeState> {
        Arc::new(WakeState {
            base: Instant::now(),
            until: AtomicU64::new(0),
            opened: Notify::new(),
            now: Notify::new(),
            awaited: Mutex::new(Vec::new()),
            awaiting: AtomicUsize::new(0),
        })
    }

    fn awaited(&self) -> std::sync::MutexGuard<'_, Vec<Awaited>> {
        // A panic while holding the lock leaves a list that is still consistent.
        self.awaited.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An event arrived on the connection: the first awaited one it matches is met.
    pub(crate) fn heard(&self, event: &Event) {
        if self.awaiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut awaited = self.awaited();
        // Each header name looked up once in the event, however many awaited events name it.
        let mut values: Vec<(&'static str, Option<std::borrow::Cow<'_, str>>)> = Vec::new();
        let mut matches = |name: &'static str, want: &str| {
            let k = match values.iter().position(|(n, _)| *n == name) {
                Some(k) => k,
                None => {
                    values.push((name, event.header(name)));
                    values.len() - 1
                }
            };
            values[k].1.as_deref() == Some(want)
        };
        let found = awaited.iter().position(|a| {
            a.headers
                .iter()
                .all(|(name, value)| matches(name, value.as_str()))
        });
        if let Some(i) = found {
            awaited.swap_remove(i);
            self.awaiting.store(awaited.len(), Ordering::Release);
        }
    }

    /// Whether an awaited event still counts at `now` (those whose window ended are dropped).
    fn awaits_at(&self, now: u64) -> bool {
        if self.awaiting.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut awaited = self.awaited();
        awaited.retain(|a| a.until > now);
        self.awaiting.store(awaited.len(), Ordering::Release);
        !awaited.is_empty()
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_micros() as u64
    }

    /// Whether a window is open at `now`: a plain one, or an awaited event's.
    pub(crate) fn open_at(&self, now: Instant) -> bool {
        let now = self.micros(now);
        self.until.load(Ordering::Acquire) > now || self.awaits_at(now)
    }

    /// Resolves when a window was opened after the last time this was polled to completion.
    pub(crate) async fn opened(&self) {
        self.opened.notified().await;
    }

    /// Resolves when a line feed was asked for at once ([`Waker::nudge_now`]).
    pub(crate) async fn nudge_asked(&self) {
        self.now.notified().await;
    }
}

/// Asks a connection to keep FreeSWITCH's side of it awake for a while. Cheap to clone; a
/// waker of a closed connection does nothing.
#[derive(Debug, Clone)]
pub struct Waker(pub(crate) Arc<WakeState>);

impl Waker {
    /// Keeps the connection awake from now until at least `window` from now.
    pub fn wake_for(&self, window: Duration) {
        if window.is_zero() {
            return;
        }
        let state = &self.0;
        let now = Instant::now();
        let until = state.micros(now + window);
        let before = state.until.fetch_max(until, Ordering::AcqRel);
        // The task may have seen the last window close: it nudges again only when told.
        if before <= state.micros(now) {
            state.opened.notify_one();
        }
    }

    /// Has one line feed written at once, if a window is open: the command that opened it was
    /// answered, and FreeSWITCH queues the events a command fires before it answers (a mute's),
    /// so they need not wait for the next one.
    pub fn nudge_now(&self) {
        self.0.now.notify_one();
    }

    /// Keeps the connection awake until an event with every one of `headers` arrives on it, or
    /// `window` from now at most. No headers: the whole window ([`Waker::wake_for`]).
    pub fn wake_until_heard(&self, headers: &[(&'static str, String)], window: Duration) {
        if window.is_zero() {
            return;
        }
        let state = &self.0;
        let now = Instant::now();
        {
            let mut awaited = state.awaited();
            if headers.is_empty() || awaited.len() >= MOST_AWAITED {
                drop(awaited);
                return self.wake_for(window);
            }
            awaited.push(Awaited {
                headers: headers.to_vec(),
                until: state.micros(now + window),
            });
            state.awaiting.store(awaited.len(), Ordering::Release);
        }
        // Told every time: a task already nudging is not waiting for it (`opened` is polled
        // only while no nudge is due), and one told twice nudges once.
        state.opened.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_window_is_open_until_it_ends_and_extends_only_forward() {
        let state = WakeState::new();
        let waker = Waker(state.clone());
        assert!(!state.open_at(Instant::now()), "no window asked yet");
        waker.wake_for(Duration::from_millis(100));
        tokio::time::timeout(Duration::from_millis(1), state.opened())
            .await
            .expect("opening a window tells the task");
        waker.wake_for(Duration::from_millis(10));
        let start = Instant::now();
        assert!(state.open_at(start + Duration::from_millis(99)));
        assert!(
            !state.open_at(start + Duration::from_millis(101)),
            "a shorter window does not shorten the open one, nor extend it"
        );
        tokio::time::advance(Duration::from_millis(150)).await;
        waker.wake_for(Duration::ZERO);
        assert!(
            !state.open_at(Instant::now()),
            "a zero window opens nothing"
        );
        waker.wake_for(Duration::from_millis(5));
        tokio::time::timeout(Duration::from_millis(1), state.opened())
            .await
            .expect("a window opened after the last one closed tells the task again");
    }
}
