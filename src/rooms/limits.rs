//! The cooldown groups of the API contract: which commands share a window, and how long it is.
//! Cooldowns live in the store, so every controller instance on one Redis enforces one limit.

use std::time::Duration;

/// A group of commands that share one cooldown per room or per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CooldownGroup {
    /// `play`, per room.
    ConfPlay,
    /// `pause`, `stop`, `volume`, per room.
    ConferenceControl,
    /// `conference/join`, `conference/leave`, per session.
    Conference,
    /// `conference/mute`, `conference/unmute`, per session.
    ConferenceMute,
    /// `conference/deaf`, `conference/undeaf`, per session (the `conference_mute` window).
    ConferenceDeaf,
    /// `conference/hold`, `conference/unhold`, per session (the `conference_mute` window).
    ConferenceHold,
    /// `conference/announce`, per session (the `conf_play` window).
    ConferenceAnnounce,
    /// `conference/coach`, `conference/uncoach`, per session (the `conference_mute` window).
    ConferenceCoach,
    /// `conference/audio`, per session (the `conference_mute` window).
    ConferenceAudio,
    /// Dial-out, per destination of the app (the `conference` window): the same number is
    /// not called again and again.
    ConferenceDialout,
}

impl CooldownGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            CooldownGroup::ConfPlay => "conf_play",
            CooldownGroup::ConferenceControl => "conference_control",
            CooldownGroup::Conference => "conference",
            CooldownGroup::ConferenceMute => "conference_mute",
            CooldownGroup::ConferenceDeaf => "conference_deaf",
            CooldownGroup::ConferenceHold => "conference_hold",
            CooldownGroup::ConferenceAnnounce => "conference_announce",
            CooldownGroup::ConferenceCoach => "conference_coach",
            CooldownGroup::ConferenceAudio => "conference_audio",
            CooldownGroup::ConferenceDialout => "conference_dialout",
        }
    }

    /// The group of a member switch's commands.
    pub fn of(switch: crate::conference::Switch) -> CooldownGroup {
        use crate::conference::Switch;
        match switch {
            Switch::Mute => CooldownGroup::ConferenceMute,
            Switch::Deaf => CooldownGroup::ConferenceDeaf,
            Switch::Hold => CooldownGroup::ConferenceHold,
        }
    }
}

/// The window of each group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldowns {
    pub conf_play: Duration,
    pub conference_control: Duration,
    pub conference: Duration,
    pub conference_mute: Duration,
}

impl Default for Cooldowns {
    /// The contract's windows: 2 s, 200 ms, 2 s, 2 s.
    fn default() -> Cooldowns {
        Cooldowns {
            conf_play: Duration::from_secs(2),
            conference_control: Duration::from_millis(200),
            conference: Duration::from_secs(2),
            conference_mute: Duration::from_secs(2),
        }
    }
}

impl Cooldowns {
    pub fn window(&self, group: CooldownGroup) -> Duration {
        match group {
            CooldownGroup::ConfPlay | CooldownGroup::ConferenceAnnounce => self.conf_play,
            CooldownGroup::ConferenceControl => self.conference_control,
            CooldownGroup::Conference | CooldownGroup::ConferenceDialout => self.conference,
            CooldownGroup::ConferenceMute
            | CooldownGroup::ConferenceDeaf
            | CooldownGroup::ConferenceHold
            | CooldownGroup::ConferenceCoach
            | CooldownGroup::ConferenceAudio => self.conference_mute,
        }
    }
}
