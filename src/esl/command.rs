//! Commands a client sends, built from typed, checked parts.
//!
//! FreeSWITCH reads a command up to the first blank line and splits API arguments on spaces, so a
//! CR or LF in user text would end our command and start another, and a space in what should be
//! one argument would add arguments. Every part is therefore checked when it is added: a
//! [`Command`] that exists is safe to write.

use std::fmt;

use bytes::{BufMut, BytesMut};
use uuid::Uuid;

use super::error::CommandError;
use super::names::EventName;

/// Rejects bytes that could end a command line (CR, LF) or smuggle control bytes (NUL, ESC…).
fn check_text(what: &'static str, value: &str) -> Result<(), CommandError> {
    match value.chars().find(|c| c.is_control()) {
        Some(ch) => Err(CommandError::ForbiddenChar { what, ch }),
        None => Ok(()),
    }
}

/// A single token: non-empty, no whitespace, no control characters.
fn check_token(what: &'static str, value: &str) -> Result<(), CommandError> {
    if value.is_empty() {
        return Err(CommandError::Empty { what });
    }
    check_text(what, value)?;
    if value.chars().any(char::is_whitespace) {
        return Err(CommandError::NotAToken {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// An `api`/`bgapi` command line: a command name followed by checked arguments.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiCommand {
    line: String,
    /// A trailing free-text argument was added; nothing may follow it.
    closed: bool,
    /// The headers of the event the command causes, if one is awaited ([`ApiCommand::awaiting`]).
    awaits: Vec<(&'static str, String)>,
}

impl ApiCommand {
    /// Starts a command (`status`, `conference`, `uuid_transfer`…); the name must be one token.
    pub fn new(name: &str) -> Result<ApiCommand, CommandError> {
        check_token("API command name", name)?;
        Ok(ApiCommand {
            line: name.to_owned(),
            closed: false,
            awaits: Vec::new(),
        })
    }

    /// Says that the command causes an event with `header: value` (with every header so
    /// named): a connection woken for the command's events (`wake.rs`) is woken until that
    /// event comes, not for the whole window. Not sent.
    pub fn awaiting(mut self, header: &'static str, value: &str) -> ApiCommand {
        self.awaits.push((header, value.to_owned()));
        self
    }

    /// The headers of the event the command causes, if one is awaited (empty: none).
    pub fn awaited(&self) -> &[(&'static str, String)] {
        &self.awaits
    }

    /// Appends one argument, which must be a single token (no whitespace, no control bytes).
    pub fn arg(mut self, value: &str) -> Result<ApiCommand, CommandError> {
        check_token("API argument", value)?;
        if self.closed {
            return Err(CommandError::NotAToken {
                what: "argument after free text",
                value: value.to_owned(),
            });
        }
        self.line.push(' ');
        self.line.push_str(value);
        Ok(self)
    }

    /// Appends a final argument that may contain spaces (text to speak, say). Control bytes are
    /// refused; no argument can follow it.
    pub fn text(mut self, value: &str) -> Result<ApiCommand, CommandError> {
        check_text("API text argument", value)?;
        if value.trim().is_empty() {
            return Err(CommandError::Empty {
                what: "API text argument",
            });
        }
        self.line.push(' ');
        self.line.push_str(value);
        self.closed = true;
        Ok(self)
    }

    /// Appends one argument in single quotes, which FreeSWITCH's argument splitter keeps as one
    /// argument even with spaces inside. Quotes, backslashes and control bytes are refused.
    pub fn quoted(self, value: &str) -> Result<ApiCommand, CommandError> {
        check_text("quoted API argument", value)?;
        if value.contains(['\'', '\\']) || value.is_empty() {
            return Err(CommandError::NotAToken {
                what: "quoted API argument",
                value: value.chars().take(64).collect(),
            });
        }
        if self.closed {
            return Err(CommandError::NotAToken {
                what: "argument after free text",
                value: value.chars().take(64).collect(),
            });
        }
        let mut cmd = self;
        cmd.line.push_str(" '");
        cmd.line.push_str(value);
        cmd.line.push('\'');
        Ok(cmd)
    }

    /// The command line as sent after `api ` / `bgapi `.
    pub fn as_str(&self) -> &str {
        &self.line
    }

    /// The command's name (its first word).
    pub fn name(&self) -> &str {
        self.line.split(' ').next().unwrap_or_default()
    }
}

impl fmt::Debug for ApiCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiCommand({:?})", self.line)
    }
}

/// A password; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(value: &str) -> Result<Password, CommandError> {
        if value.is_empty() {
            return Err(CommandError::Empty { what: "password" });
        }
        check_text("password", value)?;
        Ok(Password(value.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The event format a subscription switches the connection to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFormat {
    Plain,
    Json,
    Xml,
}

impl EventFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::Plain => "plain",
            EventFormat::Json => "json",
            EventFormat::Xml => "xml",
        }
    }
}

/// Event names plus CUSTOM subclasses, in the order FreeSWITCH needs (CUSTOM last).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventSet {
    names: Vec<EventName>,
    subclasses: Vec<String>,
}

impl EventSet {
    pub fn new() -> EventSet {
        EventSet::default()
    }

    /// Every event, CUSTOM subclasses included.
    pub fn all() -> EventSet {
        EventSet::new().name(EventName::All)
    }

    pub fn name(mut self, name: EventName) -> EventSet {
        if name != EventName::Custom && !self.names.contains(&name) {
            self.names.push(name);
        }
        self
    }

    pub fn names(self, names: impl IntoIterator<Item = EventName>) -> EventSet {
        names.into_iter().fold(self, EventSet::name)
    }

    /// A CUSTOM subclass such as `conference::maintenance`; must be one token.
    pub fn subclass(mut self, subclass: &str) -> Result<EventSet, CommandError> {
        check_token("event subclass", subclass)?;
        if !self.subclasses.iter().any(|s| s == subclass) {
            self.subclasses.push(subclass.to_owned());
        }
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.subclasses.is_empty()
    }

    fn write(&self, line: &mut String) {
        for name in &self.names {
            line.push(' ');
            line.push_str(name.as_str());
        }
        if !self.subclasses.is_empty() {
            line.push_str(" CUSTOM");
            for subclass in &self.subclasses {
                line.push(' ');
                line.push_str(subclass);
            }
        }
    }
}

/// One command to mod_event_socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Auth(Password),
    Api(ApiCommand),
    /// `bgapi` with our own Job-UUID, so the result can be matched before the reply arrives.
    BgApi {
        command: ApiCommand,
        job_uuid: Uuid,
    },
    Event {
        format: EventFormat,
        events: EventSet,
    },
    NixEvent(EventSet),
    NoEvents,
    /// `filter <header> <value>`; both are single tokens.
    Filter {
        header: String,
        value: String,
    },
    /// `filter delete <header> [<value>]`, or `filter delete all` with header `all`.
    FilterDelete {
        header: String,
        value: Option<String>,
    },
    /// `sendmsg <uuid>` with `name: value` headers (a `call-command` such as `unicast`):
    /// queued to the channel, carried out when it next looks at its queue (the park loop).
    SendMsg {
        uuid: String,
        headers: Vec<(&'static str, String)>,
    },
    Exit,
}

impl Command {
    /// `sendmsg <uuid>`; the uuid and every value are single tokens (a value with a space or a
    /// line break would change or end the message).
    pub fn sendmsg(uuid: &str, headers: &[(&'static str, &str)]) -> Result<Command, CommandError> {
        check_token("sendmsg uuid", uuid)?;
        for (_, value) in headers {
            check_token("sendmsg header value", value)?;
        }
        Ok(Command::SendMsg {
            uuid: uuid.to_owned(),
            headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        })
    }

    pub fn filter(header: &str, value: &str) -> Result<Command, CommandError> {
        check_token("filter header", header)?;
        check_token("filter value", value)?;
        Ok(Command::Filter {
            header: header.to_owned(),
            value: value.to_owned(),
        })
    }

    pub fn filter_delete(header: &str, value: Option<&str>) -> Result<Command, CommandError> {
        check_token("filter header", header)?;
        if let Some(value) = value {
            check_token("filter value", value)?;
        }
        Ok(Command::FilterDelete {
            header: header.to_owned(),
            value: value.map(str::to_owned),
        })
    }

    /// Writes the command and its terminating blank line.
    pub fn write_to(&self, dst: &mut BytesMut) {
        let mut line = String::with_capacity(64);
        match self {
            Command::Auth(p) => {
                line.push_str("auth ");
                line.push_str(p.expose());
            }
            Command::Api(c) => {
                line.push_str("api ");
                line.push_str(c.as_str());
            }
            Command::BgApi { command, job_uuid } => {
                line.push_str("bgapi ");
                line.push_str(command.as_str());
                line.push_str("\nJob-UUID: ");
                line.push_str(&job_uuid.hyphenated().to_string());
            }
            Command::Event { format, events } => {
                line.push_str("event ");
                line.push_str(format.as_str());
                events.write(&mut line);
            }
            Command::NixEvent(events) => {
                line.push_str("nixevent");
                events.write(&mut line);
            }
            Command::NoEvents => line.push_str("noevents"),
            Command::Filter { header, value } => {
                line.push_str("filter ");
                line.push_str(header);
                line.push(' ');
                line.push_str(value);
            }
            Command::FilterDelete { header, value } => {
                line.push_str("filter delete ");
                line.push_str(header);
                if let Some(value) = value {
                    line.push(' ');
                    line.push_str(value);
                }
            }
            Command::SendMsg { uuid, headers } => {
                line.push_str("sendmsg ");
                line.push_str(uuid);
                for (name, value) in headers {
                    line.push('\n');
                    line.push_str(name);
                    line.push_str(": ");
                    line.push_str(value);
                }
            }
            Command::Exit => line.push_str("exit"),
        }
        dst.reserve(line.len() + 2);
        dst.put_slice(line.as_bytes());
        dst.put_slice(b"\n\n");
    }

    /// What the command looks like in a log line: never the password.
    pub fn describe(&self) -> String {
        match self {
            Command::Auth(_) => "auth <redacted>".to_owned(),
            other => {
                let mut buf = BytesMut::new();
                other.write_to(&mut buf);
                String::from_utf8_lossy(&buf)
                    .trim_end()
                    .replace('\n', " | ")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(c: &Command) -> String {
        let mut b = BytesMut::new();
        c.write_to(&mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn api_arguments_must_be_single_safe_tokens() {
        let ok = ApiCommand::new("conference")
            .unwrap()
            .arg("room1")
            .unwrap()
            .arg("mute")
            .unwrap();
        assert_eq!(wire(&Command::Api(ok)), "api conference room1 mute\n\n");
        for bad in ["a\nb", "a\rb", "a b", "", "x\0", "a\tb", "\u{1b}[2J"] {
            assert!(
                ApiCommand::new("status").unwrap().arg(bad).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(ApiCommand::new("sta tus").is_err());
    }

    #[test]
    fn free_text_allows_spaces_but_not_line_breaks_and_ends_the_line() {
        let c = ApiCommand::new("conference")
            .unwrap()
            .arg("r")
            .unwrap()
            .text("hello world")
            .unwrap();
        assert_eq!(c.as_str(), "conference r hello world");
        assert!(c.clone().arg("more").is_err());
        let injected = "hi\n\napi hupall";
        assert!(
            ApiCommand::new("conference")
                .unwrap()
                .text(injected)
                .is_err()
        );
    }

    #[test]
    fn bgapi_carries_our_job_uuid_as_a_header() {
        let job = Uuid::nil();
        let c = Command::BgApi {
            command: ApiCommand::new("status").unwrap(),
            job_uuid: job,
        };
        assert_eq!(
            wire(&c),
            "bgapi status\nJob-UUID: 00000000-0000-0000-0000-000000000000\n\n"
        );
    }

    #[test]
    fn event_subscriptions_put_custom_last() {
        let set = EventSet::new()
            .subclass("conference::maintenance")
            .unwrap()
            .name(EventName::ChannelCreate)
            .name(EventName::BackgroundJob);
        let c = Command::Event {
            format: EventFormat::Plain,
            events: set,
        };
        assert_eq!(
            wire(&c),
            "event plain CHANNEL_CREATE BACKGROUND_JOB CUSTOM conference::maintenance\n\n"
        );
        assert!(EventSet::new().subclass("a b").is_err());
    }

    #[test]
    fn passwords_never_show_in_debug_or_logs() {
        let c = Command::Auth(Password::new("s3cret").unwrap());
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!c.describe().contains("s3cret"));
        assert_eq!(wire(&c), "auth s3cret\n\n");
        assert!(Password::new("a\nexit").is_err());
    }

    #[test]
    fn filters_are_checked() {
        assert_eq!(
            wire(&Command::filter("Unique-ID", "abc").unwrap()),
            "filter Unique-ID abc\n\n"
        );
        assert!(Command::filter("Unique-ID", "a\nb").is_err());
        assert_eq!(
            wire(&Command::filter_delete("all", None).unwrap()),
            "filter delete all\n\n"
        );
    }
}
