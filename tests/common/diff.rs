//! The comparison rule of the differential tests: two recordings of one scenario (simulator
//! against FreeSWITCH, or FreeSWITCH against itself) are equal when
//!
//! 1. **the global stream** (every event that is not a channel's own: all `CUSTOM` events —
//!    conference member events included — and `API`) has the same
//!    `(Event-Name, subclass, Action, channel)` sequence; `PRESENCE_IN` and `BACKGROUND_JOB`
//!    events each form a stream of their own;
//! 2. **each channel's stream** (CHANNEL_*, CODEC, CALL_UPDATE… of one channel, by label) has the
//!    same sequence;
//! 3. so **the multisets** of events are equal (every event is in exactly one stream);
//! 4. each pair of matched events carries the same **set of header names**;
//! 5. each pair carries the same **values of the headers the controller reads** ([`READ`]),
//!    ids replaced by labels;
//! 6. **replies** (`api` bodies and `bgapi` job bodies) are equal in order, ids replaced by
//!    labels; JSON replies compared by shape (every key, recursively) plus the values of the
//!    fields the controller reads ([`JSON_READ`]).
//!
//! Rules 1–4 are those `tests/sim/conformance.rs` holds the simulator to against recorded
//! captures ([`Item`], [`key_diff`] and [`header_diff`] serve both).
//!
//! # Tolerances
//! Only what two runs of real FreeSWITCH differ in (calibrated by `real_against_real` in
//! `tests/live/differential/mod.rs`, on every scenario with `SWITCHYARD_DIFF_CALIBRATE=all`, and
//! by `cross_node_real_against_real` on two pairs of nodes):
//! - ids and times: uuids not labelled by the scenario become `<uuid>`, conference uuids
//!   `<conf1>`…, the Core-UUID `<core>`, `Job-UUID` `<job>`, `run_time`/`join_time`/
//!   `last_talking` of `json_list`, `Milliseconds-Elapsed` of stop-recording ([`normalize`]);
//! - where PRESENCE_IN falls among the conference events (before or after the floor-change of
//!   the same join) and where an originate's BACKGROUND_JOB falls (before or after the
//!   conference-create its channel fires): each is compared as a stream of its own;
//! - `variable_sip_cseq` and `variable_sip_to_tag` on the events around a SIP call's answer
//!   ([`RACY_HEADERS`]: mod_sofia sets them from the ACK in its own thread), and which of the
//!   events right after a transfer carry its `transfer_source` (the same list), and whether a
//!   bridged leg's CHANNEL_HANGUP_COMPLETE carries `bridge_hangup_cause` when the other side
//!   hung up first (the same list);
//! - the order of `show channels` rows (the core database ties channels created in the same
//!   second arbitrarily), and how many polls it takes to catch up with the events (the polls'
//!   `API` events are left out, `tests/common/channels_db.rs`);
//! - whether an `originate … &conference(…)`'s `API` event comes before or after the
//!   `conference-create` (or, into a room that exists, the `add-member`) its new leg fires: the
//!   command returns on one thread while the leg runs the conference application on its own
//!   (seen both ways on 1.11 in CI, `url_play`, and `dialout`'s dialed leg); both orders are
//!   compared as the former ([`settle_originate_race`]);
//! - HEARTBEAT and RE_SCHEDULE ([`IGNORED_EVENTS`]: timer-driven);
//! - on an outbound leg that is answered, whether its `CHANNEL_STATE CS_EXCHANGE_MEDIA` comes
//!   just before its `CHANNEL_ANSWER` (and `CHANNEL_CALLSTATE ACTIVE`) or just after them: the
//!   channel's own thread changes state while mod_sofia's answers it (seen both ways on 1.11 in
//!   `cross_node_bridge`'s out2, under CI load); both orders are compared as the latter
//!   ([`settle_answer_race`]);
//! - on an originated leg's `CHANNEL_ANSWER` and `CHANNEL_CALLSTATE ACTIVE` just before its
//!   `CALL_UPDATE`, whether `Caller-Caller-ID-Name`/`-Number` (and the callee's, and
//!   `Channel-HIT-Dialplan`) are still the origination's or already the flipped ones
//!   (`Outbound Call` and the destination): the leg's own thread flips them
//!   (`switch_channel_sort_cid` → `switch_channel_flip_cid`, which fires the CALL_UPDATE) while
//!   the answering thread fires those events (seen on 1.11 in CI, `dialout`'s ctl leg); those
//!   values are not compared there ([`settle_flip_race`]);
//! - where a channel's `CHANNEL_HANGUP` falls among the events its own thread fires once it sees
//!   the hangup (`CHANNEL_UNPARK`, the app's `CHANNEL_EXECUTE_COMPLETE`, `CHANNEL_STATE CS_HANGUP`,
//!   `CHANNEL_CALLSTATE HANGUP`), and the running state and call state it reports:
//!   `switch_channel_perform_hangup` sets the state to CS_HANGUP, which ends the channel's
//!   application at once, and only then fires CHANNEL_HANGUP on the hanging-up thread (seen on
//!   1.10.12 in CI, `bare_legs`' bare3 killed while parked: HANGUP after CALLSTATE HANGUP, and
//!   once even after CHANNEL_HANGUP_COMPLETE, which the channel's thread fires as it goes on
//!   through CS_HANGUP); both are compared with the hangup first ([`settle_hangup_race`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;
use switchyard::esl::{Event, HeaderValue};

