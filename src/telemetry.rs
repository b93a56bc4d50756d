//! Prometheus metrics: every metric name, label and bucket in one place, the functions the layers
//! call at their hook points, and the process's recorder that `GET /metrics` renders.
//!
//! Metrics go through the `metrics` facade to one process-wide Prometheus recorder, installed
//! the first time anything is recorded or rendered (idempotent, so tests that start many
//! servers in one process share it). A process that installed another `metrics` recorder first
//! keeps it: ours then renders nothing.
//!
//! Label values are bounded vocabularies or configured names (route templates, node prefixes,
//! application ids): never a raw path, an id from a request, a secret or other caller text.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::esl::{ConferenceAction, Event, EventName};

/// API requests, by `route` (the route template, `unmatched` for unknown paths), `method` and
/// `status`.
pub const HTTP_REQUESTS: &str = "switchyard_http_requests_total";
/// API latency (until the response headers), same labels.
pub const HTTP_DURATION: &str = "switchyard_http_request_duration_seconds";
/// `api`/`bgapi` commands sent to a node, by `node` and `result` (see [`EslResult`]).
pub const ESL_COMMANDS: &str = "switchyard_esl_commands_total";
/// Command latency by `node` (a `bgapi` until its job finished).
pub const ESL_COMMAND_DURATION: &str = "switchyard_esl_command_duration_seconds";
/// Events received from a node's event connection, by `node` and `event` (see [`event_label`]).
pub const ESL_EVENTS: &str = "switchyard_esl_events_total";
/// 1 while the node is connected and resynced, else 0; by `node`.
pub const NODE_CONNECTED: &str = "switchyard_node_connected";
pub const NODE_OWNED: &str = "switchyard_node_events_applied_here";
/// 1 while the node is drained (no new rooms or dial-outs), else 0; by `node`.
pub const NODE_DRAINING: &str = "switchyard_node_draining";
/// 1 while the node is hung as this instance's probe finds it (connected, a probe unanswered
/// past its deadline: its commands are refused), else 0; by `node`.
pub const NODE_HUNG: &str = "switchyard_node_hung";
/// Times this instance's probe found the node hung; by `node`.
pub const NODE_HANGS: &str = "switchyard_node_hangs_total";
/// From an event's `Event-Date-Timestamp` (the node's clock) to its effect being stored; by `node`.
/// FreeSWITCH's timestamp advances only on its 20 ms timer tick, so this reads up to 20 ms
/// high; [`EVENT_TO_OUTBOX`] times from receipt instead.
pub const RECONCILER_LAG: &str = "switchyard_reconciler_lag_seconds";
/// Events from a node applied to the stored state (whether or not they changed it); by `node`.
pub const EVENTS_APPLIED: &str = "switchyard_events_applied_total";
/// From a batch of events taken off a node's connection to its room writes (and their outbox
/// entries, in the same atomic step) stored; by `node`.
pub const EVENT_TO_OUTBOX: &str = "switchyard_event_to_outbox_seconds";
/// Resync writes refused because the room had moved on since the snapshot was asked for (a
/// snapshot never takes a room back); by `node`.
pub const RESYNC_STALE: &str = "switchyard_resync_stale_writes_total";
/// Room writes refused by their fencing token: the room was written under a later lease of the
/// node than the one this instance acted on (it lost the lease, paused); by `node`.
pub const FENCED_WRITES: &str = "switchyard_fenced_writes_total";
/// Effects of applying a node's events not sent to the node: the lease they were decided on
/// lapsed, or a later holder wrote, before they were sent; by `node`.
pub const FENCED_EFFECTS: &str = "switchyard_fenced_effects_total";
/// Live audio streams this instance carries (their sockets and relays).
pub const STREAMS_CARRIED: &str = "switchyard_streams_carried";
/// Streams this instance carried that ended; by `status` (`stopped`, `failed`) and `reason`.
pub const STREAMS_ENDED: &str = "switchyard_streams_ended_total";
pub const STREAM_FRAME_HELD: &str = "switchyard_stream_frame_held_seconds";
/// Acts on a node's lease not taken because the lease had lapsed by this process's clock (it
/// was paused or starved past it); by `node`.
pub const LEASE_LAPSES: &str = "switchyard_node_lease_lapses_total";
/// A resync of a node: from asking the store what it holds, through the node's snapshot, to the
/// store agreeing with it; by `node`.
pub const RESYNC_DURATION: &str = "switchyard_node_resync_seconds";
/// Events a node's new owner replayed from what it kept on standby; by `node`.
pub const HANDOVER_REPLAYED: &str = "switchyard_handover_replayed_events_total";
/// Takeovers of a node whose kept events did not reach back to where its previous owner
/// stopped (changes made and undone in the gap go unannounced); by `node`.
pub const HANDOVER_GAPS: &str = "switchyard_handover_gaps_total";
/// How many replicas acknowledged the store's latest replication check (`WAIT`): below the
/// configured `redis_replicas`, webhooks wait (see `store/redis/replicated.rs`).
pub const STORE_REPLICAS: &str = "switchyard_store_replicas_acknowledging";
/// Conferences removed because the store no longer had their rooms (their callers parked,
/// their control legs hung up); by `node`.
pub const ORPHANS_REMOVED: &str = "switchyard_orphan_conferences_removed_total";
/// Store failovers after which a node's owner applied again the events the store may have lost
/// (all it kept since the replicas last confirmed its position); by `node`.
pub const STORE_REWINDS: &str = "switchyard_store_failover_rewinds_total";
/// Webhook attempts, by `app` and `outcome`: `delivered`, `retry` (failed, will be tried again),
/// `dead_letter` (failed, given up).
pub const WEBHOOK_DELIVERIES: &str = "switchyard_webhook_deliveries_total";
/// One webhook HTTP attempt, by `app`.
pub const WEBHOOK_ATTEMPT_DURATION: &str = "switchyard_webhook_attempt_duration_seconds";
/// From the domain event to its delivery (outbox wait and retries included), by `app`.
pub const WEBHOOK_DELIVERY_LAG: &str = "switchyard_webhook_delivery_lag_seconds";

