//! SIP calls arriving on the node (`sim_inbound`, [`super::Simulator::inbound_call`]), as
//! mod_sofia and FreeSWITCH's core report them for a call into the `public` context of
//! `freeswitch-conf/`: the channel's states, its PCMU codecs, mod_sofia's variables, and the
//! dialplan (set `switchyard_did`, set `media_timeout`, answer, park). Checked against a real
//! node by `tests/live/differential/mod.rs`.

use std::net::SocketAddr;

use super::channel::{App, Channel};
use super::core::State;
use super::events::now_micros;

impl State {
    /// `sim_dtmf <uuid> <digit>`: the caller presses a key (RFC 2833). With no caller controls in
    /// the room, FreeSWITCH sends only the core `DTMF` event, the channel's data then the digit
    /// (seen on 1.11: `DTMF-Duration: 2240`, `DTMF-Source: RTP`), in a room or out of one.
    pub(crate) fn caller_dtmf(&mut self, args: &str) -> String {
        let mut words = args.split(' ');
        let (Some(uuid), Some(digit)) = (words.next(), words.next()) else {
            return "-USAGE: sim_dtmf <uuid> <digit>\n".into();
        };
        if !self.channels.contains_key(uuid) {
            return "-ERR No such channel!\n".into();
        }
        let post = [
            ("DTMF-Digit", digit.to_owned()),
            ("DTMF-Duration", "2240".to_owned()),
            ("DTMF-Source", "RTP".to_owned()),
        ];
        self.ch_event("DTMF", uuid, &[], &post, false);
        "+OK\n".into()
    }

    /// `uuid_recv_dtmf <uuid> <dtmf_data>`: digits handed to the channel as if its far end sent
    /// them (switch_channel.c, `switch_channel_queue_dtmf_string`): groups split on `+`, each
    /// with an optional `@<ms>` duration (default 250 ms, at least 50 ms, counted in 8 kHz
    /// samples), an optional leading `~`; each digit is a core `DTMF` event with
    /// `DTMF-Source: APP`. No digit at all answers the usage (seen on 1.11: `+OK <uuid>
    /// received DTMF <data>.`, `DTMF-Duration: 2000`).
    pub(crate) fn recv_dtmf(&mut self, args: &str) -> String {
        const USAGE: &str = "-USAGE: <uuid> <dtmf_data>\n";
        // The data is the rest of the line (FreeSWITCH splits the arguments in two).
        let Some((uuid, data)) = args
            .split_once(' ')
            .filter(|(u, d)| !u.is_empty() && !d.is_empty())
        else {
            return USAGE.into();
        };
        if !self.channels.contains_key(uuid) {
            return "-ERR Cannot locate session!\n".into();
        }
        const DEFAULT: u32 = 2000;
        const MIN: u32 = 400;
        const MAX: u32 = 192_000;
        let mut digits = Vec::new();
        for group in data.strip_prefix('~').unwrap_or(data).split('+') {
            let (keys, duration) = match group.split_once('@') {
                Some((keys, ms)) => {
                    // atoi: the leading digits, 0 when there are none.
                    let ms: u32 = ms
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                        .parse()
                        .unwrap_or(0);
                    let duration = if ms > MIN / 8 {
                        ms.saturating_mul(8)
                    } else {
                        DEFAULT
                    };
                    (keys, duration.min(MAX))
                }
                None => (group, DEFAULT),
            };
            digits.extend(
                keys.chars()
                    .filter(|c| c.is_ascii_digit() || "*#ABCDabcdWwFf".contains(*c))
                    .map(|c| (c, duration)),
            );
        }
        if digits.is_empty() {
            return USAGE.into();
        }
        for (digit, duration) in digits {
            let post = [
                ("DTMF-Digit", digit.to_string()),
                ("DTMF-Duration", duration.to_string()),
                ("DTMF-Source", "APP".to_owned()),
            ];
            self.ch_event("DTMF", uuid, &[], &post, false);
        }
        format!("+OK {uuid} received DTMF {data}.\n")
    }