use super::scenario::{Reply, Run};

/// Events that two real runs do not agree on at all: timer-driven (HEARTBEAT, RE_SCHEDULE) or
/// fired by FreeSWITCH's own housekeeping.
pub const IGNORED_EVENTS: &[&str] = &["HEARTBEAT", "RE_SCHEDULE"];

/// Header names that come and go between two real runs. The SIP stack sets `sip_cseq` and
/// `sip_to_tag` from the ACK of the answer, in its own thread, so the events around the answer
/// carry them or not. A transfer (`uuid_transfer`, an originate's blind transfer to its
/// extension) sets the new caller profile's `transfer_source` and the `transfer_source` /
/// `transfer_history` variables after it has signalled the channel, whose own thread fires its
/// next events (CS_ROUTING, CHANNEL_UNPARK, EXECUTE_COMPLETE park, EXECUTE conference)
/// meanwhile (`switch_ivr_session_transfer`; seen both ways on 1.11, under load). When the
/// originator of a bridge hangs up (a node-to-node bridge's caller killed on its node), the
/// originator's thread sets the peer's `bridge_hangup_cause` as it leaves
/// `switch_ivr_multi_threaded_bridge`, while the peer's own thread hangs it up: the peer's
/// CHANNEL_HANGUP_COMPLETE carries it or not (`cross_node_real_against_real`, about one run in
/// two; its CHANNEL_DESTROY always does). And an answered outbound leg of a bridge: when its own
/// thread reaches CS_EXCHANGE_MEDIA (and sets the `bridge_*` variables) before mod_sofia fires
/// its answer, its CHANNEL_ANSWER and CHANNEL_CALLSTATE ACTIVE carry them (see
/// [`settle_answer_race`]; seen on 1.11 in `cross_node_bridge`'s out2 under CI load).
pub const RACY_HEADERS: &[&str] = &[
    // mod_sofia sets `sip_recover_via` on an inbound leg only when a request of its dialog came
    // over TCP (`extract_header_vars`), and sofia-sip moves a request near the path's MTU from
    // UDP to TCP: a node-to-node leg carries it in some runs (seen on 1.10.12 in CI: one of two
    // real pairs, `cross_node_real_against_real`).
    "variable_sip_recover_via",
    "variable_sip_cseq",
    "variable_sip_to_tag",
    "Caller-Transfer-Source",
    "variable_transfer_source",
    "variable_transfer_history",
    "variable_bridge_hangup_cause",
    "variable_bridge_channel",
    "variable_bridge_to",
    "variable_bridge_uuid",
    "variable_last_bridge_to",
];

