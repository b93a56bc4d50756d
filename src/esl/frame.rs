//! One ESL message as it came off the wire: its outer headers and its body, frozen into a single
//! `Bytes`. Headers are spans into that buffer, so a frame costs one allocation for its header
//! index and none for its text.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use super::parse::HeaderSpan;

/// The `Content-Type` of a frame: every type FreeSWITCH's mod_event_socket sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContentType {
    AuthRequest,
    CommandReply,
    ApiResponse,
    EventPlain,
    EventJson,
    EventXml,
    LogData,
    DisconnectNotice,
    RudeRejection,
    /// A type this codec does not know; kept so a newer FreeSWITCH does not break the stream.
    Other(String),
}

impl ContentType {
    pub fn parse(s: &str) -> ContentType {
        match s {
            "auth/request" => ContentType::AuthRequest,
            "command/reply" => ContentType::CommandReply,
            "api/response" => ContentType::ApiResponse,
            "text/event-plain" => ContentType::EventPlain,
            "text/event-json" => ContentType::EventJson,
            "text/event-xml" => ContentType::EventXml,
            "log/data" => ContentType::LogData,
            "text/disconnect-notice" => ContentType::DisconnectNotice,
            "text/rude-rejection" => ContentType::RudeRejection,
            other => ContentType::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ContentType::AuthRequest => "auth/request",
            ContentType::CommandReply => "command/reply",
            ContentType::ApiResponse => "api/response",
            ContentType::EventPlain => "text/event-plain",
            ContentType::EventJson => "text/event-json",
            ContentType::EventXml => "text/event-xml",
            ContentType::LogData => "log/data",
            ContentType::DisconnectNotice => "text/disconnect-notice",
            ContentType::RudeRejection => "text/rude-rejection",
            ContentType::Other(s) => s,
        }
    }

    /// True for the event types whose body the codec can decode into an [`Event`](super::Event).
    pub fn is_decodable_event(&self) -> bool {
        matches!(self, ContentType::EventPlain | ContentType::EventJson)
    }
}

impl std::fmt::Display for ContentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded frame. Outer headers are raw text (FreeSWITCH does not percent-encode them).
#[derive(Debug, Clone)]
pub struct Frame {
    pub(crate) bytes: Bytes,
    pub(crate) headers: Vec<HeaderSpan>,
    /// Where the body starts; `None` when the frame had no `Content-Length`.
    pub(crate) body_start: Option<u32>,
    pub(crate) content_type: ContentType,
}

impl Frame {
    pub fn content_type(&self) -> &ContentType {
        &self.content_type
    }

    /// The first value of an outer header, looked up without regard to case.
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.header_bytes(name).map(utf8_lossy)
    }

    pub(crate) fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.bytes, &self.headers, name)
    }

    /// Every outer header in wire order, repeats included.
    pub fn headers(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        self.headers.iter().map(|h| {
            (
                utf8_lossy(h.name.get(&self.bytes)),
                utf8_lossy(h.value.get(&self.bytes)),
            )
        })
    }

    /// The body, when the frame had a `Content-Length` (possibly zero bytes long).
    pub fn body(&self) -> Option<&[u8]> {
        self.body_start.map(|s| &self.bytes[s as usize..])
    }

    /// The body as a zero-copy `Bytes`.
    pub fn body_bytes(&self) -> Option<Bytes> {
        self.body_start.map(|s| self.bytes.slice(s as usize..))
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn body_text(&self) -> Option<Cow<'_, str>> {
        self.body().map(utf8_lossy)
    }

    /// `Reply-Text` of a `command/reply`.
    pub fn reply_text(&self) -> Option<Cow<'_, str>> {
        self.header("Reply-Text")
    }

    /// The whole frame exactly as it was received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// First value of `name` among `headers`, compared case-insensitively as FreeSWITCH does.
pub(crate) fn find_header<'a>(
    buf: &'a [u8],
    headers: &[HeaderSpan],
    name: &str,
) -> Option<&'a [u8]> {
    let name = name.as_bytes();
    headers
        .iter()
        // The length test reads only the span, so most headers are passed over without touching
        // the frame's bytes.
        .find(|h| h.name.len() == name.len() && h.name.get(buf).eq_ignore_ascii_case(name))
        .map(|h| h.value.get(buf))
}

/// Text of raw bytes, invalid UTF-8 replaced. `str::from_utf8` checks ASCII a word at a time,
/// several times faster than `String::from_utf8_lossy` on valid text, which is nearly all text.
pub(crate) fn utf8_lossy(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

/// Writes frames the way mod_event_socket does: LF line ends, `Content-Length` before
/// `Content-Type` when there is a body. Used by the simulator and by tests that play a server.
#[derive(Debug, Default)]
pub struct FrameWriter {
    headers: Vec<(String, String)>,
}

impl FrameWriter {
    pub fn new() -> FrameWriter {
        FrameWriter::default()
    }

    /// Adds an outer header. Header values must not contain LF; the caller's bytes are used as is.
    pub fn header(mut self, name: &str, value: &str) -> FrameWriter {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Writes the frame with `content_type` and an optional body into `dst`.
    pub fn write(&self, content_type: &ContentType, body: Option<&[u8]>, dst: &mut BytesMut) {
        let mut put_line = |name: &str, value: &str| {
            dst.put_slice(name.as_bytes());
            dst.put_slice(b": ");
            dst.put_slice(value.as_bytes());
            dst.put_u8(b'\n');
        };
        if let Some(body) = body {
            put_line("Content-Length", &body.len().to_string());
        }
        put_line("Content-Type", content_type.as_str());
        for (name, value) in &self.headers {
            put_line(name, value);
        }
        dst.put_u8(b'\n');
        if let Some(body) = body {
            dst.put_slice(body);
        }
    }

    /// The frame as one `Bytes`.
    pub fn to_bytes(&self, content_type: &ContentType, body: Option<&[u8]>) -> Bytes {
        let mut dst = BytesMut::new();
        self.write(content_type, body, &mut dst);
        dst.freeze()
    }
}

/// The spans of a frame that a decoder found; only the codec builds frames.
pub(crate) fn assemble(
    bytes: Bytes,
    headers: Vec<HeaderSpan>,
    body_start: Option<usize>,
    content_type: ContentType,
) -> Frame {
    Frame {
        bytes,
        headers,
        body_start: body_start.map(|s| s as u32),
        content_type,
    }
}
