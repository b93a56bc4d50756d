//! What one simulated Event Socket connection has asked to receive: its event format, its
//! subscriptions (`event`, `nixevent`, `noevents`) and its filters, with mod_event_socket's rules.

use std::collections::BTreeSet;

use crate::esl::{ContentType, EventData};

/// Subscriptions and filters of one connection.
#[derive(Debug, Clone, Default)]
pub struct Subscription {
    json: bool,
    all: bool,
    names: BTreeSet<String>,
    /// CUSTOM subclasses; the empty string means "CUSTOM events without a subclass".
    subclasses: BTreeSet<String>,
    filters: Vec<(String, String)>,
    /// FreeSWITCH's LFLAG_EVENTS: set by a successful `event`, cleared only by `noevents`
    /// (nixing every name leaves it set).
    listening: bool,
}

/// Every event type name `event ALL` expands to when one is nixed.
const ALL_NAMES: &[&str] = &[
    "CUSTOM",
    "CHANNEL_CREATE",
    "CHANNEL_DESTROY",
    "CHANNEL_STATE",
    "CHANNEL_CALLSTATE",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_UNPARK",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "API",
    "BACKGROUND_JOB",
    "HEARTBEAT",
    "RE_SCHEDULE",
    "PRESENCE_IN",
    "CODEC",
    "CALL_UPDATE",
    "SHUTDOWN",
    "MODULE_LOAD",
    "MODULE_UNLOAD",
    "RECORD_START",
    "RECORD_STOP",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "DTMF",
];

/// Outcome of an `event`/`nixevent` command.
#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeOutcome {
    Ok,
    NoKeywords,
}

impl Subscription {
    pub fn content_type(&self) -> ContentType {
        if self.json {
            ContentType::EventJson
        } else {
            ContentType::EventPlain
        }
    }