/// Headers FreeSWITCH 1.10 leaves out of an event where 1.11 (and the simulator, which follows
/// 1.11) sends them, none read by the controller (`fixtures/esl/11_versions.md`). When the
/// FreeSWITCH under test is a 1.10 they are not compared on those events; any other difference
/// still fails. `variable_sip_reason`: 1.11 also takes it from the Reason header of a refused
/// INVITE's answer (`sofia_handle_sip_r_invite`), 1.10 only from a BYE's.
pub const NOT_ON_1_10: &[(&str, &str)] = &[
    ("CHANNEL_HANGUP", "variable_sip_reason"),
    ("CHANNEL_HANGUP_COMPLETE", "variable_sip_reason"),
    ("CHANNEL_DESTROY", "variable_sip_reason"),
];

/// The headers the controller reads (src/conference/facts.rs, src/node): their values must
/// agree.
pub const READ: &[&str] = &[
    "Event-Name",
    "Event-Subclass",
    "Action",
    "Core-UUID",
    "Unique-ID",
    "Caller-Destination-Number",
    "Caller-Caller-ID-Number",
    "Caller-Caller-ID-Name",
    // Not read by the controller: the other half of the caller-ID flip, and the flag it sets.
    "Caller-Callee-ID-Number",
    "Caller-Callee-ID-Name",
    "Channel-HIT-Dialplan",
    "variable_switchyard_did",
    "variable_switchyard_app_id",
    "variable_switchyard_role",
    // The node-to-node leg's tag (`apply::node_leg`) and its copy `show channels` lists.
    "variable_sip_h_X-Switchyard-Session",
    "Channel-Presence-Data",
    "variable_switchyard_room",
    "Conference-Name",
    "Conference-Unique-ID",
    "Conference-Size",
    "Member-ID",
    "Speak",
    "Member-Type",
    "DTMF-Digit",
    "Hangup-Cause",
    "File",
    "switchyard_op",
    "Error",
    "Path",
    "Milliseconds-Elapsed",
    "Job-UUID",
    // Not read by the controller, but the state a channel event reports is part of its meaning.
    "Channel-State",
    "Channel-State-Number",
    "Channel-Call-State",
    "Answer-State",
    // The SIP refusal a failed originate or bridge reports on its caller (480, 404, 486…).
    "variable_sip_invite_failure_status",
];

/// Fields of `conference json_list` and `show channels as json` the controller reads.
pub const JSON_READ: &[&str] = &[
    "conference_name",
    "conference_uuid",
    "id",
    "uuid",
    "type",
    "can_speak",
    "is_moderator",
    "wait_mod",
    "cid_name",
    "cid_num",
    "dest",
    "initial_dest",
    "callstate",
    "row_count",
];

/// One event as the rule sees it.
#[derive(Debug, Clone)]
pub struct Item {
    /// `<Event-Name> [<subclass>] [<Action>] [<channel>]`.
    pub key: String,
    pub name: String,
    /// `None` for the global stream, else the channel's label.
    pub channel: Option<String>,
    pub headers: BTreeSet<String>,
    /// `(header, normalised value)` of the [`READ`] headers present.
    pub values: Vec<(String, String)>,
}

/// Replaces what legitimately differs between two runs in a text: ids not labelled, times.
pub fn normalize(text: &str) -> String {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (
                r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                "<uuid>",
            ),
            (r#""(run_time|join_time|last_talking)":\s*\d+"#, "\"$1\":N"),
        ]
        .into_iter()
        .map(|(re, with)| (Regex::new(re).unwrap(), with))
        .collect()
    });
    rules.iter().fold(text.to_owned(), |acc, (re, with)| {
        re.replace_all(&acc, *with).into_owned()
    })
}

