//! API commands' intents that the node's owner folds into its next write of their room
//! (issue 59, one write per command).
//!
//! A command on a member of a room (a mute, a hold…) is written into the room as asked before
//! it is sent, so that the node's confirmation finds it; then the node's owner writes the room
//! again with the confirmation: two writes of one room a moment apart. When this instance owns
//! the room's node, the API hands the intent to the node's book instead ([`Intents::add`]),
//! sends the command, and waits for the owner's next write of that room, which applies the
//! intents waiting in the book before its events ([`Intents::claim`]): the confirmation
//! usually, one write for both. The API answers only once that write is made, so an
//! acknowledged command is as durable as before. If no write comes within the window (a node
//! that does not confirm, a lease that lapsed), the API takes its intent back and writes it
//! alone, as before ([`Ticket::settle`]), the reconciler's writes held back meanwhile.
//!
//! Commands the API judges meanwhile see the room with the book's intents applied
//! ([`Intents::overlay`]): a repeat is still a repeat, and a `command_uid` answers the same.
//! The book knows rooms, not the store: the reconciler and the room service hand it their
//! writes' outcomes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::conference::{DomainEvent, Room, RoomId};

/// An intent: what the command asks of its room (an error there changes nothing).
pub type IntentOp = dyn Fn(&mut Room) -> Vec<DomainEvent> + Send + Sync;

/// How long the API waits for the owner's write of its intent before it writes the intent
/// alone. The confirmations of the commands that use the book come with the node's answer
/// (FreeSWITCH queues a mute's mute-member before it answers) and are applied within a
/// millisecond or two; the window only bounds a node that does not confirm.
pub const FOLD_WINDOW: Duration = Duration::from_millis(50);

/// How long, past the window, the API waits for the intent's write (the reconciler's under
/// way, or its own alone) before it answers without it (the store is slow or gone; the
/// command was carried out, and a write under way may still land): short, so that a client,
/// or an instance that sent the command on (`api/forward.rs`, 5 s), has its answer before it
/// gives up on the command and takes it for lost.
const CLAIMED_AT_MOST: Duration = Duration::from_secs(1);

/// Where an intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the book, for the next write of its room.
    Waiting,
    /// Taken by a write under way.
    Taken,
    /// Written (or withdrawn): out of the book.
    Done,
}

struct Entry {
    id: u64,
    op: Arc<IntentOp>,
    state: watch::Sender<State>,
}

/// One node's intents waiting for their room's next write.
#[derive(Default)]
pub struct Intents {
    rooms: Mutex<HashMap<RoomId, Vec<Entry>>>,
    next: AtomicU64,
    /// Held by the reconciler from its claims to their outcome ([`Intents::writing`]), and by
    /// a command taking its intent back until it has written it alone (or left it unwritten):
    /// a batch of the node's events begun meanwhile is applied after that write, as a
    /// confirmation is to find its intent; and no intent is ever taken by a write under way
    /// while its command holds this.
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Intents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intents")
            .field("rooms", &self.lock().len())
            .finish()
    }
}

impl Intents {
    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Vec<Entry>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts an intent in the book for `room`'s next write.
    pub fn add(self: &Arc<Self>, room: &RoomId, op: Arc<IntentOp>) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (state, seen) = watch::channel(State::Waiting);
        self.lock()
            .entry(room.clone())
            .or_default()
            .push(Entry { id, op, state });
        Ticket {
            book: self.clone(),
            room: room.clone(),
            id,
            seen,
            sent: false,
        }
    }

    /// Applies every intent in the book for `room` to this copy of it (to judge a command):
    /// those written already change nothing the second time.
    pub fn overlay(&self, room: &mut Room) {
        let ops: Vec<Arc<IntentOp>> = match self.lock().get(&room.id) {
            Some(entries) => entries.iter().map(|e| e.op.clone()).collect(),
            None => return,
        };
        for op in ops {
            op(room);
        }
    }

    /// The right to claim and write (see `writes`): the reconciler holds it from its claims
    /// until it has said how each claim's write went.
    pub async fn writing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Takes the intents waiting for `room` into a write about to be made: the write applies
    /// them first ([`Claim::apply`]) and says how it went ([`Claim::written`]); a claim
    /// dropped unsaid gives them back.
    pub fn claim(self: &Arc<Self>, room: &RoomId) -> Claim {
        let mut taken = Vec::new();
        if let Some(entries) = self.lock().get(room) {
            for e in entries {
                if *e.state.borrow() == State::Waiting {
                    e.state.send_replace(State::Taken);
                    taken.push((e.id, e.op.clone()));
                }
            }
        }
        Claim {
            book: self.clone(),
            // Named only when there is something to end: every room write takes a claim.
            room: (!taken.is_empty()).then(|| room.clone()),
            taken,
            said: false,
        }
    }

    /// Whether no intent waits for a write (tests).
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Ends the intents `ids` of `room`: written (out of the book) or given back.
    fn end(&self, room: &RoomId, ids: &[u64], written: bool) {
        let mut rooms = self.lock();
        let Some(entries) = rooms.get_mut(room) else {
            return;
        };
        entries.retain(|e| {
            if !ids.contains(&e.id) {
                return true;
            }
            if written {
                e.state.send_replace(State::Done);
                false
            } else {
                e.state.send_replace(State::Waiting);
                true
            }
        });
        if entries.is_empty() {
            rooms.remove(room);
        }
    }

    /// Takes a waiting intent out of the book: its op, or `None` when a write has it (or had).
    fn withdraw(&self, room: &RoomId, id: u64) -> Option<Arc<IntentOp>> {
        let mut rooms = self.lock();
        let entries = rooms.get_mut(room)?;
        let at = entries
            .iter()
            .position(|e| e.id == id && *e.state.borrow() == State::Waiting)?;
        let entry = entries.remove(at);
        entry.state.send_replace(State::Done);
        if entries.is_empty() {
            rooms.remove(room);
        }
        Some(entry.op)
    }
}

