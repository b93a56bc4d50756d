//! Events: the body of a `text/event-plain` or `text/event-json` frame.
//!
//! A plain event is a second header block whose values are percent-encoded; it is indexed once
//! (spans into the frame's `Bytes`) and each value is decoded only when it is read. A JSON event
//! is parsed into its header list at once. Both answer the same questions the same way: names are
//! looked up without regard to case, and a repeated header keeps its first value, as FreeSWITCH's
//! own `switch_event_get_header` does.

use std::borrow::Cow;

use bytes::Bytes;
use percent_encoding::percent_decode;

use super::error::EventError;
use super::frame::{ContentType, Frame, find_header};
use super::json_event;
use super::names::{ConferenceAction, EventName};
use super::parse::{self, HeaderSpan, Span};

/// A header's value: one string, or the several values of a multi-valued header (JSON arrays,
/// plain `ARRAY::a|:b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

impl HeaderValue {
    /// Splits FreeSWITCH's serialized array form `ARRAY::v1|:v2` into its values.
    fn from_decoded(value: Cow<'_, str>) -> HeaderValue {
        match value.strip_prefix("ARRAY::") {
            Some(items) => HeaderValue::Many(items.split("|:").map(str::to_owned).collect()),
            None => HeaderValue::One(value.into_owned()),
        }
    }

    /// The first (or only) value.
    pub fn first(&self) -> &str {
        match self {
            HeaderValue::One(v) => v,
            HeaderValue::Many(vs) => vs.first().map(String::as_str).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone)]
enum Repr {
    Plain {
        buf: Bytes,
        headers: Vec<HeaderSpan>,
        body: Option<Span>,
    },
    Json(json_event::JsonEvent),
}

/// One FreeSWITCH event, from either wire format.
#[derive(Debug, Clone)]
pub struct Event {
    name: EventName,
    repr: Repr,
}

/// Percent-decodes a plain value; borrows when there is nothing to decode.
fn decode_value(raw: &[u8]) -> Cow<'_, str> {
    if memchr::memchr(b'%', raw).is_none() {
        return String::from_utf8_lossy(raw);
    }
    match percent_decode(raw).decode_utf8_lossy() {
        Cow::Borrowed(s) => Cow::Owned(s.to_owned()),
        Cow::Owned(s) => Cow::Owned(s),
    }
}

impl Event {
    /// Decodes the event carried by a `text/event-plain` or `text/event-json` frame.
    pub fn from_frame(frame: &Frame) -> Result<Event, EventError> {
        let body = frame.body_bytes().unwrap_or_default();
        match frame.content_type() {
            ContentType::EventPlain => Event::parse_plain(body),
            ContentType::EventJson => Event::parse_json(&body),
            other => Err(EventError::NotAnEvent(other.to_string())),
        }
    }

    /// Indexes a plain event body: a header block, then (when it has `Content-Length`) the rest
    /// of the body as the inner body, as FreeSWITCH's own client does.
    pub fn parse_plain(buf: Bytes) -> Result<Event, EventError> {
        let mut headers = Vec::with_capacity(buf.len() / 32 + 4);
        let consumed = parse::header_block(&buf, &buf, &mut headers).map_err(|line| {
            EventError::MalformedHeader(String::from_utf8_lossy(line).into_owned())
        })?;
        let body = find_header(&buf, &headers, "Content-Length").map(|_| Span {
            start: consumed as u32,
            end: buf.len() as u32,
        });
        let name = find_header(&buf, &headers, "Event-Name")
            .map(|raw| EventName::parse(&decode_value(raw)))
            .unwrap_or_else(|| EventName::Other("".into()));
        Ok(Event {
            name,
            repr: Repr::Plain { buf, headers, body },
        })
    }

    /// Parses a JSON event body (invalid UTF-8 is replaced, duplicate keys keep their first value).
    pub fn parse_json(body: &[u8]) -> Result<Event, EventError> {
        let json = json_event::JsonEvent::parse(body)?;
        let name = EventName::parse(
            json.header("Event-Name")
                .map(HeaderValue::first)
                .unwrap_or(""),
        );
        Ok(Event {
            name,
            repr: Repr::Json(json),
        })
    }

    /// `Event-Name`.
    pub fn name(&self) -> &EventName {
        &self.name
    }