/// Names for the ids a run did not label itself: conference uuids (`conf1`…) and the core.
fn auto_labels(run: &Run) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = run.labels().to_vec();
    let mut confs = 0;
    for e in run.events() {
        if let Some(core) = e.header("Core-UUID")
            && !labels.iter().any(|(i, _)| i == core.as_ref())
        {
            labels.push((core.into_owned(), "core".into()));
        }
        if let Some(c) = e.header("Conference-Unique-ID")
            && !labels.iter().any(|(i, _)| i == c.as_ref())
        {
            confs += 1;
            labels.push((c.into_owned(), format!("conf{confs}")));
        }
    }
    labels
}

fn relabel(labels: &[(String, String)], text: &str) -> String {
    let mut out = text.to_owned();
    for (id, label) in labels {
        if id.len() >= 8 {
            out = out.replace(id.as_str(), &format!("<{label}>"));
        }
    }
    normalize(&out)
}

/// A run's events as items.
pub fn items(run: &Run) -> Vec<Item> {
    let labels = auto_labels(run);
    let channel_label: HashMap<&str, &str> = labels
        .iter()
        .map(|(i, l)| (i.as_str(), l.as_str()))
        .collect();
    // CODEC events fired under a new channel's temporary uuid, before its CHANNEL_UUID, are the
    // channel's own.
    let renamed: HashMap<String, String> = run
        .events()
        .iter()
        .filter(|e| e.header("Event-Name").as_deref() == Some("CHANNEL_UUID"))
        .filter_map(|e| {
            Some((
                e.header("Old-Unique-ID")?.into_owned(),
                e.unique_id()?.into_owned(),
            ))
        })
        .collect();
    let mut unknown: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    let on_1_10 = super::freeswitch::is_1_10();
    for e in run.events() {
        let name = e.header("Event-Name").unwrap_or_default().into_owned();
        if IGNORED_EVENTS.contains(&name.as_str()) || probe(&e) {
            continue;
        }
        // Exactly `Unique-ID`: PRESENCE_IN's lowercase `unique-id` names the room.
        let uuid = e
            .headers()
            .find(|(n, _)| n == "Unique-ID")
            .map(|(_, u)| u.first().to_owned());
        let uuid = uuid.map(|u| renamed.get(&u).cloned().unwrap_or(u));
        let role = uuid.map(|u| match channel_label.get(u.as_str()) {
            Some(l) => (*l).to_owned(),
            None => {
                let n = unknown.len() + 1;
                unknown.entry(u).or_insert_with(|| format!("?{n}")).clone()
            }
        });
        let mut key = name.clone();
        if let Some(sub) = e.header("Event-Subclass") {
            key.push_str(&format!(" {sub}"));
        }
        if let Some(action) = e.header("Action") {
            key.push_str(&format!(" {action}"));
        }
        let detail = match name.as_str() {
            "CHANNEL_STATE" => e.header("Channel-State"),
            "CHANNEL_CALLSTATE" => e.header("Channel-Call-State"),
            "CHANNEL_EXECUTE" | "CHANNEL_EXECUTE_COMPLETE" => e.header("Application"),
            "API" => e.header("API-Command"),
            _ => None,
        };
        if let Some(detail) = detail {
            key.push_str(&format!(" {detail}"));
        }
        if let Some(role) = &role {
            key.push_str(&format!(" [{role}]"));
        }
        let global = matches!(name.as_str(), "CUSTOM" | "API") || role.is_none();
        let values = READ
            .iter()
            .filter_map(|h| {
                let v = e.header(h)?;
                let v = match *h {
                    "Milliseconds-Elapsed" => "N".to_owned(),
                    "Job-UUID" => "<job>".to_owned(),
                    _ => relabel(&labels, &v),
                };
                Some(((*h).to_owned(), v))
            })
            .collect();
        let channel = if matches!(name.as_str(), "PRESENCE_IN" | "BACKGROUND_JOB") {
            Some(name.clone())
        } else if global {
            None
        } else {
            role
        };
        // A header the event carries more than once is named with its count (`Name ×2`), and
        // one whose value is an array (`ARRAY::a|:b`) with its length (`Name [2]`).
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (n, v) in e.headers() {
            if RACY_HEADERS.contains(&n.as_ref())
                || (on_1_10 && NOT_ON_1_10.contains(&(name.as_str(), n.as_ref())))
            {
                continue;
            }
            let n = match v {
                HeaderValue::Many(items) => format!("{n} [{}]", items.len()),
                HeaderValue::One(_) => n.into_owned(),
            };
            *counts.entry(n).or_default() += 1;
        }
        let headers = counts
            .into_iter()
            .map(|(n, count)| match count {
                1 => n,
                _ => format!("{n} ×{count}"),
            })
            .collect();
        out.push(Item {
            key,
            name,
            channel,
            headers,
            values,
        });
    }
    out
}