/// The intents a write of one room took.
pub struct Claim {
    book: Arc<Intents>,
    room: Option<RoomId>,
    taken: Vec<(u64, Arc<IntentOp>)>,
    said: bool,
}

impl Claim {
    /// Applies the intents taken, oldest first; their events.
    pub fn apply(&self, room: &mut Room) -> Vec<DomainEvent> {
        let mut events = Vec::new();
        for (_, op) in &self.taken {
            events.extend(op(room));
        }
        events
    }

    /// How many intents the write took.
    pub fn len(&self) -> usize {
        self.taken.len()
    }

    pub fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }

    /// The write was made (`true`: the intents are written) or not (`false`: they wait again
    /// for the next write, or for their command to write them).
    pub fn written(mut self, written: bool) {
        self.said = true;
        self.end(written);
    }

    fn end(&self, written: bool) {
        if let Some(room) = &self.room {
            let ids: Vec<u64> = self.taken.iter().map(|(id, _)| *id).collect();
            self.book.end(room, &ids, written);
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.said {
            self.end(false);
        }
    }
}

/// What the API holds of an intent it put in the book.
pub struct Ticket {
    book: Arc<Intents>,
    room: RoomId,
    id: u64,
    seen: watch::Receiver<State>,
    /// The command went to the node: dropped now (its request given up), the intent stays
    /// for the room's next write; dropped before, it leaves the book.
    sent: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.sent {
            self.book.withdraw(&self.room, self.id);
        }
    }
}

/// How an intent ended up written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// With the owner's write of its room.
    Folded,
    /// Alone, by its command (no write of the room came within the window).
    Alone,
}

impl Ticket {
    /// The command was sent: the intent is owed to the room whatever happens to its request.
    pub fn sent(&mut self) {
        self.sent = true;
    }

