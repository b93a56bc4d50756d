//! start-talking / stop-talking held back for an interval: they come with every spoken phrase
//! of every member, and an application wants who is talking, not every flicker of it. Each
//! member's newest talking event of the interval is applied when it ends (the domain drops one
//! that restates the member's state), so a busy room is written once per interval, its talking
//! webhooks are at least an interval apart, and a start and stop inside one interval tell
//! nothing. A state event (mute, hold, leave) is not held: applied first, it makes the held
//! talking event older than the member's state, and the domain ignores it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::conference::{ConferenceFact, Fact, Observed};

/// The talking events waiting for the end of the interval.
#[derive(Debug)]
pub struct TalkingBuffer {
    interval: Duration,
    /// channel → the newest talking event of its member (a channel is in one room at a time).
    pending: HashMap<String, Observed>,
    /// When the interval that the first held event opened ends.
    deadline: Option<Instant>,
}

impl TalkingBuffer {
    pub fn new(interval: Duration) -> TalkingBuffer {
        TalkingBuffer {
            interval,
            pending: HashMap::new(),
            deadline: None,
        }
    }

    /// Holds a talking event until the interval ends; anything else (or every event, with a
    /// zero interval) is handed back to be applied now.
    pub fn hold(&mut self, observed: Observed, now: Instant) -> Option<Observed> {
        let key = match &observed.fact {
            Fact::Conference {
                fact: ConferenceFact::MemberTalking { channel, .. },
                ..
            } if !self.interval.is_zero() => channel.clone(),
            _ => return Some(observed),
        };
        self.deadline.get_or_insert(now + self.interval);
        match self.pending.get_mut(&key) {
            Some(held) if held.sequence > observed.sequence => {}
            Some(held) => *held = observed,
            None => {
                self.pending.insert(key, observed);
            }
        }
        None
    }

    /// When the held events are due (`None`: nothing is held).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The held events, oldest first; the next one held opens a new interval.
    pub fn take(&mut self) -> Vec<Observed> {
        self.deadline = None;
        let mut due: Vec<Observed> = self.pending.drain().map(|(_, o)| o).collect();
        due.sort_by_key(|o| o.sequence);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talking(room: &str, channel: &str, on: bool, sequence: u64) -> Observed {
        Observed {
            core_uuid: "core".into(),
            sequence,
            fact: Fact::Conference {
                room: room.into(),
                conference_uuid: "conf".into(),
                fact: ConferenceFact::MemberTalking {
                    channel: channel.into(),
                    member_id: 2,
                    talking: on,
                },
            },
        }
    }

    fn is_on(o: &Observed) -> bool {
        matches!(
            &o.fact,
            Fact::Conference {
                fact: ConferenceFact::MemberTalking { talking: true, .. },
                ..
            }
        )
    }

    #[test]
    fn each_members_newest_talking_event_is_due_when_the_interval_ends() {
        let t0 = Instant::now();
        let mut b = TalkingBuffer::new(Duration::from_millis(200));
        assert!(b.hold(talking("r1", "a", true, 10), t0).is_none());
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(200)));
        // Later events do not move the deadline; an older one arriving late does not win.
        let later = t0 + Duration::from_millis(150);
        assert!(b.hold(talking("r1", "a", false, 12), later).is_none());
        assert!(b.hold(talking("r1", "a", true, 11), later).is_none());
        assert!(b.hold(talking("r1", "b", true, 13), later).is_none());
        assert!(b.hold(talking("r2", "c", true, 14), later).is_none());
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(200)));
        let due = b.take();
        let seqs: Vec<u64> = due.iter().map(|o| o.sequence).collect();
        assert_eq!(seqs, [12, 13, 14]);
        assert!(!is_on(&due[0]), "a stopped last");
        assert_eq!(b.deadline(), None);
        assert!(b.take().is_empty());
    }

    #[test]
    fn other_events_and_a_zero_interval_pass_through() {
        let now = Instant::now();
        let mut b = TalkingBuffer::new(Duration::ZERO);
        assert!(b.hold(talking("r1", "a", true, 1), now).is_some());
        let mut b = TalkingBuffer::new(Duration::from_millis(100));
        let heartbeat = Observed {
            core_uuid: "core".into(),
            sequence: 2,
            fact: Fact::Heartbeat,
        };
        assert!(b.hold(heartbeat, now).is_some());
        assert_eq!(b.deadline(), None);
    }
}