/// `show channels` polls (see `Run::settled_channels`): how many a run needed differs.
fn probe(e: &Event) -> bool {
    e.header("Event-Name").as_deref() == Some("API")
        && e.header("API-Command").as_deref() == Some("show")
}

/// Aligned expected/got lines around the first difference of two key sequences.
pub fn key_diff(title: &str, expected: &[Item], got: &[Item]) -> Option<String> {
    let first = (0..expected.len().max(got.len()))
        .find(|&i| expected.get(i).map(|x| &x.key) != got.get(i).map(|x| &x.key))?;
    let mut out = format!(
        "--- {title}: first difference at #{first} (expected {} items, got {})\n",
        expected.len(),
        got.len()
    );
    let line = |v: Option<&Item>| v.map_or("<nothing>".to_owned(), |x| x.key.clone());
    // SWITCHYARD_DIFF_FULL=1 prints the whole streams.
    let span = if std::env::var_os("SWITCHYARD_DIFF_FULL").is_some() {
        0..expected.len().max(got.len())
    } else {
        first.saturating_sub(4)..(first + 10).min(expected.len().max(got.len()))
    };
    for i in span {
        let (e, g) = (line(expected.get(i)), line(got.get(i)));
        let mark = if e == g { "  " } else { ">>" };
        out.push_str(&format!("{mark} {i:>4}  {e:<60} | {g}\n"));
    }
    Some(out)
}

/// Header-name and read-value differences of two streams whose keys already match.
pub fn header_diff(title: &str, expected: &[Item], got: &[Item]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        if e.headers != g.headers {
            let missing: Vec<&String> = e.headers.difference(&g.headers).collect();
            let extra: Vec<&String> = g.headers.difference(&e.headers).collect();
            out.push(format!(
                "--- {title} #{i} {}: missing headers {missing:?}, unexpected headers {extra:?}",
                e.key
            ));
        }
        if e.values != g.values {
            let diffs: Vec<String> = READ
                .iter()
                .filter_map(|h| {
                    let find = |v: &[(String, String)]| {
                        v.iter().find(|(n, _)| n == h).map(|(_, x)| x.clone())
                    };
                    let (a, b) = (find(&e.values), find(&g.values));
                    (a != b).then(|| format!("{h}: {a:?} vs {b:?}"))
                })
                .collect();
            out.push(format!(
                "--- {title} #{i} {}: values differ: {}",
                e.key,
                diffs.join("; ")
            ));
        }
    }
    out
}

/// A JSON reply reduced to its shape and the values the controller reads.
fn json_shape(v: &Value, key: &str) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_shape(v, k)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| json_shape(v, key)).collect()),
        other if JSON_READ.contains(&key) => other.clone(),
        Value::String(_) => Value::String("<text>".into()),
        Value::Number(_) => Value::String("<number>".into()),
        other => other.clone(),
    }
}

