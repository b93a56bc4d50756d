//! The codec against real FreeSWITCH bytes: every capture in `fixtures/esl/` decodes, frame by
//! frame, to what its `.summary.txt` (made independently from the same bytes) says; the same
//! bytes cut at any point decode to the same frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use bytes::BytesMut;
use proptest::prelude::*;
use switchyard::esl::{ContentType, EslCodec, Event, Frame, Limits, decode_all};
use tokio_util::codec::Decoder;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/esl")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_recv_captures() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/esl");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".recv.raw"))
        .collect();
    names.sort();
    names
}

/// One line of a `.summary.txt`: the content type and the `Key=Value` fields after it.
struct SummaryLine {
    content_type: String,
    fields: Vec<(String, String)>,
    /// Everything after `Reply-Text=`, which may contain spaces.
    reply_text: Option<String>,
}

fn summary(name: &str) -> Vec<SummaryLine> {
    let text = String::from_utf8(fixture(name)).unwrap();
    text.lines()
        .filter(|l| l.starts_with('['))
        .map(|line| {
            let rest = &line[line.find("] ").unwrap() + 2..];
            let mut tokens = rest.split_whitespace();
            assert!(tokens.next().unwrap().starts_with('#'));
            let content_type = tokens.next().unwrap().to_owned();
            let fields = tokens
                .filter_map(|t| t.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            // The summary appends a bgapi reply's Job-UUID header after its Reply-Text.
            let reply_text = rest.find("Reply-Text=").map(|i| {
                let text = &rest[i + "Reply-Text=".len()..];
                let text = text.split(" Job-UUID=").next().unwrap_or(text);
                text.trim_end().to_owned()
            });
            SummaryLine {
                content_type,
                fields,
                reply_text,
            }
        })
        .collect()
}

/// The event headers the summaries record; none of their values contain spaces.
const EVENT_FIELDS: &[&str] = &[
    "Event-Name",
    "Event-Subclass",
    "Action",
    "Unique-ID",
    "Member-ID",
    "Channel-State",
    "Answer-State",
    "Hangup-Cause",
    "Conference-Name",
    "Job-UUID",
    "Event-Sequence",
];

fn check_against_summary(capture: &str, frames: &[Frame]) {
    let summary_name = capture.replace(".recv.raw", ".summary.txt");
    let expected = summary(&summary_name);
    assert_eq!(frames.len(), expected.len(), "{capture}: frame count");
    for (i, (frame, want)) in frames.iter().zip(&expected).enumerate() {
        let at = format!("{capture} frame #{i}");
        assert_eq!(frame.content_type().as_str(), want.content_type, "{at}");
        if let Some(reply) = &want.reply_text {
            assert_eq!(frame.reply_text().unwrap().trim_end(), reply, "{at}");
            for (key, value) in want.fields.iter().filter(|(k, _)| k == "Job-UUID") {
                assert_eq!(frame.header(key).as_deref(), Some(value.as_str()), "{at}");
            }
        }
        if !frame.content_type().is_decodable_event() {
            continue;
        }
        let event = Event::from_frame(frame).unwrap_or_else(|e| panic!("{at}: {e}"));
        for (key, value) in want
            .fields
            .iter()
            .filter(|(k, _)| EVENT_FIELDS.contains(&k.as_str()))
        {
            assert_eq!(
                event.header(key).as_deref(),
                Some(value.as_str()),
                "{at} {key}"
            );
        }
        assert_eq!(
            event.name().as_str(),
            want.fields[0].1,
            "{at}: typed Event-Name"
        );
    }
}

#[test]
fn every_capture_with_a_summary_decodes_to_its_summary() {
    let mut checked = 0;
    for capture in all_recv_captures() {
        let frames = decode_all(&fixture(&capture), Limits::default())
            .unwrap_or_else(|e| panic!("{capture}: {e}"));
        if PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/esl")
            .join(capture.replace(".recv.raw", ".summary.txt"))
            .exists()
        {
            check_against_summary(&capture, &frames);
            checked += 1;
        } else {
            assert!(!frames.is_empty(), "{capture} decoded to nothing");
        }
    }
    assert_eq!(checked, 11, "captures with a summary");
}

#[test]
fn captures_without_summary_decode_to_what_the_index_describes() {
    let types = |name: &str| -> Vec<String> {
        decode_all(&fixture(name), Limits::default())
            .unwrap()
            .iter()
            .map(|f| f.content_type().as_str().to_owned())
            .collect()
    };
    assert_eq!(
        types("05a_auth_wrong_password.recv.raw"),
        ["auth/request", "command/reply", "text/disconnect-notice"]
    );
    let frames = decode_all(
        &fixture("05a_auth_wrong_password.recv.raw"),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(frames[1].reply_text().unwrap(), "-ERR invalid");
    let frames = decode_all(
        &fixture("05b_command_before_auth.recv.raw"),
        Limits::default(),
    )
    .unwrap();
    let replies: Vec<String> = frames
        .iter()
        .filter_map(|f| f.reply_text().map(|r| r.into_owned()))
        .collect();
    assert_eq!(replies, ["-ERR command not found", "+OK accepted"]);
    assert_eq!(frames[3].content_type(), &ContentType::ApiResponse);
    assert!(frames[3].body_text().unwrap().starts_with("UP "));
    assert_eq!(
        types("05d_idle_before_auth.recv.raw"),
        ["auth/request", "text/disconnect-notice"]
    );
    let survey = decode_all(&fixture("06_api_survey.recv.raw"), Limits::default()).unwrap();
    assert_eq!(survey[0].content_type(), &ContentType::AuthRequest);
    assert!(
        survey
            .iter()
            .skip(2)
            .all(|f| f.content_type() == &ContentType::ApiResponse
                || f.content_type() == &ContentType::CommandReply
                || f.content_type() == &ContentType::DisconnectNotice)
    );
}

#[test]
fn background_job_bodies_and_json_bodies_are_the_inner_body() {
    let frames = decode_all(&fixture("04_command_session.recv.raw"), Limits::default()).unwrap();
    let jobs: Vec<Event> = frames
        .iter()
        .filter(|f| f.content_type().is_decodable_event())
        .map(|f| Event::from_frame(f).unwrap())
        .filter(|e| e.name().as_str() == "BACKGROUND_JOB")
        .collect();
    assert!(jobs.len() >= 4, "{} jobs", jobs.len());
    let bodies: Vec<String> = jobs
        .iter()
        .map(|e| e.body().unwrap().into_owned())
        .collect();
    assert!(bodies.iter().any(|b| b == "-ERR USER_BUSY\n"), "{bodies:?}");
    assert!(bodies.iter().any(|b| b.starts_with("UP ")), "{bodies:?}");
    // The inner body is not part of the headers, and Job-Command-Arg is percent-decoded.
    let originate = jobs
        .iter()
        .find(|e| e.header("Job-Command").as_deref() == Some("originate"))
        .unwrap();
    assert!(
        originate
            .header("Job-Command-Arg")
            .unwrap()
            .contains(" &park")
    );
}

#[test]
fn plain_and_json_captures_tell_the_same_story() {
    // Files 01 and 02 are the same scenario recorded in the two formats.
    let story = |name: &str| -> Vec<(String, Option<String>, Option<u32>)> {
        decode_all(&fixture(name), Limits::default())
            .unwrap()
            .iter()
            .filter(|f| f.content_type().is_decodable_event())
            .map(|f| Event::from_frame(f).unwrap())
            .filter(|e| e.is_conference())
            .map(|e| {
                (
                    e.action().unwrap().to_string(),
                    e.conference_name().map(|c| c.into_owned()),
                    e.conference_size(),
                )
            })
            .collect()
    };
    let plain = story("01_event_plain_ALL.recv.raw");
    let json = story("02_event_json_ALL.recv.raw");
    let members = |s: &[(String, Option<String>, Option<u32>)], action: &str| {
        s.iter().filter(|(a, _, _)| a == action).count()
    };
    for action in [
        "add-member",
        "del-member",
        "mute-member",
        "unmute-member",
        "kick-member",
        "conference-create",
        "conference-destroy",
    ] {
        assert_eq!(members(&plain, action), members(&json, action), "{action}");
        assert!(members(&plain, action) >= 1, "{action} missing");
    }
    assert_eq!(members(&plain, "add-member"), 3);
}

fn frames_by_chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut codec = EslCodec::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        buf.extend_from_slice(&bytes[start..cut]);
        start = cut;
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            out.push(frame.as_bytes().to_vec());
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
        out.push(frame.as_bytes().to_vec());
    }
    out
}

