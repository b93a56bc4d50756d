//! The two wire protocols a live stream speaks to the application's WebSocket server.
//!
//! - `twilio`: Twilio's bidirectional Media Streams, message for message, so that an agent
//!   written for Twilio works unchanged: JSON text frames, µ-law at 8 kHz in base64. The only
//!   addition is a `switchyard` object inside `start`, a key Twilio does not define.
//! - `l16`: like jambonz `listen`: one JSON text frame of metadata, then audio as binary frames
//!   of little-endian L16 at the stream's sample rate; events are JSON text frames.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use super::audio::{pcm_from_le, pcm_to_le, ulaw_decode, ulaw_encode};

/// The most audio one message from the server may carry, in bytes (decoded).
pub const MAX_INBOUND_AUDIO: usize = 64 * 1024;
/// The longest mark name the server may send, in characters.
pub const MAX_MARK_NAME: usize = 256;
/// Twilio streams are always µ-law at this rate.
pub const TWILIO_SAMPLE_RATE: u32 = 8000;

// The protocols and tracks are the room's words (a stream is part of the room's record).
pub use crate::conference::{Protocol, Track};

/// What the opening messages say about the stream.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'a> {
    /// Also Twilio's `streamSid`.
    pub stream_id: &'a str,
    /// Also Twilio's `callSid`.
    pub room_id: &'a str,
    /// Also Twilio's `accountSid`.
    pub app_id: &'a str,
    pub track: Track,
    /// The member's session id for a member track; `None` for the room.
    pub session: Option<&'a str>,
    pub sample_rate: u32,
    pub bidirectional: bool,
    /// The application's custom parameters (Twilio's `customParameters`).
    pub parameters: &'a Map<String, Value>,
}

/// One WebSocket frame to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

/// Builds what the controller sends. For Twilio it counts `sequenceNumber` (from 1 on `start`,
/// one per message after `connected`, sent as strings) and media `chunk` (from 1).
#[derive(Debug, Clone)]
pub struct Outbound {
    protocol: Protocol,
    stream_id: String,
    sample_rate: u32,
    sequence: u64,
    chunk: u64,
}

impl Outbound {
    /// A Twilio stream is always 8000 Hz, whatever `sample_rate` says; see [`Self::sample_rate`].
    pub fn new(protocol: Protocol, stream_id: &str, sample_rate: u32) -> Outbound {
        Outbound {
            protocol,
            stream_id: stream_id.to_owned(),
            sample_rate: stream_rate(protocol, sample_rate),
            sequence: 0,
            chunk: 0,
        }
    }

    /// The rate `media` wants its samples at.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The next Twilio `sequenceNumber`, as Twilio writes it (a string).
    fn next_sequence(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }

    /// Twilio: `connected` then `start`. L16: one JSON text frame of metadata.
    pub fn opening(&mut self, o: &Opening<'_>) -> Vec<Message> {
        debug_assert_eq!(o.stream_id, self.stream_id);
        match self.protocol {
            Protocol::Twilio => {
                let connected =
                    json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
                let start = json!({
                    "event": "start",
                    "sequenceNumber": self.next_sequence(),
                    "start": {
                        "accountSid": o.app_id,
                        "streamSid": self.stream_id,
                        "callSid": o.room_id,
                        "tracks": ["inbound"],
                        "customParameters": o.parameters,
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": TWILIO_SAMPLE_RATE,
                            "channels": 1,
                        },
                        "switchyard": {"track": o.track, "session": o.session, "room_id": o.room_id},
                    },
                    "streamSid": self.stream_id,
                });
                vec![text(connected), text(start)]
            }
            Protocol::L16 => vec![text(json!({
                "event": "start",
                "stream_id": self.stream_id,
                "room_id": o.room_id,
                "track": o.track,
                "session": o.session,
                "sample_rate": self.sample_rate,
                "encoding": "audio/l16",
                "channels": 1,
                "bidirectional": o.bidirectional,
                "parameters": o.parameters,
            }))],
        }
    }

    /// One 20 ms frame of audio at [`Self::sample_rate`]; `timestamp_ms` since the stream
    /// began. Twilio: a `media` message of base64 µ-law. L16: a binary frame of L16 LE.
    pub fn media(&mut self, pcm: &[i16], timestamp_ms: u64) -> Message {
        match self.protocol {
            Protocol::Twilio => {
                let ulaw: Vec<u8> = pcm.iter().map(|&s| ulaw_encode(s)).collect();
                self.chunk += 1;
                text(json!({
                    "event": "media",
                    "sequenceNumber": self.next_sequence(),
                    "media": {
                        "track": "inbound",
                        "chunk": self.chunk.to_string(),
                        "timestamp": timestamp_ms.to_string(),
                        "payload": BASE64.encode(ulaw),
                    },
                    "streamSid": self.stream_id,
                }))
            }
            Protocol::L16 => {
                let mut bytes = Vec::with_capacity(pcm.len() * 2);
                pcm_to_le(pcm, &mut bytes);
                Message::Binary(bytes)
            }
        }
    }

    /// A DTMF digit pressed in the room (by `session` for L16; Twilio has no place for it).
    pub fn dtmf(&mut self, digit: char, session: Option<&str>) -> Message {
        match self.protocol {
            Protocol::Twilio => text(json!({
                "event": "dtmf",
                "streamSid": self.stream_id,
                "sequenceNumber": self.next_sequence(),
                "dtmf": {"track": "inbound_track", "digit": digit.to_string()},
            })),
            Protocol::L16 => text(json!({
                "event": "dtmf",
                "dtmf": {"digit": digit.to_string(), "session": session},
            })),
        }
    }

    /// A mark the server sent, echoed once the audio queued before it has been played.
    pub fn mark(&mut self, name: &str) -> Message {
        match self.protocol {
            Protocol::Twilio => text(json!({
                "event": "mark",
                "sequenceNumber": self.next_sequence(),
                "streamSid": self.stream_id,
                "mark": {"name": name},
            })),
            Protocol::L16 => text(json!({"event": "mark", "mark": {"name": name}})),
        }
    }

    /// The last message before the controller closes the socket (Twilio has no reason field).
    pub fn stop(&mut self, o: &Opening<'_>, reason: &str) -> Message {
        match self.protocol {
            Protocol::Twilio => text(json!({
                "event": "stop",
                "sequenceNumber": self.next_sequence(),
                "streamSid": self.stream_id,
                "stop": {"accountSid": o.app_id, "callSid": o.room_id},
            })),
            Protocol::L16 => text(json!({"event": "stop", "reason": reason})),
        }
    }
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string())
}

/// What the server sent, decoded.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// Audio to play, at the stream's sample_rate (Twilio µ-law is 8 kHz).
    Media(Vec<i16>),
    Mark(String),
    Clear,
    /// A message this protocol defines but the controller has nothing to do for (e.g.
    /// Twilio's `connected`); or an unknown `event` (Twilio ignores unknown events too).
    Ignored,
}

/// Why a message from the server was refused. The text never quotes the message itself.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InboundError {
    #[error("not a JSON object: {0}")]
    NotJson(String),
    #[error("no \"event\" string")]
    NoEvent,
    /// Names the field, e.g. `media.payload`.
    #[error("no {0} string")]
    Missing(&'static str),
    #[error("media payload is not valid base64")]
    BadBase64,
    #[error("{0} bytes of audio in one message; the limit is {MAX_INBOUND_AUDIO}")]
    TooLarge(usize),
    #[error("mark name of {0} characters; the limit is {MAX_MARK_NAME}")]
    MarkNameTooLong(usize),
    #[error("binary frame on a twilio stream, which takes JSON text frames only")]
    BinaryNotAllowed,
}

/// Decodes what the server sends. Keeps an odd trailing byte of L16 for the next binary frame.
#[derive(Debug, Clone)]
pub struct InboundDecoder {
    protocol: Protocol,
    sample_rate: u32,
    carry: Option<u8>,
}

impl InboundDecoder {
    /// Like [`Outbound::new`], a Twilio stream is 8000 Hz whatever `sample_rate` says.
    pub fn new(protocol: Protocol, sample_rate: u32) -> InboundDecoder {
        InboundDecoder {
            protocol,
            sample_rate: stream_rate(protocol, sample_rate),
            carry: None,
        }
    }