    /// `sim_talk <uuid> on|off`: the caller starts or stops speaking. In a room, the member
    /// talks (start-talking, stop-talking) as a real caller's voice makes it (see `audio`).
    pub(crate) fn caller_talk(&mut self, args: &str) -> String {
        let (uuid, on) = match args.split_once(' ') {
            Some((uuid, "on")) => (uuid, true),
            Some((uuid, "off")) => (uuid, false),
            _ => return "-USAGE: sim_talk <uuid> on|off\n".into(),
        };
        let Some(ch) = self.channels.get_mut(uuid) else {
            return "-ERR No such channel!\n".into();
        };
        ch.speaking = on;
        let out = ch.bridge_out.clone();
        if let Some(room) = ch.room.clone() {
            self.audio_changed(&room, None);
        }
        // A caller bridged to another node's room: its voice goes there.
        if let Some(d) = out
            .and_then(|o| self.channels.get(&o))
            .and_then(|leg| leg.dialog.as_ref())
        {
            let call_id = d.call_id.clone();
            super::link::send(d.peer, super::link::SipMsg::Talk { call_id, on });
        }
        "+OK\n".into()
    }

    /// `sim_inbound <did> <caller_number> [caller name…]`: a SIP call arriving on the `inbound`
    /// profile to a DID, run through the `public` dialplan of `freeswitch-conf/` (set
    /// `switchyard_did`, set `media_timeout`, answer, park) as mod_sofia and FreeSWITCH's core
    /// report it.
    pub(crate) fn inbound(&mut self, args: &str) -> String {
        let mut words = args.splitn(3, ' ');
        let (Some(did), Some(number)) = (words.next().filter(|s| !s.is_empty()), words.next())
        else {
            return "-USAGE: sim_inbound <did> <caller_id_number> [<caller_id_name>]\n".into();
        };
        let name = words.next().unwrap_or(number).to_owned();
        let uuid = uuid::Uuid::new_v4().to_string();
        let port = 5060 + (self.sessions_since_startup % 1000) as u16;
        let arrival = Arrival {
            uuid: uuid.clone(),
            profile: "inbound",
            context: "public",
            number: number.to_owned(),
            name,
            from: SocketAddr::from(([127, 0, 0, 1], port)),
            user: did.to_owned(),
            local: SocketAddr::from(([127, 0, 0, 1], 5080)),
            call_id: uuid.clone(),
            user_agent: "switchyard-sim-caller",
            from_uri: format!("{number}@127.0.0.1:{port}"),
            contact_user: number.to_owned(),
            via: format!("SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-sim"),
            max_forwards: "70",
        };
        let mut ch = arrival.channel(self.next_session());
        ch.set_var("sip_from_port", port.to_string());
        self.sip_arrives(ch, port.into());
        if let Some(ch) = self.channels.get_mut(&uuid) {
            ch.set_var("DP_MATCH", format!("ARRAY::{did}|:{did}"));
        }
        let apps = vec![
            App::Set(format!("switchyard_did={did}")),
            App::Set("media_timeout=300000".into()),
            App::Answer,
            App::Park,
        ];
        self.run_apps(&uuid, apps);
        format!("+OK {uuid}\n")
    }
}

/// A SIP INVITE arriving on one of the node's profiles, as mod_sofia makes it a channel.
pub(crate) struct Arrival {
    pub uuid: String,
    /// The sofia profile (`inbound`, `nodes`) and its dialplan context.
    pub profile: &'static str,
    pub context: &'static str,
    pub number: String,
    pub name: String,
    /// Where the INVITE came from, and the profile it reached.
    pub from: SocketAddr,
    pub local: SocketAddr,
    /// The request user (a DID, a room id).
    pub user: String,
    pub call_id: String,
    pub user_agent: &'static str,
    pub from_uri: String,
    pub contact_user: String,
    pub via: String,
    pub max_forwards: &'static str,
}

