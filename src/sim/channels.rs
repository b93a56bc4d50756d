//! Channels of the simulated node: originate, simulated inbound calls, the inline dialplan apps
//! the controller uses (`park`, `conference`), transfer, kill, and the CHANNEL_* events.

use serde_json::{Value, json};

use super::conference::JoinSpec;
use super::core::State;
use super::events::now_micros;
use crate::esl::EventData;

/// A dialplan application a channel runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum App {
    Park,
    Conference(JoinSpec),
    Hangup(String),
}

impl App {
    fn parse(name: &str, arg: &str) -> Option<App> {
        match name {
            "park" => Some(App::Park),
            "conference" => JoinSpec::parse(arg).map(App::Conference),
            "hangup" => Some(App::Hangup(if arg.is_empty() {
                "NORMAL_CLEARING".into()
            } else {
                arg.into()
            })),
            _ => None,
        }
    }

    fn name_and_data(&self) -> (&'static str, String) {
        match self {
            App::Park => ("park", String::new()),
            App::Conference(spec) => ("conference", spec.to_string()),
            App::Hangup(cause) => ("hangup", cause.clone()),
        }
    }
}

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

#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub uuid: String,
    pub name: String,
    pub outbound: bool,
    pub state: (&'static str, u8),
    pub call_state: &'static str,
    pub answer_state: &'static str,
    pub cid_name: String,
    pub cid_number: String,
    pub orig_cid_name: String,
    pub orig_cid_number: String,
    pub destination: String,
    pub context: String,
    pub created: u64,
    pub answered: u64,
    pub variables: Vec<(String, String)>,
    pub application: Option<App>,
    /// Inline apps left to run when the conference app returns.
    pub after: Vec<App>,
    pub room: Option<String>,
}

impl Channel {
    pub fn var(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_var(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.variables.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.variables.push((name.to_owned(), value)),
        }
    }

