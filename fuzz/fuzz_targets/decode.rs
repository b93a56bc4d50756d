//! Fuzzes the Event Socket decoder with arbitrary bytes fed in arbitrary chunks.
//!
//! For every input it checks that:
//! - decoding does not panic, whatever the bytes and however they are split into reads;
//! - the frames, and the error if any, do not depend on how the stream is split into reads: the
//!   whole stream at once, reads of sizes taken from the input, and one byte at a time all agree
//!   (and `decode_all` agrees with them);
//! - every frame survives a round trip: re-encoded with `FrameWriter` from its content type, outer
//!   headers and body, it decodes to the same frame (compared semantically: `FrameWriter` writes
//!   `Content-Length` and `Content-Type` itself, first);
//! - an event frame's body can be read as an `Event` and every header of it read, without panics.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::esl::{ContentType, EslCodec, Event, Frame, FrameWriter, Limits, decode_all};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // Byte 0: how many of the bytes after byte 1 are read sizes. Byte 1: the header block cap,
    // small so that inputs of a few KiB reach it, and chosen by the input so that the fuzzer can
    // line a block's end up with it. The rest is the stream.
    let [n, cap, rest @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_frame: 8192,
        max_header_block: 16 + 2 * usize::from(*cap),
    };
    let n = usize::from(n % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s) + 1).collect();

    // The whole stream in one read is the reference; `decode_all` must agree with it.
    let (frames, error) = decode_in_reads(stream, &[stream.len().max(1)], limits);
    match decode_all(stream, limits) {
        Ok(all) => {
            assert!(
                error.is_none(),
                "decode_all succeeded where decoding failed"
            );
            assert_same_frames(&frames, &all);
        }
        Err(e) => assert_eq!(Some(e.to_string()), error),
    }
    // Reads of the sizes the input chose, and one byte at a time (which stops at every point a
    // read could end): same frames, same error.
    for sizes in [&sizes[..], &[1]] {
        if sizes.is_empty() {
            continue;
        }
        let (chunked, chunked_error) = decode_in_reads(stream, sizes, limits);
        assert_eq!(
            chunked_error, error,
            "the outcome depends on the reads ({sizes:?})"
        );
        assert_same_frames(&chunked, &frames);
    }

    for frame in &frames {
        round_trip(frame);
        read_event(frame);
    }
});

/// Decodes `stream` fed in reads of the given sizes (cycled), as a socket reader would, then
/// ends the stream. Returns the frames decoded and the error that stopped decoding, if any.
fn decode_in_reads(stream: &[u8], sizes: &[usize], limits: Limits) -> (Vec<Frame>, Option<String>) {
    let mut codec = EslCodec::new(limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        if at >= stream.len() {
            break;
        }
        let end = (at + size).min(stream.len());
        buf.extend_from_slice(&stream[at..end]);
        at = end;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e.to_string())),
        }
    }
}

fn assert_same_frames(a: &[Frame], b: &[Frame]) {
    assert_eq!(a.len(), b.len(), "frame count");
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_same(a, b);
    }
}

fn is_framing_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("Content-Type")
}

/// The outer headers other than the two that frame the message, in wire order.
fn other_headers(frame: &Frame) -> Vec<(String, String)> {
    frame
        .headers()
        .filter(|(name, _)| !is_framing_header(name))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// Same content type, same non-framing headers (in order), same body.
fn assert_same(a: &Frame, b: &Frame) {
    assert_eq!(a.content_type(), b.content_type());
    assert_eq!(other_headers(a), other_headers(b));
    assert_eq!(a.body(), b.body());
}

/// Re-encodes `frame` with `FrameWriter` and decodes it again.
fn round_trip(frame: &Frame) {
    // A value read off the wire cannot end in CR (a CR before the LF belongs to the line end),
    // except when the line ended in two: `A: x\r\r\n` has the value `x\r`. Written back, that is
    // `A: x\r\n`, whose value is `x`. The wire format cannot say it, so such frames are skipped.
    if frame.headers().any(|(_, value)| value.ends_with('\r')) {
        return;
    }
    let writer = frame
        .headers()
        .filter(|(name, _)| !is_framing_header(name))
        .fold(FrameWriter::new(), |w, (name, value)| {
            w.header(&name, &value)
        });
    let bytes = writer.to_bytes(frame.content_type(), frame.body());
    let again = decode_all(&bytes, Limits::default()).expect("a written frame decodes");
    assert_eq!(again.len(), 1, "a written frame decodes to one frame");
    assert_same(frame, &again[0]);
}

/// Reads an event frame the ways the controller does; none of it may panic.
fn read_event(frame: &Frame) {
    if !matches!(
        frame.content_type(),
        ContentType::EventPlain | ContentType::EventJson
    ) {
        return;
    }
    let Ok(event) = Event::from_frame(frame) else {
        return;
    };
    let _ = event.name();
    let count = event.headers().count();
    assert_eq!(count, event.header_count());
    for (name, value) in event.headers() {
        let _ = value.first();
        // A lookup by name finds a header (the first of that name, which may be another one).
        assert!(event.header(&name).is_some() || name.contains('\u{fffd}'));
    }
    let _ = event.body();
    let _ = event.sequence();
    let _ = event.is_conference();
    let _ = event.action();
}
