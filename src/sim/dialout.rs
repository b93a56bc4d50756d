//! `originate … sofia/<profile>/sip:<user>@<host>[:<port>] …`: a call the node places to a SIP
//! callee, as FreeSWITCH 1.11 reports it (recorded in `fixtures/esl/09_dialout.md`, held to the
//! real node by the `dialout` differential scenario): the leg is born under its
//! `origination_uuid` (no temporary uuid), CHANNEL_OUTGOING, CS_INIT, CREATE, ORIGINATE,
//! CS_ROUTING, CS_CONSUME_MEDIA; a 180 is CHANNEL_PROGRESS and the RINGING call state; the 200
//! OK sets its PCMU codecs (two CODEC events), then the answer, ACTIVE, and for an extension (the
//! `inline` dialplan) a blind transfer to it (a new caller profile, CS_ROUTING) before the
//! caller id flip (CALL_UPDATE). Callees are simulated by their user part: `busy`, `rejected`,
//! `unknown` refuse, `noanswer` rings until the originate's timeout, anyone else answers.

use super::channel::{Channel, OtherLeg};
use super::core::State;
use super::events::now_micros;
use super::transfer::NewProfile;

/// How a simulated SIP callee takes the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Callee {
    Answers,
    /// Rings and never answers.
    Rings,
    /// Refuses at once with this cause.
    Refuses(&'static str),
}

impl Callee {
    /// The callee of `sip:<user>@…` (the endpoint after `sofia/<profile>/`).
    pub(crate) fn of(rest: &str) -> Callee {
        match sip_user(rest) {
            Some("busy") => Callee::Refuses("USER_BUSY"),
            Some("rejected") => Callee::Refuses("CALL_REJECTED"),
            Some("unknown") => Callee::Refuses("UNALLOCATED_NUMBER"),
            Some("noanswer") => Callee::Rings,
            _ => Callee::Answers,
        }
    }
}

/// The user part of a `sip:` endpoint, or the number of a gateway's.
fn sip_user(rest: &str) -> Option<&str> {
    match rest.split_once("sip:") {
        Some((_, uri)) => uri.split('@').next(),
        None => rest.rsplit('/').next(),
    }
}

/// What an outbound SIP leg is named (`sofia/<profile>/<user>@<host:port>`) and where it goes.
/// `rest` is the endpoint after `sofia/`: `<profile>/sip:<uri>`, `<profile>/<user>@<host>`, or a
/// gateway's `gateway/<name>/<number>`.
fn names(endpoint: &str, rest: &str) -> (String, Far) {
    let profile = rest.split('/').next().unwrap_or_default();
    let uri = match rest.split_once("sip:") {
        Some((_, uri)) => Some(uri),
        None => rest
            .split_once('/')
            .map(|(_, u)| u)
            .filter(|u| u.contains('@') && !u.contains('/')),
    };
    match uri {
        Some(uri) => {
            let user = uri.split('@').next().unwrap_or_default().to_owned();
            let hostport = uri.split_once('@').map_or("", |(_, h)| h).to_owned();
            let host = hostport.split(':').next().unwrap_or_default().to_owned();
            let far = Far {
                user,
                host,
                hostport,
                uri: uri.to_owned(),
            };
            (format!("sofia/{profile}/{uri}"), far)
        }
        None => {
            let user = rest.rsplit('/').next().unwrap_or_default().to_owned();
            let far = Far {
                user,
                host: "127.0.0.1".into(),
                hostport: String::new(),
                uri: rest.to_owned(),
            };
            (endpoint.to_owned(), far)
        }
    }
}

/// Where an outbound SIP leg goes: `sofia/<profile>/<uri>`'s parts.
#[derive(Debug, Clone)]
pub(crate) struct Far {
    pub user: String,
    pub host: String,
    pub hostport: String,
    pub uri: String,
}

impl State {
    /// Places the leg and takes it as far as `callee` lets it; `exten`: the originate's
    /// extension and dialplan, which the answered leg is transferred to. Returns the uuid.
    pub(crate) fn sofia_outbound(
        &mut self,
        uuid: &str,
        endpoint: &str,
        vars: &[(String, String)],
        cid: (String, String),
        callee: Callee,
        exten: Option<(&str, &str)>,
    ) -> String {
        let far = self.place_sofia_leg(uuid, endpoint, vars, &cid, "inbound", None);
        let refused = match callee {
            Callee::Refuses(cause) => Some(cause),
            _ => None,
        };
        self.far_replied(uuid, &far, &cid, refused);
        if refused.is_some() {
            return uuid.to_owned();
        }
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.answer_state = "ringing";
            ch.progressed = now_micros();
        }
        self.ch_event("CHANNEL_PROGRESS", uuid, &[], &[], true);
        self.set_callstate(uuid, "RINGING", 2);
        if callee == Callee::Rings {
            return uuid.to_owned();
        }
        self.far_answered(uuid, true);
        if let Some((exten, dialplan)) = exten {
            self.new_profile(uuid, NewProfile::new(exten, dialplan));
            self.set_state(uuid, "CS_ROUTING", 2);
            if let Some(ch) = self.channels.get_mut(uuid)
                && let Some(rdnis) = ch.rdnis.take()
            {
                ch.destination = rdnis;
            }
        }
        // Caller and callee swap once the far end answered.
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.set_var("endpoint_disposition", "ANSWER");
            ch.set_var("max_forwards", "70");
            ch.keep_pre_flip_cid();
            ch.set_var("channel_cid_flipped", "yes");
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

