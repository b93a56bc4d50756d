//! Channels of the simulated node, as the API sees them: `originate` (of `loopback/`, `null/`,
//! `sofia/`, `user/` and `error/` endpoints), the simulator's own inbound calls, `uuid_kill`,
//! `uuid_transfer`, `uuid_getvar`, `hupall` and `show channels`. How a channel then lives is in
//! [`super::callflow`].

use std::time::Duration;

use serde_json::{Value, json};

use super::channel::{App, Channel};
use super::core::{Deferred, State};
use super::events::now_micros;

/// Parses an inline dialplan: `app:arg,app:arg`, or `m:<sep>:app:arg<sep>app:arg`.
pub(crate) fn parse_inline(dest: &str) -> Option<Vec<App>> {
    let (sep, body) = match dest.strip_prefix("m:") {
        Some(rest) => {
            let mut chars = rest.chars();
            let sep = chars.next()?;
            (sep, chars.as_str().strip_prefix(':')?)
        }
        None => (',', dest),
    };
    body.split(sep)
        .filter(|s| !s.is_empty())
        .map(|step| {
            let (name, arg) = step.split_once(':').unwrap_or((step, ""));
            App::parse(name, arg)
        })
        .collect()
}

/// The arguments of an API command as FreeSWITCH's `switch_separate_string` splits them on
/// blanks: single quotes group words (and are removed), a backslash escapes the next character.
pub(crate) fn split_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut started = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
                started = true;
            }
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        args.push(current);
    }
    args
}

/// `{a=b,c=d}rest` → the pairs and `rest`.
pub(crate) fn split_vars(dial: &str) -> (Vec<(String, String)>, &str) {
    let Some(inner) = dial.strip_prefix('{') else {
        return (Vec::new(), dial);
    };
    let Some((vars, rest)) = inner.split_once('}') else {
        return (Vec::new(), dial);
    };
    let pairs = vars
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim_matches('\'').to_owned()))
        .collect();
    (pairs, rest)
}

/// What an originate answers at once when its job ends later, with the call: then the
/// channel's uuid follows.
pub(crate) const PENDING_JOB: &str = "\u{0}pending ";

const USAGE_ORIGINATE: &str = "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n";