    fn direction(&self) -> &'static str {
        if self.outbound { "outbound" } else { "inbound" }
    }

    /// The channel headers every CHANNEL_* and member event carries; `variables` adds `variable_*`.
    pub fn push_headers(&self, e: &mut EventData, variables: bool) {
        let dir = self.direction();
        e.push("Channel-State", self.state.0);
        e.push("Channel-Call-State", self.call_state);
        e.push("Channel-State-Number", self.state.1.to_string());
        e.push("Channel-Name", self.name.clone());
        e.push("Unique-ID", self.uuid.clone());
        e.push("Call-Direction", dir);
        e.push("Presence-Call-Direction", dir);
        e.push("Channel-HIT-Dialplan", "true");
        e.push("Channel-Call-UUID", self.uuid.clone());
        e.push("Answer-State", self.answer_state);
        for (dir_name, _) in [("Read", 0), ("Write", 1)] {
            e.push(&format!("Channel-{dir_name}-Codec-Name"), "L16");
            e.push(&format!("Channel-{dir_name}-Codec-Rate"), "8000");
            e.push(&format!("Channel-{dir_name}-Codec-Bit-Rate"), "128000");
        }
        e.push("Caller-Direction", dir);
        e.push("Caller-Logical-Direction", dir);
        e.push("Caller-Dialplan", "xml");
        e.push("Caller-Caller-ID-Name", self.cid_name.clone());
        e.push("Caller-Caller-ID-Number", self.cid_number.clone());
        e.push("Caller-Orig-Caller-ID-Name", self.orig_cid_name.clone());
        e.push("Caller-Orig-Caller-ID-Number", self.orig_cid_number.clone());
        e.push("Caller-ANI", self.orig_cid_number.clone());
        e.push("Caller-Destination-Number", self.destination.clone());
        e.push("Caller-Unique-ID", self.uuid.clone());
        e.push(
            "Caller-Source",
            if self.outbound {
                "mod_loopback"
            } else {
                "mod_sofia"
            },
        );
        e.push("Caller-Context", self.context.clone());
        e.push("Caller-Channel-Name", self.name.clone());
        e.push("Caller-Profile-Index", "1");
        e.push("Caller-Profile-Created-Time", self.created.to_string());
        e.push("Caller-Channel-Created-Time", self.created.to_string());
        e.push("Caller-Channel-Answered-Time", self.answered.to_string());
        for t in [
            "Progress",
            "Progress-Media",
            "Hangup",
            "Transfer",
            "Resurrect",
            "Bridged",
        ] {
            e.push(&format!("Caller-Channel-{t}-Time"), "0");
        }
        e.push("Caller-Channel-Last-Hold", "0");
        e.push("Caller-Channel-Hold-Accum", "0");
        e.push("Caller-Screen-Bit", "true");
        e.push("Caller-Privacy-Hide-Name", "false");
        e.push("Caller-Privacy-Hide-Number", "false");
        if variables {
            for (name, value) in &self.variables {
                e.push(&format!("variable_{name}"), value.clone());
            }
        }
    }

    fn show_row(&self) -> Value {
        let (app, data) = self
            .application
            .as_ref()
            .map(App::name_and_data)
            .map(|(a, d)| (a.to_owned(), d))
            .unwrap_or_default();
        json!({
            "uuid": self.uuid, "direction": self.direction(),
            "created": "", "created_epoch": (self.created / 1_000_000).to_string(),
            "name": self.name, "state": self.state.0, "cid_name": self.cid_name, "cid_num": self.cid_number,
            "ip_addr": "", "dest": self.destination, "application": app, "application_data": data,
            "dialplan": "xml", "context": self.context, "read_codec": "L16", "read_rate": "8000",
            "read_bit_rate": "128000", "write_codec": "L16", "write_rate": "8000", "write_bit_rate": "128000",
            "secure": "", "hostname": "", "presence_id": "", "presence_data": "", "accountcode": "",
            "callstate": self.call_state, "callee_name": "", "callee_num": "", "callee_direction": "",
            "call_uuid": "", "sent_callee_name": "", "sent_callee_num": "",
            "initial_cid_name": self.orig_cid_name, "initial_cid_num": self.orig_cid_number,
            "initial_ip_addr": "", "initial_dest": self.destination, "initial_dialplan": "xml",
            "initial_context": self.context,
        })
    }
}

