//! Dial-out (issue 17): what a room may call, parsed strictly, and the `originate` that calls
//! it and, once answered, puts the call into the room as a join does (which destinations and
//! caller ids an app may use is [`super::dial_policy`]'s). Facts behind every rule:
//! `fixtures/esl/09_dialout.md` (recorded on FreeSWITCH 1.11).
//!
//! Only two shapes of destination exist, and nothing typed by an API caller reaches the dial
//! string but a user part of digits (or a SIP user of a few safe characters) and a host the
//! configuration allows: in a FreeSWITCH dial string `,` and `|` add legs, `:_:` starts another
//! originate without our variables, `^` rewrites the To header, `;fs_path=` sends the INVITE
//! elsewhere, `%XX` is decoded, blanks split the arguments, and `{`…`}` / `[`…`]` / `<`…`>` set
//! variables.

use crate::conference::RoomId;
use crate::esl::{ApiCommand, CommandError};

/// Where a dial-out goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `sip:<user>@<host>[:<port>]`, to a host the app may call.
    Sip {
        user: String,
        host: String,
        port: Option<u16>,
    },
    /// A number, `+` and 1 to 32 digits, through the node's gateway.
    Number(String),
}

/// Why a destination is refused (the API words it to the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error(
        "to must be a number (+ and up to 32 digits) or sip:<user>@<host>[:<port>] with a user of letters, digits, + . _ - and a host name or IPv4 address"
    )]
    Malformed,
    #[error("this application may not call {0}")]
    NotAllowed(String),
    /// Only `*` allowed it, and the host is (or resolves to) a private, loopback or reserved
    /// address, or a media node's ([`super::dial_policy`]).
    #[error("dial-out destination not allowed: private, loopback or a media node's address")]
    Internal,
    /// Only `*` allowed it, and the host does not resolve.
    #[error("dial-out destination not allowed: its host does not resolve")]
    Unresolved,
    #[error("the media node has no gateway for numbers")]
    NoGateway,
}

fn user_ok(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b))
}

/// An IPv4 address written as four decimal numbers, or a host name whose last label begins
/// with a letter (1 to 63 letters, digits and `-`, after at most 189 letters, digits, `.` and
/// `-` beginning with a letter or digit; 253 in all): the API's `to` pattern. A host ending in
/// a number (`127.1`, `2130706433`, `010.0.0.1`, `0x7f.0.0.1`, a trailing `.`) is neither, and
/// resolvers read such spellings differently (octal, hexadecimal), so no check could say where
/// the node would send it.
fn host_ok(host: &str) -> bool {
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let (before, last) = match host.rsplit_once('.') {
        Some((before, last)) => (Some(before), last),
        None => (None, host),
    };
    let before_ok = before.is_none_or(|b| {
        (1..=189).contains(&b.len())
            && b.starts_with(|c: char| c.is_ascii_alphanumeric())
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".-".contains(&c))
    });
    before_ok
        && (1..=63).contains(&last.len())
        && last.starts_with(|c: char| c.is_ascii_alphabetic())
        && last.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// A number as a destination or a caller id: `+` and 1 to 32 digits.