    /// The rate of the audio in [`Inbound::Media`].
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn text(&mut self, text: &str) -> Result<Inbound, InboundError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| InboundError::NotJson(truncate(&e.to_string())))?;
        let Some(object) = value.as_object() else {
            return Err(InboundError::NotJson("not an object".to_owned()));
        };
        let event = object
            .get("event")
            .and_then(Value::as_str)
            .ok_or(InboundError::NoEvent)?;
        match (self.protocol, event) {
            (Protocol::Twilio, "media") => {
                decode_ulaw(string_at(object, "media.payload")?).map(Inbound::Media)
            }
            (_, "mark") => {
                let name = string_at(object, "mark.name")?;
                let chars = name.chars().count();
                if chars > MAX_MARK_NAME {
                    return Err(InboundError::MarkNameTooLong(chars));
                }
                Ok(Inbound::Mark(name.to_owned()))
            }
            (_, "clear") => {
                // Audio after a clear starts afresh: a byte left from before would misalign it.
                self.carry = None;
                Ok(Inbound::Clear)
            }
            _ => Ok(Inbound::Ignored),
        }
    }

    pub fn binary(&mut self, bytes: &[u8]) -> Result<Inbound, InboundError> {
        if self.protocol == Protocol::Twilio {
            return Err(InboundError::BinaryNotAllowed);
        }
        if bytes.len() > MAX_INBOUND_AUDIO {
            return Err(InboundError::TooLarge(bytes.len()));
        }
        let mut rest = bytes;
        let mut samples = Vec::with_capacity(bytes.len() / 2 + 1);
        if let Some(low) = self.carry {
            let Some((&high, tail)) = rest.split_first() else {
                return Ok(Inbound::Media(samples));
            };
            samples.push(i16::from_le_bytes([low, high]));
            rest = tail;
        }
        samples.extend(pcm_from_le(rest));
        self.carry = if rest.len() % 2 == 1 {
            rest.last().copied()
        } else {
            None
        };
        Ok(Inbound::Media(samples))
    }
}

/// The string at `path` ("outer.inner") in `object`, or which one is missing.
fn string_at<'v>(
    object: &'v Map<String, Value>,
    path: &'static str,
) -> Result<&'v str, InboundError> {
    let (outer, inner) = path.split_once('.').unwrap_or((path, ""));
    object
        .get(outer)
        .and_then(|o| o.get(inner))
        .and_then(Value::as_str)
        .ok_or(InboundError::Missing(path))
}

/// The rate a stream of `protocol` runs at: Twilio's is always 8000 Hz.
fn stream_rate(protocol: Protocol, requested: u32) -> u32 {
    match protocol {
        Protocol::Twilio => TWILIO_SAMPLE_RATE,
        Protocol::L16 => requested,
    }
}

/// Base64 µ-law to samples, refusing more than [`MAX_INBOUND_AUDIO`] bytes before decoding it.
fn decode_ulaw(payload: &str) -> Result<Vec<i16>, InboundError> {
    let estimate = base64::decoded_len_estimate(payload.len());
    if estimate > MAX_INBOUND_AUDIO + 3 {
        return Err(InboundError::TooLarge(estimate));
    }
    let bytes = BASE64
        .decode(payload)
        .map_err(|_| InboundError::BadBase64)?;
    if bytes.len() > MAX_INBOUND_AUDIO {
        return Err(InboundError::TooLarge(bytes.len()));
    }
    Ok(bytes.into_iter().map(ulaw_decode).collect())
}