fn reply_form(labels: &[(String, String)], r: &Reply) -> String {
    let text = relabel(labels, &r.text);
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(mut v @ (Value::Object(_) | Value::Array(_))) => {
            if let Some(rows) = v.get_mut("rows").and_then(Value::as_array_mut) {
                rows.sort_by_key(|r| r["uuid"].as_str().unwrap_or_default().to_owned());
            }
            serde_json::to_string_pretty(&json_shape(&v, "")).unwrap()
        }
        _ => text,
    }
}

/// Every difference between two runs of one scenario; empty when they are equal.
pub fn compare(expected: &Run, got: &Run) -> Vec<String> {
    let mut report = Vec::new();
    let (el, gl) = (auto_labels(expected), auto_labels(got));
    for (i, pair) in expected
        .replies
        .iter()
        .zip(&got.replies)
        .enumerate()
        .filter(|(_, (a, b))| reply_form(&el, a) != reply_form(&gl, b))
    {
        let (a, b) = pair;
        report.push(format!(
            "--- reply #{i} to `{}`:\n  {}: {:?}\n  {}: {:?}",
            a.command,
            expected.target.name(),
            reply_form(&el, a),
            got.target.name(),
            reply_form(&gl, b)
        ));
    }
    if expected.replies.len() != got.replies.len() {
        report.push(format!(
            "--- {} replies against {}",
            expected.replies.len(),
            got.replies.len()
        ));
    }
    let (ei, gi) = (items(expected), items(got));
    let global =
        |v: &[Item]| -> Vec<Item> { v.iter().filter(|i| i.channel.is_none()).cloned().collect() };
    let (eg, gg) = (
        settle_originate_race(global(&ei)),
        settle_originate_race(global(&gi)),
    );
    let title = "global stream (CUSTOM, API)";
    match key_diff(title, &eg, &gg) {
        Some(d) => report.push(d),
        None => report.extend(header_diff("global", &eg, &gg)),
    }
    let mut roles: Vec<String> = ei
        .iter()
        .chain(&gi)
        .filter_map(|i| i.channel.clone())
        .collect();
    roles.sort();
    roles.dedup();
    for role in roles {
        let stream = |v: &[Item]| -> Vec<Item> {
            v.iter()
                .filter(|i| i.channel.as_deref() == Some(&role))
                .cloned()
                .collect()
        };
        let (e, g) = (
            settle_hangup_race(settle_flip_race(settle_answer_race(stream(&ei)))),
            settle_hangup_race(settle_flip_race(settle_answer_race(stream(&gi)))),
        );
        let title = format!("channel {role}");
        match key_diff(&title, &e, &g) {
            Some(d) => report.push(d),
            None => report.extend(header_diff(&title, &e, &g)),
        }
    }
    report
}

/// The global stream with an `originate`'s `API` event that came just after the
/// `conference-create` or `add-member` its new leg fired moved to just before it: the order
/// FreeSWITCH usually gives (see the module's tolerances).
pub fn settle_originate_race(mut items: Vec<Item>) -> Vec<Item> {
    for i in 1..items.len() {
        let create = items[i - 1].name == "CUSTOM"
            && (items[i - 1].key.contains("conference-create")
                || items[i - 1].key.contains("add-member"));
        let originate = items[i].name == "API" && items[i].key.contains("originate");
        if create && originate {
            items.swap(i - 1, i);
        }
    }
    items
}

/// One channel's stream with a `CS_EXCHANGE_MEDIA` state change that came just before the
/// channel's answer moved to just after it (after its `CHANNEL_CALLSTATE ACTIVE` too, when that
/// follows the answer): the order the two threads usually give (see the module's tolerances).
pub fn settle_answer_race(mut items: Vec<Item>) -> Vec<Item> {
    let mut i = 0;
    while i + 1 < items.len() {
        let exchange =
            items[i].name == "CHANNEL_STATE" && items[i].key.contains("CS_EXCHANGE_MEDIA");
        if exchange && items[i + 1].name == "CHANNEL_ANSWER" {
            let moved = items.remove(i);
            let mut at = i + 1;
            if items
                .get(at)
                .is_some_and(|n| n.name == "CHANNEL_CALLSTATE" && n.key.contains("ACTIVE"))
            {
                at += 1;
            }
            items.insert(at, moved);
            i = at + 1;
            continue;
        }
        i += 1;
    }
    items
}

