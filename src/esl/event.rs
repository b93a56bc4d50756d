//! Events: the body of a `text/event-plain` or `text/event-json` frame.
//!
//! A plain event is a second header block whose values are percent-encoded; it is indexed once
//! (spans into the frame's `Bytes`) and each value is decoded only when it is read. An event off
//! the wire ([`Event::from_frame`]) is indexed only when a header other than the three near its
//! top is first read ([`Event::name`] and [`Event::origin`], read with one pass over the lines up
//! to them): a consumer that keeps events without reading them (a standby) never indexes them.
//! A JSON event is parsed into its header list at once. Both answer the same questions the same way: names are
//! looked up without regard to case, and a repeated header keeps its first value, as FreeSWITCH's
//! own `switch_event_get_header` does.

use std::borrow::Cow;

use bytes::Bytes;

use super::error::EventError;
use super::frame::{ContentType, Frame, find_header, utf8_lossy};
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
        /// Built on first use (at once by [`Event::parse_plain`]).
        index: std::sync::OnceLock<PlainIndex>,
        /// `Core-UUID` and `Event-Sequence`, read with the name ([`Event::origin`]).
        origin: (Option<Span>, Option<u64>),
    },
    Json(json_event::JsonEvent),
}

/// The spans of a plain event's headers, and of its inner body.
#[derive(Debug, Clone, Default)]
struct PlainIndex {
    headers: Vec<HeaderSpan>,
    body: Option<Span>,
}

impl PlainIndex {
    fn of(buf: &Bytes) -> Result<PlainIndex, EventError> {
        // Event header lines run 28 to 46 bytes in captures: this rarely over-reserves by much
        // and almost never grows.
        let mut headers = Vec::with_capacity(buf.len() / 24 + 4);
        let consumed = parse::header_block(buf, buf, &mut headers).map_err(|line| {
            EventError::MalformedHeader(String::from_utf8_lossy(line).into_owned())
        })?;
        let body = find_header(buf, &headers, "Content-Length").map(|_| Span {
            start: consumed as u32,
            end: buf.len() as u32,
        });
        Ok(PlainIndex { headers, body })
    }
}

/// One FreeSWITCH event, from either wire format.
#[derive(Debug, Clone)]
pub struct Event {
    name: EventName,
    repr: Repr,
}

/// The value of an ASCII hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes a plain value; borrows when there is nothing to decode.
///
/// Same result as `percent_encoding::percent_decode(raw).decode_utf8_lossy()`: `%` and two hex
/// digits is a byte, any other `%` stays as it is, and invalid UTF-8 is replaced. Written out so
/// that runs without `%` are copied whole and the output is allocated once, at its final size.
fn decode_value(raw: &[u8]) -> Cow<'_, str> {
    match memchr::memchr(b'%', raw) {
        None => utf8_lossy(raw),
        Some(pct) => Cow::Owned(percent_decode_from(raw, pct)),
    }
}

/// A value's first item: FreeSWITCH's array form `ARRAY::a|:b` reads as `a`.
fn first_value(value: Cow<'_, str>) -> Cow<'_, str> {
    match value.strip_prefix("ARRAY::") {
        None => value,
        Some(items) => Cow::Owned(items.split("|:").next().unwrap_or_default().to_owned()),
    }
}

/// Reads the values of a plain event in wire order for [`Event::headers`]: the body's UTF-8 is
/// validated once, not per value, and its `%`s are found by scanning ahead once per value that
/// has one, not once per value.
struct PlainValues<'a> {
    buf: &'a [u8],
    /// `buf` when it is valid UTF-8 as a whole: a span of it then needs only its two ends checked
    /// for char boundaries, and both ends of a header's name or value are next to ASCII bytes.
    text: Option<&'a str>,
    /// The first `%` at or after the start of the last value read (or of `buf`); `buf.len()` when
    /// there is none.
    next_pct: usize,
}

impl<'a> PlainValues<'a> {
    fn new(buf: &'a [u8]) -> PlainValues<'a> {
        PlainValues {
            buf,
            text: std::str::from_utf8(buf).ok(),
            next_pct: memchr::memchr(b'%', buf).unwrap_or(buf.len()),
        }
    }

    fn name(&self, span: Span) -> Cow<'a, str> {
        span_text(self.buf, self.text, span)
    }