/// The configuration in force: 1 for the file read at start, one more per reload applied.
pub const CONFIG_GENERATION: &str = "switchyard_config_generation";
/// When the configuration in force was loaded (Unix seconds).
pub const CONFIG_LOADED: &str = "switchyard_config_loaded_timestamp_seconds";
/// Reloads asked for (SIGHUP), by `result`: `applied` or `refused` (the old one stays).
pub const CONFIG_RELOADS: &str = "switchyard_config_reloads_total";
/// Counter: what the edge turned away (connections past a bound, requests past a share,
/// bodies too slow, wrong keys throttled), by `reason`.
pub const EDGE_REFUSALS: &str = "switchyard_edge_refusals_total";
/// Counter: member commands sent on to the instance that applies their node
/// (`api/forward.rs`), by `outcome`: `answered`, `served_here` (its instance not reached),
/// `lost` (sent, no answer in time: 503); and on the owner, `too_late` (sent on too long
/// ago to begin: 503).
pub const COMMANDS_FORWARDED: &str = "switchyard_commands_forwarded_total";

const FAST: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const LAG: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const WEBHOOK: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// A stream's frame in the relay: microseconds one way, up to a 20 ms tick (and a queue) the other.
const FRAME_HELD: &[f64] = &[
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.06, 0.1,
    0.2, 0.5,
];
const DELIVERY_LAG: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0, 36000.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle; installs the recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(install)
}

/// The Prometheus text exposition of every metric of this process.
pub fn render() -> String {
    let mut text = handle().render();
    // The heap's live bytes, where the build counts them (`heap-count`, for the soak).
    if let Some(bytes) = crate::heap::live_bytes() {
        text.push_str(&format!(
            "# HELP switchyard_heap_live_bytes Bytes allocated and not yet freed.\n\
             # TYPE switchyard_heap_live_bytes gauge\nswitchyard_heap_live_bytes {bytes}\n"
        ));
    }
    text
}