    /// A SIP leg placed on `profile` up to its INVITE: CHANNEL_OUTGOING, CS_INIT, CREATE,
    /// ORIGINATE, CS_ROUTING, CS_CONSUME_MEDIA, with mod_sofia's variables and `vars`.
    /// `originator`: the channel that places it (a `bridge`), whose caller profile it copies.
    pub(crate) fn place_sofia_leg(
        &mut self,
        uuid: &str,
        endpoint: &str,
        vars: &[(String, String)],
        cid: &(String, String),
        profile: &str,
        originator: Option<Channel>,
    ) -> Far {
        let rest = endpoint.strip_prefix("sofia/").unwrap_or(endpoint);
        let (name, far) = names(endpoint, rest);
        let mut ch: Channel = self.outbound_channel(uuid, name.clone(), cid);
        ch.destination = far.user.clone();
        ch.callee = Some(("Outbound Call".into(), far.user.clone()));
        ch.source = "src/switch_ivr_originate.c";
        ch.dialplan = None;
        ch.codec = ("PCMU", "64000");
        ch.state = ("CS_NONE", 1);
        ch.profile = true;
        ch.read_codec = false;
        ch.write_codec = false;
        ch.network_addr = None;
        if let Some(caller) = originator {
            ch.dialplan = Some("inline".into());
            ch.username = caller.username.clone();
            ch.network_addr = caller.network_addr.clone();
            ch.source = "mod_sofia";
            ch.context = caller.context.clone();
            ch.other = Some(OtherLeg::of("originator", &caller));
        }
        let session = ch.session_id.to_string();
        for (k, v) in [
            ("direction", "outbound".to_owned()),
            ("is_outbound", "true".into()),
            ("uuid", uuid.to_owned()),
            ("call_uuid", uuid.to_owned()),
            ("session_id", session),
            ("sip_local_network_addr", "127.0.0.1".into()),
            ("sip_profile_name", profile.into()),
            ("video_media_flow", "disabled".into()),
            ("text_media_flow", "disabled".into()),
            ("channel_name", name.clone()),
            ("sip_destination_url", format!("sip:{}", far.uri)),
        ] {
            ch.set_var(k, v);
        }
        self.channels.insert(uuid.to_owned(), ch);
        self.ch_event("CHANNEL_OUTGOING", uuid, &[], &[], false);
        let contact = self.profile_url(profile);
        if let Some(ch) = self.channels.get_mut(uuid) {
            for (k, v) in vars {
                ch.set_var(k, v.clone());
            }
            let early = vars
                .iter()
                .any(|(k, v)| k == "ignore_early_media" && v == "true");
            ch.set_var("originate_early_media", (!early).to_string());
            ch.set_var("originate_endpoint", "sofia");
            // The INVITE mod_sofia sends, with its SDP offer.
            for (k, v) in [
                ("rtp_use_codec_string", "PCMU,PCMA".to_owned()),
                ("local_media_ip", "127.0.0.1".into()),
                ("local_media_port", "20000".into()),
                ("advertised_media_ip", "127.0.0.1".into()),
                ("audio_media_flow", "sendrecv".into()),
                ("rtp_local_sdp_str", super::sofia::answer_sdp("20000")),
                ("sip_outgoing_contact_uri", format!("<{contact}>")),
                ("sip_req_uri", far.uri.clone()),
                ("sip_to_host", far.hostport.clone()),
                ("sip_from_host", "127.0.0.1".into()),
                ("sofia_profile_name", profile.into()),
                ("recovery_profile_name", profile.into()),
                ("sofia_profile_url", contact.clone()),
            ] {
                ch.set_var(k, v);
            }
        }
        self.set_state(uuid, "CS_INIT", 1);
        self.ask_state(uuid, 2);
        self.ch_event("CHANNEL_CREATE", uuid, &[], &[], true);
        self.ch_event("CHANNEL_ORIGINATE", uuid, &[], &[], true);
        self.set_state(uuid, "CS_ROUTING", 2);
        self.set_state(uuid, "CS_CONSUME_MEDIA", 7);
        far
    }

    /// `sip:mod_sofia@<address>` of one of the node's SIP profiles.
    pub(crate) fn profile_url(&self, profile: &str) -> String {
        match (profile, self.config.node_sip) {
            ("nodes", Some(at)) => format!("sip:mod_sofia@{at}"),
            _ => "sip:mod_sofia@127.0.0.1:5080".into(),
        }
    }

