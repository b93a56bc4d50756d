//! One simulated channel and the header blocks FreeSWITCH stamps on its events: the channel
//! block (`Channel-*`, `Unique-ID`, `Answer-State`, `Hangup-Cause` once set, the codecs that are
//! set), the caller profile (`Caller-*`, once the channel has one) and the `variable_*` block.

use serde_json::{Value, json};

use super::conference::JoinSpec;
use crate::esl::EventData;

/// A dialplan application a channel runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum App {
    Answer,
    Echo,
    Park,
    Conference(JoinSpec),
    /// `hangup[:<cause>]`: the data as given (no data: NORMAL_CLEARING, and no
    /// `Application-Data`).
    Hangup(String),
    /// `speak:<engine>|<voice>|<text>`: text to speech, then the next app.
    Speak(String),
    /// `set:<name>=<value>`: sets a channel variable, then the next app.
    Set(String),
    /// `bridge:{<vars>}sofia/nodes/<room>@<host:port>`: a leg to another node's `nodes`
    /// profile, bridged to this channel (see `bridge.rs`).
    Bridge(String),
}

impl App {
    pub fn parse(name: &str, arg: &str) -> Option<App> {
        match name {
            "answer" => Some(App::Answer),
            "echo" => Some(App::Echo),
            "park" => Some(App::Park),
            "speak" if !arg.trim().is_empty() => Some(App::Speak(arg.to_owned())),
            "set" if arg.contains('=') => Some(App::Set(arg.to_owned())),
            "bridge" if !arg.trim().is_empty() => Some(App::Bridge(arg.to_owned())),
            "conference" => JoinSpec::parse(arg).map(App::Conference),
            "hangup" => Some(App::Hangup(arg.into())),
            _ => None,
        }
    }

    pub fn name_and_data(&self) -> (&'static str, String) {
        match self {
            App::Answer => ("answer", String::new()),
            App::Echo => ("echo", String::new()),
            App::Park => ("park", String::new()),
            App::Conference(spec) => ("conference", spec.to_string()),
            App::Hangup(cause) => ("hangup", cause.clone()),
            App::Speak(data) => ("speak", data.clone()),
            App::Set(data) => ("set", data.clone()),
            App::Bridge(data) => ("bridge", data.clone()),
        }
    }
}

