//! Writing events the way FreeSWITCH does (`switch_event_serialize`, `switch_event_serialize_json`,
//! `switch_url_encode_opt`). The simulator speaks through this; tests use it to check that what we
//! write, we read back.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{ContentType, FrameWriter};

/// Bytes FreeSWITCH escapes in plain event values besides controls and non-ASCII.
const ESCAPED: &[u8] = b" #%&+:;<=>?@[\\]^`{|}\"";

fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

/// Percent-encodes a header value as FreeSWITCH does: `%XY` in uppercase for controls, bytes
/// above 0x7E and the reserved set; a `%` already followed by two uppercase hex digits passes
/// through unchanged (so such values do not round-trip, exactly as with FreeSWITCH).
pub fn url_encode(value: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escaped_percent = b == b'%'
            && bytes.get(i + 1).copied().is_some_and(is_upper_hex)
            && bytes.get(i + 2).copied().is_some_and(is_upper_hex);
        if escaped_percent || ((0x20..=0x7E).contains(&b) && !ESCAPED.contains(&b)) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// An event to write: ordered headers (repeats allowed) and an optional body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventData {
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl EventData {
    pub fn new() -> EventData {
        EventData::default()
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_owned(), value.into()));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the first value of `name`, or appends it.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value.into(),
            None => self.push(name, value),
        }
    }

    fn body(&self) -> Option<&str> {
        self.body.as_deref().filter(|b| !b.is_empty())
    }

    /// The `text/event-plain` body: encoded header lines, an empty value written as `_undef_`,
    /// then `Content-Length` and the raw body, or a blank line.
    pub fn to_plain(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.headers.len() * 48 + 64);
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            if value.is_empty() {
                out.extend_from_slice(b"_undef_");
            } else {
                url_encode(value, &mut out);
            }
            out.push(b'\n');
        }
        match self.body() {
            Some(body) => {
                out.extend_from_slice(format!("Content-Length: {}\n\n", body.len()).as_bytes());
                out.extend_from_slice(body.as_bytes());
            }
            None => out.push(b'\n'),
        }
        out
    }

    /// The `text/event-json` body: one line, every value a string, duplicate keys kept, the
    /// body as `Content-Length` and `_body`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.headers.len() * 48 + 64);
        out.push(b'{');
        let pair = |out: &mut Vec<u8>, name: &str, value: &str| {
            if out.len() > 1 {
                out.push(b',');
            }
            // Writing a &str to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, name);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, value);
        };
        for (name, value) in &self.headers {
            pair(&mut out, name, value);
        }
        if let Some(body) = self.body() {
            pair(&mut out, "Content-Length", &body.len().to_string());
            pair(&mut out, "_body", body);
        }
        out.push(b'}');
        out
    }

    /// The whole frame in the given format (`text/event-plain` or `text/event-json`).
    pub fn to_frame(&self, content_type: &ContentType) -> Bytes {
        let body = match content_type {
            ContentType::EventJson => self.to_json(),
            _ => self.to_plain(),
        };
        let mut dst = BytesMut::with_capacity(body.len() + 64);
        FrameWriter::new().write(content_type, Some(&body), &mut dst);
        dst.freeze()
    }
}

/// Writes `Content-Type: command/reply` with a `Reply-Text` (and extra headers, as bgapi's Job-UUID).
pub fn command_reply(reply_text: &str, extra: &[(&str, &str)], dst: &mut BytesMut) {
    dst.put_slice(b"Content-Type: command/reply\nReply-Text: ");
    dst.put_slice(reply_text.as_bytes());
    dst.put_u8(b'\n');
    for (name, value) in extra {
        dst.put_slice(name.as_bytes());
        dst.put_slice(b": ");
        dst.put_slice(value.as_bytes());
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esl::{Event, decode_all};

    fn encode(v: &str) -> String {
        let mut out = Vec::new();
        url_encode(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_encoded_as_freeswitch_encodes_them() {
        assert_eq!(encode("2026-11-22 07:51:19"), "2026-11-22%2007%3A51%3A19");
        assert_eq!(
            encode("conference::maintenance"),
            "conference%3A%3Amaintenance"
        );
        assert_eq!(encode("a/b,c'(d)*!$~-._"), "a/b,c'(d)*!$~-._");
        assert_eq!(encode("José"), "Jos%C3%A9");
        assert_eq!(encode("50%41 %2f"), "50%41%20%252f");
    }

    #[test]
    fn written_events_read_back_in_both_formats() {
        let mut data = EventData::new();
        data.push("Event-Name", "BACKGROUND_JOB");
        data.push("Job-Command-Arg", "{a=b}loopback/9196 &park");
        data.push("Empty", "");
        data.body = Some("+OK 1\n".into());
        for ct in [ContentType::EventPlain, ContentType::EventJson] {
            let frames = decode_all(&data.to_frame(&ct), Default::default()).unwrap();
            let event = Event::from_frame(&frames[0]).unwrap();
            assert_eq!(
                event.header("Job-Command-Arg").unwrap(),
                "{a=b}loopback/9196 &park"
            );
            assert_eq!(event.body().unwrap(), "+OK 1\n");
        }
        let plain = String::from_utf8(data.to_plain()).unwrap();
        assert!(plain.contains("Empty: _undef_\n"));
        assert!(plain.ends_with("Content-Length: 6\n\n+OK 1\n"));
    }
}