impl Arrival {
    /// The new channel with mod_sofia's variables of the INVITE.
    pub(crate) fn channel(&self, session_id: u64) -> Channel {
        let (number, name, host) = (&self.number, &self.name, self.from.ip().to_string());
        let mut ch = Channel::new(
            self.uuid.clone(),
            format!("sofia/{}/{}", self.profile, self.from_uri),
            false,
            now_micros(),
        );
        ch.cid_name = name.clone();
        ch.cid_number = number.clone();
        ch.orig_cid_name = name.clone();
        ch.orig_cid_number = number.clone();
        ch.destination = self.user.clone();
        ch.context = self.context.into();
        ch.dialplan = Some("XML".into());
        ch.codec = ("PCMU", "64000");
        ch.username = Some(number.clone());
        ch.network_addr = Some(host.clone());
        ch.session_id = session_id;
        ch.profile = false;
        ch.read_codec = false;
        ch.write_codec = false;
        let port = self.from.port().to_string();
        let local = self.local;
        let to_uri = format!("{}@{local}", self.user);
        let tag = format!("{session_id}SY1");
        for (k, v) in [
            ("direction", "inbound".to_owned()),
            ("uuid", self.uuid.clone()),
            ("session_id", session_id.to_string()),
            ("sip_from_user", number.clone()),
            ("sip_from_uri", self.from_uri.clone()),
            ("sip_from_host", host.clone()),
            ("video_media_flow", "disabled".into()),
            ("text_media_flow", "disabled".into()),
            ("channel_name", ch.name.clone()),
            ("sip_call_id", self.call_id.clone()),
            ("sip_local_network_addr", local.ip().to_string()),
            ("sip_network_ip", host.clone()),
            ("sip_network_port", port.clone()),
            ("sip_invite_stamp", ch.created.to_string()),
            ("sip_received_ip", host.clone()),
            ("sip_received_port", port.clone()),
            ("sip_via_protocol", "udp".into()),
            ("sip_from_user_stripped", number.clone()),
            ("sip_from_tag", tag.clone()),
            ("sofia_profile_name", self.profile.into()),
            ("sofia_profile_url", format!("sip:mod_sofia@{local}")),
            ("recovery_profile_name", self.profile.into()),
            ("sip_full_via", self.via.clone()),
            ("sip_from_display", name.clone()),
            (
                "sip_full_from",
                format!("\"{name}\" <sip:{}>;tag={tag}", self.from_uri),
            ),
            ("sip_full_to", format!("<sip:{to_uri}>")),
            ("sip_req_user", self.user.clone()),
            ("sip_req_port", local.port().to_string()),
            ("sip_req_uri", to_uri.clone()),
            ("sip_req_host", local.ip().to_string()),
            ("sip_to_user", self.user.clone()),
            ("sip_to_port", local.port().to_string()),
            ("sip_to_uri", to_uri),
            ("sip_to_host", local.ip().to_string()),
            ("sip_contact_user", self.contact_user.clone()),
            ("sip_contact_port", port.clone()),
            (
                "sip_contact_uri",
                format!("{}@{}", self.contact_user, self.from),
            ),
            ("sip_contact_host", host.clone()),
            ("sip_user_agent", self.user_agent.into()),
            ("sip_via_host", host),
            ("sip_via_port", port),
            ("max_forwards", self.max_forwards.into()),
        ] {
            ch.set_var(k, v);
        }
        ch
    }
}

impl State {
    /// A SIP call's channel comes to life: CS_NEW, its codecs (PCMU; the write codec first,
    /// without an event), the media variables of its SDP offer (`media_port`), CS_INIT,
    /// CHANNEL_CREATE, RINGING in CS_ROUTING, CS_EXECUTE.
    pub(crate) fn sip_arrives(&mut self, ch: Channel, media_port: u64) {
        let uuid = ch.uuid.clone();
        self.channels.insert(uuid.clone(), ch);
        self.set_state(&uuid, "CS_NEW", 0);
        if let Some(ch) = self.channels.get_mut(&uuid) {
            ch.profile = true;
            ch.write_codec = true;
        }
        self.codec(&uuid, false);
        self.codec(&uuid, true);
        if let Some(ch) = self.channels.get_mut(&uuid) {
            for (k, v) in sip_media_variables(&uuid, media_port) {
                ch.set_var(k, v);
            }
        }
        self.set_state(&uuid, "CS_INIT", 1);
        self.ask_state(&uuid, 2);
        self.ch_event("CHANNEL_CREATE", &uuid, &[], &[], true);
        if let Some(ch) = self.channels.get_mut(&uuid) {
            ch.state = ("CS_ROUTING", 2);
        }
        self.set_callstate(&uuid, "RINGING", 2);
        self.set_state(&uuid, "CS_ROUTING", 2);
        self.set_state(&uuid, "CS_EXECUTE", 4);
    }
}

/// The SDP a simulated SIP caller offers (G.711 µ-law, as `tests/common/sipp.rs` sends).
fn offer_sdp(port: u64) -> String {
    format!(
        "v=0\no=caller 53655765 2353687637 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=ptime:20\na=sendrecv\n"
    )
}