    /// [`decode_value`] of `span`, which must not start before the last span given.
    fn value(&mut self, span: Span) -> Cow<'a, str> {
        let (start, end) = (span.start as usize, span.end as usize);
        if self.next_pct < start {
            self.next_pct =
                memchr::memchr(b'%', &self.buf[start..]).map_or(self.buf.len(), |at| start + at);
        }
        if self.next_pct < end {
            Cow::Owned(percent_decode_from(
                span.get(self.buf),
                self.next_pct - start,
            ))
        } else {
            span_text(self.buf, self.text, span)
        }
    }
}

/// The `span` of `buf` as text, borrowed from `text` (`buf` when it is valid UTF-8) if it can be.
fn span_text<'a>(buf: &'a [u8], text: Option<&'a str>, span: Span) -> Cow<'a, str> {
    match text.and_then(|t| t.get(span.start as usize..span.end as usize)) {
        Some(s) => Cow::Borrowed(s),
        None => utf8_lossy(span.get(buf)),
    }
}

/// Percent-decodes `raw`, whose first `%` is at `pct`.
fn percent_decode_from(raw: &[u8], mut pct: usize) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut done = 0;
    loop {
        out.extend_from_slice(&raw[done..pct]);
        let byte = match (raw.get(pct + 1), raw.get(pct + 2)) {
            (Some(&h), Some(&l)) => hex_digit(h).zip(hex_digit(l)),
            _ => None,
        };
        match byte {
            Some((h, l)) => {
                out.push(h << 4 | l);
                done = pct + 3;
            }
            None => {
                out.push(b'%');
                done = pct + 1;
            }
        }
        match memchr::memchr(b'%', &raw[done..]) {
            Some(next) => pct = done + next,
            None => break,
        }
    }
    out.extend_from_slice(&raw[done..]);
    match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

impl Event {
    /// Decodes the event carried by a `text/event-plain` or `text/event-json` frame. A plain
    /// one is indexed only when first read past its top lines; should its header block turn
    /// out malformed then, it reads as having no headers (and it is logged).
    pub fn from_frame(frame: &Frame) -> Result<Event, EventError> {
        let body = frame.body_bytes().unwrap_or_default();
        match frame.content_type() {
            ContentType::EventPlain => Ok(Event::plain_unindexed(body)),
            ContentType::EventJson => Event::parse_json(&body),
            other => Err(EventError::NotAnEvent(other.to_string())),
        }
    }

    /// A plain event body whose headers are indexed when first read (its name, `Core-UUID` and
    /// `Event-Sequence` are read now).
    pub fn plain(buf: Bytes) -> Event {
        Event::plain_unindexed(buf)
    }

    fn plain_unindexed(buf: Bytes) -> Event {
        let [name, core, sequence] =
            parse::first_headers(&buf, [b"Event-Name", b"Core-UUID", b"Event-Sequence"]);
        let origin = Event::origin_of(&buf, core, sequence);
        Event {
            name: Event::name_of(name),
            repr: Repr::Plain {
                buf,
                index: std::sync::OnceLock::new(),
                origin,
            },
        }
    }

    /// The name an `Event-Name` value gives (none: an empty `Other`).
    fn name_of(raw: Option<&[u8]>) -> EventName {
        raw.map(|raw| EventName::parse(&decode_value(raw)))
            .unwrap_or_else(|| EventName::Other("".into()))
    }

    fn origin_of(
        buf: &[u8],
        core: Option<&[u8]>,
        sequence: Option<&[u8]>,
    ) -> (Option<Span>, Option<u64>) {
        (
            core.map(|raw| Span::of(buf, raw)),
            sequence.and_then(|raw| first_value(decode_value(raw)).parse().ok()),
        )
    }