    /// The first value of a header (percent-decoded), looked up without regard to case. For a
    /// multi-valued header this is its first value; see [`Event::header_value`].
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        match &self.repr {
            Repr::Plain { buf, headers, .. } => {
                let value = decode_value(find_header(buf, headers, name)?);
                match value.strip_prefix("ARRAY::") {
                    None => Some(value),
                    Some(items) => Some(Cow::Owned(
                        items.split("|:").next().unwrap_or_default().to_owned(),
                    )),
                }
            }
            Repr::Json(json) => json.header(name).map(|v| Cow::Borrowed(v.first())),
        }
    }

    /// A header with all its values.
    pub fn header_value(&self, name: &str) -> Option<HeaderValue> {
        match &self.repr {
            Repr::Plain { buf, headers, .. } => find_header(buf, headers, name)
                .map(|raw| HeaderValue::from_decoded(decode_value(raw))),
            Repr::Json(json) => json.header(name).cloned(),
        }
    }

    /// Every header in wire order, repeats included, values decoded.
    pub fn headers(&self) -> Box<dyn Iterator<Item = (Cow<'_, str>, HeaderValue)> + '_> {
        match &self.repr {
            Repr::Plain { buf, headers, .. } => Box::new(headers.iter().map(move |h| {
                (
                    String::from_utf8_lossy(h.name.get(buf)),
                    HeaderValue::from_decoded(decode_value(h.value.get(buf))),
                )
            })),
            Repr::Json(json) => {
                Box::new(json.headers().map(|(n, v)| (Cow::Borrowed(n), v.clone())))
            }
        }
    }

    /// Number of header lines, repeats included.
    pub fn header_count(&self) -> usize {
        match &self.repr {
            Repr::Plain { headers, .. } => headers.len(),
            Repr::Json(json) => json.len(),
        }
    }

    /// The inner body (a BACKGROUND_JOB's result, say), raw: it is never percent-encoded.
    pub fn body(&self) -> Option<Cow<'_, str>> {
        match &self.repr {
            Repr::Plain { buf, body, .. } => body.map(|s| String::from_utf8_lossy(s.get(buf))),
            Repr::Json(json) => json.body().map(Cow::Borrowed),
        }
    }

    /// `Event-Subclass` of a CUSTOM event (`conference::maintenance`…).
    pub fn subclass(&self) -> Option<Cow<'_, str>> {
        self.header("Event-Subclass")
    }

    /// `Core-UUID`: identifies the FreeSWITCH process; a new value means it restarted.
    pub fn core_uuid(&self) -> Option<Cow<'_, str>> {
        self.header("Core-UUID")
    }

    /// `Event-Sequence`. Per process, and not monotonic in delivery order.
    pub fn sequence(&self) -> Option<u64> {
        self.header("Event-Sequence")?.parse().ok()
    }

    /// `Unique-ID`: the channel the event is about.
    pub fn unique_id(&self) -> Option<Cow<'_, str>> {
        self.header("Unique-ID")
    }

    /// `Job-UUID` of a BACKGROUND_JOB.
    pub fn job_uuid(&self) -> Option<Cow<'_, str>> {
        self.header("Job-UUID")
    }

    /// `Action` of a conference event.
    pub fn action(&self) -> Option<ConferenceAction> {
        self.header("Action").map(|a| ConferenceAction::parse(&a))
    }

    /// True for `CUSTOM conference::maintenance`.
    pub fn is_conference(&self) -> bool {
        self.name == EventName::Custom
            && self.subclass().as_deref() == Some("conference::maintenance")
    }

    pub fn conference_name(&self) -> Option<Cow<'_, str>> {
        self.header("Conference-Name")
    }

    pub fn conference_unique_id(&self) -> Option<Cow<'_, str>> {
        self.header("Conference-Unique-ID")
    }

    /// `Conference-Size`: members after the change this event reports.
    pub fn conference_size(&self) -> Option<u32> {
        self.header("Conference-Size")?.parse().ok()
    }

    /// `Member-ID`: node-wide, restarts with FreeSWITCH.
    pub fn member_id(&self) -> Option<u32> {
        self.header("Member-ID")?.parse().ok()
    }

    /// `Member-Type` (`member`, `moderator`…).
    pub fn member_type(&self) -> Option<Cow<'_, str>> {
        self.header("Member-Type")
    }

    /// A boolean member flag header (`Speak`, `Hear`, `Talking`, `Mute-Detect`, `Hold`, `Floor`…).
    pub fn flag(&self, name: &str) -> Option<bool> {
        match self.header(name)?.as_ref() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// `File` of play-file / play-file-done.
    pub fn file(&self) -> Option<Cow<'_, str>> {
        self.header("File")
    }

    /// `Path` of a recording event.
    pub fn path(&self) -> Option<Cow<'_, str>> {
        self.header("Path")
    }

    /// `Error` of a failed play or record.
    pub fn error(&self) -> Option<Cow<'_, str>> {
        self.header("Error")
    }

    /// `Hangup-Cause` of a hangup or del-member.
    pub fn hangup_cause(&self) -> Option<Cow<'_, str>> {
        self.header("Hangup-Cause")
    }
}
