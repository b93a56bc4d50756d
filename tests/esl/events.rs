//! Reading events: percent-decoding of plain values, JSON values, repeated headers, multi-valued
//! headers, inner bodies and the typed accessors the controller uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchyard::esl::{ConferenceAction, Event, EventName, HeaderValue};

fn plain(text: &str) -> Event {
    Event::parse_plain(bytes::Bytes::copy_from_slice(text.as_bytes())).unwrap()
}

#[test]
fn plain_values_are_percent_decoded_when_read() {
    let e = plain(
        "Event-Name: CHANNEL_CREATE\nEvent-Date-Local: 2026-11-22%2007%3A51%3A19\n\
         Caller-Caller-ID-Name: Jos%C3%A9%20M%C3%BCller\nBroken: 100%ZZ%4\nLatin1: caf%E9\n\n",
    );
    assert_eq!(e.header("Event-Date-Local").unwrap(), "2026-11-22 07:51:19");
    assert_eq!(e.header("Caller-Caller-ID-Name").unwrap(), "José Müller");
    // Malformed escapes are left alone; invalid UTF-8 is replaced, not an error.
    assert_eq!(e.header("Broken").unwrap(), "100%ZZ%4");
    assert_eq!(e.header("Latin1").unwrap(), "caf\u{FFFD}");
}

#[test]
fn a_percent_followed_by_hex_decodes_as_percent_encoding_says() {
    // FreeSWITCH sends an existing "%41" unescaped; plain decoding yields "A" (JSON would say
    // "%41"). We decode as the encoding says and do not try to repair it.
    let e = plain("Event-Name: CUSTOM\nVariable: 50%41\nEscaped: 100%2525\n\n");
    assert_eq!(e.header("Variable").unwrap(), "50A");
    assert_eq!(e.header("Escaped").unwrap(), "100%25");
}

#[test]
fn repeated_headers_keep_their_first_value_and_names_ignore_case() {
    let e =
        plain("Event-Name: CUSTOM\nEnergy-Level: 100\nenergy-level: 300\nConference-Size: 2\n\n");
    assert_eq!(e.header("ENERGY-LEVEL").unwrap(), "100");
    assert_eq!(e.header_count(), 4);
    let all: Vec<String> = e.headers().map(|(n, _)| n.into_owned()).collect();
    assert_eq!(
        all,
        [
            "Event-Name",
            "Energy-Level",
            "energy-level",
            "Conference-Size"
        ]
    );
}

#[test]
fn multi_valued_plain_headers_split_into_values() {
    let e = plain(
        "Event-Name: CHANNEL_DATA\nvariable_transfer_history: ARRAY%3A%3A1%3Aa%7C%3A2%3Ab\n\n",
    );
    assert_eq!(
        e.header_value("variable_transfer_history").unwrap(),
        HeaderValue::Many(vec!["1:a".into(), "2:b".into()])
    );
    assert_eq!(e.header("variable_transfer_history").unwrap(), "1:a");
}

#[test]
fn the_inner_body_follows_an_inner_content_length() {
    let e = plain(
        "Event-Name: BACKGROUND_JOB\nJob-UUID: j1\nJob-Command: status\nContent-Length: 9\n\n+OK done\n",
    );
    assert_eq!(e.body().unwrap(), "+OK done\n");
    assert_eq!(e.job_uuid().unwrap(), "j1");
    assert_eq!(e.name(), &EventName::BackgroundJob);
    let no_body = plain("Event-Name: HEARTBEAT\n\n");
    assert!(no_body.body().is_none());
}

#[test]
fn json_events_read_like_plain_ones() {
    let e = Event::parse_json(
        br#"{"Event-Name":"CUSTOM","Event-Subclass":"conference::maintenance","Action":"add-member","Member-ID":"7","Conference-Size":"2","Speak":"true","Hear":"false","Action":"second","variable_transfer_history":["1:a","2:b"],"Content-Length":"4","_body":"body"}"#,
    )
    .unwrap();
    assert!(e.is_conference());
    assert_eq!(
        e.action(),
        Some(ConferenceAction::AddMember),
        "first duplicate wins"
    );
    assert_eq!(e.member_id(), Some(7));
    assert_eq!(e.conference_size(), Some(2));
    assert_eq!(e.flag("Speak"), Some(true));
    assert_eq!(e.flag("hear"), Some(false));
    assert_eq!(
        e.header_value("variable_transfer_history").unwrap(),
        HeaderValue::Many(vec!["1:a".into(), "2:b".into()])
    );
    assert_eq!(e.body().unwrap(), "body");
    assert!(e.header("_body").is_none());
}

#[test]
fn json_with_invalid_utf8_is_read_lossily() {
    let mut bytes = br#"{"Event-Name":"CHANNEL_CREATE","Caller-Caller-ID-Name":"caf"#.to_vec();
    bytes.push(0xE9);
    bytes.extend_from_slice(br#"","Unique-ID":"u1"}"#);
    let e = Event::parse_json(&bytes).unwrap();
    assert_eq!(e.header("Caller-Caller-ID-Name").unwrap(), "caf\u{FFFD}");
    assert_eq!(e.unique_id().unwrap(), "u1");
}

#[test]
fn typed_accessors_read_the_controller_headers() {
    let e = plain(
        "Event-Subclass: conference%3A%3Amaintenance\nEvent-Name: CUSTOM\nCore-UUID: c1\n\
         Event-Sequence: 479\nConference-Name: room1\nConference-Unique-ID: cu1\nUnique-ID: u1\n\
         Member-ID: 12\nMember-Type: member\nAction: play-file-done\nFile: %2Ftmp%2Fa.wav\n\
         Path: %2Frec.wav\nError: File%20not%20found\nHangup-Cause: NORMAL_CLEARING\n\n",
    );
    assert!(e.is_conference());
    assert_eq!(e.subclass().unwrap(), "conference::maintenance");
    assert_eq!(e.core_uuid().unwrap(), "c1");
    assert_eq!(e.sequence(), Some(479));
    assert_eq!(e.conference_name().unwrap(), "room1");
    assert_eq!(e.conference_unique_id().unwrap(), "cu1");
    assert_eq!(e.unique_id().unwrap(), "u1");
    assert_eq!(e.member_id(), Some(12));
    assert_eq!(e.member_type().unwrap(), "member");
    assert_eq!(e.action(), Some(ConferenceAction::PlayFileDone));
    assert_eq!(e.file().unwrap(), "/tmp/a.wav");
    assert_eq!(e.path().unwrap(), "/rec.wav");
    assert_eq!(e.error().unwrap(), "File not found");
    assert_eq!(e.hangup_cause().unwrap(), "NORMAL_CLEARING");
}