/// The simulator's dialplan for an extension reached through `loopback/<exten>`: vanilla 9196
/// answers and echoes; every other extension answers and parks.
pub(crate) fn dialplan(exten: &str) -> Vec<App> {
    match exten {
        "9196" => vec![App::Answer, App::Echo],
        _ => vec![App::Answer, App::Park],
    }
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
    /// `Caller-Callee-ID-*`: set on originated channels.
    pub callee: Option<(String, String)>,
    /// An outbound leg once transferred: its caller profile's logical direction is inbound (the
    /// leg now runs a dialplan, CF_DIALPLAN; seen on 1.11 from the transfer's first event on).
    pub logically_inbound: bool,
    pub destination: String,
    pub context: String,
    pub source: &'static str,
    pub hit_dialplan: bool,
    pub created: u64,
    pub answered: u64,
    /// When the channel entered CS_HANGUP (`Caller-Channel-Hangup-Time`; 0 before).
    pub hung_up: u64,
    /// When the far end of a call we placed rang (0: it did not).
    pub progressed: u64,
    /// When the far end sent early media (a 183), or this leg did (0: never).
    pub progress_media: u64,
    /// The bridged party the caller last saw (its CALL_UPDATE fires when that changes).
    pub shown_peer: Option<String>,
    /// Whether the caller profile exists yet (not before a new channel's first state).
    pub profile: bool,
    pub read_codec: bool,
    pub write_codec: bool,
    pub hangup_cause: Option<String>,
    pub variables: Vec<(String, String)>,
    /// The app now running (it gets its CHANNEL_EXECUTE_COMPLETE when it ends).
    pub application: Option<App>,
    /// `Application-UUID` of the running app.
    pub app_uuid: String,
    pub last_app: Option<(String, String)>,
    /// Inline apps left to run when the current one returns.
    pub after: Vec<App>,
    pub room: Option<String>,
    /// The member id mod_conference gave the channel the first time it joined a conference
    /// (the channel's `__confmid`): it keeps it in every conference it joins after.
    pub conf_member_id: Option<u32>,
    /// The other leg of a loopback pair.
    pub partner: Option<String>,
    /// True while the channel runs `echo` (what it hears goes back).
    pub echoing: bool,
    /// The caller speaks (`sim_talk`): its far end sends voice whatever it hears.
    pub speaking: bool,
    pub session_id: u64,
    /// `Caller-Dialplan`: `xml` for loopback legs, `XML` for SIP calls (the `public` context),
    /// `inline` after an inline transfer, none for `null/` legs.
    pub dialplan: Option<String>,
    /// The codec name and bit rate (`L16`/128000, or `PCMU`/64000 for SIP calls).
    pub codec: (&'static str, &'static str),
    /// `Caller-Username` and `Caller-Network-Addr` (SIP calls).
    pub username: Option<String>,
    pub network_addr: Option<String>,
    /// `Caller-Profile-Index`: 1, then one more for each transfer (a new caller profile).
    pub profile_index: u32,
    pub profile_created: u64,
    pub transfer_source: Option<String>,
    pub rdnis: Option<String>,
    /// What `show channels` lists for `dest`, `cid_name`, `cid_num`: FreeSWITCH's core
    /// database takes them from CHANNEL_CREATE, the CS_ROUTING CHANNEL_STATE and CALL_UPDATE.
    pub listed: (String, String, String),
    /// The SIP dialog of a node-to-node leg (either end), see `link.rs`.
    pub dialog: Option<Dialog>,
    /// A caller running `bridge`: its outbound leg; that leg: the caller it carries.
    pub bridge_out: Option<String>,
    pub bridge_caller: Option<String>,
    /// The caller's bridge was answered (CHANNEL_BRIDGE fired).
    pub bridged: bool,
    /// Parked by `park_after_bridge`: parked with no app running (no EXECUTE park).
    pub bare_park: bool,
    /// The other leg's caller profile in this one's (`Other-Type`, `Other-Leg-*`): a bridge's
    /// originator on its outbound leg, the originatee on the caller until its next transfer.
    pub other: Option<OtherLeg>,
    /// When the channel was bridged (0: never): `bridge_stamp`.
    pub bridged_at: u64,
}

/// A copy of another leg's caller profile, as FreeSWITCH keeps it in a channel's profile.
#[derive(Debug, Clone)]
pub(crate) struct OtherLeg {
    /// `originator` or `originatee`.
    pub kind: &'static str,
    pub leg: Box<Channel>,
}

impl OtherLeg {
    pub fn of(kind: &'static str, leg: &Channel) -> OtherLeg {
        let mut leg = leg.clone();
        leg.other = None;
        OtherLeg {
            kind,
            leg: Box::new(leg),
        }
    }
}

/// A node-to-node SIP dialog: its Call-ID and the other node's `nodes` profile.
#[derive(Debug, Clone)]
pub(crate) struct Dialog {
    pub call_id: String,
    pub peer: std::net::SocketAddr,
    /// The other end ended it (BYE, CANCEL or a refusal received): nothing more is sent.
    pub closed: bool,
    /// How the other end ended it (`recv_bye`, `recv_cancel`, `recv_refuse`): the leg's
    /// `sip_hangup_disposition` once it hangs up.
    pub ended: Option<&'static str>,
}

