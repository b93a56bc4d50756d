//! Talking over the lab: the node's start-talking / stop-talking become the member's `talking`
//! flag and `conference.member.talking` webhooks for the apps that asked for them (and nothing
//! for the others); a mute ends a spurt (the node sends no stop-talking then); a spurt shorter
//! than the talking interval is not told.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use serde_json::Value;
use switchyard::conference::{AppId, EventKind};
use switchyard::server::lab::LabOptions;
use switchyard::store::memory::MemoryStore;

use common::api::{A, B, TestLab, eventually, options};

async fn lab(interval: Duration) -> TestLab<MemoryStore> {
    let options = LabOptions {
        talking_events: vec![AppId::parse(A.0).unwrap()],
        talking_interval: interval,
        ..options()
    };
    TestLab::start(MemoryStore::new(), options).await
}

fn channel(session: &str) -> &str {
    session.split_once('-').map_or("", |(_, c)| c)
}

/// The app's talking events: (session, talking), in order.
async fn talks(t: &TestLab<MemoryStore>, app: (&str, &str)) -> Vec<(String, bool)> {
    t.events(app)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::MemberTalking)
        .map(|e| {
            let who = e.data["uuid"].as_str().unwrap_or_default().to_owned();
            (who, e.data["talking"] == true)
        })
        .collect()
}

async fn talking(t: &TestLab<MemoryStore>, app: (&str, &str), room: &str) -> Value {
    t.members(app, room).await[0]["talking"].clone()
}

/// Whether the simulated node holds the member talking.
fn node_talking(t: &TestLab<MemoryStore>, room: &str, session: &str) -> bool {
    t.node_member(room, session)["flags"]["talking"] == true
}

async fn unmuted_member(
    t: &TestLab<MemoryStore>,
    app: (&str, &str),
    name: &str,
) -> (String, String) {
    let room = t.room(app, name).await;
    let s = t.call(app, "1001").await;
    t.joined(app, &room, &s).await;
    t.patiently(app, &s, "conference/unmute").await;
    eventually("unmuted", || async {
        t.members(app, &room).await[0]["muted"] == false
    })
    .await;
    (room, s)
}

#[tokio::test]
async fn talking_is_told_to_the_apps_that_asked_for_it_and_a_mute_ends_it() {
    let t = lab(Duration::from_millis(100)).await;
    let (room_a, a) = unmuted_member(&t, A, "talkers").await;
    let (room_b, b) = unmuted_member(&t, B, "quiet-app").await;
    // B's caller speaks first: by the time A's is told, B's events have been applied too.
    assert!(t.sim().caller_talk(channel(&b), true));
    eventually("the node holds B's caller talking", || async {
        node_talking(&t, &room_b, &b)
    })
    .await;
    assert!(t.sim().caller_talk(channel(&a), true));
    eventually("A's member talks", || async {
        talking(&t, A, &room_a).await == true
    })
    .await;
    assert_eq!(talks(&t, A).await, [(a.clone(), true)]);
    assert!(
        talks(&t, B).await.is_empty(),
        "B did not ask for talking events"
    );
    assert_eq!(talking(&t, B, &room_b).await, false);

    assert!(t.sim().caller_talk(channel(&a), false));
    eventually("A's member stops", || async {
        talking(&t, A, &room_a).await == false
    })
    .await;
    assert_eq!(talks(&t, A).await, [(a.clone(), true), (a.clone(), false)]);

    // A mute ends a spurt: the node sends no stop-talking, the member's talking ends with the
    // mute, and a muted caller's voice is not told.
    assert!(t.sim().caller_talk(channel(&a), true));
    eventually("talking again", || async {
        talking(&t, A, &room_a).await == true
    })
    .await;
    t.patiently(A, &a, "conference/mute").await;
    eventually("muted, not talking", || async {
        let m = &t.members(A, &room_a).await[0];
        m["muted"] == true && m["talking"] == false
    })
    .await;
    let kinds: Vec<EventKind> = t
        .events(A)
        .await
        .iter()
        .map(|e| e.kind)
        .filter(|k| [EventKind::MemberMuted, EventKind::MemberTalking].contains(k))
        .collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        [EventKind::MemberMuted, EventKind::MemberTalking],
        "{kinds:?}"
    );
    // Unmuted while the caller still speaks: talking again.
    t.patiently(A, &a, "conference/unmute").await;
    eventually("talking after the unmute", || async {
        talking(&t, A, &room_a).await == true
    })
    .await;
    assert_eq!(
        talks(&t, A).await.iter().filter(|(_, on)| *on).count(),
        3,
        "{:?}",
        talks(&t, A).await
    );
}

#[tokio::test]
async fn a_spurt_shorter_than_the_interval_is_not_told() {
    let t = lab(Duration::from_secs(3)).await;
    let (room, a) = unmuted_member(&t, A, "brief").await;
    let c = t.call(A, "1002").await;
    t.joined(A, &room, &c).await;
    t.patiently(A, &c, "conference/unmute").await;
    // A short spurt: start-talking then stop-talking, well inside one interval.
    assert!(t.sim().caller_talk(channel(&a), true));
    eventually("the node holds A talking", || async {
        node_talking(&t, &room, &a)
    })
    .await;
    assert!(t.sim().caller_talk(channel(&a), false));
    eventually("the node holds A quiet", || async {
        !node_talking(&t, &room, &a)
    })
    .await;
    // C starts and keeps talking: told once its interval ends, after A's spurt was applied.
    assert!(t.sim().caller_talk(channel(&c), true));
    eventually("C told talking", || async {
        talks(&t, A).await.contains(&(c.clone(), true))
    })
    .await;
    assert_eq!(talks(&t, A).await, [(c.clone(), true)], "A's spurt told");
}