#[test]
fn a_stream_split_at_every_point_decodes_to_the_same_frames() {
    for name in [
        "08_heartbeat_idle.recv.raw",
        "01_event_plain_ALL.control.recv.raw",
        "02_event_json_ALL.control.recv.raw",
        "09_restart.reconnect.recv.raw",
        "05f_auth_crlf.recv.raw",
    ] {
        let bytes = fixture(name);
        let whole = frames_by_chunks(&bytes, &[]);
        for cut in 0..=bytes.len() {
            assert_eq!(
                frames_by_chunks(&bytes, &[cut]),
                whole,
                "{name} cut at {cut}"
            );
        }
    }
}

#[test]
fn byte_by_byte_feeding_of_a_big_capture_gives_the_same_frames() {
    let bytes = fixture("01_event_plain_ALL.recv.raw");
    let whole = frames_by_chunks(&bytes, &[]);
    let every: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(frames_by_chunks(&bytes, &every), whole);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_chunkings_decode_to_the_same_frames(
        capture in prop::sample::select(vec![
            "01_event_plain_ALL.recv.raw",
            "02_event_json_ALL.recv.raw",
            "04_command_session.recv.raw",
            "09_restart.recv.raw",
        ]),
        seed_cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..200),
    ) {
        let bytes = fixture(capture);
        let mut cuts: Vec<usize> = seed_cuts.iter().map(|i| i.index(bytes.len())).collect();
        cuts.sort_unstable();
        cuts.dedup();
        prop_assert_eq!(frames_by_chunks(&bytes, &cuts), frames_by_chunks(&bytes, &[]));
    }
}
