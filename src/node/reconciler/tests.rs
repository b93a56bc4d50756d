//! The reconciler's batches against the memory store: a node's facts are applied in the order
//! the node fired them, whichever kind they are.

use std::sync::Arc;

use super::Reconciler;
use crate::conference::ops;
use crate::conference::{
    AppId, ChannelFact, ChannelInfo, ConferenceFact, EventKind, Fact, MemberStatus, NodePrefix,
    Observed, Room, RoomId, RoomStatus, RoomType, Session, SessionId, SessionState, Switch,
};
use crate::node::{AppDirectory, NodeConfig};
use crate::store::memory::MemoryStore;
use crate::store::{Store, update_room};

const CORE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const DID: &str = "15551230000";
const CH: &str = "28ec5c5e-0cdb-4582-983d-48f16177e7f7";

fn app() -> AppId {
    AppId::parse("app1").unwrap()
}

fn prefix() -> NodePrefix {
    NodePrefix::parse("nodea").unwrap()
}

struct Node {
    store: Arc<MemoryStore>,
    reconciler: Reconciler<MemoryStore>,
    room: RoomId,
}

fn conference(room: &RoomId, sequence: u64, fact: ConferenceFact) -> Observed {
    Observed {
        core_uuid: CORE.into(),
        sequence,
        fact: Fact::Conference {
            room: room.to_string(),
            conference_uuid: "conf".into(),
            fact,
        },
    }
}

fn channel(sequence: u64, kind: ChannelFact, cause: Option<&str>) -> Observed {
    Observed {
        core_uuid: CORE.into(),
        sequence,
        fact: Fact::Channel {
            kind,
            info: ChannelInfo {
                channel: CH.into(),
                did: DID.into(),
                caller_id: "1001".into(),
                caller_name: "A".into(),
                app_hint: None,
                role: None,
                room: None,
                node_session: None,
            },
            cause: cause.map(str::to_owned),
        },
    }
}

fn switched(room: &RoomId, sequence: u64, muted: bool) -> Observed {
    let (channel, member_id) = (CH.to_owned(), 7);
    let fact = match muted {
        true => ConferenceFact::MemberMuted { channel, member_id },
        false => ConferenceFact::MemberUnmuted { channel, member_id },
    };
    conference(room, sequence, fact)
}

/// A live room of node `nodea` with one member (member id 7), joined muted (as a join asks) by
/// the node's event numbered 5.
async fn node() -> Node {
    let node = joining().await;
    node.reconciler
        .apply_batch(&[added(&node.room, 5)], 2)
        .await
        .unwrap();
    node
}

/// The node's add-member of the member (id 7, muted).
fn added(room: &RoomId, sequence: u64) -> Observed {
    let added = ConferenceFact::MemberAdded {
        channel: CH.into(),
        member_id: 7,
        speak: false,
        moderator: false,
    };
    conference(room, sequence, added)
}

