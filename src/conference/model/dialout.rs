//! Dial-out: a call the room places to someone, from the request until the callee is a member
//! (answered and in the room) or the call failed. Only pending dial-outs are kept; a joined
//! one is a member like any other, a failed one is told by its webhook.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Micros;
use crate::conference::ids::SessionId;

/// Where a pending dial-out is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialoutState {
    /// The originate is on its way; nothing heard from the far end yet.
    Dialing,
    /// The far end rings (a 180, or early media).
    Ringing,
    /// Answered; it enters the room in the same moment (its add-member makes it a member).
    Answered,
}

impl DialoutState {
    pub fn as_str(self) -> &'static str {
        match self {
            DialoutState::Dialing => "dialing",
            DialoutState::Ringing => "ringing",
            DialoutState::Answered => "answered",
        }
    }
}

/// Why a dial-out never became a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialoutFailure {
    /// The far end is busy (486, 600).
    Busy,
    /// Nobody answered within the timeout.
    NoAnswer,
    /// The far end refused (403, 603, 404, …).
    Rejected,
    /// Nothing came back at all: no ringing within the timeout, or the far end unreachable.
    Timeout,
    /// Cancelled: the room ended, or the application hung it up, before it was answered.
    Cancelled,
    /// Anything else FreeSWITCH reported (the cause says what).
    Failed,
}

impl DialoutFailure {
    /// The failure a FreeSWITCH hangup cause means.
    pub fn of_cause(cause: &str) -> DialoutFailure {
        match cause {
            "USER_BUSY" => DialoutFailure::Busy,
            "NO_ANSWER" | "NO_USER_RESPONSE" => DialoutFailure::NoAnswer,
            "CALL_REJECTED"
            | "UNALLOCATED_NUMBER"
            | "INVALID_NUMBER_FORMAT"
            | "UNWANTED"
            | "NUMBER_CHANGED"
            | "NO_ROUTE_DESTINATION" => DialoutFailure::Rejected,
            "PROGRESS_TIMEOUT" | "RECOVERY_ON_TIMER_EXPIRE" | "ALLOTTED_TIMEOUT" => {
                DialoutFailure::Timeout
            }
            "ORIGINATOR_CANCEL" | "NORMAL_CLEARING" | "LOSE_RACE" => DialoutFailure::Cancelled,
            _ => DialoutFailure::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DialoutFailure::Busy => "busy",
            DialoutFailure::NoAnswer => "no_answer",
            DialoutFailure::Rejected => "rejected",
            DialoutFailure::Timeout => "timeout",
            DialoutFailure::Cancelled => "cancelled",
            DialoutFailure::Failed => "failed",
        }
    }
}

/// A call the room is placing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialout {
    /// The participant id: the new leg's channel uuid (its session is `<prefix>-<id>`).
    pub id: Uuid,
    pub session: SessionId,
    /// The destination as the application wrote it (checked).
    pub to: String,
    pub state: DialoutState,
    /// How the callee enters the room.
    pub muted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moderator: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end_on_exit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_uid: Option<String>,
    /// The application's data about the participation, the member's once it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<super::Metadata>,
    pub requested_at: Micros,
    /// Past this, a dial-out the node never reported on is given up (`timeout`).
    pub deadline: Micros,
    pub updated_at: Micros,
}

impl Dialout {
    pub fn channel(&self) -> &str {
        self.session.channel()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_map_to_what_an_application_acts_on() {
        use DialoutFailure as F;
        for (cause, failure) in [
            ("USER_BUSY", F::Busy),
            ("NO_ANSWER", F::NoAnswer),
            ("NO_USER_RESPONSE", F::NoAnswer),
            ("CALL_REJECTED", F::Rejected),
            ("UNALLOCATED_NUMBER", F::Rejected),
            ("PROGRESS_TIMEOUT", F::Timeout),
            ("RECOVERY_ON_TIMER_EXPIRE", F::Timeout),
            ("ORIGINATOR_CANCEL", F::Cancelled),
            ("DESTINATION_OUT_OF_ORDER", F::Failed),
        ] {
            assert_eq!(DialoutFailure::of_cause(cause), failure, "{cause}");
        }
    }
}