    pub fn format_name(&self) -> &'static str {
        if self.json { "json" } else { "plain" }
    }

    pub fn is_listening(&self) -> bool {
        self.listening
    }

    /// `event [plain|json|xml] <names…> [CUSTOM <subclasses…>]`.
    pub fn subscribe(&mut self, words: &[&str]) -> SubscribeOutcome {
        let mut words = words;
        if let Some(first) = words.first() {
            match first.to_ascii_lowercase().as_str() {
                "plain" | "xml" => {
                    self.json = false;
                    words = &words[1..];
                }
                "json" => {
                    self.json = true;
                    words = &words[1..];
                }
                _ => {}
            }
        }
        let outcome = self.apply(words, true);
        self.listening |= outcome == SubscribeOutcome::Ok;
        outcome
    }

    /// `nixevent <names…> [CUSTOM <subclasses…>]`.
    pub fn nix(&mut self, words: &[&str]) -> SubscribeOutcome {
        if self.all && !words.iter().any(|w| w.eq_ignore_ascii_case("ALL")) {
            self.all = false;
            self.names = ALL_NAMES.iter().map(|s| (*s).to_owned()).collect();
        }
        self.apply(words, false)
    }

    /// `noevents`: everything off (filters stay, as in FreeSWITCH).
    pub fn clear(&mut self) {
        self.listening = false;
        self.all = false;
        self.names.clear();
        self.subclasses.clear();
    }

    fn apply(&mut self, words: &[&str], add: bool) -> SubscribeOutcome {
        let mut custom = false;
        let mut any = false;
        for word in words {
            if custom {
                any = true;
                if add {
                    self.subclasses.insert((*word).to_owned());
                } else {
                    self.subclasses.remove(*word);
                }
                continue;
            }
            let upper = word.to_ascii_uppercase();
            let name = upper.strip_prefix("SWITCH_EVENT_").unwrap_or(&upper);
            if name == "CUSTOM" {
                custom = true;
                continue;
            }
            if name == "ALL" {
                any = true;
                self.all = add;
                if !add {
                    self.names.clear();
                    self.subclasses.clear();
                }
                continue;
            }
            if !ALL_NAMES.contains(&name) && !crate::sim::events::is_event_name(name) {
                continue;
            }
            any = true;
            if add {
                self.names.insert(name.to_owned());
            } else {
                self.names.remove(name);
            }
        }
        if custom
            && words
                .last()
                .is_some_and(|w| w.eq_ignore_ascii_case("CUSTOM"))
        {
            any = true;
            if add {
                self.subclasses.insert(String::new());
            } else {
                self.subclasses.remove("");
            }
        }
        if any {
            SubscribeOutcome::Ok
        } else {
            SubscribeOutcome::NoKeywords
        }
    }

    /// Whether the subscription asks for this event (before filters).
    pub fn wants(&self, name: &str, subclass: Option<&str>) -> bool {
        if self.all {
            return true;
        }
        if name == "CUSTOM" {
            return self.subclasses.contains(subclass.unwrap_or(""));
        }
        self.names.contains(name)
    }

    /// `filter <header> <value>`: the reply text.
    pub fn add_filter(&mut self, header: &str, value: &str) -> String {
        self.filters.push((header.to_owned(), value.to_owned()));
        format!("+OK filter added. [{header}]=[{value}]")
    }

    /// `filter delete <header> [<value>]` or `filter delete all`: the reply text.
    pub fn delete_filter(&mut self, header: &str, value: Option<&str>) -> String {
        if header.eq_ignore_ascii_case("all") {
            self.filters.clear();
        } else {
            self.filters.retain(|(h, v)| {
                !(h.eq_ignore_ascii_case(header) && value.is_none_or(|value| v == value))
            });
        }
        format!("+OK filter deleted. [{header}][{}]", value.unwrap_or(""))
    }

    /// mod_event_socket's filter pass: with no filters everything passes; otherwise an event
    /// passes when a positive filter matches it and no negative one does.
    pub fn passes_filters(&self, event: &EventData) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let mut send = false;
        for (header, value) in &self.filters {
            let Some(actual) = event.get(header) else {
                continue;
            };
            let (negative, wanted) = match value.as_bytes().first() {
                Some(b'-') => (true, &value[1..]),
                Some(b'+') => (false, &value[1..]),
                _ => (false, value.as_str()),
            };
            if negative {
                if actual.eq_ignore_ascii_case(wanted) {
                    return false;
                }
            } else if !send && actual.eq_ignore_ascii_case(wanted) {
                send = true;
            }
        }
        send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(pairs: &[(&str, &str)]) -> EventData {
        let mut e = EventData::new();
        for (n, v) in pairs {
            e.push(n, *v);
        }
        e
    }

    #[test]
    fn custom_takes_every_following_word_as_a_subclass() {
        let mut s = Subscription::default();
        assert_eq!(
            s.subscribe(&[
                "plain",
                "CUSTOM",
                "conference::maintenance",
                "CHANNEL_ANSWER"
            ]),
            SubscribeOutcome::Ok
        );
        assert!(s.wants("CUSTOM", Some("conference::maintenance")));
        assert!(!s.wants("CHANNEL_ANSWER", None));
        assert_eq!(
            s.subscribe(&["json", "NOT_AN_EVENT"]),
            SubscribeOutcome::NoKeywords
        );
        assert_eq!(s.format_name(), "json");
    }

    #[test]
    fn nixing_from_all_expands_all_first() {
        let mut s = Subscription::default();
        s.subscribe(&["plain", "ALL"]);
        assert!(s.wants("CUSTOM", Some("anything")));
        s.nix(&["HEARTBEAT"]);
        assert!(!s.wants("HEARTBEAT", None));
        assert!(s.wants("CHANNEL_CREATE", None));
    }

    #[test]
    fn filters_follow_mod_event_socket() {
        let mut s = Subscription::default();
        let add = event(&[("Action", "add-member"), ("Unique-ID", "a")]);
        let mute = event(&[("Action", "mute-member"), ("Unique-ID", "b")]);
        let job = event(&[("Event-Name", "BACKGROUND_JOB")]);
        assert!(s.passes_filters(&job));
        assert_eq!(
            s.add_filter("Action", "add-member"),
            "+OK filter added. [Action]=[add-member]"
        );
        assert!(s.passes_filters(&add));
        assert!(!s.passes_filters(&mute));
        assert!(
            !s.passes_filters(&job),
            "an event without the header is dropped"
        );
        s.add_filter("Unique-ID", "-a");
        assert!(!s.passes_filters(&add));
        assert_eq!(s.delete_filter("all", None), "+OK filter deleted. [all][]");
        assert!(s.passes_filters(&mute));
    }
}