impl State {
    /// `originate <dial> <&app(args)|exten> [dialplan] [context] [cid_name] [cid_num] [timeout]`.
    /// It returns once the call is answered; the channel runs its apps right after, in its own
    /// thread (so BACKGROUND_JOB comes before the app's events, as in the captures).
    pub(crate) fn originate(&mut self, args: &str) -> String {
        // Quotes group words, as switch_separate_string does: `origination_caller_id_name='A B'`.
        let words = split_args(args);
        let (Some(dial), Some(dest)) = (words.first(), words.get(1)) else {
            return USAGE_ORIGINATE.into();
        };
        let (vars, endpoint) = split_vars(dial);
        let (tech, rest) = endpoint.split_once('/').unwrap_or((endpoint, ""));
        match tech {
            "error" => {
                let cause = if rest.is_empty() {
                    "DESTINATION_OUT_OF_ORDER"
                } else {
                    rest
                };
                return format!("-ERR {cause}\n");
            }
            "loopback" | "null" | "sofia" | "user" => {}
            _ => return "-ERR CHAN_NOT_IMPLEMENTED\n".into(),
        }
        let apps = match dest.strip_prefix('&') {
            Some(app) => {
                let (app_name, arg) = match app.split_once('(') {
                    Some((n, a)) => (n, a.strip_suffix(')').unwrap_or(a)),
                    None => app.split_once(':').unwrap_or((app, "")),
                };
                match App::parse(app_name, arg) {
                    Some(app) => vec![app],
                    None => return "-ERR DESTINATION_OUT_OF_ORDER\n".into(),
                }
            }
            // An extension of the `inline` dialplan runs its apps (as a dial-out's
            // `conference:<room>@<profile>+flags{…},park:` does); of any other, the simulator's
            // dialplan answers and parks the call.
            None => match words.get(2).map(String::as_str) {
                Some("inline") => match parse_inline(dest) {
                    Some(apps) => apps,
                    None => return "-ERR DESTINATION_OUT_OF_ORDER\n".into(),
                },
                _ => vec![App::Park],
            },
        };
        let var = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let uuid = var("origination_uuid").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if self.channels.contains_key(&uuid) {
            return "-ERR DESTINATION_OUT_OF_ORDER\n".into();
        }
        // With none given, a `null/`, `user/` or `sofia/` leg has FreeSWITCH's default caller id
        // (no name, number `0000000000`: SWITCH_DEFAULT_CLID_*, seen on 1.10 and 1.11); a
        // loopback leg keeps what its path was recorded with.
        let (name, number) = match tech {
            "loopback" => ("Outbound Call", "default"),
            _ => ("", "0000000000"),
        };
        let cid = (
            var("origination_caller_id_name").unwrap_or_else(|| name.into()),
            var("origination_caller_id_number").unwrap_or_else(|| number.into()),
        );
        if tech == "sofia" {
            let exten = match dest.starts_with('&') {
                true => None,
                false => Some((dest.as_str(), words.get(2).map_or("XML", String::as_str))),
            };
            let callee = super::dialout::Callee::of(rest);
            let a = self.sofia_outbound(&uuid, endpoint, &vars, cid, callee, exten);
            match callee {
                super::dialout::Callee::Refuses(cause) => {
                    self.hangup(&a, cause);
                    return format!("-ERR {cause}\n");
                }
                super::dialout::Callee::Rings => {
                    let secs = var("originate_timeout")
                        .and_then(|t| t.parse::<u64>().ok())
                        .filter(|t| *t > 0)
                        .unwrap_or(60);
                    self.later(
                        Duration::from_secs(secs),
                        Deferred::Hangup {
                            uuid: a.clone(),
                            cause: "NO_ANSWER".into(),
                        },
                    );
                    // The job ends with the call (see `State::pending_jobs`).
                    return format!("{PENDING_JOB}{a}");
                }
                super::dialout::Callee::Answers => {}
            }
            self.later(
                Duration::from_millis(1),
                Deferred::RunApps {
                    uuid: a.clone(),
                    apps,
                },
            );
            return format!("+OK {a}\n");
        }
        let a = if tech == "loopback" {
            self.loopback_pair(&uuid, rest, &vars, cid)
        } else {
            self.plain_outbound(&uuid, endpoint, rest, &vars, cid)
        };
        self.later(
            Duration::from_millis(1),
            Deferred::RunApps {
                uuid: a.clone(),
                apps,
            },
        );
        format!("+OK {a}\n")
    }

    pub(crate) fn next_session(&mut self) -> u64 {
        self.sessions_since_startup += 1;
        self.sessions_since_startup
    }

    pub(crate) fn outbound_channel(
        &mut self,
        uuid: &str,
        name: String,
        cid: &(String, String),
    ) -> Channel {
        let mut ch = Channel::new(uuid.to_owned(), name, true, now_micros());
        ch.cid_name = cid.0.clone();
        ch.cid_number = cid.1.clone();
        ch.orig_cid_name = cid.0.clone();
        ch.orig_cid_number = cid.1.clone();
        ch.callee = Some(("Outbound Call".into(), "default".into()));
        ch.hit_dialplan = false;
        ch.session_id = self.next_session();
        ch
    }

