//! Jittered exponential backoff for reconnects: one attempt at a time, full jitter, capped.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The wait before the next attempt: random in [0, min(cap, base·2^n)] (never below 10 ms).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let millis = ceiling.as_millis().max(10) as u64;
        Duration::from_millis(fastrand::u64(10..=millis))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let ceilings: Vec<u64> = (0..10).map(|i| (100u64 << i).min(5000)).collect();
        for ceiling in ceilings {
            let d = b.next_delay().as_millis() as u64;
            assert!((10..=ceiling).contains(&d), "{d} > {ceiling}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