/// One channel's stream without the caller-ID values (caller, callee, the dialplan flag) of the
/// `CHANNEL_ANSWER` and `CHANNEL_CALLSTATE` events right before a `CALL_UPDATE`: the flip that
/// the CALL_UPDATE announces races them (see the module's tolerances).
pub fn settle_flip_race(mut items: Vec<Item>) -> Vec<Item> {
    const FLIPPED: [&str; 5] = [
        "Caller-Caller-ID-Name",
        "Caller-Caller-ID-Number",
        "Caller-Callee-ID-Name",
        "Caller-Callee-ID-Number",
        "Channel-HIT-Dialplan",
    ];
    for update in 0..items.len() {
        if items[update].name != "CALL_UPDATE" {
            continue;
        }
        for before in items[..update].iter_mut().rev() {
            if !matches!(before.name.as_str(), "CHANNEL_ANSWER" | "CHANNEL_CALLSTATE") {
                break;
            }
            before
                .values
                .retain(|(h, _)| !FLIPPED.contains(&h.as_str()));
        }
    }
    items
}

/// One channel's stream with its `CHANNEL_HANGUP` moved back before the events the channel's own
/// thread fires once it sees the hangup (`CHANNEL_UNPARK`, `CHANNEL_EXECUTE_COMPLETE`,
/// `CHANNEL_STATE CS_HANGUP` and `CS_REPORTING`, `CHANNEL_CALLSTATE HANGUP`,
/// `CHANNEL_HANGUP_COMPLETE`), and without the running state and call state that hangup
/// reports: the thread that hangs the channel up fires it (see the module's tolerances).
pub fn settle_hangup_race(mut items: Vec<Item>) -> Vec<Item> {
    let after_hangup = |i: &Item| match i.name.as_str() {
        "CHANNEL_UNPARK" | "CHANNEL_EXECUTE_COMPLETE" | "CHANNEL_HANGUP_COMPLETE" => true,
        "CHANNEL_STATE" => i.key.contains("CS_HANGUP") || i.key.contains("CS_REPORTING"),
        "CHANNEL_CALLSTATE" => i.key.contains("HANGUP"),
        _ => false,
    };
    for at in 0..items.len() {
        if items[at].name != "CHANNEL_HANGUP" {
            continue;
        }
        items[at]
            .values
            .retain(|(h, _)| h != "Channel-State" && h != "Channel-Call-State");
        let mut to = at;
        while to > 0 && after_hangup(&items[to - 1]) {
            to -= 1;
        }
        let hangup = items.remove(at);
        items.insert(to, hangup);
    }
    items
}

/// Writes a run (its replies, then its events with every header, ids labelled) to
/// `$SWITCHYARD_DIFF_DUMP/<name>.txt` when that variable is set, to read a difference in full.
pub fn dump(run: &Run, name: &str) {
    let Some(dir) = std::env::var_os("SWITCHYARD_DIFF_DUMP") else {
        return;
    };
    let labels = auto_labels(run);
    let mut out = String::new();
    for r in &run.replies {
        out.push_str(&format!("> {}\n{}\n", r.command, relabel(&labels, &r.text)));
    }
    for e in run.events() {
        out.push('\n');
        for (n, v) in e.headers() {
            let v = match v {
                HeaderValue::One(v) => v,
                HeaderValue::Many(items) => format!("ARRAY::{}", items.join("|:")),
            };
            let v = relabel(&labels, &v).replace('\n', "\\n");
            out.push_str(&format!("{n}: {v}\n"));
        }
        if let Some(body) = e.body() {
            out.push_str(&format!("[body] {}\n", relabel(&labels, &body)));
        }
    }
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.txt")), out).unwrap();
}
