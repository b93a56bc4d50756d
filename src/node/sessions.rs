//! How many sessions a node holds and may hold, from its `status` (`api status`: `N
//! session(s) - peak …` and `M session(s) max`, the same on 1.10.12 and 1.11): what keeps a
//! share of a shared node's sessions from being taken by new rooms and dial-outs.

use super::{NodeError, NodeHandle};
use crate::esl::ApiCommand;

/// A node's sessions now and its limit (`max-sessions`, `fsctl max_sessions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sessions {
    pub now: usize,
    pub most: usize,
}

impl Sessions {
    /// Whether one more may be taken while `reserved_pct` percent of the limit is kept spare
    /// (for inbound calls and the joins of rooms already made).
    pub fn spare(&self, reserved_pct: u32) -> bool {
        let kept = self
            .most
            .saturating_mul(reserved_pct.min(100) as usize)
            .div_ceil(100);
        self.now + kept < self.most
    }
}

/// The sessions in a `status` reply; `None` when it has no such lines.
pub fn parse_status(text: &str) -> Option<Sessions> {
    let mut now = None;
    let mut most = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_suffix(" session(s) max") {
            most = n.trim().parse().ok();
        } else if let Some((n, rest)) = line.split_once(" session(s) - ")
            && rest.starts_with("peak")
        {
            now = n.trim().parse().ok();
        }
    }
    Some(Sessions {
        now: now?,
        most: most?,
    })
}

impl NodeHandle {
    /// The node's sessions, asked now (one `api status`).
    pub async fn sessions(&self) -> Result<Sessions, NodeError> {
        let command = ApiCommand::new("status").map_err(|e| NodeError::Rejected(e.to_string()))?;
        let reply = self.api(&command).await?;
        parse_status(&reply.text())
            .ok_or_else(|| NodeError::Rejected("status: no session counts".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a real 1.11 node answers (1.10.12 differs only in its version line).
    const STATUS: &str = "UP 0 years, 0 days, 0 hours, 1 minute, 1 second, 978 milliseconds, 963 microseconds\n\
        FreeSWITCH (Version 1.11.3-dev  64bit) is ready\n\
        1 session(s) since startup\n\
        1 session(s) - peak 1, last 5min 1 \n\
        0 session(s) per Sec out of max 30, peak 1, last 5min 1 \n\
        1000 session(s) max\n\
        min idle cpu 0.00/0.43\n\
        Current Stack Size/Max 240K/8192K\n";

    #[test]
    fn the_counts_are_read_from_a_real_status() {
        assert_eq!(parse_status(STATUS), Some(Sessions { now: 1, most: 1000 }));
        assert_eq!(parse_status("-ERR no reply"), None);
    }

    #[test]
    fn a_share_of_the_limit_stays_spare() {
        let s = |now| Sessions { now, most: 100 };
        assert!(s(89).spare(10));
        assert!(!s(90).spare(10), "the last 10 are kept");
        assert!(s(99).spare(0));
        assert!(!s(100).spare(0));
    }
}
