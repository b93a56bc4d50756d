//! A member moved between two rooms of one real node (issue 39, `conference/move`): the caller
//! goes from hearing one room to hearing the other with no park between (the longest stretch
//! it heard no tone, measured on its own channel, under 300 ms), and the application hears one
//! `conference.member.moved`.

use crate::live;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::EventKind;

use live::{Live, channel_of, notice};

/// What a caller hears from now until [`Tap::stop`], recorded on its channel (stereo: what it
/// hears is the right side).
struct Tap {
    channel: String,
    on_node: String,
    local: std::path::PathBuf,
    started: Instant,
}

impl Tap {
    async fn start(t: &Live, channel: &str) -> Tap {
        let name = format!("switchyard-tap-{}.wav", uuid::Uuid::new_v4().simple());
        let on_node = format!("{}/{name}", t.settings.recordings_dir);
        let set = t
            .node_api(&format!("uuid_setvar {channel} RECORD_STEREO true"))
            .await;
        assert!(set.starts_with("+OK"), "{set}");
        let started = Instant::now();
        let rec = t
            .node_api(&format!("uuid_record {channel} start {on_node}"))
            .await;
        assert!(rec.starts_with("+OK"), "{rec}");
        Tap {
            channel: channel.to_owned(),
            on_node,
            local: t.settings.local_recordings().join(name),
            started,
        }
    }

    /// The longest stretch (ms, in 20 ms windows, the first and last 200 ms left out) in which
    /// the caller heard no 440 Hz tone, and the share of the wall-clock time the file holds (a
    /// recorder that dropped time would hide a gap).
    async fn stop(self, t: &Live) -> (u64, f64) {
        let wall = self.started.elapsed();
        let stop = t
            .node_api(&format!(
                "uuid_record {} stop {}",
                self.channel, self.on_node
            ))
            .await;
        assert!(stop.starts_with("+OK"), "{stop}");
        let mut bytes = Vec::new();
        t.eventually("the tap's file is complete", || {
            bytes = std::fs::read(&self.local).unwrap_or_default();
            std::future::ready(bytes.len() > 44)
        })
        .await;
        let _ = std::fs::remove_file(&self.local);
        live::longest_unheard(bytes, wall)
    }
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_member_moves_between_rooms_of_a_node_hearing_no_park() {
    let t = Live::start().await;
    let (main, breakout) = (t.room("main").await, t.room("breakout").await);
    // A speaks in the main room and C in the breakout room (each caller's tone); B listens,
    // and speaks too (it does not hear itself).
    let (a, b, c) = (
        t.call("1001").await,
        t.call("1002").await,
        t.call("1003").await,
    );
    t.joined(&main, &a).await;
    t.joined(&main, &b).await;
    t.joined(&breakout, &c).await;
    for s in [&a, &b, &c] {
        let r = t
            .patiently(
                "POST",
                &format!("/api/v1/sessions/{s}/commands/conference/unmute"),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    t.eventually("A and C are heard", || async {
        let (m, br) = (t.members(&main).await, t.members(&breakout).await);
        m.iter().chain(&br).filter(|x| x["muted"] == false).count() == 3
    })
    .await;
    let b_ch = channel_of(&b).to_owned();
    let tap = Tap::start(&t, &b_ch).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let seen = t.events(&breakout).await.len();
    let asked = Instant::now();
    let r = t
        .patiently(
            "POST",
            &format!("/api/v1/sessions/{b}/commands/conference/move"),
            json!({ "room_id": breakout }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("B is in the breakout room", || async {
        t.members(&breakout)
            .await
            .iter()
            .any(|m| m["uuid"] == b.as_str())
    })
    .await;
    let took = asked.elapsed();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (gap, held) = tap.stop(&t).await;
    notice(&format!(
        "moved in {took:?}; B's longest stretch hearing no tone: {gap} ms (the tap holds {:.0} % of the time)",
        held * 100.0
    ));
    assert!(
        held > 0.9,
        "the tap holds {held:.2} of the time: it dropped some"
    );
    assert!(gap < 300, "B heard {gap} ms of nothing on its way");
    // Told once, by the room B went to; the main room said nothing of it.
    let moved: Vec<EventKind> = t
        .events(&breakout)
        .await
        .iter()
        .skip(seen)
        .map(|e| e.kind)
        .collect();
    assert_eq!(moved, [EventKind::MemberMoved], "{moved:?}");
    let main_told: Vec<EventKind> = t.events(&main).await.iter().map(|e| e.kind).collect();
    assert!(
        !main_told.contains(&EventKind::MemberLeft)
            && !main_told.contains(&EventKind::MemberLeaving),
        "{main_told:?}"
    );
    assert_eq!(t.members(&main).await.len(), 1, "A stays");
    // The other side: B came unmuted as it was, so C (muted now, listening) hears it; A, alone
    // in the main room, hears nobody.
    let r = t
        .patiently(
            "POST",
            &format!("/api/v1/sessions/{c}/commands/conference/mute"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("C is muted", || async {
        t.members(&breakout)
            .await
            .iter()
            .any(|m| m["uuid"] == c.as_str() && m["muted"] == true)
    })
    .await;
    let c_hears = live::tone_share(&t.ear(channel_of(&c), 2000).await, 440.0);
    let a_hears = live::tone_share(&t.ear(channel_of(&a), 2000).await, 440.0);
    notice(&format!(
        "after the move: C hears B in {:.0} %, A hears anyone in {:.0} % of 2 s",
        c_hears * 100.0,
        a_hears * 100.0
    ));
    assert!(c_hears > 0.4, "the breakout room does not hear B");
    assert!(a_hears < 0.1, "the main room still hears B");
    t.finish().await;
}