fn install() -> PrometheusHandle {
    let builder = [
        (HTTP_DURATION, FAST),
        (ESL_COMMAND_DURATION, FAST),
        (RECONCILER_LAG, LAG),
        (EVENT_TO_OUTBOX, LAG),
        (RESYNC_DURATION, LAG),
        (WEBHOOK_ATTEMPT_DURATION, WEBHOOK),
        (WEBHOOK_DELIVERY_LAG, DELIVERY_LAG),
        (STREAM_FRAME_HELD, FRAME_HELD),
    ]
    .into_iter()
    .try_fold(PrometheusBuilder::new(), |b, (name, buckets)| {
        b.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
    });
    // The buckets are constants and never empty.
    let recorder = builder
        .unwrap_or_else(|_| PrometheusBuilder::new())
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("another metrics recorder is installed; GET /metrics will be empty");
    }
    describe();
    // Histogram samples wait in the recorder until drained: bound them when nobody scrapes.
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
    }
    handle
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "API requests by route template, method and status"
    );
    describe_histogram!(HTTP_DURATION, metrics::Unit::Seconds, "API request latency");
    describe_counter!(
        ESL_COMMANDS,
        "ESL api/bgapi commands sent to a node, by result"
    );
    describe_histogram!(
        ESL_COMMAND_DURATION,
        metrics::Unit::Seconds,
        "ESL command latency"
    );
    describe_counter!(ESL_EVENTS, "ESL events received from a node");
    describe_gauge!(NODE_CONNECTED, "1 while the node is connected and resynced");
    describe_gauge!(
        NODE_OWNED,
        "1 while this controller instance applies the node's events (holds its fleet lease)"
    );
    describe_gauge!(
        NODE_DRAINING,
        "1 while the node is drained by the operator: no new rooms or dial-outs"
    );
    describe_gauge!(
        NODE_HUNG,
        "1 while the node leaves a probe unanswered past its deadline (hung): its commands are refused"
    );
    describe_counter!(
        NODE_HANGS,
        "Times the node was found hung by this instance's probe"
    );
    describe_histogram!(
        RECONCILER_LAG,
        metrics::Unit::Seconds,
        "From an event's Event-Date-Timestamp to its effect stored (FreeSWITCH stamps events on its 20 ms timer tick: up to 20 ms high)"
    );
    describe_counter!(
        EVENTS_APPLIED,
        "Events from a node applied to the stored state"
    );
    describe_histogram!(
        EVENT_TO_OUTBOX,
        metrics::Unit::Seconds,
        "From a batch of events taken off the node's connection to its room writes and outbox entries stored"
    );
    describe_histogram!(
        RESYNC_DURATION,
        metrics::Unit::Seconds,
        "A node's resync: the store read, the node's snapshot, the store made to agree with it"
    );
    describe_counter!(
        RESYNC_STALE,
        "Resync writes refused: the room moved on after the snapshot was asked for"
    );
    describe_counter!(
        FENCED_WRITES,
        "Room writes refused: the room was written under a later lease of the node (this instance lost its lease)"
    );
    describe_counter!(
        FENCED_EFFECTS,
        "Effects of applying a node's events not sent: the lease they were decided on no longer held"
    );
    describe_gauge!(STREAMS_CARRIED, "Live audio streams this instance carries");
    describe_counter!(
        STREAMS_ENDED,
        "Streams this instance carried that ended, by status and reason"
    );
    describe_histogram!(
        STREAM_FRAME_HELD,
        metrics::Unit::Seconds,
        "How long a stream's audio waited in this instance: from the node's datagram to the \
         server's socket (to_server), or from the server's message to the datagram that \
         carries its first sample to the node (to_node: the pacing tick and the queue)"
    );
    describe_counter!(
        LEASE_LAPSES,
        "A node's lease found lapsed by this process's clock before acting on it (a pause past it)"
    );
    describe_counter!(
        HANDOVER_REPLAYED,
        "Events a node's new owner replayed from those it kept on standby"
    );
    describe_counter!(
        HANDOVER_GAPS,
        "Takeovers of a node whose kept events did not reach back to its previous owner's position"
    );
    describe_gauge!(
        STORE_REPLICAS,
        "Replicas that acknowledged the store's latest replication check (WAIT)"
    );
    describe_counter!(
        ORPHANS_REMOVED,
        "Conferences removed because the store no longer had their rooms"
    );
    describe_counter!(
        STORE_REWINDS,
        "Store failovers after which a node's owner applied again what the store may have lost"
    );
    describe_gauge!(
        CONFIG_GENERATION,
        "The configuration in force: 1 at start, one more per reload applied"
    );
    describe_gauge!(
        CONFIG_LOADED,
        "When the configuration in force was loaded (Unix seconds)"
    );
    describe_counter!(CONFIG_RELOADS, "Configuration reloads asked for, by result");
    describe_counter!(
        EDGE_REFUSALS,
        "Connections and requests the API's edge turned away, by reason"
    );
    describe_counter!(
        COMMANDS_FORWARDED,
        "Member commands sent on to the instance that applies their node, by outcome"
    );
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook attempts by outcome");
    describe_histogram!(
        WEBHOOK_ATTEMPT_DURATION,
        metrics::Unit::Seconds,
        "One webhook HTTP attempt"
    );
    describe_histogram!(
        WEBHOOK_DELIVERY_LAG,
        metrics::Unit::Seconds,
        "From the domain event to its webhook delivered"
    );
}

