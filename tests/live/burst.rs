//! A burst on a real FreeSWITCH: 30 SIP calls arrive within 1.2 s (as fast as the node's
//! `sessions-per-second` lets them), are joined into three rooms at once, unmuted at once; the store, the API and the node agree at every step, and
//! deleting the rooms frees every call for the next room.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::live;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use futures_util::future::join_all;

use live::Live;

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_thirty_calls_at_once_are_joined_unmuted_and_freed() {
    let t = Live::start().await;
    thirty_calls(&t).await;
    t.finish().await;
}

async fn thirty_calls(t: &Live) {
    let sessions = t.burst(5000, 30).await;
    let distinct: BTreeSet<&String> = sessions.iter().collect();
    assert_eq!(distinct.len(), 30, "thirty distinct sessions");
    let listed = t.get("/api/v1/sessions?limit=100").await;
    assert_eq!(listed.body["sessions"].as_array().unwrap().len(), 30);

    let rooms = vec![t.room("a").await, t.room("b").await, t.room("c").await];
    let joins = sessions.iter().enumerate().map(|(i, s)| {
        let room = rooms[i % 3].clone();
        async move { t.join(s, &room).await }
    });
    for r in join_all(joins).await {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    for room in &rooms {
        t.eventually("ten members confirmed in each room", || async {
            t.members(room).await.len() == 10
        })
        .await;
        assert_eq!(t.store_members(room).await, t.node_members(room).await);
    }

    // Everyone unmuted at once: the node and the API agree.
    let unmutes = sessions.iter().map(|s| t.command(s, "conference/unmute"));
    for r in join_all(unmutes).await {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    for room in &rooms {
        t.eventually("the room is unmuted on the node and in the API", || async {
            let node = t.node_members(room).await;
            node.len() == 10 && node.iter().all(|m| !m.2) && t.store_members(room).await == node
        })
        .await;
    }

    // The rooms end; every call is free for the next room at once.
    for room in &rooms {
        let r = t.delete(&format!("/api/v1/conferences/{room}")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    for s in &sessions {
        t.eventually("the session is free", || async {
            t.session(s).await["room_id"].is_null()
        })
        .await;
    }
    let next = t.room("next").await;
    let joins = sessions.iter().map(|s| t.join(s, &next));
    for r in join_all(joins).await {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    t.eventually("all thirty in the next room", || async {
        t.members(&next).await.len() == 30
    })
    .await;
}
