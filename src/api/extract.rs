//! Request parts, parsed the contract's way: JSON bodies (an object sent as `application/json`,
//! else 415; longer than [`MAX_BODY`], 413; malformed JSON, another JSON type and unknown fields
//! are 400s; an empty body reads as `{}`), query parameters, page parameters (`limit` a positive
//! integer, clamped), and path ids, all failing with the contract's error body.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use serde_json::{Number, Value, json};

use super::ApiError;

/// The longest request body the API reads (a room's `data` is at most 16 KiB, its actions
/// at most 2 × 16 KiB of text); a longer one is 413.
pub const MAX_BODY: usize = 64 * 1024;

/// A JSON body of type `T` (declare `T` with `deny_unknown_fields`). The body must be a JSON
/// object sent as `application/json` (415 otherwise); a longer body than [`MAX_BODY`] is 413; an
/// empty body reads as `{}`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<JsonBody<T>, ApiError> {
        let declared_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: MAX_BODY }
            } else {
                ApiError::bad_request_with("Unreadable body", json!({ "reason": e.body_text() }))
            }
        })?;
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else if declared_json {
            &bytes
        } else {
            return Err(ApiError::UnsupportedMediaType);
        };
        // Only an object: serde would also build a struct from an array of its fields.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(not_an_object(body));
        }
        serde_json::from_slice(body).map(JsonBody).map_err(|e| {
            let reason = json!({ "reason": plain(&e.to_string()) });
            match e.classify() {
                serde_json::error::Category::Data => {
                    ApiError::bad_request_with("Invalid request body", reason)
                }
                _ => ApiError::bad_request_with("Malformed JSON", reason),
            }
        })
    }
}

/// The refusal of a body that does not start as an object: what it is instead, or that it is
/// not JSON at all.
fn not_an_object(body: &[u8]) -> ApiError {
    match serde_json::from_slice::<Value>(body) {
        Ok(other) => ApiError::bad_request_with(
            "Invalid request body: a JSON object is expected",
            json!({ "reason": format!("got {}", json_type(&other)) }),
        ),
        Err(e) => ApiError::bad_request_with("Malformed JSON", json!({ "reason": e.to_string() })),
    }
}

/// A JSON integer, written as one or as a number without a fraction (`3.0`, which JSON
/// Schema's `integer` admits too), within ±2^53.
pub fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    number::<D::Error>(Value::deserialize(d)?)
}

/// [`integer`] for an optional field, `null` for none (declare it `#[serde(default)]`).
pub fn optional_integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => number::<D::Error>(v).map(Some),
    }
}

fn number<E: de::Error>(v: Value) -> Result<i64, E> {
    match v {
        Value::Number(n) => whole(&n),
        other => Err(E::invalid_type(unexpected(&other), &"an integer")),
    }
}

/// A value as serde's errors name it, in JSON's words.
fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Other("null"),
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Other("an array"),
        Value::Object(_) => de::Unexpected::Other("an object"),
    }
}

fn whole<E: de::Error>(n: &Number) -> Result<i64, E> {
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
                .map(|f| f as i64)
        })
        .ok_or_else(|| {
            E::invalid_value(de::Unexpected::Other(&format!("number {n}")), &"an integer")
        })
}

/// `application/json`, or a `+json` type, with any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The JSON name of a value's type, as an error tells it.
/// An application's `metadata` as sent: a JSON object of at most
/// [`crate::conference::METADATA_MAX_BYTES`] serialized (`null` or absent: none).
pub fn metadata(v: Option<Value>) -> Result<Option<crate::conference::Metadata>, ApiError> {
    let max = crate::conference::METADATA_MAX_BYTES;
    let refused = || {
        ApiError::bad_request_with(
            "Invalid metadata: a JSON object of at most 4096 bytes serialized",
            serde_json::json!({ "max_bytes": max }),
        )
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => match serde_json::to_vec(&m) {
            Ok(bytes) if bytes.len() <= max => Ok(Some(m)),
            _ => Err(refused()),
        },
        Some(_) => Err(refused()),
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A serde error message in JSON's words instead of Rust's (`u64` → a non-negative integer,
/// `sequence` → array, `map` → object, `struct X` → an object).
pub fn plain(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected u8", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected i32", "expected an integer"),
        ("expected i16", "expected an integer"),
        ("expected i8", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("expected unit", "expected null"),
        ("expected option", "expected a value or null"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: object"),
        ("invalid type: unit value", "invalid type: null"),
        ("invalid type: floating point", "invalid type: number"),
        ("invalid value: floating point", "invalid value: number"),
    ];
    let mut out = WORDS
        .iter()
        .fold(message.to_owned(), |m, (rust, json)| m.replace(rust, json));
    while let Some(at) = out.find("expected struct ") {
        let name_end = out[at + 16..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(out.len(), |n| at + 16 + n);
        out.replace_range(at..name_end, "expected an object");
    }
    out
}

/// Query parameters as `T`, failing with the contract's error body (a repeated or malformed
/// parameter is a 400 in JSON, never axum's text answer).
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequestParts<St> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<QueryParams<T>, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| {
                ApiError::bad_request_with(
                    "Invalid query",
                    json!({ "reason": plain(&e.body_text()) }),
                )
            })
    }
}

/// In a listing's list of known query parameters: any `metadata.<key>` (the filter by the
/// application's metadata) is taken.
pub const METADATA_FILTER: &str = "metadata.<key>";

/// Refuses a query parameter that the endpoint does not take, as an unknown body field is
/// refused: 400 "Invalid query", `detail.reason` "unknown field `x`, expected `limit` or
/// `cursor`". `known` may hold [`METADATA_FILTER`].
pub fn known_params(
    query: &[(String, String)],
    known: &'static [&'static str],
) -> Result<(), ApiError> {
    let filters = known.contains(&METADATA_FILTER);
    let Some(unknown) = query
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| !(known.contains(k) || filters && k.starts_with("metadata.")))
    else {
        return Ok(());
    };
    let name: String = unknown.chars().take(100).collect();
    let reason = <de::value::Error as de::Error>::unknown_field(&name, known).to_string();
    Err(ApiError::bad_request_with(
        "Invalid query",
        json!({ "reason": reason }),
    ))
}