/// A method label: the standard methods, `other` for anything else a caller sends.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// One API request; `route` is the matched route template (`None`: no route matched).
pub fn http_request(route: Option<&str>, method: &Method, status: u16, took: Duration) {
    handle();
    let route = route.unwrap_or("unmatched").to_owned();
    let method = method_label(method);
    let status = status.to_string();
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status.clone())
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route, "method" => method, "status" => status)
        .record(took.as_secs_f64());
}

/// How an ESL command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EslResult {
    /// Answered, not with an error.
    Ok,
    /// FreeSWITCH answered `-ERR …` / `-USAGE …`.
    Error,
    /// No answer in time.
    Timeout,
    /// The connection was gone or broke.
    Disconnected,
    /// Anything else (a protocol violation).
    Failed,
}

impl EslResult {
    pub fn as_str(self) -> &'static str {
        match self {
            EslResult::Ok => "ok",
            EslResult::Error => "error",
            EslResult::Timeout => "timeout",
            EslResult::Disconnected => "disconnected",
            EslResult::Failed => "failed",
        }
    }
}

/// One `api` or `bgapi` command on a node's connection.
pub fn esl_command(node: &str, result: EslResult, took: Duration) {
    handle();
    counter!(ESL_COMMANDS, "node" => node.to_owned(), "result" => result.as_str()).increment(1);
    histogram!(ESL_COMMAND_DURATION, "node" => node.to_owned()).record(took.as_secs_f64());
}

/// The `event` label: the `Action` of a `conference::maintenance` event (`add-member`…), else the
/// `Event-Name`; words this build does not know are `other`, so the label set stays bounded.
pub fn event_label(event: &Event) -> String {
    let known = |s: &str, other: bool| {
        if other {
            "other".to_owned()
        } else {
            s.to_owned()
        }
    };
    match event.name() {
        EventName::Custom if event.is_conference() => match event.action() {
            Some(action) => known(
                action.as_str(),
                matches!(action, ConferenceAction::Other(_)),
            ),
            None => "other".to_owned(),
        },
        name => known(name.as_str(), matches!(name, EventName::Other(_))),
    }
}

/// One event from a node's event connection.
pub fn esl_event(node: &str, event: &Event) {
    handle();
    counter!(ESL_EVENTS, "node" => node.to_owned(), "event" => event_label(event)).increment(1);
}

/// The node's link went up (connected and resynced) or down.
pub fn node_connected(node: &str, up: bool) {
    handle();
    gauge!(NODE_CONNECTED, "node" => node.to_owned()).set(if up { 1.0 } else { 0.0 });
}

/// Whether the node is hung (its probe unanswered past the deadline), as this instance finds;
/// each time it becomes hung is counted.
pub fn node_hung(node: &str, hung: bool) {
    handle();
    gauge!(NODE_HUNG, "node" => node.to_owned()).set(if hung { 1.0 } else { 0.0 });
    if hung {
        counter!(NODE_HANGS, "node" => node.to_owned()).increment(1);
    }
}

/// Whether the node is drained (as the store says; every instance reports it).
pub fn node_draining(node: &str, draining: bool) {
    handle();
    gauge!(NODE_DRAINING, "node" => node.to_owned()).set(if draining { 1.0 } else { 0.0 });
}

/// Whether this instance applies the node's events (a fleet of controllers shares the nodes).
pub fn node_owned(node: &str, owned: bool) {
    handle();
    gauge!(NODE_OWNED, "node" => node.to_owned()).set(if owned { 1.0 } else { 0.0 });
}

/// `n` events of a node applied and stored, `took` after the first was taken off the connection.
pub fn events_applied(node: &str, n: usize, took: Duration) {
    handle();
    counter!(EVENTS_APPLIED, "node" => node.to_owned()).increment(n as u64);
    histogram!(EVENT_TO_OUTBOX, "node" => node.to_owned()).record(took.as_secs_f64());
}

