//! The body of a `text/event-json` frame: one JSON object whose values are strings, except the
//! multi-valued headers FreeSWITCH sends as arrays of strings. `_body` is the inner body.
//!
//! FreeSWITCH writes duplicate keys (the same header twice) and passes bytes above 0x7F through
//! unchanged, so the text is decoded lossily and the object is read as an ordered list of pairs.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::error::EventError;
use super::event::HeaderValue;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JsonEvent {
    headers: Vec<(String, HeaderValue)>,
    body: Option<String>,
}

fn to_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = JsonEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of event headers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonEvent, A::Error> {
        let mut event = JsonEvent {
            headers: Vec::with_capacity(map.size_hint().unwrap_or(64)),
            body: None,
        };
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            if key == "_body" {
                event.body.get_or_insert_with(|| to_text(value));
                continue;
            }
            let value = match value {
                Value::Array(items) => HeaderValue::Many(items.into_iter().map(to_text).collect()),
                other => HeaderValue::One(to_text(other)),
            };
            event.headers.push((key, value));
        }
        Ok(event)
    }
}

impl JsonEvent {
    pub fn parse(body: &[u8]) -> Result<JsonEvent, EventError> {
        let text = String::from_utf8_lossy(body);
        let mut de = serde_json::Deserializer::from_str(&text);
        let event = (&mut de)
            .deserialize_map(PairsVisitor)
            .and_then(|event| de.end().map(|()| event))
            .map_err(|e| EventError::MalformedJson(e.to_string()))?;
        Ok(event)
    }

    /// First value of `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn headers(&self) -> impl Iterator<Item = (&str, &HeaderValue)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.headers.len()
    }

    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }
}