impl Channel {
    pub fn new(uuid: String, name: String, outbound: bool, created: u64) -> Channel {
        Channel {
            uuid,
            name,
            outbound,
            state: ("CS_NEW", 0),
            call_state: "DOWN",
            answer_state: "ringing",
            cid_name: String::new(),
            cid_number: String::new(),
            orig_cid_name: String::new(),
            orig_cid_number: String::new(),
            callee: None,
            logically_inbound: false,
            destination: String::new(),
            context: "default".into(),
            source: "mod_sofia",
            hit_dialplan: true,
            created,
            answered: 0,
            hung_up: 0,
            progressed: 0,
            progress_media: 0,
            shown_peer: None,
            profile: true,
            read_codec: true,
            write_codec: true,
            hangup_cause: None,
            variables: Vec::new(),
            application: None,
            app_uuid: String::new(),
            last_app: None,
            after: Vec::new(),
            room: None,
            conf_member_id: None,
            partner: None,
            echoing: false,
            speaking: false,
            session_id: 0,
            dialplan: Some("xml".into()),
            codec: ("L16", "128000"),
            username: None,
            network_addr: None,
            profile_index: 1,
            profile_created: created,
            transfer_source: None,
            rdnis: None,
            listed: Default::default(),
            dialog: None,
            bridge_out: None,
            bridge_caller: None,
            bridged: false,
            bare_park: false,
            other: None,
            bridged_at: 0,
        }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a variable; as in FreeSWITCH, setting one again moves it to the end.
    pub fn set_var(&mut self, name: &str, value: impl Into<String>) {
        self.variables.retain(|(n, _)| n != name);
        self.variables.push((name.to_owned(), value.into()));
    }

    /// Adds a value to a variable (SWITCH_STACK_PUSH): the second makes it an array, written
    /// `ARRAY::<first>|:<second>` as FreeSWITCH serializes it.
    pub fn push_var(&mut self, name: &str, value: &str) {
        match self.variables.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) if v.starts_with("ARRAY::") => *v = format!("{v}|:{value}"),
            Some((_, v)) => *v = format!("ARRAY::{v}|:{value}"),
            None => self.variables.push((name.to_owned(), value.to_owned())),
        }
    }

    /// The caller id before the answer's flip (switch_channel_flip_cid): kept in
    /// `pre_transfer_caller_id_*` (no name variable for an empty name).
    pub fn keep_pre_flip_cid(&mut self) {
        if !self.cid_name.is_empty() {
            self.set_var("pre_transfer_caller_id_name", self.cid_name.clone());
        }
        self.set_var("pre_transfer_caller_id_number", self.cid_number.clone());
    }

    pub fn unset_var(&mut self, name: &str) {
        self.variables.retain(|(n, _)| n != name);
    }

    pub fn direction(&self) -> &'static str {
        if self.outbound { "outbound" } else { "inbound" }
    }

    pub fn is_hungup(&self) -> bool {
        self.hangup_cause.is_some()
    }

    /// The channel block, then the caller profile, then (`variables`) the `variable_*` block.
    pub fn push_headers(&self, e: &mut EventData, variables: bool) {
        let dir = self.direction();
        e.push("Channel-State", self.state.0);
        e.push("Channel-Call-State", self.call_state);
        e.push("Channel-State-Number", self.state.1.to_string());
        e.push("Channel-Name", self.name.clone());
        e.push("Unique-ID", self.uuid.clone());
        e.push("Call-Direction", dir);
        e.push("Presence-Call-Direction", dir);
        e.push("Channel-HIT-Dialplan", self.hit_dialplan.to_string());
        e.push("Channel-Call-UUID", self.uuid.clone());
        if let Some(data) = self.var("presence_data") {
            e.push("Channel-Presence-Data", data.to_owned());
        }
        e.push("Answer-State", self.answer_state);
        if let Some(cause) = &self.hangup_cause {
            e.push("Hangup-Cause", cause.clone());
        }
        if self.read_codec {
            push_codec(e, "Read", self.codec);
        }
        if self.write_codec {
            push_codec(e, "Write", self.codec);
        }
        if self.profile {
            self.push_profile(e, "Caller", false);
            if let Some(other) = &self.other {
                e.push("Other-Type", other.kind);
                other.leg.push_profile(e, "Other-Leg", true);
            }
        }
        if variables {
            for (name, value) in &self.variables {
                e.push(&format!("variable_{name}"), value.clone());
            }
        }
    }

    /// The caller profile as `Caller-*`, or as the other leg's (`Other-Leg-*`, `other`: no
    /// profile index, transfer source or RDNIS).
    fn push_profile(&self, e: &mut EventData, p: &str, other: bool) {
        let dir = self.direction();
        e.push(&format!("{p}-Direction"), dir);
        let logical = if self.logically_inbound {
            "inbound"
        } else {
            dir
        };
        e.push(&format!("{p}-Logical-Direction"), logical);
        if let Some(user) = &self.username {
            e.push(&format!("{p}-Username"), user.clone());
        }
        if let Some(dialplan) = &self.dialplan {
            e.push(&format!("{p}-Dialplan"), dialplan.clone());
        }
        // An empty name is left out (switch_caller_profile_event_set_data skips empty values).
        if !self.cid_name.is_empty() {
            e.push(&format!("{p}-Caller-ID-Name"), self.cid_name.clone());
        }
        e.push(&format!("{p}-Caller-ID-Number"), self.cid_number.clone());
        if !self.orig_cid_name.is_empty() {
            e.push(
                &format!("{p}-Orig-Caller-ID-Name"),
                self.orig_cid_name.clone(),
            );
        }
        e.push(
            &format!("{p}-Orig-Caller-ID-Number"),
            self.orig_cid_number.clone(),
        );
        if let Some((name, number)) = &self.callee {
            if !name.is_empty() {
                e.push(&format!("{p}-Callee-ID-Name"), name.clone());
            }
            e.push(&format!("{p}-Callee-ID-Number"), number.clone());
        }
        if let Some(addr) = &self.network_addr {
            e.push(&format!("{p}-Network-Addr"), addr.clone());
        }
        e.push(&format!("{p}-ANI"), self.orig_cid_number.clone());
        e.push(&format!("{p}-Destination-Number"), self.destination.clone());
        e.push(&format!("{p}-Unique-ID"), self.uuid.clone());
        e.push(&format!("{p}-Source"), self.source);
        if let Some(source) = self.transfer_source.as_ref().filter(|_| !other) {
            e.push(&format!("{p}-Transfer-Source"), source.clone());
        }
        e.push(&format!("{p}-Context"), self.context.clone());
        if let Some(rdnis) = self.rdnis.as_ref().filter(|_| !other) {
            e.push(&format!("{p}-RDNIS"), rdnis.clone());
        }
        e.push(&format!("{p}-Channel-Name"), self.name.clone());
        if !other {
            e.push(
                &format!("{p}-Profile-Index"),
                self.profile_index.to_string(),
            );
        }
        e.push(
            &format!("{p}-Profile-Created-Time"),
            self.profile_created.to_string(),
        );
        e.push(
            &format!("{p}-Channel-Created-Time"),
            self.created.to_string(),
        );
        e.push(
            &format!("{p}-Channel-Answered-Time"),
            self.answered.to_string(),
        );
        for t in ["Progress", "Progress-Media"] {
            e.push(&format!("{p}-Channel-{t}-Time"), "0");
        }
        e.push(
            &format!("{p}-Channel-Hangup-Time"),
            self.hung_up.to_string(),
        );
        for t in ["Transfer", "Resurrect", "Bridged"] {
            e.push(&format!("{p}-Channel-{t}-Time"), "0");
        }
        e.push(&format!("{p}-Channel-Last-Hold"), "0");
        e.push(&format!("{p}-Channel-Hold-Accum"), "0");
        e.push(&format!("{p}-Screen-Bit"), "true");
        e.push(&format!("{p}-Privacy-Hide-Name"), "false");
        e.push(&format!("{p}-Privacy-Hide-Number"), "false");
    }

    pub fn show_row(&self) -> Value {
        let (app, data) = self
            .application
            .as_ref()
            .map(App::name_and_data)
            .map(|(a, d)| (a.to_owned(), d))
            .unwrap_or_default();
        json!({
            "uuid": self.uuid, "direction": self.direction(),
            "created": "", "created_epoch": (self.created / 1_000_000).to_string(),
            "name": self.name, "state": self.state.0, "cid_name": self.listed.1, "cid_num": self.listed.2,
            "ip_addr": self.network_addr.clone().unwrap_or_default(), "dest": self.listed.0,
            "application": app, "application_data": data,
            "dialplan": self.dialplan.clone().unwrap_or_default(), "context": self.context,
            "read_codec": self.codec.0, "read_rate": "8000", "read_bit_rate": self.codec.1,
            "write_codec": self.codec.0, "write_rate": "8000", "write_bit_rate": self.codec.1,
            "secure": "", "hostname": "", "presence_id": "", "presence_data": self.var("presence_data").unwrap_or_default(), "accountcode": "",
            "callstate": self.call_state, "callee_name": "", "callee_num": "", "callee_direction": "",
            "call_uuid": "", "sent_callee_name": "", "sent_callee_num": "",
            "initial_cid_name": self.orig_cid_name, "initial_cid_num": self.orig_cid_number,
            "initial_ip_addr": "", "initial_dest": self.destination, "initial_dialplan": "xml",
            "initial_context": self.context,
        })
    }
}