/// A live room of node `nodea` whose join of a call is on its way to the node.
async fn joining() -> Node {
    let store = Arc::new(MemoryStore::new());
    let mut room = Room::new(
        RoomId::new(&prefix(), uuid::Uuid::new_v4()),
        app(),
        "r".into(),
        RoomType::Conference,
        "control".into(),
        0,
    );
    room.status = RoomStatus::Progressing;
    room.core_uuid = Some(CORE.into());
    store.create_room(&room, &[]).await.unwrap();
    let session = Session {
        id: SessionId::new(&prefix(), CH),
        app: app(),
        did: DID.into(),
        caller_id: "1001".into(),
        caller_name: "A".into(),
        state: SessionState::Parked,
        core_uuid: CORE.into(),
        created_at: 1,
        answered_at: Some(1),
        ended_at: None,
        hangup_cause: None,
        seq: 1,
    };
    store.save_session(&session).await.unwrap();
    update_room(&*store, &app(), &room.id, |r| {
        ops::request_join(r, &session, None, 1).map(|a| ((), a.events))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let mut apps = AppDirectory::new();
    apps.add_app(app(), [DID.to_owned()]);
    let config = NodeConfig::new(prefix(), "127.0.0.1:1", "ClueCon");
    let reconciler = Reconciler::new(store.clone(), Arc::new(config), Arc::new(apps));
    Node {
        store,
        reconciler,
        room: room.id,
    }
}

impl Node {
    async fn room(&self) -> Room {
        self.store.room(&app(), &self.room).await.unwrap().unwrap()
    }

    /// What the application was told, in order.
    async fn told(&self) -> Vec<EventKind> {
        let outbox = self.store.outbox(&app(), None, 1000).await.unwrap();
        outbox.into_iter().map(|e| e.event.kind).collect()
    }

    async fn ask(&self, mut f: impl FnMut(&mut Room) -> crate::conference::Applied + Send) {
        update_room(&*self.store, &app(), &self.room, |r| {
            Ok::<_, ()>(((), f(r).events))
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    }
}

/// The finding of issue 57: unmutes and mutes answered 202, then the session's leave answered
/// 202 and stored, before the node's events of them were applied (they waited for a new owner
/// of the node, or on a store failover), and then all applied in one batch: the unmute-member
/// and mute-member events, the del-member, and the CHANNEL_PARK that follows it. Each switch
/// is told once, in the node's order, then the member has left.
#[tokio::test]
async fn switches_fired_before_a_leave_are_told_when_applied_with_it_in_one_batch() {
    let node = node().await;
    let asked = [false, true, false, true];
    for on in asked {
        node.ask(move |r| {
            let (applied, _) = ops::request_switch(r, CH, Switch::Mute, on, 3).unwrap();
            applied
        })
        .await;
    }
    node.ask(|r| ops::request_leave(r, CH, false, 4).unwrap())
        .await;
    assert_eq!(node.room().await.members[CH].status, MemberStatus::Leaving);
    let room = &node.room;
    let mut batch: Vec<Observed> = asked
        .into_iter()
        .zip(10..)
        .map(|(muted, seq)| switched(room, seq, muted))
        .collect();
    let deleted = ConferenceFact::MemberDeleted {
        channel: CH.into(),
        member_id: 7,
        cause: None,
    };
    batch.push(conference(room, 20, deleted));
    batch.push(channel(21, ChannelFact::Parked, None));
    node.reconciler.apply_batch(&batch, 5).await.unwrap();

    use EventKind::*;
    assert_eq!(
        node.told().await,
        [
            MemberJoining,
            MemberJoined,
            MemberLeaving,
            MemberUnmuted,
            MemberMuted,
            MemberUnmuted,
            MemberMuted,
            MemberLeft,
        ]
    );
    let room = node.room().await;
    assert!(room.members.is_empty());
    let past = room.past_members.last().unwrap();
    assert_eq!((past.status, past.muted), (MemberStatus::Leaved, true));
    // Applied again (a new owner replays what it kept): nothing more is told.
    node.reconciler.apply_batch(&batch, 6).await.unwrap();
    assert_eq!(node.told().await.len(), 8);
}

/// A caller muted and unmuted by the application who hangs up before the node's events of it
/// are applied: the mute-member and unmute-member events, the del-member and the
/// CHANNEL_HANGUP come in one batch. Both switches are told, then the member left (hung up).
#[tokio::test]
async fn switches_fired_before_a_hangup_are_told_when_applied_with_it_in_one_batch() {
    let node = node().await;
    for on in [false, true] {
        node.ask(move |r| {
            let (applied, _) = ops::request_switch(r, CH, Switch::Mute, on, 3).unwrap();
            applied
        })
        .await;
    }
    let room = &node.room;
    let deleted = ConferenceFact::MemberDeleted {
        channel: CH.into(),
        member_id: 7,
        cause: Some("NORMAL_CLEARING".into()),
    };
    let batch = [
        switched(room, 10, false),
        switched(room, 11, true),
        conference(room, 20, deleted),
        channel(21, ChannelFact::HungUp, Some("NORMAL_CLEARING")),
    ];
    node.reconciler.apply_batch(&batch, 5).await.unwrap();

    use EventKind::*;
    assert_eq!(
        node.told().await,
        [
            MemberJoining,
            MemberJoined,
            MemberUnmuted,
            MemberMuted,
            MemberLeft
        ]
    );
    let room = node.room().await;
    let past = room.past_members.last().unwrap();
    assert_eq!(
        past.leave_reason,
        Some(crate::conference::LeaveReason::Hangup)
    );
    let session = SessionId::new(&prefix(), CH);
    let session = node.store.session(&app(), &session).await.unwrap().unwrap();
    assert_eq!(session.state, SessionState::Ended);
}

/// A digit pressed just after the member joined, its DTMF event in the batch of the
/// add-member: told after `joined`, not dropped as a digit of a member still joining.
#[tokio::test]
async fn a_digit_pressed_just_after_joining_is_told_with_the_join_in_one_batch() {
    let node = joining().await;
    let digit = Observed {
        core_uuid: CORE.into(),
        sequence: 6,
        fact: Fact::Dtmf {
            channel: CH.into(),
            digit: "5".into(),
        },
    };
    node.reconciler
        .apply_batch(&[added(&node.room, 5), digit], 2)
        .await
        .unwrap();
    use EventKind::*;
    assert_eq!(node.told().await, [MemberJoining, MemberJoined, MemberDtmf]);
}

/// Issue 57: a room written under a later lease of its node (the instance that took the node
/// over) refuses what an earlier holder writes (an instance paused past its lease, woken):
/// nothing changes, nothing is told, and the earlier holder learns it lost the lease. The new
/// holder's writes go on.
#[tokio::test]
async fn a_room_written_under_a_later_lease_refuses_the_earlier_holders_writes() {
    use std::sync::atomic::Ordering;
    let node = node().await;
    let mut apps = AppDirectory::new();
    apps.add_app(app(), [DID.to_owned()]);
    let config = NodeConfig::new(prefix(), "127.0.0.1:1", "ClueCon");
    let later = Reconciler::new(node.store.clone(), Arc::new(config), Arc::new(apps));
    node.reconciler.fencing.token.store(1, Ordering::Relaxed);
    later.fencing.token.store(2, Ordering::Relaxed);
    // The earlier holder writes while nobody else has: its token is stamped.
    node.reconciler
        .apply_batch(&[switched(&node.room, 10, false)], 3)
        .await
        .unwrap();
    assert_eq!(node.room().await.fences.get(&prefix()), Some(&1));
    // The node's next event, applied by the new holder.
    later
        .apply_batch(&[switched(&node.room, 11, true)], 4)
        .await
        .unwrap();
    let room = node.room().await;
    assert_eq!(room.fences.get(&prefix()), Some(&2));
    assert!(room.members[CH].muted);
    let told = node.told().await.len();
    // The earlier holder wakes up and applies what it had: refused, the room as it was.
    node.reconciler
        .apply_batch(&[switched(&node.room, 12, false)], 5)
        .await
        .unwrap();
    assert_eq!(node.room().await, room);
    assert_eq!(node.told().await.len(), told);
    assert!(node.reconciler.fencing.lost());
    assert!(!later.fencing.lost());
    // The new holder's writes go on.
    later
        .apply_batch(&[switched(&node.room, 13, false)], 6)
        .await
        .unwrap();
    assert!(!node.room().await.members[CH].muted);
    assert_eq!(node.told().await.len(), told + 1);
}
