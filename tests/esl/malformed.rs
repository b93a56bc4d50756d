//! Bad bytes from the wire: every one is an error the caller can read, never a panic, and a
//! frame over the cap is refused before it is buffered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use switchyard::esl::{CodecError, EslCodec, Event, Limits, decode_all};
use tokio_util::codec::Decoder;

fn decode(bytes: &[u8]) -> Result<Vec<switchyard::esl::Frame>, CodecError> {
    decode_all(bytes, Limits::default())
}

#[test]
fn malformed_streams_are_errors() {
    type Case = (&'static [u8], fn(&CodecError) -> bool);
    let cases: &[Case] = &[
        (b"garbage without colon\n\n", |e| {
            matches!(e, CodecError::MalformedHeader(_))
        }),
        (b": no name\n\n", |e| {
            matches!(e, CodecError::MalformedHeader(_))
        }),
        (b"Content-Length: 5\n\nhello", |e| {
            matches!(e, CodecError::MissingContentType)
        }),
        (b"Content-Type: api/response\nContent-Length: -1\n\n", |e| {
            matches!(e, CodecError::BadContentLength(_))
        }),
        (
            b"Content-Type: api/response\nContent-Length: 12abc\n\n",
            |e| matches!(e, CodecError::BadContentLength(_)),
        ),
        (b"Content-Type: api/response\nContent-Length: \n\n", |e| {
            matches!(e, CodecError::BadContentLength(_))
        }),
        (
            b"Content-Type: api/response\nContent-Length: 99999999999999999999\n\n",
            |e| matches!(e, CodecError::BadContentLength(_)),
        ),
        (
            b"Content-Type: api/response\nContent-Length: 10\n\nshort",
            |e| matches!(e, CodecError::Truncated { buffered: 52 }),
        ),
        (b"Content-Type: command/reply\nReply-Text: +OK", |e| {
            matches!(e, CodecError::Truncated { .. })
        }),
        (b"\x00\x01\x02\xff\n\n", |e| {
            matches!(e, CodecError::MalformedHeader(_))
        }),
    ];
    for (bytes, expected) in cases {
        match decode(bytes) {
            Ok(frames) => panic!(
                "{:?} decoded to {} frames",
                String::from_utf8_lossy(bytes),
                frames.len()
            ),
            Err(e) => assert!(
                expected(&e),
                "{:?} gave {e:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }
}

#[test]
fn frames_decoded_before_an_error_are_kept() {
    let mut codec = EslCodec::default();
    let mut buf = BytesMut::from(&b"Content-Type: auth/request\n\nnot a header\n\n"[..]);
    assert!(codec.decode(&mut buf).unwrap().is_some());
    assert!(codec.decode(&mut buf).is_err());
}

#[test]
fn a_frame_over_the_cap_is_refused_from_its_headers_alone() {
    let limits = Limits {
        max_frame: 1024,
        ..Limits::default()
    };
    let mut codec = EslCodec::new(limits);
    // Only the header block has arrived; the announced body would pass the cap.
    let mut buf = BytesMut::from(&b"Content-Length: 2000\nContent-Type: text/event-plain\n\n"[..]);
    match codec.decode(&mut buf) {
        Err(CodecError::FrameTooLarge { size, cap: 1024 }) => assert!(size > 2000),
        other => panic!("{other:?}"),
    }
    // The default cap is 16 MiB.
    let huge = b"Content-Length: 16777217\nContent-Type: api/response\n\n";
    assert!(matches!(
        decode(huge),
        Err(CodecError::FrameTooLarge { .. })
    ));
}

#[test]
fn a_header_block_without_end_is_refused_at_its_cap() {
    let limits = Limits {
        max_header_block: 256,
        ..Limits::default()
    };
    let mut codec = EslCodec::new(limits);
    let mut buf = BytesMut::from(vec![b'a'; 300].as_slice());
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::HeaderBlockTooLarge { cap: 256 })
    ));
}

#[test]
fn blank_lines_between_frames_and_crlf_are_tolerated() {
    let frames = decode(b"\r\n\nContent-Type: auth/request\r\n\r\n\nContent-Type: command/reply\r\nReply-Text: +OK accepted\r\n\r\n\n").unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].reply_text().unwrap(), "+OK accepted");
}

#[test]
fn unknown_content_types_are_frames_not_errors() {
    let frames = decode(b"Content-Type: text/brand-new\nContent-Length: 2\n\nhi").unwrap();
    assert_eq!(frames[0].content_type().as_str(), "text/brand-new");
    assert_eq!(frames[0].body().unwrap(), b"hi");
}

#[test]
fn malformed_event_bodies_are_event_errors() {
    assert!(Event::parse_plain("Event-Name: X\nno colon line\n\n".into()).is_err());
    assert!(Event::parse_json(b"{\"Event-Name\": ").is_err());
    assert!(Event::parse_json(b"[1,2]").is_err());
    assert!(Event::parse_json(b"{\"a\":\"b\"} trailing").is_err());
}

/// A successful decode loses nothing: the frames are the input, in order, with only the blank
/// lines between frames left out.
fn assert_frames_cover_input(input: &[u8], frames: &[switchyard::esl::Frame]) {
    let mut rest = input;
    for frame in frames {
        let skipped = rest
            .iter()
            .take_while(|&&b| b == b'\n' || b == b'\r')
            .count();
        rest = &rest[skipped..];
        assert!(
            rest.starts_with(frame.as_bytes()),
            "frame is not the next input bytes"
        );
        rest = &rest[frame.as_bytes().len()..];
        if let Ok(event) = Event::from_frame(frame) {
            assert_eq!(event.headers().count(), event.header_count());
        }
    }
    assert!(
        rest.iter().all(|&b| b == b'\n' || b == b'\r'),
        "bytes left undecoded"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_are_an_error_or_decode_losslessly(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        if let Ok(frames) = decode(&bytes) {
            assert_frames_cover_input(&bytes, &frames);
        }
    }

    #[test]
    fn mutated_real_frames_are_an_error_or_decode_losslessly(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = include_bytes!("../../fixtures/esl/01_event_plain_ALL.control.recv.raw").to_vec();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(frames) = decode(&bytes) {
            assert_frames_cover_input(&bytes, &frames);
        }
    }
}
