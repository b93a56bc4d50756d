//! What FreeSWITCH answers: `command/reply` texts and `api/response` (or BACKGROUND_JOB) bodies.
//!
//! An API's output is free text. `-ERR …` is a failure, except `-ERR no reply`, which FreeSWITCH
//! writes when a command printed nothing, a success. Commands that answer `+OK` on success print
//! bare usage text (no `-ERR`) when their arguments were wrong, so the caller says which kind of
//! answer it expects: [`ApiReply::expect_ok`] or [`ApiReply::into_data`].

use std::borrow::Cow;

use bytes::Bytes;

use super::error::ClientError;

/// What `api` (and a `bgapi` job) printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiReply {
    command: String,
    body: Bytes,
    events_before: u64,
}

/// The text mod_event_socket substitutes for empty output.
const NO_REPLY: &str = "-ERR no reply";

impl ApiReply {
    pub fn new(command: impl Into<String>, body: Bytes) -> ApiReply {
        ApiReply {
            command: command.into(),
            body,
            events_before: 0,
        }
    }

    /// The reply of an `api` command that came after events numbered up to `sequence`.
    pub fn after_events(mut self, sequence: u64) -> ApiReply {
        self.events_before = sequence;
        self
    }

    /// The newest `Event-Sequence` among the events its connection had received when this
    /// `api` reply came (0: none, or a `bgapi` result). FreeSWITCH runs an `api` command on the
    /// thread that writes the connection's events, so the output reflects every event numbered
    /// up to this one, and an event so numbered that arrives later is older than the output.
    pub fn events_before(&self) -> u64 {
        self.events_before
    }

    /// The output as FreeSWITCH printed it.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The command printed nothing (`-ERR no reply` over `api`, an empty body from `bgapi`).
    pub fn is_empty_success(&self) -> bool {
        let text = self.text();
        let text = text.trim_end();
        text.is_empty() || text == NO_REPLY
    }

    /// The output starts with `-ERR` or `-USAGE` (and is not the empty-output marker).
    pub fn is_error(&self) -> bool {
        let text = self.text();
        !self.is_empty_success() && (text.starts_with("-ERR") || text.starts_with("-USAGE"))
    }

    fn failure(&self) -> ClientError {
        ClientError::CommandFailed {
            command: self.command.clone(),
            reply: self.text().trim_end().to_owned(),
        }
    }

    /// For commands that answer `+OK …` (mute, kick, play, uuid_transfer…): the text after `+OK`,
    /// trimmed. Anything else — `-ERR`, usage text — is a failure. Empty output counts as success
    /// only when `empty_ok` says so (pause_play with nothing playing, say).
    pub fn expect_ok(&self, empty_ok: bool) -> Result<String, ClientError> {
        if self.is_empty_success() {
            return if empty_ok {
                Ok(String::new())
            } else {
                Err(self.failure())
            };
        }
        let text = self.text();
        match text.strip_prefix("+OK") {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => Err(self.failure()),
        }
    }

    /// For commands that print data (json_list, count, get, show channels): the output, or a
    /// failure when it is an error text. Empty output is an empty string.
    pub fn into_data(self) -> Result<String, ClientError> {
        if self.is_empty_success() {
            return Ok(String::new());
        }
        if self.is_error() {
            return Err(self.failure());
        }
        Ok(self.text().into_owned())
    }
}

/// Classifies a `command/reply` `Reply-Text`: `+OK …` is success, anything else a failure.
pub fn reply_result(command: &str, reply_text: Option<&str>) -> Result<String, ClientError> {
    match reply_text {
        Some(text) if text.starts_with("+OK") => Ok(text.to_owned()),
        Some(text) => Err(ClientError::CommandFailed {
            command: command.to_owned(),
            reply: text.to_owned(),
        }),
        None => Err(ClientError::Protocol(format!(
            "reply to {command} has no Reply-Text"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> ApiReply {
        ApiReply::new("conference", Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn ok_answers_succeed_and_errors_fail() {
        assert_eq!(reply("+OK mute 5\n").expect_ok(false).unwrap(), "mute 5");
        let err = reply("-ERR Conference room9 not found\n")
            .expect_ok(false)
            .unwrap_err();
        assert!(err.is_command_failure());
        assert!(err.to_string().contains("room9 not found"));
    }

    #[test]
    fn usage_text_without_err_is_a_failure_where_ok_was_expected() {
        let usage = reply("mute <[member_id|all]|last|non_moderator> [<quiet>]\n");
        assert!(usage.expect_ok(false).is_err());
        assert!(!usage.is_error(), "as data it is just text");
    }

    #[test]
    fn no_reply_is_an_empty_success() {
        let r = reply("-ERR no reply\n");
        assert!(r.is_empty_success());
        assert!(!r.is_error());
        assert_eq!(r.clone().into_data().unwrap(), "");
        assert_eq!(r.expect_ok(true).unwrap(), "");
        assert!(r.expect_ok(false).is_err());
        assert!(reply("").is_empty_success());
    }

    #[test]
    fn data_commands_return_their_output_and_fail_on_err() {
        assert_eq!(reply("3").into_data().unwrap(), "3");
        assert!(
            reply("-ERR nosuchcommand Command not found!\n")
                .into_data()
                .is_err()
        );
        assert!(reply("-USAGE: <uuid>").into_data().is_err());
    }

    #[test]
    fn command_replies_are_ok_only_with_plus_ok() {
        assert!(reply_result("event", Some("+OK event listener enabled plain")).is_ok());
        assert!(reply_result("filter", Some("-ERR command not found")).is_err());
        assert!(reply_result("x", None).is_err());
    }
}