fn push_codec(e: &mut EventData, dir: &str, (name, bit_rate): (&str, &str)) {
    e.push(&format!("Channel-{dir}-Codec-Name"), name);
    e.push(&format!("Channel-{dir}-Codec-Rate"), "8000");
    e.push(&format!("Channel-{dir}-Codec-Bit-Rate"), bit_rate);
}

/// The CDR variables FreeSWITCH adds when a channel reaches CS_REPORTING.
pub(crate) fn cdr_variables(ch: &Channel, now: u64) -> Vec<(String, String)> {
    let stamp = super::events::local_date;
    let answered = ch.answered;
    let bill_from = if answered == 0 { now } else { answered };
    let wait = if answered == 0 {
        0
    } else {
        answered.saturating_sub(ch.created)
    };
    let mut v: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, value: String| v.push((k.to_owned(), value));
    put("hangup_cause", ch.hangup_cause.clone().unwrap_or_default());
    let q850 = match ch.hangup_cause.as_deref() {
        Some("UNALLOCATED_NUMBER") => "1",
        Some("USER_BUSY") => "17",
        Some("NO_USER_RESPONSE") => "18",
        Some("NO_ANSWER") => "19",
        Some("CALL_REJECTED") => "21",
        Some("ORIGINATOR_CANCEL") => "487",
        _ => "16",
    };
    put("hangup_cause_q850", q850.into());
    put("digits_dialed", "none".into());
    put("start_stamp", stamp(ch.created));
    put("profile_start_stamp", stamp(ch.created));
    if answered != 0 {
        put("answer_stamp", stamp(answered));
    }
    if ch.progressed != 0 {
        put("progress_stamp", stamp(ch.progressed));
    }
    if ch.progress_media != 0 {
        put("progress_media_stamp", stamp(ch.progress_media));
    }
    if ch.bridged_at != 0 {
        put("bridge_stamp", stamp(ch.bridged_at));
    }
    put("end_stamp", stamp(now));
    put("start_epoch", (ch.created / 1_000_000).to_string());
    put("start_uepoch", ch.created.to_string());
    put("profile_start_epoch", (ch.created / 1_000_000).to_string());
    put("profile_start_uepoch", ch.created.to_string());
    put("answer_epoch", (answered / 1_000_000).to_string());
    put("answer_uepoch", answered.to_string());
    for zero in [
        "bridge_epoch",
        "bridge_uepoch",
        "last_hold_epoch",
        "last_hold_uepoch",
        "hold_accum_seconds",
        "hold_accum_usec",
        "hold_accum_ms",
        "resurrect_epoch",
        "resurrect_uepoch",
        "progress_epoch",
        "progress_uepoch",
        "progress_media_epoch",
        "progress_media_uepoch",
    ] {
        put(zero, "0".into());
    }
    put("end_epoch", (now / 1_000_000).to_string());
    put("end_uepoch", now.to_string());
    if let Some((app, arg)) = &ch.last_app {
        put("last_app", app.clone());
        if !arg.is_empty() {
            put("last_arg", arg.clone());
        }
    }
    put(
        "caller_id",
        format!("\"{}\" <{}>", ch.cid_name, ch.cid_number),
    );
    for (unit, div, dur) in [
        ("sec", 1_000_000, "duration"),
        ("msec", 1000, "mduration"),
        ("usec", 1, "uduration"),
    ] {
        let span = |a: u64, b: u64| (b.saturating_sub(a) / div).to_string();
        put(dur, span(ch.created, now));
        put(&format!("bill{unit}"), span(bill_from, now));
        put(&format!("progress{unit}"), "0".into());
        put(&format!("answer{unit}"), span(0, wait));
        put(&format!("wait{unit}"), span(0, wait));
        put(&format!("progress_media{unit}"), "0".into());
        put(&format!("flow_bill{unit}"), span(ch.created, now));
    }
    v
}