pub fn number_ok(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    (1..=32).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A caller id name: 1 to 64 letters, digits, `.`, `_`, `-` (no blanks: they would need quotes
/// inside the variable block, which the command line's own quoting does not nest).
pub fn caller_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Destination {
    /// A destination as an API caller writes it: a number, or `sip:user@host[:port]`.
    pub fn parse(to: &str) -> Result<Destination, DestinationError> {
        if number_ok(to) {
            return Ok(Destination::Number(to.to_owned()));
        }
        let rest = to.strip_prefix("sip:").ok_or(DestinationError::Malformed)?;
        let (user, hostport) = rest.split_once('@').ok_or(DestinationError::Malformed)?;
        let (host, port) = match hostport.split_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0 && port.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(DestinationError::Malformed)?;
                (host, Some(port))
            }
            None => (hostport, None),
        };
        if !user_ok(user) || !host_ok(host) {
            return Err(DestinationError::Malformed);
        }
        Ok(Destination::Sip {
            user: user.to_owned(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The endpoint part of the dial string: `sofia/<profile>/sip:<user>@<host>[:<port>]`, or
    /// `sofia/gateway/<gateway>/<number>`.
    pub fn endpoint(
        &self,
        sip_profile: &str,
        gateway: Option<&str>,
    ) -> Result<String, DestinationError> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        };
        match self {
            Destination::Sip { user, host, port } if token(sip_profile) => {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                Ok(format!("sofia/{sip_profile}/sip:{user}@{host}{port}"))
            }
            Destination::Sip { .. } => Err(DestinationError::Malformed),
            Destination::Number(n) => match gateway.filter(|g| token(g)) {
                Some(g) => Ok(format!("sofia/gateway/{g}/{n}")),
                None => Err(DestinationError::NoGateway),
            },
        }
    }
}

/// What one dial-out asks of the node.
#[derive(Debug, Clone)]
pub struct Dial<'a> {
    pub room: &'a RoomId,
    /// The new leg's uuid (`origination_uuid`): the participant's session is `<prefix>-<uuid>`.
    pub channel: &'a uuid::Uuid,
    /// The endpoint, from [`Destination::endpoint`].
    pub endpoint: &'a str,
    /// The application that owns the call (`switchyard_app_id`, trusted only if configured).
    pub app: &'a str,
    /// Digits (`+` allowed) shown to the called party.
    pub caller_id_number: Option<&'a str>,
    /// Letters, digits, `.`, `_`, `-` (no blanks: they would need quotes inside the variable
    /// block, which the command line's own quoting does not nest).
    pub caller_id_name: Option<&'a str>,
    /// Seconds of ringing before NO_ANSWER.
    pub timeout_secs: u32,
    /// The mod_conference profile rooms use.
    pub profile: &'a str,
    pub muted: bool,
    pub moderator: bool,
}

/// `originate {origination_uuid=…,ignore_early_media=true,originate_timeout=…,…}<endpoint>
/// conference:<room>@<profile>+flags{…},park: inline`: the answered call joins the room in the
/// same millisecond (an early-media answer is not taken for one), and parks when it leaves it,
/// as a joined call does. Send it with `bgapi`: its result (`+OK <uuid>` or `-ERR <CAUSE>`)
/// comes when the call is answered or has failed.
pub fn originate(d: &Dial<'_>) -> Result<ApiCommand, CommandError> {
    let bad = |what: &'static str, value: &str| CommandError::NotAToken {
        what,
        value: value.chars().take(64).collect(),
    };
    let app_ok = !d.app.is_empty()
        && d.app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if !app_ok {
        return Err(bad("application id", d.app));
    }
    let mut vars = vec![
        format!("origination_uuid={}", d.channel.hyphenated()),
        "ignore_early_media=true".to_owned(),
        format!("originate_timeout={}", d.timeout_secs.clamp(1, 600)),
        "switchyard_role=dialout".to_owned(),
        format!("switchyard_app_id={}", d.app),
        format!("switchyard_room={}", d.room),
    ];
    if let Some(n) = d.caller_id_number {
        if !number_ok(n) {
            return Err(bad("caller id number", n));
        }
        vars.push(format!("origination_caller_id_number={n}"));
    }
    if let Some(name) = d.caller_id_name {
        if !caller_name_ok(name) {
            return Err(bad("caller id name", name));
        }
        vars.push(format!("origination_caller_id_name={name}"));
    }
    let profile_ok = !d.profile.is_empty()
        && d.profile
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if !profile_ok {
        return Err(bad("conference profile", d.profile));
    }
    let flags = match (d.muted, d.moderator) {
        (true, true) => "mute|moderator",
        (true, false) => "mute",
        (false, true) => "moderator",
        (false, false) => "",
    };
    ApiCommand::new("originate")?
        .arg(&format!("{{{}}}{}", vars.join(","), d.endpoint))?
        .arg(&format!(
            "conference:{}@{}+flags{{{flags}}},park:",
            d.room, d.profile
        ))?
        .arg("inline")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbers_and_plain_sip_addresses_are_destinations() {
        assert_eq!(
            Destination::parse("+15551234567"),
            Ok(Destination::Number("+15551234567".into()))
        );
        assert_eq!(
            Destination::parse("sip:alice.b-1@PBX.example.com:5080"),
            Ok(Destination::Sip {
                user: "alice.b-1".into(),
                host: "pbx.example.com".into(),
                port: Some(5080),
            })
        );
        // Everything that changes a dial string's meaning (fixtures/esl/09_dialout.md).
        for bad in [
            "",
            "+",
            "123456789012345678901234567890123",
            "sip:a@b,sofia/x/sip:c@d",
            "sip:a@b|sofia/x/sip:c@d",
            "sip:a@b:_:sofia/x/sip:c@d",
            "sip:a^9999@evil.example",
            "sip:a@b;fs_path=sip:evil",
            "sip:a@b;transport=tcp",
            "sip:%41@b",
            "sip:a b@c",
            "sip:{x=y}a@b",
            "sip:[x=y]a@b",
            "sip:<a>@b",
            "sip:a@b@c",
            "sip:a'@b",
            "sip:a\"@b",
            "sip:a\\@b",
            "sip:a@b/c",
            "sip:a@b?x",
            "sip:$x@b",
            "sip:#1@b",
            "sip:a@b:0",
            "sip:a@b:99999",
            "sip:a@b:",
            "sip:a@-b",
            "sip:@b",
            "sips:a@b",
            "sip:a@[::1]",
            "sip:a@::1",
            "sip:a@127.1",
            "sip:a@2130706433",
            "sip:a@010.0.0.1",
            "sip:a@0x7f.0.0.1",
            "sip:a@127.0.0.1.",
            "sip:a@127.000.000.001",
            "sip:a@256.0.0.1",
            "sip:a@1.2.3.4.5",
            "sip:a@0",
            "sip:a@example.1a",
            "sip:a@.example.com",
            "sip:a@-x.example.com",
            "tel:+1555",
            "sip:a@b\nc",
        ] {
            assert_eq!(
                Destination::parse(bad),
                Err(DestinationError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_destination_s_endpoint_is_its_profile_or_the_node_s_gateway() {
        let sip = Destination::parse("sip:100@pbx.example.com:5080").unwrap();
        let n = Destination::parse("+15551234567").unwrap();
        assert_eq!(
            n.endpoint("inbound", None),
            Err(DestinationError::NoGateway)
        );
        assert_eq!(
            n.endpoint("inbound", Some("carrier1")).unwrap(),
            "sofia/gateway/carrier1/+15551234567"
        );
        assert_eq!(
            sip.endpoint("inbound", None).unwrap(),
            "sofia/inbound/sip:100@pbx.example.com:5080"
        );
        assert!(n.endpoint("inbound", Some("carrier/../x")).is_err());
        // IPv4 addresses and names (whose last label begins with a letter) parse.
        for ok in [
            "sip:a@10.0.0.1",
            "sip:a@0.0.0.0",
            "sip:a@255.255.255.255",
            "sip:a@host-1.example",
            "sip:a@1-2.3x.example",
            "sip:a@pbx",
            "sip:a@x0a",
        ] {
            assert!(Destination::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_originate_joins_the_answered_call_and_refuses_what_would_break_out() {
        let room = RoomId::parse("abcde-room-550e8400-e29b-41d4-a716-446655440000").unwrap();
        let channel = uuid::Uuid::nil();
        let dial = Dial {
            room: &room,
            channel: &channel,
            endpoint: "sofia/inbound/sip:100@127.0.0.1:5080",
            app: "app1",
            caller_id_number: Some("+15550001111"),
            caller_id_name: Some("Switchyard_Bot"),
            timeout_secs: 30,
            profile: "switchyard",
            muted: true,
            moderator: false,
        };
        assert_eq!(
            originate(&dial).unwrap().as_str(),
            format!(
                "originate {{origination_uuid=00000000-0000-0000-0000-000000000000,ignore_early_media=true,originate_timeout=30,switchyard_role=dialout,switchyard_app_id=app1,switchyard_room={room},origination_caller_id_number=+15550001111,origination_caller_id_name=Switchyard_Bot}}sofia/inbound/sip:100@127.0.0.1:5080 conference:{room}@switchyard+flags{{mute}},park: inline"
            )
        );
        for (what, broken) in [
            (
                "name",
                Dial {
                    caller_id_name: Some("a,b=c"),
                    ..dial.clone()
                },
            ),
            (
                "name",
                Dial {
                    caller_id_name: Some("Ann Smith"),
                    ..dial.clone()
                },
            ),
            (
                "name",
                Dial {
                    caller_id_name: Some("x}sofia"),
                    ..dial.clone()
                },
            ),
            (
                "number",
                Dial {
                    caller_id_number: Some("1,2"),
                    ..dial.clone()
                },
            ),
            (
                "app",
                Dial {
                    app: "a,b",
                    ..dial.clone()
                },
            ),
            (
                "profile",
                Dial {
                    profile: "x y",
                    ..dial.clone()
                },
            ),
        ] {
            assert!(originate(&broken).is_err(), "{what}");
        }
    }
}