/// At most 64 characters of `s`, marked with `…` when cut.
fn truncate(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(message: &Message) -> Value {
        match message {
            Message::Text(text) => serde_json::from_str(text).unwrap(),
            Message::Binary(_) => panic!("expected a text frame"),
        }
    }

    /// Runs `check` on an `Opening` for stream `st1` of room `room1`, app `app1`.
    fn with_opening(track: Track, session: Option<&str>, check: impl FnOnce(&Opening<'_>)) {
        let mut parameters = Map::new();
        parameters.insert("agent".to_owned(), json!("sales"));
        check(&Opening {
            stream_id: "st1",
            room_id: "room1",
            app_id: "app1",
            track,
            session,
            sample_rate: 16_000,
            bidirectional: true,
            parameters: &parameters,
        });
    }

    #[test]
    fn twilio_messages_and_sequence_numbers() {
        with_opening(Track::Member, Some("sess1"), |o| {
            let mut out = Outbound::new(Protocol::Twilio, "st1", 16_000);
            assert_eq!(out.sample_rate(), 8000);
            let opening: Vec<Value> = out.opening(o).iter().map(parsed).collect();
            let start = json!({
                "event": "start",
                "sequenceNumber": "1",
                "start": {
                    "accountSid": "app1",
                    "streamSid": "st1",
                    "callSid": "room1",
                    "tracks": ["inbound"],
                    "customParameters": {"agent": "sales"},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "switchyard": {"track": "member", "session": "sess1", "room_id": "room1"},
                },
                "streamSid": "st1",
            });
            let connected = json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
            assert_eq!(opening, [connected, start]);

            let payload = BASE64.encode([0xFFu8; 160]);
            let media = json!({
                "event": "media",
                "sequenceNumber": "2",
                "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": payload},
                "streamSid": "st1",
            });
            assert_eq!(parsed(&out.media(&[0; 160], 0)), media);
            let second = parsed(&out.media(&[0; 160], 20));
            assert_eq!(second["sequenceNumber"], "3");
            assert_eq!(second["media"]["chunk"], "2");
            assert_eq!(second["media"]["timestamp"], "20");

            let dtmf = json!({
                "event": "dtmf",
                "streamSid": "st1",
                "sequenceNumber": "4",
                "dtmf": {"track": "inbound_track", "digit": "5"},
            });
            assert_eq!(parsed(&out.dtmf('5', Some("sess1"))), dtmf);
            let mark = json!({
                "event": "mark",
                "sequenceNumber": "5",
                "streamSid": "st1",
                "mark": {"name": "greeting"},
            });
            assert_eq!(parsed(&out.mark("greeting")), mark);
            let stop = json!({
                "event": "stop",
                "sequenceNumber": "6",
                "streamSid": "st1",
                "stop": {"accountSid": "app1", "callSid": "room1"},
            });
            assert_eq!(parsed(&out.stop(o, "room ended")), stop);
        });
    }

    #[test]
    fn twilio_media_round_trips_through_ulaw() {
        let pcm: Vec<i16> = (0..160)
            .map(|n| (n * 397 % 20_000 - 10_000) as i16)
            .collect();
        let sent = parsed(&Outbound::new(Protocol::Twilio, "st1", 8000).media(&pcm, 0));
        let payload = &sent["media"]["payload"];
        let inbound = json!({"event": "media", "streamSid": "st1", "media": {"payload": payload}});
        let mut decoder = InboundDecoder::new(Protocol::Twilio, 16_000);
        assert_eq!(decoder.sample_rate(), 8000);
        let expected: Vec<i16> = pcm.iter().map(|&s| ulaw_decode(ulaw_encode(s))).collect();
        assert_eq!(
            decoder.text(&inbound.to_string()),
            Ok(Inbound::Media(expected))
        );
    }

    #[test]
    fn twilio_inbound() {
        let media = |bytes: usize| {
            let payload = BASE64.encode(vec![0xFFu8; bytes]);
            json!({"event": "media", "media": {"payload": payload}}).to_string()
        };
        let mark = |name: String| json!({"event": "mark", "mark": {"name": name}}).to_string();
        let mut decoder = InboundDecoder::new(Protocol::Twilio, 8000);
        let mut check = |input: &str, expected| {
            assert_eq!(decoder.text(input), expected, "{input:.80}");
        };
        let m1 = r#"{"event":"mark","streamSid":"st1","mark":{"name":"m1"}}"#;
        check(m1, Ok(Inbound::Mark("m1".to_owned())));
        check(r#"{"event":"clear","streamSid":"st1"}"#, Ok(Inbound::Clear));
        check(r#"{"event":"connected"}"#, Ok(Inbound::Ignored));
        check(r#"{"event":"whatever","x":1}"#, Ok(Inbound::Ignored));
        check(&media(4), Ok(Inbound::Media(vec![0; 4])));
        let longest = "é".repeat(MAX_MARK_NAME);
        check(&mark(longest.clone()), Ok(Inbound::Mark(longest)));
        check(r#"{"event":7}"#, Err(InboundError::NoEvent));
        let no_payload = Err(InboundError::Missing("media.payload"));
        check(r#"{"event":"media","media":{}}"#, no_payload);
        let no_name = Err(InboundError::Missing("mark.name"));
        check(r#"{"event":"mark","mark":{"name":3}}"#, no_name);
        let bad = r#"{"event":"media","media":{"payload":"!!!"}}"#;
        check(bad, Err(InboundError::BadBase64));
        let over = Err(InboundError::TooLarge(MAX_INBOUND_AUDIO + 1));
        check(&media(MAX_INBOUND_AUDIO + 1), over);
        let too_long = Err(InboundError::MarkNameTooLong(MAX_MARK_NAME + 1));
        check(&mark("x".repeat(MAX_MARK_NAME + 1)), too_long);
        let at_limit = decoder.text(&media(MAX_INBOUND_AUDIO));
        assert!(matches!(at_limit, Ok(Inbound::Media(s)) if s.len() == MAX_INBOUND_AUDIO));
        // Far too large is refused before decoding.
        let huge = json!({"event": "media", "media": {"payload": "A".repeat(1 << 20)}});
        assert!(matches!(
            decoder.text(&huge.to_string()),
            Err(InboundError::TooLarge(_))
        ));
        assert!(matches!(decoder.text("[1]"), Err(InboundError::NotJson(_))));
        assert_eq!(decoder.binary(&[0, 0]), Err(InboundError::BinaryNotAllowed));
    }

    #[test]
    fn errors_read_short() {
        let mut decoder = InboundDecoder::new(Protocol::Twilio, 8000);
        let garbage = format!("{{\"event\": \"media\" {}", "x".repeat(10_000));
        let error = decoder.text(&garbage).unwrap_err();
        assert!(matches!(error, InboundError::NotJson(_)));
        assert!(error.to_string().chars().count() < 100, "{error}");
        let error = InboundError::TooLarge(70_000).to_string();
        assert_eq!(
            error,
            "70000 bytes of audio in one message; the limit is 65536"
        );
        assert_eq!(truncate(&"y".repeat(100)), format!("{}…", "y".repeat(64)));
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn l16_messages() {
        with_opening(Track::Room, None, |o| {
            let mut out = Outbound::new(Protocol::L16, "st1", 16_000);
            let start = json!({
                "event": "start",
                "stream_id": "st1",
                "room_id": "room1",
                "track": "room",
                "session": null,
                "sample_rate": 16000,
                "encoding": "audio/l16",
                "channels": 1,
                "bidirectional": true,
                "parameters": {"agent": "sales"},
            });
            assert_eq!(
                out.opening(o).iter().map(parsed).collect::<Vec<_>>(),
                [start]
            );
            let Message::Binary(bytes) = out.media(&[0x0102; 320], 0) else {
                panic!("expected a binary frame")
            };
            assert_eq!(bytes.len(), 640);
            assert_eq!(bytes[..4], [0x02, 0x01, 0x02, 0x01]);
            let dtmf = json!({"event": "dtmf", "dtmf": {"digit": "#", "session": "sess1"}});
            assert_eq!(parsed(&out.dtmf('#', Some("sess1"))), dtmf);
            let mark = json!({"event": "mark", "mark": {"name": "m1"}});
            assert_eq!(parsed(&out.mark("m1")), mark);
            let stop = json!({"event": "stop", "reason": "room ended"});
            assert_eq!(parsed(&out.stop(o, "room ended")), stop);
        });
    }

    #[test]
    fn l16_inbound_carries_an_odd_byte() {
        let mut decoder = InboundDecoder::new(Protocol::L16, 16_000);
        assert_eq!(decoder.sample_rate(), 16_000);
        let mut feed = |bytes: &[u8]| match decoder.binary(bytes) {
            Ok(Inbound::Media(samples)) => samples,
            other => panic!("{other:?}"),
        };
        // 0x1234, 0x5678, -2 split as 3 + 1 + 0 + 2 bytes.
        assert_eq!(feed(&[0x34, 0x12, 0x78]), [0x1234]);
        assert_eq!(feed(&[0x56]), [0x5678]);
        assert_eq!(feed(&[]).len(), 0);
        assert_eq!(feed(&[0xFE, 0xFF]), [-2]);
        // A carried byte outlasts an empty frame.
        assert_eq!(feed(&[0x01]).len(), 0);
        assert_eq!(feed(&[]).len(), 0);
        assert_eq!(feed(&[0x02, 0x03, 0x04]), [0x0201, 0x0403]);
        // A clear drops it.
        assert_eq!(feed(&[0x09]).len(), 0);
        assert_eq!(decoder.text(r#"{"event":"clear"}"#), Ok(Inbound::Clear));
        assert_eq!(
            decoder.binary(&[0x04, 0x05]),
            Ok(Inbound::Media(vec![0x0504]))
        );
    }

    #[test]
    fn l16_inbound_events_and_limits() {
        let mut decoder = InboundDecoder::new(Protocol::L16, 8000);
        let mark = decoder.text(r#"{"event":"mark","mark":{"name":"m1"}}"#);
        assert_eq!(mark, Ok(Inbound::Mark("m1".to_owned())));
        assert_eq!(decoder.text(r#"{"event":"media"}"#), Ok(Inbound::Ignored));
        let over = decoder.binary(&vec![0; MAX_INBOUND_AUDIO + 1]);
        assert_eq!(over, Err(InboundError::TooLarge(MAX_INBOUND_AUDIO + 1)));
        let at_limit = decoder.binary(&vec![0; MAX_INBOUND_AUDIO]);
        assert!(matches!(at_limit, Ok(Inbound::Media(s)) if s.len() == MAX_INBOUND_AUDIO / 2));
    }
}