/// What mod_sofia sets when it negotiates a SIP call's media (before CHANNEL_CREATE).
pub(crate) fn sip_media_variables(uuid: &str, port: u64) -> Vec<(&'static str, String)> {
    let media_port = 20_000 + 2 * port;
    vec![
        ("call_uuid", uuid.to_owned()),
        ("switch_r_sdp", offer_sdp(media_port)),
        ("ep_codec_string", "PCMU@8000h@20i@64000b".into()),
        ("rtp_use_codec_string", "PCMU,PCMA".into()),
        ("remote_video_media_flow", "inactive".into()),
        ("remote_text_media_flow", "inactive".into()),
        ("remote_audio_media_flow", "sendrecv".into()),
        ("audio_media_flow", "sendrecv".into()),
        ("rtp_audio_recv_pt", "0".into()),
        ("rtp_use_codec_name", "PCMU".into()),
        ("rtp_use_codec_rate", "8000".into()),
        ("rtp_use_codec_ptime", "20".into()),
        ("rtp_use_codec_channels", "1".into()),
        ("rtp_last_audio_codec_string", "PCMU@8000h@20i@1c".into()),
        ("read_codec", "PCMU".into()),
        ("original_read_codec", "PCMU".into()),
        ("read_rate", "8000".into()),
        ("original_read_rate", "8000".into()),
        ("write_codec", "PCMU".into()),
        ("write_rate", "8000".into()),
        ("dtmf_type", "rfc2833".into()),
        ("remote_media_ip", "127.0.0.1".into()),
        ("remote_media_port", media_port.to_string()),
        ("endpoint_disposition", "DELAYED NEGOTIATION".into()),
    ]
}

/// The SDP mod_sofia offers or answers with, on RTP port `port`.
pub(crate) fn answer_sdp(port: &str) -> String {
    format!(
        "v=0\no=FreeSWITCH 1 2 IN IP4 127.0.0.1\ns=FreeSWITCH\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=ptime:20\na=sendrecv\n"
    )
}

/// What mod_sofia sets when the far end of a call it placed answers with its SDP: the
/// negotiated codec, the far end's media address, its RTP session.
pub(crate) fn answered_media_variables(dtmf: &str) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = sip_media_variables("", 15_000)
        .into_iter()
        .filter(|(k, _)| {
            !matches!(
                *k,
                "call_uuid" | "rtp_use_codec_string" | "audio_media_flow" | "endpoint_disposition"
            )
        })
        .collect();
    for (k, value) in v.iter_mut() {
        if *k == "dtmf_type" {
            *value = dtmf.to_owned();
        }
    }
    v.push(("rtp_use_timer_name", "soft".into()));
    v.push(("rtp_use_pt", "0".into()));
    v.push(("rtp_use_ssrc", "1431725106".into()));
    v
}

/// What mod_sofia sets when it answers a SIP call (its RTP session starts).
pub(crate) fn sip_answer_variables(port: &str) -> Vec<(&'static str, String)> {
    vec![
        ("local_media_ip", "127.0.0.1".into()),
        ("local_media_port", port.to_owned()),
        ("advertised_media_ip", "127.0.0.1".into()),
        // Both SIP profiles of `freeswitch-conf/` read RTP on a timer (`rtp-timer-name`).
        ("rtp_use_timer_name", "soft".into()),
        ("rtp_use_pt", "0".into()),
        ("rtp_use_ssrc", "1431725106".into()),
        ("rtp_local_sdp_str", answer_sdp(port)),
    ]
}

/// The RTP statistics mod_sofia adds when a SIP call ends, and how it ended.
pub(crate) fn sip_hangup_variables() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        "in_raw_bytes",
        "in_media_bytes",
        "in_packet_count",
        "in_media_packet_count",
        "in_skip_packet_count",
        "in_jitter_packet_count",
        "in_dtmf_packet_count",
        "in_cng_packet_count",
        "in_flush_packet_count",
        "in_largest_jb_size",
        "in_jitter_min_variance",
        "in_jitter_max_variance",
        "in_jitter_loss_rate",
        "in_jitter_burst_rate",
        "in_mean_interval",
        "in_flaw_total",
        "in_quality_percentage",
        "in_mos",
        "out_raw_bytes",
        "out_media_bytes",
        "out_packet_count",
        "out_media_packet_count",
        "out_skip_packet_count",
        "out_dtmf_packet_count",
        "out_cng_packet_count",
        "rtcp_packet_count",
        "rtcp_octet_count",
    ]
    .iter()
    .map(|k| (format!("rtp_audio_{k}"), "0".to_owned()))
    .collect();
    v.push(("sip_hangup_disposition".into(), "send_bye".into()));
    v
}
