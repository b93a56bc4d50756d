//! One delivery attempt and its verdict, and the retry schedule.
//!
//! A 2xx acknowledges. Timeouts, connection errors, 408, 429 and 5xx are retried on the
//! schedule, never earlier than a `Retry-After` asks. Any other answer (3xx included: redirects
//! are not followed) and a refused address give up at once. Errors carry no URL (it may hold a
//! token) and no secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{StatusCode, Url};

use super::address::{self, CheckedResolver};
use super::sign::Signer;

/// The longest `Retry-After` honoured; a longer one waits this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How much of a response body is read (and thrown away) so the connection can be reused.
const MAX_RESPONSE_BODY: usize = 16 * 1024;

/// When to try again after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// The wait before each retry; there are `delays.len() + 1` attempts in all.
    pub delays: Vec<Duration>,
    /// Each wait is varied by up to this fraction either way (0.2 = ±20 %).
    pub jitter: f64,
}

impl Default for RetrySchedule {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, ±20 %.
    fn default() -> RetrySchedule {
        let m = |min: u64| Duration::from_secs(min * 60);
        RetrySchedule {
            delays: vec![Duration::from_secs(5), m(5), m(30), m(120), m(300), m(600)],
            jitter: 0.2,
        }
    }
}

impl RetrySchedule {
    /// The wait before retry number `retry` (0-based), at least `retry_after`; `None` when the
    /// schedule is exhausted.
    pub fn delay(&self, retry: usize, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.delays.get(retry)?;
        let spread = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 + spread * (fastrand::f64() * 2.0 - 1.0);
        let jittered = base.mul_f64(factor);
        Some(jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER)))
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// Worth another try.
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// Another try would fail the same way.
    GiveUp { status: Option<u16>, error: String },
}

/// The HTTP client for one endpoint: no redirects, no proxies (they would bypass the address
/// check), the checked resolver, and `timeout` for a whole request.
pub fn client(timeout: Duration, allow_private: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(CheckedResolver { allow_private }))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Sends one signed message. `id` is the `webhook-id`; the timestamp and signature are made now.
pub async fn attempt(
    client: &reqwest::Client,
    url: &Url,
    allow_private: bool,
    signer: &Signer,
    id: &str,
    body: &[u8],
) -> Verdict {
    if let Err(refused) = address::check_url(url, allow_private) {
        return Verdict::GiveUp {
            status: None,
            error: refused.to_string(),
        };
    }
    let timestamp = unix_now();
    let signature = match signer.signature(id, timestamp, body) {
        Ok(s) => s,
        Err(e) => {
            return Verdict::GiveUp {
                status: None,
                error: e.to_string(),
            };
        }
    };
    let request = client
        .post(url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(
            USER_AGENT,
            HeaderValue::from_static("Switchyard-Webhooks/1"),
        )
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_vec());
    match request.send().await {
        Ok(response) => judge_response(response).await,
        Err(e) => judge_error(e),
    }
}

async fn judge_response(mut response: reqwest::Response) -> Verdict {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut read = 0;
    while read < MAX_RESPONSE_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    let code = Some(status.as_u16());
    let error = format!("HTTP {}", status.as_u16());
    if status.is_success() {
        Verdict::Delivered {
            status: status.as_u16(),
        }
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Verdict::Retry {
            status: code,
            error,
            retry_after,
        }
    } else {
        Verdict::GiveUp {
            status: code,
            error,
        }
    }
}

fn judge_error(e: reqwest::Error) -> Verdict {
    if let Some(refused) = address::refusal_in(&e) {
        return Verdict::GiveUp {
            status: None,
            error: refused.to_string(),
        };
    }
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_builder() {
        return Verdict::GiveUp {
            status: None,
            error: e.without_url().to_string(),
        };
    } else {
        "request failed"
    };
    Verdict::Retry {
        status: None,
        error: format!("{kind}: {}", e.without_url()),
        retry_after: None,
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_schedule_jitters_honours_retry_after_and_ends() {
        let s = RetrySchedule::default();
        for _ in 0..100 {
            let d = s.delay(0, None).unwrap();
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
                "{d:?}"
            );
        }
        let d = s.delay(0, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(d, Duration::from_secs(60));
        let d = s.delay(0, Some(Duration::from_secs(1_000_000))).unwrap();
        assert_eq!(d, MAX_RETRY_AFTER);
        assert!(s.delay(5, None).unwrap() >= Duration::from_secs(8 * 3600));
        assert_eq!(s.delay(6, None), None);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        let later = SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d <= Duration::from_secs(30) && d >= Duration::from_secs(28),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
