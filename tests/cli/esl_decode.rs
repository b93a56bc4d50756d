//! `switchyard esl decode` as a newcomer runs it: JSON lines a person (or jq) can read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn fixture_path(name: &str) -> String {
    format!("{}/fixtures/esl/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn decode_file(name: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["esl", "decode", &fixture_path(name)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn decode_prints_one_json_object_per_frame_with_decoded_events() {
    let frames = decode_file("01_event_plain_ALL.recv.raw");
    assert_eq!(frames.len(), 191);
    assert_eq!(frames[0]["content_type"], "auth/request");
    assert_eq!(frames[0]["body"], Value::Null);
    assert_eq!(frames[0]["event"], Value::Null);
    assert_eq!(frames[1]["headers"]["Reply-Text"], "+OK accepted");
    let add = frames
        .iter()
        .find(|f| f["event"]["headers"]["Action"] == "add-member")
        .expect("an add-member event");
    assert_eq!(add["content_type"], "text/event-plain");
    let headers = &add["event"]["headers"];
    assert_eq!(headers["Event-Subclass"], "conference::maintenance");
    assert_eq!(headers["Member-ID"], "1");
    assert_eq!(headers["Caller-Caller-ID-Name"], "Outbound Call");
    // The repeated Conference-Name keeps its first value; the map has it once.
    assert_eq!(headers["Conference-Name"], "room1");
    let job = frames
        .iter()
        .find(|f| f["event"]["headers"]["Event-Name"] == "BACKGROUND_JOB")
        .unwrap();
    assert!(job["event"]["body"].as_str().unwrap().starts_with("+OK "));
    let last = frames.last().unwrap();
    assert_eq!(last["content_type"], "text/disconnect-notice");
    assert!(
        last["body"]
            .as_str()
            .unwrap()
            .starts_with("Disconnected, goodbye.")
    );
}

#[test]
fn decode_reads_json_events_the_same_way() {
    let frames = decode_file("02_event_json_ALL.recv.raw");
    assert_eq!(frames.len(), 193);
    let add = frames
        .iter()
        .find(|f| f["event"]["headers"]["Action"] == "add-member")
        .unwrap();
    assert_eq!(add["content_type"], "text/event-json");
    assert_eq!(
        add["event"]["headers"]["Event-Subclass"],
        "conference::maintenance"
    );
    assert_eq!(add["event"]["headers"]["Member-ID"], "4");
}

#[test]
fn decode_reads_stdin_and_fails_clearly_on_garbage_after_printing_good_frames() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["esl", "decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Content-Type: auth/request\n\nthis is not a header\n\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("after 1 frames"), "{stderr}");
    assert!(stderr.contains("malformed header line"), "{stderr}");
}
