//! A JSON view of frames, for `switchyard esl decode` and `esl tap`: one object per frame,
//! `{"content_type", "headers", "body", "event"}`. In every header map a repeated name keeps its
//! first value, as FreeSWITCH's own lookups do.

use serde_json::{Map, Value, json};

use super::event::{Event, HeaderValue};
use super::frame::Frame;

fn header_value(value: HeaderValue) -> Value {
    match value {
        HeaderValue::One(v) => Value::String(v),
        HeaderValue::Many(vs) => Value::Array(vs.into_iter().map(Value::String).collect()),
    }
}

/// The decoded headers and inner body of an event.
pub fn event_json(event: &Event) -> Value {
    let mut headers = Map::new();
    for (name, value) in event.headers() {
        if !headers.contains_key(name.as_ref()) {
            headers.insert(name.into_owned(), header_value(value));
        }
    }
    json!({
        "headers": headers,
        "body": event.body().map(|b| Value::String(b.into_owned())).unwrap_or(Value::Null),
    })
}

/// The whole frame; `event` is filled for text/event-plain and text/event-json. An event body
/// that cannot be decoded leaves `event` null and says why in `event_error`.
pub fn frame_json(frame: &Frame) -> Value {
    let mut headers = Map::new();
    for (name, value) in frame.headers() {
        if !headers.contains_key(name.as_ref()) {
            headers.insert(name.into_owned(), Value::String(value.into_owned()));
        }
    }
    let mut out = Map::new();
    out.insert("content_type".into(), frame.content_type().as_str().into());
    out.insert("headers".into(), Value::Object(headers));
    out.insert(
        "body".into(),
        frame
            .body_text()
            .map(|b| Value::String(b.into_owned()))
            .unwrap_or(Value::Null),
    );
    let event = if frame.content_type().is_decodable_event() {
        match Event::from_frame(frame) {
            Ok(event) => event_json(&event),
            Err(e) => {
                out.insert("event_error".into(), e.to_string().into());
                Value::Null
            }
        }
    } else {
        Value::Null
    };
    out.insert("event".into(), event);
    Value::Object(out)
}