    /// Indexes a plain event body: a header block, then (when it has `Content-Length`) the rest
    /// of the body as the inner body, as FreeSWITCH's own client does.
    pub fn parse_plain(buf: Bytes) -> Result<Event, EventError> {
        let index = PlainIndex::of(&buf)?;
        let name = Event::name_of(find_header(&buf, &index.headers, "Event-Name"));
        let origin = Event::origin_of(
            &buf,
            find_header(&buf, &index.headers, "Core-UUID"),
            find_header(&buf, &index.headers, "Event-Sequence"),
        );
        Ok(Event {
            name,
            repr: Repr::Plain {
                buf,
                index: std::sync::OnceLock::from(index),
                origin,
            },
        })
    }

    /// The event with its bytes copied out of the connection's read buffer, which it shares
    /// with the frames read with it: an event kept for long (a standby's) then holds only
    /// itself, and the buffer is reused instead of a fresh one allocated behind it.
    pub fn detached(self) -> Event {
        match self.repr {
            Repr::Plain { buf, index, origin } => Event {
                name: self.name,
                repr: Repr::Plain {
                    buf: Bytes::copy_from_slice(&buf),
                    index,
                    origin,
                },
            },
            json => Event {
                name: self.name,
                repr: json,
            },
        }
    }

    /// A plain event's index, built now if it was not.
    fn index<'a>(buf: &Bytes, index: &'a std::sync::OnceLock<PlainIndex>) -> &'a PlainIndex {
        index.get_or_init(|| {
            PlainIndex::of(buf).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "undecodable event read as one without headers");
                PlainIndex::default()
            })
        })
    }

    /// `Core-UUID` and `Event-Sequence`. A plain event off the wire read them with its name, in
    /// one pass over its top lines, without indexing it (the first `Name:` line wins, as in a
    /// lookup).
    pub fn origin(&self) -> (Option<Cow<'_, str>>, Option<u64>) {
        match &self.repr {
            Repr::Plain { buf, origin, .. } => (
                origin
                    .0
                    .map(|span| first_value(decode_value(span.get(buf)))),
                origin.1,
            ),
            Repr::Json(_) => (
                self.header("Core-UUID"),
                self.header("Event-Sequence").and_then(|v| v.parse().ok()),
            ),
        }
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
            Repr::Plain { buf, index, .. } => {
                let headers = &Event::index(buf, index).headers;
                Some(first_value(decode_value(find_header(buf, headers, name)?)))
            }
            Repr::Json(json) => json.header(name).map(|v| Cow::Borrowed(v.first())),
        }
    }

    /// A header with all its values.
    pub fn header_value(&self, name: &str) -> Option<HeaderValue> {
        match &self.repr {
            Repr::Plain { buf, index, .. } => {
                find_header(buf, &Event::index(buf, index).headers, name)
                    .map(|raw| HeaderValue::from_decoded(decode_value(raw)))
            }
            Repr::Json(json) => json.header(name).cloned(),
        }
    }

    /// Every header in wire order, repeats included, values decoded.
    pub fn headers(&self) -> Box<dyn Iterator<Item = (Cow<'_, str>, HeaderValue)> + '_> {
        match &self.repr {
            Repr::Plain { buf, index, .. } => {
                let mut values = PlainValues::new(buf);
                Box::new(Event::index(buf, index).headers.iter().map(move |h| {
                    (
                        values.name(h.name),
                        HeaderValue::from_decoded(values.value(h.value)),
                    )
                }))
            }
            Repr::Json(json) => {
                Box::new(json.headers().map(|(n, v)| (Cow::Borrowed(n), v.clone())))
            }
        }
    }

    /// Number of header lines, repeats included.
    pub fn header_count(&self) -> usize {
        match &self.repr {
            Repr::Plain { buf, index, .. } => Event::index(buf, index).headers.len(),
            Repr::Json(json) => json.len(),
        }
    }

    /// The inner body (a BACKGROUND_JOB's result, say), raw: it is never percent-encoded.
    pub fn body(&self) -> Option<Cow<'_, str>> {
        match &self.repr {
            Repr::Plain { buf, index, .. } => Event::index(buf, index)
                .body
                .map(|s| utf8_lossy(s.get(buf))),
            Repr::Json(json) => json.body().map(Cow::Borrowed),
        }
    }

    /// `Event-Subclass` of a CUSTOM event (`conference::maintenance`…).
    pub fn subclass(&self) -> Option<Cow<'_, str>> {
        self.header("Event-Subclass")
    }

    /// `Core-UUID`: identifies the FreeSWITCH process; a new value means it restarted.
    pub fn core_uuid(&self) -> Option<Cow<'_, str>> {
        self.origin().0
    }

    /// `Event-Sequence`. Per process, and not monotonic in delivery order.
    pub fn sequence(&self) -> Option<u64> {
        self.origin().1
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_from(alphabet: &'static [u8]) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        proptest::collection::vec(proptest::sample::select(alphabet.to_vec()), 0..24)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The hand-written decoder agrees with the `percent-encoding` crate it replaced,
        /// including stray `%`, truncated escapes and escapes that make invalid UTF-8.
        #[test]
        fn decode_value_matches_percent_encoding(
            raw in bytes_from(b"%%%2aAfFgG0 9\xc3\xa9\xff:")
        ) {
            let want = percent_encoding::percent_decode(&raw).decode_utf8_lossy();
            proptest::prop_assert_eq!(decode_value(&raw), want);
        }

        /// Iterating reads every header as a lookup of it would, valid UTF-8 or not.
        #[test]
        fn headers_read_as_lookups_do(
            body in bytes_from(b"ab:: \r\n\n\n%%41\xc3\xa9\xff|ARY")
        ) {
            let Ok(event) = Event::parse_plain(Bytes::from(body)) else {
                return Ok(());
            };
            let Repr::Plain { buf, index, .. } = &event.repr else {
                unreachable!("a plain event");
            };
            let headers = &Event::index(buf, index).headers;
            for ((name, value), h) in event.headers().zip(headers) {
                let raw_name = h.name.get(buf);
                proptest::prop_assert_eq!(&name, &String::from_utf8_lossy(raw_name));
                let want = decode_value(h.value.get(buf));
                proptest::prop_assert_eq!(value, HeaderValue::from_decoded(want));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The headers read off an unindexed event's top lines are what a lookup in its index
        /// reads, and reading them does not index it.
        #[test]
        fn top_headers_read_unindexed_as_lookups_do(
            lines in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["Event-Name", "event-sequence", "Core-UUID", "X", "Event-Sequence", ""]),
                    proptest::sample::select(vec![":", ": ", ":  ", " "]),
                    proptest::sample::select(vec!["7", "CUSTOM", "ARRAY::1|:2", "a%41", "", " 9"]),
                ),
                0..8,
            )
        ) {
            let mut text = String::new();
            for (name, sep, value) in lines {
                text.push_str(&format!("{name}{sep}{value}\n"));
            }
            text.push('\n');
            let Ok(indexed) = Event::parse_plain(Bytes::from(text.clone())) else {
                return Ok(());
            };
            let lazy = Event::plain_unindexed(Bytes::from(text));
            proptest::prop_assert_eq!(lazy.name(), indexed.name());
            proptest::prop_assert_eq!(lazy.sequence(), indexed.sequence());
            proptest::prop_assert_eq!(lazy.core_uuid(), indexed.core_uuid());
            let Repr::Plain { index, .. } = &lazy.repr else {
                unreachable!("a plain event");
            };
            proptest::prop_assert!(index.get().is_none(), "reading the top indexed it");
            proptest::prop_assert_eq!(lazy.header("X"), indexed.header("X"));
        }
    }

    #[test]
    fn values_are_percent_decoded_and_arrays_split() {
        let event = Event::parse_plain(Bytes::from_static(
            b"Event-Name: CUSTOM\nA: 50%25%2\nB: ARRAY::x%7Cy|:z\nC: %E9%\n\n",
        ))
        .unwrap();
        assert_eq!(event.header("a").as_deref(), Some("50%%2"));
        assert_eq!(
            event.header_value("B"),
            Some(HeaderValue::Many(vec!["x|y".into(), "z".into()]))
        );
        assert_eq!(event.header("C").as_deref(), Some("\u{fffd}%"));
        let all: Vec<_> = event.headers().map(|(n, v)| (n.into_owned(), v)).collect();
        assert_eq!(all[1], ("A".into(), HeaderValue::One("50%%2".into())));
    }
}
