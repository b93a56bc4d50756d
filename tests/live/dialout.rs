//! Dial-out (`POST /api/v1/conferences/{room_id}/participants`) on a real FreeSWITCH, with SIPp
//! as the called party: an answered call rings, is answered and joins the room as asked (the
//! application's session and member); a busy one fails with `busy` and USER_BUSY; one that rings
//! and is never answered fails with `no_answer` at its timeout; a room deleted while a call
//! rings cancels it. Without a FreeSWITCH it is compiled and reported as ignored (see
//! `tests/live/conference.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::live;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;

use common::sipp::{Answer, Callee};
use live::Live;

/// Dials the callee on `port` into `room` through the API; the participant's session id.
async fn dial(t: &Live, room: &str, port: u16, extra: Value) -> String {
    let mut body = json!({
        "to": format!("sip:100@127.0.0.1:{port}"),
        "caller_id": "+15550001111",
        "caller_id_name": "Switchyard",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = t
        .post(&format!("/api/v1/conferences/{room}/participants"), body)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "dialing", "{r:?}");
    r.body["uuid"].as_str().unwrap().to_owned()
}

/// The participant's dial-out webhooks and member events, in order.
async fn told(t: &Live, room: &str, session: &str) -> Vec<(EventKind, Value)> {
    t.events(room)
        .await
        .into_iter()
        .filter(|e| e.data["uuid"] == session)
        .map(|e| (e.kind, e.data))
        .collect()
}

async fn kinds(t: &Live, room: &str, session: &str) -> Vec<EventKind> {
    told(t, room, session)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect()
}

async fn failure(t: &Live, room: &str, session: &str) -> Value {
    t.eventually("the dial-out failed", || async {
        told(t, room, session)
            .await
            .iter()
            .any(|(k, _)| *k == EventKind::ParticipantFailed)
    })
    .await;
    let events = told(t, room, session).await;
    let (kind, data) = events.last().cloned().unwrap();
    assert_eq!(kind, EventKind::ParticipantFailed, "{events:?}");
    data
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_dialed_callee_joins_when_answered_and_a_busy_or_silent_one_says_why() {
    let t = Live::start().await;
    let room = t.room("dial-out").await;

    // Answered: rings, answers, joins unmuted as asked, and is the app's session in the room.
    let callee = Callee::start(Answer::Yes);
    let session = dial(
        &t,
        &room,
        callee.1,
        json!({ "muted": false, "moderator": true }),
    )
    .await;
    t.eventually("the answered callee is a member", || async {
        t.members(&room)
            .await
            .iter()
            .any(|m| m["uuid"] == session.as_str())
    })
    .await;
    let member = t
        .members(&room)
        .await
        .into_iter()
        .find(|m| m["uuid"] == session.as_str())
        .unwrap();
    assert_eq!(member["muted"], false, "{member}");
    assert_eq!(member["moderator"], true, "{member}");
    assert_eq!(
        kinds(&t, &room, &session).await,
        [
            EventKind::ParticipantRinging,
            EventKind::ParticipantAnswered,
            EventKind::MemberJoined
        ]
    );
    assert_eq!(t.session(&session).await["room_id"], room.as_str());
    // The node has it as asked: it speaks.
    let channel = session.split_once('-').unwrap().1.to_owned();
    let flags = t.node_flags(&room, &channel).await;
    assert_eq!(flags["can_speak"], true, "{flags}");
    let r = t
        .post(
            &format!("/api/v1/sessions/{session}/commands/hangup"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("the hung-up callee left the room", || async {
        t.members(&room).await.is_empty()
    })
    .await;
    drop(callee);

    // Busy: 486 → busy, USER_BUSY; never a member.
    let busy = Callee::start(Answer::Busy);
    let session = dial(&t, &room, busy.1, json!({})).await;
    let failed = failure(&t, &room, &session).await;
    assert_eq!(failed["reason"], "busy", "{failed}");
    assert_eq!(failed["hangup_cause"], "USER_BUSY", "{failed}");
    assert_eq!(told(&t, &room, &session).await.len(), 1);
    drop(busy);

    // Rings and is never answered: ringing, then no_answer at the timeout.
    let silent = Callee::start(Answer::Never);
    let session = dial(&t, &room, silent.1, json!({ "timeout": 2 })).await;
    let failed = failure(&t, &room, &session).await;
    assert_eq!(failed["reason"], "no_answer", "{failed}");
    assert_eq!(failed["hangup_cause"], "NO_ANSWER", "{failed}");
    assert_eq!(
        kinds(&t, &room, &session).await,
        [EventKind::ParticipantRinging, EventKind::ParticipantFailed]
    );
    drop(silent);

    // A room deleted while a call rings cancels it; the call is gone from the node.
    let ringing = Callee::start(Answer::Never);
    let doomed = t.room("doomed").await;
    let session = dial(&t, &doomed, ringing.1, json!({ "timeout": 30 })).await;
    t.eventually("it rings", || async {
        t.get(&format!("/api/v1/conferences/{doomed}")).await.body["dialing"][0]["state"]
            == "ringing"
    })
    .await;
    let r = t.delete(&format!("/api/v1/conferences/{doomed}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let failed = failure(&t, &doomed, &session).await;
    assert_eq!(failed["reason"], "cancelled", "{failed}");
    let channel = session.split_once('-').unwrap().1.to_owned();
    t.eventually("the node hung the call up", || async {
        !t.channel_exists(&channel).await
    })
    .await;
    drop(ringing);
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_number_is_dialed_through_the_nodes_gateway() {
    // The carrier is a SIPp callee; the node's gateway `carrier` points at it.
    let carrier = Callee::start(Answer::Yes);
    let proxy = format!("127.0.0.1:{}", carrier.1);
    let t = Live::start_with_node_env(&[("FS_CARRIER_PROXY", &proxy)]).await;
    let room = t.room("dial-a-number").await;
    // A number the app may not call is refused before anything is dialed.
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/participants"),
            json!({ "to": "+4930123456" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/participants"),
            json!({ "to": "+15557654321", "caller_id": "+15550001111" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let session = r.body["uuid"].as_str().unwrap().to_owned();
    t.eventually("the number answered and joined", || async {
        t.members(&room)
            .await
            .iter()
            .any(|m| m["uuid"] == session.as_str())
    })
    .await;
    let member = t
        .members(&room)
        .await
        .into_iter()
        .find(|m| m["uuid"] == session.as_str())
        .unwrap();
    assert_eq!(member["did"], "+15557654321", "{member}");
    assert_eq!(member["muted"], true, "{member}");
    // The node dialed the number at the carrier: the leg's destination is the number.
    let channel = session.split_once('-').unwrap().1.to_owned();
    let dest = t
        .node_api(&format!("uuid_getvar {channel} sip_req_uri"))
        .await;
    assert!(dest.starts_with(&format!("+15557654321@{proxy}")), "{dest}");
    drop(carrier);
    t.finish().await;
}