/// A resync of the node done, `took` after it began.
pub fn resync_done(node: &str, took: Duration) {
    handle();
    histogram!(RESYNC_DURATION, "node" => node.to_owned()).record(took.as_secs_f64());
}

/// A resync write refused as stale.
pub fn resync_stale(node: &str) {
    handle();
    counter!(RESYNC_STALE, "node" => node.to_owned()).increment(1);
}

/// A room write refused by its fencing token.
pub fn fenced_write(node: &str) {
    handle();
    counter!(FENCED_WRITES, "node" => node.to_owned()).increment(1);
}

/// An effect not sent to the node: the lease it was decided on no longer held.
pub fn effect_fenced(node: &str) {
    handle();
    counter!(FENCED_EFFECTS, "node" => node.to_owned()).increment(1);
}

/// How many streams this instance carries now.
pub fn streams_carried(n: usize) {
    handle();
    gauge!(STREAMS_CARRIED).set(n as f64);
}

/// Tells how long a stream's frames waited in its relay, one way or the other: the histogram's
/// two series are looked up once, here, not at every frame.
pub fn stream_frame_held()
-> impl Fn(crate::streams::relay::Direction, std::time::Duration) + Send + Sync {
    handle();
    let to_server = histogram!(STREAM_FRAME_HELD, "direction" => "to_server");
    let to_node = histogram!(STREAM_FRAME_HELD, "direction" => "to_node");
    move |direction, took| {
        let series = match direction {
            crate::streams::relay::Direction::ToServer => &to_server,
            crate::streams::relay::Direction::ToNode => &to_node,
        };
        series.record(took.as_secs_f64());
    }
}

/// A stream this instance carried ended.
pub fn stream_ended(status: &str, reason: &str) {
    handle();
    counter!(STREAMS_ENDED, "status" => status.to_owned(), "reason" => reason.to_owned())
        .increment(1);
}

/// A node's lease found lapsed before acting on it.
pub fn lease_lapsed(node: &str) {
    handle();
    counter!(LEASE_LAPSES, "node" => node.to_owned()).increment(1);
}

/// A node taken over, `n` kept events replayed.
pub fn handover_replayed(node: &str, n: usize) {
    handle();
    counter!(HANDOVER_REPLAYED, "node" => node.to_owned()).increment(n as u64);
}

/// A node taken over with a gap in the events kept.
pub fn handover_gap(node: &str) {
    handle();
    counter!(HANDOVER_GAPS, "node" => node.to_owned()).increment(1);
}

/// A configuration put in force (generation `generation`, loaded at `loaded_unix` seconds).
pub fn config_loaded(generation: u64, loaded_unix: f64) {
    handle();
    gauge!(CONFIG_GENERATION).set(generation as f64);
    gauge!(CONFIG_LOADED).set(loaded_unix);
}

/// A reload asked for: applied, or refused (the configuration in force stays).
pub fn config_reload(applied: bool) {
    handle();
    let result = if applied { "applied" } else { "refused" };
    counter!(CONFIG_RELOADS, "result" => result).increment(1);
}

/// A connection turned away at accept: past the bound of its `client` address or of the
/// `instance`.
pub fn connection_refused(bound: &'static str) {
    edge_refused(if bound == "client" {
        "connections_per_client"
    } else {
        "max_connections"
    });
}

/// Something the edge turned away, by `reason` (a fixed vocabulary, never a tenant's name).
pub fn edge_refused(reason: &'static str) {
    handle();
    counter!(EDGE_REFUSALS, "reason" => reason).increment(1);
}

/// A member command sent on to its node's instance, by `outcome` (see
/// [`COMMANDS_FORWARDED`]).
pub fn command_forwarded(outcome: &'static str) {
    handle();
    counter!(COMMANDS_FORWARDED, "outcome" => outcome).increment(1);
}

/// The replicas that acknowledged the latest replication check.
pub fn store_replicas(n: i64) {
    handle();
    gauge!(STORE_REPLICAS).set(n as f64);
}

/// A conference removed because the store no longer had its room.
pub fn orphan_removed(node: &str) {
    handle();
    counter!(ORPHANS_REMOVED, "node" => node.to_owned()).increment(1);
}

