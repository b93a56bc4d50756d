//! Decisions an instance takes on a room read from its own cache (`store/room_cache.rs`) while
//! another instance's change of that room is still on its way to it: Redis's invalidation push
//! travels on the cache's connection, apart from the node's events, so a node event caused by
//! that change can be handled first. A write made on such a read is refused by its `seq` guard
//! and made again on fresh data; a decision that writes nothing is judged again on the room as
//! stored where it would destroy something.

use std::sync::Arc;

use switchyard::conference::ops::{self, JoinAs};
use switchyard::conference::{
    AppId, ChannelFact, ChannelInfo, Effect, Fact, NodePrefix, Observed, Room, RoomId, RoomStatus,
    RoomType, Session, SessionId, SessionState,
};
use switchyard::node::reconciler::{Reconciler, RoomEffect};
use switchyard::node::{AppDirectory, NodeConfig};
use switchyard::store::redis::RedisStore;
use switchyard::store::{Store, update_room};

use crate::common::proxy::Proxy;
use crate::common::redis_server::RedisServer;

const CORE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const DID: &str = "15551230000";

fn app() -> AppId {
    AppId::parse("app1").unwrap()
}

/// A parked call on node `nodeb`.
fn caller() -> Session {
    let channel = uuid::Uuid::new_v4().to_string();
    Session {
        id: SessionId::new(&NodePrefix::parse("nodeb").unwrap(), &channel),
        app: app(),
        did: DID.into(),
        caller_id: "3004".into(),
        caller_name: "Caller".into(),
        state: SessionState::Parked,
        core_uuid: "bbbbbbbb-0000-4000-8000-000000000002".into(),
        created_at: 0,
        answered_at: Some(0),
        ended_at: None,
        hangup_cause: None,
        seq: 1,
    }
}

/// The CHANNEL_CREATE on the room's node of a leg another node carries in for `session`.
fn leg_arrives(room: &RoomId, session: &SessionId, leg: &str, sequence: u64) -> Observed {
    Observed {
        core_uuid: CORE.into(),
        sequence,
        fact: Fact::Channel {
            kind: ChannelFact::Created,
            info: ChannelInfo {
                channel: leg.into(),
                did: room.to_string(),
                caller_id: "3004".into(),
                caller_name: "Caller".into(),
                app_hint: None,
                role: None,
                room: None,
                node_session: Some(session.to_string()),
            },
            cause: None,
        },
    }
}

fn hangs_up(effects: &[RoomEffect], leg: &str) -> bool {
    effects
        .iter()
        .any(|e| matches!(&e.effect, Effect::Cancel { channel } if channel == leg))
}

/// Instance A takes a join of a call on node B into a room on node `nodea`, and writes it; the
/// call's node bridges the call over and the leg arrives on `nodea`, whose owner (instance O)
/// has the room in its cache and has not heard of A's write yet (its Redis replies and pushes
/// are held back). O must not hang the leg up as unexpected: it asks Redis before it does, and
/// ties the leg to the joining member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_whose_join_the_owners_cache_has_not_heard_of_yet_is_not_hung_up() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(format!("127.0.0.1:{}", redis.port)).await;
    let taker = RedisStore::connect(&redis.url()).await.unwrap();
    let owner = Arc::new(
        RedisStore::connect(&format!("redis://{}/", proxy.addr))
            .await
            .unwrap(),
    );
    let nodea = NodePrefix::parse("nodea").unwrap();
    let mut room = Room::new(
        RoomId::new(&nodea, uuid::Uuid::new_v4()),
        app(),
        "spanning".into(),
        RoomType::Conference,
        "control".into(),
        0,
    );
    room.status = RoomStatus::Progressing;
    room.core_uuid = Some(CORE.into());
    taker.create_room(&room, &[]).await.unwrap();
    let mut apps = AppDirectory::new();
    apps.add_app(app(), [DID.to_owned()]);
    let config = NodeConfig::new(nodea, "127.0.0.1:1", "ClueCon");
    let reconciler = Reconciler::new(owner.clone(), Arc::new(config), Arc::new(apps));

    // A leg no join expects is hung up (and the owner now knows the room's app and keeps it).
    let stray = uuid::Uuid::new_v4().to_string();
    let effects = reconciler
        .apply(&leg_arrives(&room.id, &caller().id, &stray, 10), 1)
        .await
        .unwrap();
    assert!(hangs_up(&effects, &stray), "{effects:?}");
    owner.room(&app(), &room.id).await.unwrap().unwrap();
    assert_eq!(owner.cached_rooms(), 1, "the owner keeps the room");

    // What Redis tells the owner from now on waits; A writes the join.
    proxy.hold_replies();
    let session = caller();
    let out = uuid::Uuid::new_v4();
    update_room(&taker, &app(), &room.id, |r| {
        ops::request_bridged_join(r, &session, None, JoinAs::default(), out, 2)
            .map(|applied| ((), applied.events))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();

    let leg = uuid::Uuid::new_v4().to_string();
    let observed = leg_arrives(&room.id, &session.id, &leg, 11);
    let apply = reconciler.apply(&observed, 3);
    tokio::pin!(apply);
    let effects = tokio::select! {
        effects = &mut apply => effects.unwrap(),
        () = proxy.asked_while_held() => {
            // The owner went to Redis: what it asks is answered, with the push before it.
            proxy.release_replies();
            apply.await.unwrap()
        }
    };
    proxy.release_replies();
    assert!(
        !hangs_up(&effects, &leg),
        "the leg of a join the cache had not heard of was hung up: {effects:?}"
    );
    // As Redis holds it (the taker's own cache hears of the owner's write by a push, a moment
    // later).
    let stored = taker.room_fresh(&app(), &room.id).await.unwrap().unwrap();
    let member = stored
        .member_by_session(&session.id)
        .expect("the joining member");
    assert_eq!(
        member.bridge.as_ref().and_then(|b| b.leg.as_deref()),
        Some(leg.as_str()),
        "the leg is tied to the joining member"
    );
}