/// `{a=b,c=d}rest` → the pairs and `rest`.
fn split_vars(dial: &str) -> (Vec<(String, String)>, &str) {
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

const USAGE_ORIGINATE: &str = "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n";

impl State {
    fn channel_event(&mut self, name: &str, uuid: &str, extra: &[(&str, String)]) {
        let Some(ch) = self.channels.get(uuid).cloned() else {
            return;
        };
        let mut e = self.event(
            name,
            None,
            ("switch_channel.c", "switch_channel_perform_event", 4000),
        );
        ch.push_headers(&mut e, true);
        for (n, v) in extra {
            e.push(n, v.clone());
        }
        self.fire(e);
    }

    fn new_channel(&mut self, mut ch: Channel) -> String {
        let uuid = ch.uuid.clone();
        ch.set_var("uuid", uuid.clone());
        ch.set_var("direction", ch.direction());
        ch.set_var("channel_name", ch.name.clone());
        self.sessions_since_startup += 1;
        self.channels.insert(uuid.clone(), ch);
        self.channel_event("CHANNEL_CREATE", &uuid, &[]);
        uuid
    }

    fn answer(&mut self, uuid: &str) {
        if let Some(ch) = self.channels.get_mut(uuid) {
            if ch.answered != 0 {
                return;
            }
            ch.answered = now_micros();
            ch.answer_state = "answered";
            ch.call_state = "ACTIVE";
            ch.state = ("CS_EXECUTE", 4);
        }
        self.channel_event("CHANNEL_ANSWER", uuid, &[]);
    }

    /// Runs the first of a channel's inline apps; every app the simulator knows keeps the
    /// channel (park, conference) or ends it (hangup). The apps after a conference are kept for
    /// when the member leaves. No app left means the call hangs up, as FreeSWITCH does at the end
    /// of an inline extension.
    pub(crate) fn run_apps(&mut self, uuid: &str, apps: Vec<App>) {
        let mut apps = apps.into_iter();
        let Some(app) = apps.next() else {
            self.hangup(uuid, "NORMAL_CLEARING");
            return;
        };
        let (name, data) = app.name_and_data();
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.application = Some(app.clone());
        }
        let app_uuid = uuid::Uuid::new_v4().to_string();
        let execute = [
            ("Application", name.into()),
            ("Application-Data", data),
            ("Application-UUID", app_uuid),
        ];
        self.channel_event("CHANNEL_EXECUTE", uuid, &execute);
        match app {
            App::Park => {
                self.answer(uuid);
                self.channel_event("CHANNEL_PARK", uuid, &[]);
            }
            App::Conference(spec) => {
                self.answer(uuid);
                if let Some(ch) = self.channels.get_mut(uuid) {
                    ch.after = apps.collect();
                }
                self.join(uuid, &spec);
            }
            App::Hangup(cause) => self.hangup(uuid, &cause),
        }
    }

    /// CHANNEL_HANGUP, leaving any room, CHANNEL_HANGUP_COMPLETE, CHANNEL_DESTROY.
    pub(crate) fn hangup(&mut self, uuid: &str, cause: &str) {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        ch.state = ("CS_HANGUP", 10);
        ch.call_state = "HANGUP";
        ch.answer_state = "hangup";
        ch.set_var("hangup_cause", cause);
        let answered = ch.answered;
        let created = ch.created;
        let cause_header = [("Hangup-Cause", cause.to_owned())];
        self.channel_event("CHANNEL_HANGUP", uuid, &cause_header);
        self.leave_room(uuid, Some(cause));
        let now = now_micros();
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.state = ("CS_REPORTING", 11);
            ch.set_var(
                "duration",
                ((now.saturating_sub(created)) / 1_000_000).to_string(),
            );
            let billsec = if answered == 0 {
                0
            } else {
                now.saturating_sub(answered) / 1_000_000
            };
            ch.set_var("billsec", billsec.to_string());
        }
        self.channel_event("CHANNEL_HANGUP_COMPLETE", uuid, &cause_header);
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.state = ("CS_DESTROY", 12);
        }
        self.channel_event("CHANNEL_DESTROY", uuid, &[]);
        self.channels.remove(uuid);
    }

    /// `originate <dial> <&app(args)|exten> [dialplan] [context] [cid_name] [cid_num] [timeout]`.
    pub(crate) fn originate(&mut self, args: &str) -> String {
        let mut words = args.split_whitespace();
        let (Some(dial), Some(dest)) = (words.next(), words.next()) else {
            return USAGE_ORIGINATE.into();
        };
        let (vars, endpoint) = split_vars(dial);
        let (tech, rest) = endpoint.split_once('/').unwrap_or((endpoint, ""));
        let name = match tech {
            "error" => {
                return format!(
                    "-ERR {}\n",
                    if rest.is_empty() {
                        "DESTINATION_OUT_OF_ORDER"
                    } else {
                        rest
                    }
                );
            }
            "loopback" => format!("loopback/{}-a", rest.split('/').next().unwrap_or_default()),
            "null" | "sofia" | "user" => endpoint.to_owned(),
            _ => return "-ERR CHAN_NOT_IMPLEMENTED\n".into(),
        };
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
            // An extension: the simulator's dialplan answers and parks every call.
            None => vec![App::Park],
        };
        let var = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let uuid = var("origination_uuid").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if self.channels.contains_key(&uuid) {
            return "-ERR DESTINATION_OUT_OF_ORDER\n".into();
        }
        let cid_name = var("origination_caller_id_name").unwrap_or_else(|| "Outbound Call".into());
        let cid_number = var("origination_caller_id_number").unwrap_or_else(|| "default".into());
        let destination = rest.split('/').next().unwrap_or_default().to_owned();
        let mut ch = Channel {
            uuid: uuid.clone(),
            name,
            outbound: true,
            state: ("CS_INIT", 2),
            call_state: "DOWN",
            answer_state: "ringing",
            cid_name: "Outbound Call".into(),
            cid_number: "default".into(),
            orig_cid_name: cid_name,
            orig_cid_number: cid_number,
            destination,
            context: "default".into(),
            created: now_micros(),
            answered: 0,
            variables: Vec::new(),
            application: None,
            after: Vec::new(),
            room: None,
        };
        for (k, v) in &vars {
            ch.set_var(k, v.clone());
        }
        self.new_channel(ch);
        self.channel_event("CHANNEL_ORIGINATE", &uuid, &[]);
        self.answer(&uuid);
        self.run_apps(&uuid, apps);
        format!("+OK {uuid}\n")
    }

    /// `sim_inbound <did> <caller_number> [caller name…]`: a call arriving from the network to a
    /// DID, answered and parked as the lab dialplan does (with `switchyard_did` set).
    pub(crate) fn inbound(&mut self, args: &str) -> String {
        let mut words = args.splitn(3, ' ');
        let (Some(did), Some(number)) = (words.next().filter(|s| !s.is_empty()), words.next())
        else {
            return "-USAGE: sim_inbound <did> <caller_id_number> [<caller_id_name>]\n".into();
        };
        let name = words.next().unwrap_or(number).to_owned();
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut ch = Channel {
            uuid: uuid.clone(),
            name: format!("sofia/internal/{number}@sim"),
            outbound: false,
            state: ("CS_INIT", 2),
            call_state: "DOWN",
            answer_state: "ringing",
            cid_name: name.clone(),
            cid_number: number.to_owned(),
            orig_cid_name: name,
            orig_cid_number: number.to_owned(),
            destination: did.to_owned(),
            context: "public".into(),
            created: now_micros(),
            answered: 0,
            variables: Vec::new(),
            application: None,
            after: Vec::new(),
            room: None,
        };
        ch.set_var("switchyard_did", did);
        ch.set_var("destination_number", did);
        self.new_channel(ch);
        self.run_apps(&uuid, vec![App::Park]);
        format!("+OK {uuid}\n")
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
        self.hangup(uuid, &cause);
        "+OK\n".into()
    }

    /// `uuid_transfer <uuid> [-bleg|-both] <dest> [inline|dialplan] [context]`.
    pub(crate) fn uuid_transfer(&mut self, args: &str) -> String {
        let mut words: Vec<&str> = args.split_whitespace().collect();
        words.retain(|w| !matches!(*w, "-bleg" | "-both"));
        let (Some(uuid), Some(dest)) = (words.first(), words.get(1)) else {
            return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n".into();
        };
        if !self.channels.contains_key(*uuid) {
            return "-ERR No such channel!\n".into();
        }
        let dest = dest.trim_matches('\'');
        let apps = if words.get(2) == Some(&"inline") {
            match parse_inline(dest) {
                Some(apps) if !apps.is_empty() => apps,
                _ => return "-ERR\n".into(),
            }
        } else {
            vec![App::Park]
        };
        let uuid = (*uuid).to_owned();
        self.leave_room(&uuid, None);
        if let Some(ch) = self.channels.get_mut(&uuid) {
            ch.after.clear();
        }
        self.run_apps(&uuid, apps);
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

    /// `show channels [as json]`.
    pub(crate) fn show(&self, args: &str) -> String {
        let words: Vec<&str> = args.split_whitespace().collect();
        if words.first() != Some(&"channels") {
            return "-USAGE: codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels [count|like <match string>]|calls|detailed_calls|bridged_calls|detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|interfaces|interface_types|tasks|limits|status\n".into();
        }
        let mut channels: Vec<&super::channels::Channel> = self.channels.values().collect();
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