#[derive(Debug, Default, Deserialize)]
struct RawPage {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `?limit=&cursor=` of a listing; `limit` still unclamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The limit: default 50, clamped to `max`.
    pub fn limit(&self, max: usize) -> usize {
        self.limit.map_or(50, |l| l.min(max as u64) as usize)
    }
}

impl<St: Send + Sync> FromRequestParts<St> for PageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<PageQuery, ApiError> {
        let QueryParams(raw) = QueryParams::<RawPage>::from_request_parts(parts, state).await?;
        let limit = raw
            .limit
            .as_deref()
            .map(|l| positive("limit", l))
            .transpose()?;
        Ok(PageQuery {
            limit,
            cursor: raw.cursor.filter(|c| !c.is_empty()),
        })
    }
}

/// A query parameter that must be a positive integer (`limit`, `page_size`): digits only, not 0,
/// at most 2^63 − 1 (the document's `int64`).
pub fn positive(name: &str, raw: &str) -> Result<u64, ApiError> {
    match raw.parse::<u64>() {
        Ok(n) if n > 0 && n <= i64::MAX as u64 && !raw.starts_with('+') => Ok(n),
        _ => Err(ApiError::bad_request_with(
            format!("Invalid {name}: must be a positive integer"),
            json!({ name: raw.chars().take(40).collect::<String>() }),
        )),
    }
}

/// The one path parameter of a route, as text (each handler parses its id).
pub struct IdPath(pub String);

impl<St: Send + Sync> FromRequestParts<St> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<IdPath, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| IdPath(id))
            .map_err(|e| {
                ApiError::bad_request_with("Invalid path", json!({ "reason": e.body_text() }))
            })
    }
}

/// The two path parameters of a route, as text.
pub struct PairPath(pub String, pub String);

impl<St: Send + Sync> FromRequestParts<St> for PairPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<PairPath, ApiError> {
        Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map(|Path((a, b))| PairPath(a, b))
            .map_err(|e| {
                ApiError::bad_request_with("Invalid path", json!({ "reason": e.body_text() }))
            })
    }
}

/// Unix microseconds as a UTC calendar date and time: (year, month, day, seconds of the day,
/// microseconds).
fn civil(micros: i64) -> (i64, i64, i64, i64, i64) {
    let secs = micros.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem, micros.rem_euclid(1_000_000))
}

/// Unix microseconds as ISO-8601 UTC to the second (`2026-05-06T12:34:56Z`).
pub fn iso8601(micros: i64) -> String {
    let (year, month, day, rem, _) = civil(micros);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What seeds 000–003 write for a moment that has not happened yet.
pub const TM_NEVER: &str = "9999-01-01 00:00:00.000000";

/// A `tm_*` timestamp of seeds 000–003: UTC with microseconds (`2022-02-03 06:08:56.672025`),
/// [`TM_NEVER`] for `None`.
pub fn tm(micros: Option<i64>) -> String {
    let Some(micros) = micros else {
        return TM_NEVER.to_owned();
    };
    let (year, month, day, rem, us) = civil(micros);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{us:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_711_036_800_000_000), "2024-03-21T16:00:00Z");
        assert_eq!(iso8601(1_778_070_896_123_456), "2026-05-06T12:34:56Z");
        assert_eq!(iso8601(951_782_400_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            tm(Some(1_643_868_536_672_025)),
            "2022-02-03 06:08:56.672025"
        );
        assert_eq!(tm(Some(0)), "1970-01-01 00:00:00.000000");
        assert_eq!(tm(None), "9999-01-01 00:00:00.000000");
    }
}
