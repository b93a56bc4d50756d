//! Dial-out's originate (`node::dialout`, not wired to the API yet) on a real FreeSWITCH, with
//! SIPp as the called party: an answered call joins the room at once, muted, and the controller
//! takes it as the application's session and member (by its `switchyard_app_id`); a busy one
//! fails with FreeSWITCH's cause. Without a FreeSWITCH it is compiled and reported as ignored
//! (see `tests/live_conference.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/live.rs"]
mod live;

use std::process::{Child, Command, Stdio};

use serde_json::json;
use switchyard::conference::RoomId;
use switchyard::node::dialout::{Destination, Dial, originate};

use live::{Live, PREFIX};

/// A SIPp UAS on a free port, killed when dropped: SIPp's built-in `uas` (answers), or a
/// scenario that answers every INVITE `486 Busy Here`.
struct Callee(Child, u16);

const BUSY: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy callee">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SYB[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"#;

impl Callee {
    fn start(busy: bool) -> Callee {
        let port = common::freeswitch::free_udp_and_tcp_port();
        let mut cmd = Command::new("sipp");
        if busy {
            let path = std::env::temp_dir().join(format!("switchyard-busy-{}.xml", port));
            std::fs::write(&path, BUSY).unwrap();
            cmd.arg("-sf").arg(path);
        } else {
            cmd.args(["-sn", "uas"]);
        }
        // SIPp's own stderr says why it stopped (a port taken, a bad scenario).
        let log = std::env::temp_dir().join(format!("switchyard-callee-{port}.log"));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = cmd
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string()])
            // A free RTP port: SIPp's default (6000) may be anyone's.
            .args(["-mp", &common::sipp::media_port().to_string()])
            .args(["-m", "1", "-nostdin"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("sipp starts (scripts/test-deps.sh installs it)");
        // Listening once the kernel lists its socket. (Probing by binding the port ourselves
        // would race SIPp's own bind and make it exit.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !udp_listening(port) {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || std::time::Instant::now() > deadline {
                panic!(
                    "sipp never listened on {port} ({exited:?}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Callee(child, port)
    }
}

/// Whether a UDP socket is bound to 127.0.0.1:`port` (from the kernel's `/proc/net/udp`).
fn udp_listening(port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|table| {
        table
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
    })
}

impl Drop for Callee {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dial(t: &Live, room: &RoomId, channel: &uuid::Uuid, port: u16) -> String {
    let to = Destination::parse(&format!("sip:100@127.0.0.1:{port}")).unwrap();
    let endpoint = to.endpoint("inbound", None).unwrap();
    originate(&Dial {
        room,
        channel,
        endpoint: &endpoint,
        app: t.app().0,
        caller_id_number: Some("+15550001111"),
        caller_id_name: Some("Switchyard"),
        timeout_secs: 10,
        profile: "switchyard",
        muted: true,
        moderator: false,
    })
    .unwrap()
    .as_str()
    .to_owned()
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_dialed_call_joins_the_room_when_answered_and_a_busy_one_says_why() {
    let t = Live::start().await;
    let room = t.room("dial-out").await;
    let room_id = RoomId::parse(&room).unwrap();

    let callee = Callee::start(false);
    let channel = uuid::Uuid::new_v4();
    let reply = t.node_api(&dial(&t, &room_id, &channel, callee.1)).await;
    assert_eq!(reply.trim(), format!("+OK {channel}"), "{reply}");
    let session = format!("{PREFIX}-{channel}");
    t.eventually("the answered call is a muted member", || async {
        t.members(&room)
            .await
            .iter()
            .any(|m| m["uuid"] == session.as_str() && m["muted"] == true)
    })
    .await;
    assert_eq!(t.session(&session).await["room_id"], room.as_str());
    let r = t
        .post(
            &format!("/api/v1/sessions/{session}/commands/hangup"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::ACCEPTED, "{r:?}");
    t.eventually("the hung-up call left the room", || async {
        t.members(&room).await.is_empty()
    })
    .await;
    drop(callee);

    let busy = Callee::start(true);
    let channel = uuid::Uuid::new_v4();
    let reply = t.node_api(&dial(&t, &room_id, &channel, busy.1)).await;
    assert_eq!(reply.trim(), "-ERR USER_BUSY", "{reply}");
    // Its session (the app's, by its variable) ends with the cause; it never joined.
    let session = format!("{PREFIX}-{channel}");
    t.eventually("the busy call's session ended", || async {
        let r = t.get(&format!("/api/v1/sessions/{session}")).await;
        r.status == axum::http::StatusCode::NOT_FOUND || r.body["state"] == "ended"
    })
    .await;
    assert!(t.members(&room).await.is_empty());
    t.finish().await;
}