    /// Waits up to `window` for a write of the room to take the intent; past it, takes the
    /// intent back and writes it with `write_alone`, the reconciler's writes held back
    /// meanwhile. The error is `write_alone`'s, or `None` when that did not end within
    /// [`CLAIMED_AT_MOST`] (an intent a write under way has stays for it; one taken back
    /// and not written in time is lost: its command's confirmation is applied without it).
    pub async fn settle<E, F, Fut>(
        mut self,
        window: Duration,
        write_alone: F,
    ) -> Result<Settled, Option<E>>
    where
        F: FnOnce(Arc<IntentOp>) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        self.sent = true;
        let done = |s: &State| *s == State::Done;
        if tokio::time::timeout(window, self.seen.wait_for(done))
            .await
            .is_ok()
        {
            return Ok(Settled::Folded);
        }
        let book = self.book.clone();
        let (room, id) = (self.room.clone(), self.id);
        let alone = async move {
            let _serial = book.writing().await;
            // No write has it now: waiting (taken back here), or written already.
            match book.withdraw(&room, id) {
                Some(op) => write_alone(op).await.map(|()| Settled::Alone).map_err(Some),
                None => Ok(Settled::Folded),
            }
        };
        tokio::time::timeout(CLAIMED_AT_MOST, alone)
            .await
            .unwrap_or(Err(None))
    }

    /// The command was not sent: the intent leaves the book unwritten (`true`), or a write
    /// took it already (`false`: the room holds it, and the caller undoes it as before).
    pub async fn withdraw(mut self) -> bool {
        self.sent = true;
        let book = self.book.clone();
        let _serial = book.writing().await;
        book.withdraw(&self.room, self.id).is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::conference::{AppId, RoomType};

    fn room() -> Room {
        let id = RoomId::parse("abcde-room-3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d").unwrap();
        let app = AppId::parse("app").unwrap();
        Room::new(id, app, "r".into(), RoomType::Conference, "ctl".into(), 0)
    }

    fn rename(to: &'static str) -> Arc<IntentOp> {
        Arc::new(move |r: &mut Room| {
            r.name = to.into();
            Vec::new()
        })
    }

    #[tokio::test]
    async fn a_write_that_takes_an_intent_settles_its_ticket() {
        let book = Arc::new(Intents::default());
        let mut r = room();
        let ticket = book.add(&r.id, rename("a"));
        let claim = book.claim(&r.id);
        assert_eq!(claim.len(), 1);
        claim.apply(&mut r);
        assert_eq!(r.name, "a");
        claim.written(true);
        let settled = ticket
            .settle(Duration::from_secs(1), |_| async { Err::<(), ()>(()) })
            .await;
        assert_eq!(settled, Ok(Settled::Folded));
        assert!(book.is_empty());
    }

    #[tokio::test]
    async fn an_intent_no_write_takes_is_written_alone() {
        let book = Arc::new(Intents::default());
        let r = room();
        let ticket = book.add(&r.id, rename("a"));
        // A write that failed gives it back.
        book.claim(&r.id).written(false);
        let written = std::sync::Mutex::new(None);
        let settled = ticket
            .settle(Duration::from_millis(5), |op| {
                let mut copy = room();
                op(&mut copy);
                *written.lock().unwrap_or_else(|p| p.into_inner()) = Some(copy.name);
                async { Ok::<(), ()>(()) }
            })
            .await;
        assert_eq!(settled, Ok(Settled::Alone));
        assert_eq!(
            written.into_inner().unwrap_or_else(|p| p.into_inner()),
            Some("a".into())
        );
        assert!(book.is_empty());
        // Nothing left for the next write.
        assert!(book.claim(&r.id).is_empty());
    }

    #[tokio::test]
    async fn an_intent_taken_by_a_write_under_way_waits_for_it() {
        let book = Arc::new(Intents::default());
        let r = room();
        let ticket = book.add(&r.id, rename("a"));
        // The reconciler's write: it holds the book's writes from its claim to its outcome.
        let serial = book.writing().await;
        let claim = book.claim(&r.id);
        let settle = tokio::spawn(ticket.settle(Duration::from_millis(1), |_| async {
            Err::<(), &str>("must not be written alone")
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!settle.is_finished());
        claim.written(true);
        drop(serial);
        assert_eq!(settle.await.ok(), Some(Ok(Settled::Folded)));
    }

    /// A batch of the node's events that comes while an intent is being written alone is
    /// applied after that write: its confirmation finds the intent in the room.
    #[tokio::test]
    async fn a_write_waits_for_an_intent_being_written_alone() {
        let book = Arc::new(Intents::default());
        let r = room();
        let ticket = book.add(&r.id, rename("a"));
        let written = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (began, begun) = tokio::sync::oneshot::channel();
        let settle = tokio::spawn({
            let written = written.clone();
            ticket.settle(Duration::from_millis(1), move |_| async move {
                let _ = began.send(());
                // The store's round trip.
                tokio::time::sleep(Duration::from_millis(30)).await;
                written.store(true, Ordering::SeqCst);
                Ok::<(), ()>(())
            })
        });
        begun.await.unwrap();
        let serial = book.writing().await;
        assert!(
            written.load(Ordering::SeqCst),
            "the batch waited for the write alone"
        );
        assert!(book.claim(&r.id).is_empty());
        drop(serial);
        assert_eq!(settle.await.ok(), Some(Ok(Settled::Alone)));
    }

    #[tokio::test]
    async fn a_withdrawn_intent_is_never_applied() {
        let book = Arc::new(Intents::default());
        let mut r = room();
        let ticket = book.add(&r.id, rename("a"));
        let mut view = r.clone();
        book.overlay(&mut view);
        assert_eq!(view.name, "a");
        assert!(ticket.withdraw().await);
        book.claim(&r.id).apply(&mut r);
        assert_eq!(r.name, "r");
        // A claim dropped unsaid gives its intents back.
        let mut again = book.add(&r.id, rename("b"));
        again.sent();
        drop(book.claim(&r.id));
        assert_eq!(book.claim(&r.id).len(), 1);
        // A ticket dropped after its command was sent leaves the intent for the next write;
        // one dropped before takes it out.
        drop(again);
        assert_eq!(book.claim(&r.id).len(), 1);
        let unsent = book.add(
            &RoomId::parse("abcde-room-00000000-5e6f-4a7b-8c9d-0e1f2a3b4c5d").unwrap(),
            rename("c"),
        );
        drop(unsent);
        assert_eq!(book.lock().len(), 1);
    }
}