/// A node's events applied again after a store failover.
pub fn store_rewind(node: &str) {
    handle();
    counter!(STORE_REWINDS, "node" => node.to_owned()).increment(1);
}

/// An event's `Event-Date-Timestamp` (microseconds since the Unix epoch), if it has one.
pub fn event_timestamp(event: &Event) -> Option<i64> {
    event.header("Event-Date-Timestamp")?.trim().parse().ok()
}

/// Events (by their timestamps) whose effects were just stored. A node clock ahead of ours
/// counts as no lag.
pub fn reconciler_lag(node: &str, stamps: &[i64]) {
    if stamps.is_empty() {
        return;
    }
    handle();
    let now = unix_micros();
    let lag = histogram!(RECONCILER_LAG, "node" => node.to_owned());
    for stamp in stamps {
        lag.record(seconds_since(*stamp, now));
    }
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Seconds from `then` to `now` (both microseconds), never negative.
fn seconds_since(then: i64, now: i64) -> f64 {
    now.saturating_sub(then).max(0) as f64 / 1e6
}

/// What one webhook attempt came to (as the delivery log and its `outcome` filter name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    Delivered,
    Retry,
    DeadLetter,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Delivered => "delivered",
            WebhookOutcome::Retry => "retry",
            WebhookOutcome::DeadLetter => "dead_letter",
        }
    }
}

/// One webhook attempt of `app`. `event_at` (microseconds since the Unix epoch) is when the
/// domain event happened; a delivery records how long it took to arrive.
pub fn webhook_attempt(app: &str, outcome: WebhookOutcome, took: Duration, event_at: i64) {
    handle();
    counter!(WEBHOOK_DELIVERIES, "app" => app.to_owned(), "outcome" => outcome.as_str())
        .increment(1);
    histogram!(WEBHOOK_ATTEMPT_DURATION, "app" => app.to_owned()).record(took.as_secs_f64());
    if outcome == WebhookOutcome::Delivered {
        histogram!(WEBHOOK_DELIVERY_LAG, "app" => app.to_owned())
            .record(seconds_since(event_at, unix_micros()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn event(text: &str) -> Event {
        Event::parse_plain(Bytes::from(text.to_owned())).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn event_labels_are_bounded() {
        let add = event(
            "Event-Name: CUSTOM\nEvent-Subclass: conference%3A%3Amaintenance\nAction: add-member\n\n",
        );
        assert_eq!(event_label(&add), "add-member");
        let odd = event(
            "Event-Name: CUSTOM\nEvent-Subclass: conference%3A%3Amaintenance\nAction: caller-text-123\n\n",
        );
        assert_eq!(event_label(&odd), "other");
        assert_eq!(
            event_label(&event("Event-Name: HEARTBEAT\n\n")),
            "HEARTBEAT"
        );
        assert_eq!(
            event_label(&event("Event-Name: SOMETHING_NEW\n\n")),
            "other"
        );
        let custom = event("Event-Name: CUSTOM\nEvent-Subclass: sofia%3A%3Aregister\n\n");
        assert_eq!(event_label(&custom), "CUSTOM");
    }

    #[test]
    fn unknown_methods_and_paths_never_become_labels() {
        let method = Method::from_bytes(b"BREW").unwrap_or(Method::GET);
        assert_eq!(method_label(&method), "other");
        http_request(None, &method, 404, Duration::from_millis(1));
        let text = render();
        assert!(
            text.lines().any(|l| l.starts_with(HTTP_REQUESTS)
                && l.contains(r#"route="unmatched""#)
                && l.contains(r#"method="other""#)),
            "{text}"
        );
    }

    #[test]
    fn event_timestamps_are_read_and_lag_never_negative() {
        let e = event("Event-Name: HEARTBEAT\nEvent-Date-Timestamp: 1778070896000000\n\n");
        assert_eq!(event_timestamp(&e), Some(1_778_070_896_000_000));
        assert_eq!(event_timestamp(&event("Event-Name: HEARTBEAT\n\n")), None);
        // A node clock 10 s ahead of ours.
        reconciler_lag("tst01", &[unix_micros() + 10_000_000]);
        let text = render();
        assert!(
            text.lines().any(|l| l.starts_with(RECONCILER_LAG)
                && l.contains(r#"node="tst01""#)
                && l.contains(r#"le="0.001""#)
                && l.ends_with(" 1")),
            "{text}"
        );
    }
}