    /// `null/…`, `user/…` (a `sofia/` leg is `State::sofia_outbound`): one outbound channel,
    /// answered at once, as mod_loopback's null endpoint does it: born under a temporary uuid (two CODEC events), renamed to
    /// `origination_uuid` (CHANNEL_UUID), then CHANNEL_OUTGOING, CS_INIT, CREATE, ORIGINATE,
    /// CS_ROUTING, CS_CONSUME_MEDIA, the answer, and the caller id flip of an answered
    /// outbound leg (CALL_UPDATE: the caller id becomes the callee, `Outbound Call` and the
    /// dialed number).
    fn plain_outbound(
        &mut self,
        uuid: &str,
        endpoint: &str,
        rest: &str,
        vars: &[(String, String)],
        cid: (String, String),
    ) -> String {
        let tmp = uuid::Uuid::new_v4().to_string();
        let mut ch = self.outbound_channel(&tmp, endpoint.to_owned(), &cid);
        ch.destination = rest.split('/').next_back().unwrap_or_default().to_owned();
        ch.callee = Some(("Outbound Call".into(), ch.destination.clone()));
        ch.source = "mod_loopback";
        ch.dialplan = None;
        ch.state = ("CS_NONE", 0);
        ch.profile = false;
        ch.read_codec = false;
        ch.write_codec = false;
        self.channels.insert(tmp.clone(), ch);
        self.codec(&tmp, false);
        self.codec(&tmp, true);
        let Some(mut ch) = self.channels.remove(&tmp) else {
            return tmp;
        };
        ch.uuid = uuid.to_owned();
        ch.profile = true;
        ch.state = ("CS_NONE", 1);
        let session = ch.session_id.to_string();
        for (k, v) in [
            ("direction", "outbound".to_owned()),
            ("is_outbound", "true".into()),
            ("session_id", session),
            ("read_codec", "L16".into()),
            ("read_rate", "8000".into()),
            ("write_codec", "L16".into()),
            ("write_rate", "8000".into()),
            ("channel_name", endpoint.to_owned()),
            ("uuid", uuid.to_owned()),
            ("call_uuid", uuid.to_owned()),
        ] {
            ch.set_var(k, v);
        }
        self.channels.insert(uuid.to_owned(), ch);
        let old = [("Old-Unique-ID", tmp)];
        self.ch_event("CHANNEL_UUID", uuid, &old, &[], true);
        self.ch_event("CHANNEL_OUTGOING", uuid, &[], &[], false);
        if let Some(ch) = self.channels.get_mut(uuid) {
            for (k, v) in vars {
                ch.set_var(k, v.clone());
            }
            ch.set_var("originate_early_media", "true");
            ch.set_var("originate_endpoint", "null");
        }
        self.set_state(uuid, "CS_INIT", 1);
        self.ask_state(uuid, 2);
        self.ch_event("CHANNEL_CREATE", uuid, &[], &[], true);
        self.ch_event("CHANNEL_ORIGINATE", uuid, &[], &[], true);
        self.set_state(uuid, "CS_ROUTING", 2);
        self.set_state(uuid, "CS_CONSUME_MEDIA", 7);
        self.answer(uuid);
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.set_var("endpoint_disposition", "ANSWER");
            ch.keep_pre_flip_cid();
            ch.set_var("channel_cid_flipped", "yes");
            // Caller and callee swap (switch_channel_flip_cid), and the leg counts as having
            // hit the dialplan from then on (`Channel-HIT-Dialplan`, seen on 1.11).
            let ours = (ch.cid_name.clone(), ch.cid_number.clone());
            if let Some((name, number)) = ch.callee.replace(ours) {
                ch.cid_name = name;
                ch.cid_number = number;
            }
            ch.hit_dialplan = true;
        }
        let direction = [("Direction", "RECV".to_owned())];
        self.ch_event("CALL_UPDATE", uuid, &direction, &[], true);
        uuid.to_owned()
    }

    pub(crate) fn uuid_kill(&mut self, args: &str) -> String {
        let mut words = args.split_whitespace();
        let Some(uuid) = words.next() else {
            return "-USAGE: <uuid> [cause]\n".into();
        };
        if !self.channels.contains_key(uuid) {
            return "-ERR No such channel!\n".into();
        }
        let cause = words.next().unwrap_or("NORMAL_CLEARING").to_owned();
        self.hangup_soon(uuid, &cause);
        "+OK\n".into()
    }

    pub(crate) fn uuid_getvar(&self, args: &str) -> String {
        let mut words = args.split_whitespace();
        let (Some(uuid), Some(name)) = (words.next(), words.next()) else {
            return "-USAGE: <uuid> <var>\n".into();
        };
        match self.channels.get(uuid) {
            None => "-ERR No such channel!\n".into(),
            Some(ch) => ch.var(name).unwrap_or("_undef_").to_owned(),
        }
    }

    /// `hupall [cause] [<var> <value>]`.
    pub(crate) fn hupall(&mut self, args: &str) -> String {
        let words: Vec<&str> = args.split_whitespace().collect();
        let cause = words
            .first()
            .copied()
            .unwrap_or("NORMAL_CLEARING")
            .to_owned();
        let filter = words.get(1).zip(words.get(2));
        let uuids: Vec<String> = self
            .channels
            .values()
            .filter(|ch| filter.is_none_or(|(k, v)| ch.var(k) == Some(*v)))
            .map(|ch| ch.uuid.clone())
            .collect();
        for uuid in &uuids {
            self.hangup(uuid, &cause);
        }
        match filter {
            Some((k, v)) => {
                format!("+OK hangup all channels matching [{k}]=[{v}] with cause: {cause}\n")
            }
            None => format!("+OK hangup all channels with cause {cause}\n"),
        }
    }

    /// `show channels [as json]`, `show files`.
    pub(crate) fn show(&self, args: &str) -> String {
        let words: Vec<&str> = args.split_whitespace().collect();
        if words.first() == Some(&"files") {
            return self.show_files();
        }
        if words.first() != Some(&"channels") {
            return "-USAGE: codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels [count|like <match string>]|calls|detailed_calls|bridged_calls|detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|interfaces|interface_types|tasks|limits|status\n".into();
        }
        let listed_before =
            now_micros().saturating_sub(self.config.channel_list_lag.as_micros() as u64);
        let mut channels: Vec<&Channel> = self
            .channels
            .values()
            .filter(|c| c.created <= listed_before)
            .collect();
        channels.sort_by_key(|c| c.created);
        let rows: Vec<Value> = channels.iter().map(|c| c.show_row()).collect();
        if words.get(1..3) == Some(&["as", "json"][..]) {
            if rows.is_empty() {
                return "{\"row_count\":0}\n".into();
            }
            return format!("{}\n", json!({"row_count": rows.len(), "rows": rows}));
        }
        if rows.is_empty() {
            return "\n0 total.\n".into();
        }
        let keys: Vec<String> = rows[0]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let mut out = keys.join(",");
        out.push('\n');
        for row in &rows {
            let line: Vec<String> = keys
                .iter()
                .map(|k| row[k].as_str().unwrap_or_default().to_owned())
                .collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out.push_str(&format!("\n{} total.\n", rows.len()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_like_switch_separate_string() {
        assert_eq!(
            split_args("u1  'm:^:speak:flite|slt|Hello, world^park' inline"),
            vec!["u1", "m:^:speak:flite|slt|Hello, world^park", "inline"]
        );
        assert_eq!(split_args(r"a\ b c"), vec!["a b", "c"]);
        assert_eq!(split_args("''"), vec![""]);
        let apps = parse_inline("m:^:speak:flite|slt|Hello, world^park").unwrap();
        assert_eq!(
            apps,
            vec![App::Speak("flite|slt|Hello, world".into()), App::Park]
        );
    }

    #[test]
    fn inline_dialplans_parse_like_freeswitch() {
        let apps = parse_inline("conference:room1@default+flags{mute},park:").unwrap();
        assert!(matches!(&apps[0], App::Conference(s) if s.room == "room1" && s.flags == ["mute"]));
        assert_eq!(apps[1], App::Park);
        let apps = parse_inline("m:^:conference:r@default+flags{mute|deaf}^park").unwrap();
        assert!(matches!(&apps[0], App::Conference(s) if s.flags == ["mute", "deaf"]));
        assert_eq!(parse_inline("park").unwrap(), vec![App::Park]);
        assert!(parse_inline("bogus:x").is_none());
    }

    #[test]
    fn dial_strings_split_their_variables() {
        let (vars, rest) =
            split_vars("{origination_uuid=u1,origination_caller_id_name='A B'}null/x");
        assert_eq!(vars[0], ("origination_uuid".into(), "u1".into()));
        assert_eq!(vars[1].1, "A B");
        assert_eq!(rest, "null/x");
    }
}