    /// The far end's first response: where it came from, its dialog, and for a refusal
    /// (`refused`: the cause) the SIP status mod_sofia maps it from.
    pub(crate) fn far_replied(
        &mut self,
        uuid: &str,
        far: &Far,
        cid: &(String, String),
        refused: Option<&str>,
    ) {
        let Far {
            user,
            host,
            hostport,
            uri,
        } = far;
        let cid_number = cid.1.clone();
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        ch.network_addr = Some(host.clone());
        let port = hostport.split(':').nth(1).unwrap_or("5060").to_owned();
        let call_id = match (ch.var("sip_call_id"), &ch.dialog) {
            (Some(id), _) => id.to_owned(),
            (None, Some(d)) => d.call_id.clone(),
            (None, None) => uuid::Uuid::new_v4().to_string(),
        };
        let mut reply = vec![
            ("sip_call_id", call_id),
            ("sip_reply_host", host.clone()),
            ("sip_reply_port", port.clone()),
            ("sip_network_ip", host.clone()),
            ("sip_network_port", port.clone()),
        ];
        match refused {
            Some(cause) => {
                let (status, phrase, q850) = refusal(cause);
                reply.extend([
                    ("sip_hangup_disposition", "recv_refuse".to_owned()),
                    ("sip_invite_failure_status", status.into()),
                    ("sip_invite_failure_phrase", phrase.into()),
                    ("sip_term_status", status.into()),
                    ("proto_specific_hangup_cause", format!("sip:{status}")),
                    ("sip_term_cause", q850.into()),
                ]);
            }
            None => reply.extend([
                (
                    "sip_recover_contact",
                    format!("<sip:{hostport};transport=UDP>"),
                ),
                (
                    "sip_full_via",
                    "SIP/2.0/UDP 127.0.0.1:5080;rport;branch=z9hG4bK-sim".into(),
                ),
                (
                    "sip_recover_via",
                    "SIP/2.0/UDP 127.0.0.1:5080;rport;branch=z9hG4bK-sim".into(),
                ),
                ("sip_from_display", cid.0.clone()),
                (
                    "sip_full_from",
                    match cid.0.as_str() {
                        "" => format!("<sip:{cid_number}@127.0.0.1>;tag=sim"),
                        name => format!("\"{name}\" <sip:{cid_number}@127.0.0.1>;tag=sim"),
                    },
                ),
                ("sip_full_to", format!("<sip:{uri}>;tag=sim-callee")),
                ("sip_from_user", cid_number.clone()),
                ("sip_from_uri", format!("{cid_number}@127.0.0.1")),
                ("sip_to_user", user.clone()),
                ("sip_to_port", port.clone()),
                ("sip_to_uri", uri.clone()),
                ("sip_contact_params", "transport=UDP".into()),
                ("sip_contact_user", "callee".into()),
                ("sip_contact_port", port.clone()),
                ("sip_contact_uri", format!("callee@{hostport}")),
                ("sip_contact_host", host.clone()),
                ("sip_to_tag", "sim-callee".into()),
                ("sip_from_tag", "sim".into()),
                ("sip_cseq", "1".into()),
            ]),
        }
        // A From with no display name (a dial-out with no caller id name) leaves no
        // `sip_from_display`.
        reply.retain(|(k, v)| !(*k == "sip_from_display" && v.is_empty()));
        for (k, v) in reply {
            ch.set_var(k, v);
        }
    }

    /// The far end's SDP: the leg's codecs (two CODEC events).
    pub(crate) fn far_media(&mut self, uuid: &str) {
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.write_codec = true;
        }
        self.codec(uuid, false);
        self.codec(uuid, true);
    }

    /// The far end's 200 OK: its SDP sets the leg's codecs (`media`: unless an early 183 did),
    /// the answer, ACTIVE.
    pub(crate) fn far_answered(&mut self, uuid: &str, media: bool) {
        if media {
            self.far_media(uuid);
        }
        if let Some(ch) = self.channels.get_mut(uuid) {
            for (k, v) in super::sofia::answered_media_variables("info") {
                ch.set_var(k, v);
            }
            ch.answered = now_micros();
            ch.answer_state = "answered";
        }
        self.ch_event("CHANNEL_ANSWER", uuid, &[], &[], true);
        self.set_callstate(uuid, "ACTIVE", 4);
    }
}

/// The SIP status, its phrase and the Q.850 cause of a refusal (`sofia_glue_sip_cause_to_freeswitch`
/// read backwards, for the causes the simulator's callees give).
fn refusal(cause: &str) -> (&'static str, &'static str, &'static str) {
    match cause {
        "USER_BUSY" => ("486", "Busy Here", "17"),
        "CALL_REJECTED" => ("603", "Decline", "21"),
        // A node's `nodes` dialplan refusing a join-only leg (Reason: Q.850;cause=16).
        "NORMAL_CLEARING" => ("480", "Temporarily Unavailable", "16"),
        // Generated by mod_sofia itself when the far port is closed (ICMP).
        "NORMAL_TEMPORARY_FAILURE" => ("503", "Service Unavailable", "41"),
        _ => ("404", "Not Found", "1"),
    }
}

/// Where the leg named `name` (`sofia/<profile>/<user>@<host:port>`) goes.
pub(crate) fn far_of_name(name: &str) -> Far {
    names(name, name.strip_prefix("sofia/").unwrap_or(name)).1
}
