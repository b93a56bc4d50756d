//! Wrong keys, throttled per client address: past `N` wrong keys in a minute, every request
//! from that address that is subject to keys is answered 429 (with `Retry-After`) until the
//! minute that began with its first failure is over, without a key being checked, so that
//! guessing learns nothing more. A right key is never slowed: no wait is added to any check,
//! and an address that sends no wrong key is never throttled.
//!
//! An address is an IPv4 address or an IPv6 /64 ([`ClientKey`]). Behind a proxy every client
//! shares the proxy's address: turn this off there (`auth_failures_per_minute = 0`) and
//! throttle at the proxy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::server::http::ClientKey;

/// Wrong keys a minute from one address unless configured otherwise.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 30;

const WINDOW: Duration = Duration::from_secs(60);

/// Addresses remembered at most; past it, those whose window ended are forgotten first.
const MOST_ADDRESSES: usize = 100_000;

/// The failure counts. A std mutex: never held across an `.await`.
pub struct Throttle {
    most: u32,
    seen: Mutex<HashMap<ClientKey, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    began: Instant,
    failures: u32,
}

impl Throttle {
    /// `most` 0: no throttle.
    pub fn new(most: u32) -> Throttle {
        Throttle {
            most,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// How long `client` stays throttled, if it is.
    pub fn blocked(&self, client: ClientKey) -> Option<Duration> {
        self.blocked_at(client, Instant::now())
    }

    /// Counts one wrong key from `client`.
    pub fn failed(&self, client: ClientKey) {
        self.failed_at(client, Instant::now());
    }

    fn blocked_at(&self, client: ClientKey, now: Instant) -> Option<Duration> {
        if self.most == 0 {
            return None;
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let w = seen.get(&client)?;
        let left = WINDOW.checked_sub(now.duration_since(w.began))?;
        (w.failures >= self.most && !left.is_zero()).then_some(left)
    }

    fn failed_at(&self, client: ClientKey, now: Instant) {
        if self.most == 0 {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MOST_ADDRESSES && !seen.contains_key(&client) {
            seen.retain(|_, w| now.duration_since(w.began) < WINDOW);
            if seen.len() >= MOST_ADDRESSES {
                return;
            }
        }
        let w = seen.entry(client).or_insert(Window {
            began: now,
            failures: 0,
        });
        if now.duration_since(w.began) >= WINDOW {
            *w = Window {
                began: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> ClientKey {
        ClientKey::of([192, 0, 2, last].into())
    }

    #[test]
    fn past_n_failures_the_address_waits_out_its_minute_and_no_other_does() {
        let t = Throttle::new(3);
        let start = Instant::now();
        for _ in 0..2 {
            t.failed_at(addr(1), start);
        }
        assert_eq!(t.blocked_at(addr(1), start), None, "two of three");
        t.failed_at(addr(1), start + Duration::from_secs(10));
        let left = t.blocked_at(addr(1), start + Duration::from_secs(10));
        assert_eq!(left, Some(Duration::from_secs(50)));
        assert_eq!(t.blocked_at(addr(2), start), None);
        assert_eq!(
            t.blocked_at(addr(1), start + WINDOW),
            None,
            "the minute is over"
        );
        t.failed_at(addr(1), start + WINDOW);
        assert_eq!(t.blocked_at(addr(1), start + WINDOW), None, "a new window");
    }

    #[test]
    fn zero_turns_it_off() {
        let t = Throttle::new(0);
        for _ in 0..100 {
            t.failed(addr(1));
        }
        assert_eq!(t.blocked(addr(1)), None);
    }
}
