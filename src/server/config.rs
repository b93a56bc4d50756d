//! `switchyard.toml`: listen address, Redis, media nodes, applications and limits. Environment
//! variables override file values (`SWITCHYARD_LISTEN`, `SWITCHYARD_REDIS_URL`,
//! `SWITCHYARD_CURSOR_SECRET`, `SWITCHYARD_GLOBAL_RPS`, `SWITCHYARD_NODE_<NAME>_PASSWORD`,
//! `SWITCHYARD_APP_<ID>_KEY_SHA256`, `SWITCHYARD_APP_<ID>_WEBHOOK_SECRET`; names upper-cased,
//! `-` as `_`). `switchyard.example.toml` documents every field.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::api::{ApiOptions, AppKeys};
use crate::conference::{AppId, NodePrefix};
use crate::node::{AppDirectory, NodeConfig, dial_policy};
use crate::rooms::Cooldowns;
use crate::server::logging::LogFormat;
use crate::store::bell::Waits;
use crate::webhook::DispatcherConfig;
use crate::webhook::deliver::RetrySchedule;
use crate::webhook::sign::Signer;

mod parse_error;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not TOML, or not the shape of a configuration: where, and what was wrong, never the
    /// text there (the line may hold a password or a key; see `parse_error`).
    #[error("invalid configuration: line {line}, column {column}: {message}")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// At most this many shards per app: each listing reads every shard.
pub const MAX_REDIS_SHARDS: usize = 64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where `GET /metrics` is served alone, with no key, on a listener of its own: an address
    /// only the scraper reaches (the exposition names every app). The API's port then answers
    /// 404 there. None (the default): `/metrics` is on the API's port and takes the operator's
    /// key (`admin_key_sha256`), since the API's port is reached by the apps.
    pub metrics_listen: Option<SocketAddr>,
    /// `None`: the memory store (state is lost on restart; for trials only).
    pub redis_url: Option<String>,
    /// Signs pagination cursors; default: a random secret per process.
    pub cursor_secret: Option<String>,
    /// How long an ended room (with its conferencecalls and recordings) stays readable, in
    /// seconds (Redis store); default 7 days.
    pub room_retention_secs: Option<u64>,
    /// How long an ended session (a hung-up call) stays readable, in seconds (Redis store);
    /// default 3600.
    pub session_retention_secs: Option<u64>,
    /// How many rooms each controller keeps in memory under Redis's invalidation (client-side
    /// caching); 0 turns it off. Default 16,384.
    pub room_cache: Option<usize>,
    /// How many shards (hash tags) each app's rooms, sessions and outbox spread over in Redis
    /// (see `store/keys.rs`): on a Redis Cluster, one app then uses that many slots (each in
    /// another master when it equals the masters, or a multiple of them). Default 1, the layout
    /// of a single Redis. Part of the data's layout: change it only with no live rooms.
    pub redis_shards: Option<usize>,
    /// How many replicas must have an outbox entry before its webhook is sent, and a node's
    /// applied position before another instance trusts it (Redis `WAIT`): what a failover to
    /// a replica that has them cannot lose. Default 1 with a Sentinel set (`redis+sentinel://`),
    /// 0 otherwise; 0 waits for nothing. While fewer replicas answer, webhooks wait.
    pub redis_replicas: Option<usize>,
    /// How long events stay in each app's outbox (the event feed's window), in seconds;
    /// default 24 hours. Events a webhook dispatcher has not settled are kept regardless.
    pub event_retention_secs: Option<u64>,
    /// Controller instances on one store share the nodes: each node's events are applied by
    /// the instance holding its lease, which lasts this long unless renewed (every third of
    /// it); a killed instance's nodes go to the others after it. Default 5000 ms.
    pub node_lease_ms: Option<u64>,
    /// The URL the other controller instances reach this one's API at (`http://10.0.0.5:8080`):
    /// a member command taken by an instance that does not apply the call's node is sent on
    /// to the one that does (`api/forward.rs`), which writes it with the node's confirmation.
    /// Default: `http://` and `listen`, unless it listens on every address (`0.0.0.0`, `::`);
    /// `""`: none (this instance's nodes' commands are carried out by whichever takes them).
    pub advertise_url: Option<String>,
    /// The operator's key, as hex SHA-256 (`switchyard hash-key`): the dashboard's operator
    /// view across apps (`X-Admin-Key`). A list during a rotation, each valid until removed.
    /// None: no operator view.
    pub admin_key_sha256: Option<OneOrMore>,
    #[serde(default)]
    pub limits: Limits,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub apps: Vec<App>,
    #[serde(default)]
    pub webhooks: Webhooks,
    #[serde(default)]
    pub outbox: Outbox,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub recordings: Recordings,
    #[serde(default)]
    pub playback: Playback,
    #[serde(default)]
    pub streams: Streams,
    /// Every app's quotas unless its own `quotas` say otherwise (see `rooms/quotas.rs`); 0
    /// turns one off. Reloadable.
    #[serde(default)]
    pub quotas: crate::rooms::quotas::Quota,
}

/// Which URLs the nodes may be asked to fetch for an app (play, announce, hold music): see
/// `api/media_url.rs`. Read at start.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Playback {
    /// Allow URLs whose host is, or resolves to, a loopback, private or link-local address
    /// (off in production: the node fetches from inside the operator's network).
    pub allow_private: bool,
    /// When not empty, the only hosts fetched (`host`, `host:port`, `*.example.com`), whatever
    /// they resolve to: the way to close what resolving here cannot (a redirect followed by
    /// the node, a name that resolves differently for it).
    pub allow_hosts: Vec<String>,
}

/// Live audio streams (`POST …/streams`): which servers may be reached and how, and where the
/// nodes send a stream's audio. Reloadable.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Streams {
    /// Allow servers whose host is, or resolves to, a loopback, private or link-local address
    /// (as `[webhooks] allow_private`; off in production).
    pub allow_private: bool,
    /// Only `wss://` servers (a `ws://` URL is refused with a 400).
    pub require_wss: bool,
    /// Resolving, connecting, TLS and the WebSocket upgrade, all told.
    pub connect_timeout_ms: u64,
    /// The address the media nodes send a stream's audio to (UDP); unset: this host's
    /// address on the route to each node.
    pub media_ip: Option<std::net::IpAddr>,
    /// Where the stream's UDP ports are bound (one per media leg, chosen by the system).
    pub media_bind: std::net::IpAddr,
}

impl Default for Streams {
    fn default() -> Streams {
        Streams {
            allow_private: false,
            require_wss: true,
            connect_timeout_ms: 5000,
            media_ip: None,
            media_bind: std::net::IpAddr::from([0, 0, 0, 0]),
        }
    }
}

impl Streams {
    pub fn settings(&self) -> crate::rooms::streams::StreamSettings {
        crate::rooms::streams::StreamSettings {
            policy: crate::streams::socket::Policy {
                allow_private: self.allow_private,
                require_wss: self.require_wss,
                connect_timeout: Duration::from_millis(self.connect_timeout_ms.clamp(100, 60_000)),
            },
            media_ip: self.media_ip,
            media_bind: self.media_bind,
        }
    }
}

/// Where finished recordings go: the node's disk (`local`, as always, the lab's default), or an
/// S3-compatible bucket (`s3`) that every instance reads. The bucket's credentials come from
/// the environment (`SWITCHYARD_S3_ACCESS_KEY_ID`, `SWITCHYARD_S3_SECRET_ACCESS_KEY`), never
/// from this file.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recordings {
    #[serde(default)]
    pub store: RecordingStore,
    /// `http(s)://host[:port]` of the S3 API.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    /// Every object's key begins with it: `<prefix>/<app>/<room>/<recording>.wav`.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub addressing: Addressing,
    /// How long a download URL lasts (a `302` of the file, `conference.recording.ready`'s
    /// `url`), in seconds; default 3600.
    pub url_expires_secs: Option<u64>,
    /// Recordings copied to the bucket are deleted this many days after they were ready
    /// (object and record; one instance does each); 0 or none: kept.
    pub retention_days: Option<u64>,
    /// From the environment only.
    #[serde(skip)]
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for Recordings {
    /// Without the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("store", &self.store)
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStore {
    #[default]
    Local,
    S3,
}

/// How the bucket is named in URLs: `path` (`<endpoint>/<bucket>/<key>`: Garage, MinIO, any
/// IP endpoint; the default) or `virtual` (`<bucket>.<endpoint host>/<key>`: AWS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    #[default]
    Path,
    Virtual,
}

impl Recordings {
    /// The bucket, for `store = "s3"`; `None` for the node's disk.
    pub fn object_store(&self) -> Result<Option<crate::objects::ObjectStore>, ConfigError> {
        if self.store == RecordingStore::Local {
            return Ok(None);
        }
        let need = |v: &Option<String>, name: &str| {
            v.clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(format!("[recordings] store = \"s3\" needs {name}")))
        };
        let config = crate::objects::S3Config {
            endpoint: need(&self.endpoint, "endpoint")?,
            region: need(&self.region, "region")?,
            bucket: need(&self.bucket, "bucket")?,
            prefix: self.prefix.clone(),
            path_style: self.addressing == Addressing::Path,
        };
        let (key, secret) = self.credentials.clone().unwrap_or_default();
        crate::objects::ObjectStore::new(&config, &key, &secret)
            .map(Some)
            .map_err(|e| invalid(format!("[recordings]: {e}")))
    }

    /// How long a recording in the bucket is kept (`None`: for ever).
    pub fn retention(&self) -> Option<Duration> {
        self.retention_days
            .filter(|d| *d > 0)
            .map(|d| Duration::from_secs(d.saturating_mul(24 * 3600)))
    }

    /// How long a download URL lasts.
    pub fn url_ttl(&self) -> Duration {
        Duration::from_secs(
            self.url_expires_secs
                .unwrap_or(3600)
                .clamp(1, 7 * 24 * 3600),
        )
    }
}

/// How the controller logs. `--log-format` (or `SWITCHYARD_LOG_FORMAT`) wins over the file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `"text"` (the default) or `"json"`: one JSON object per line, for log shippers.
    pub format: Option<LogFormat>,
}

/// A value given as one string or a list of them (`"…"` or `["…", "…"]`); a string may hold
/// several separated by blanks (the environment's form).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMore {
    One(String),
    More(Vec<String>),
}

impl OneOrMore {
    /// Every value, blanks splitting a string.
    pub fn values(&self) -> Vec<&str> {
        match self {
            OneOrMore::One(s) => s.split_whitespace().collect(),
            OneOrMore::More(v) => v.iter().flat_map(|s| s.split_whitespace()).collect(),
        }
    }
}

impl std::fmt::Debug for OneOrMore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} values>", self.values().len())
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// 5 characters `[A-Za-z0-9]`, unique: the start of every room and session id on the node.
    pub prefix: String,
    /// The ESL address, `host:port`.
    pub esl: String,
    pub password: String,
    #[serde(default = "default_profile")]
    pub profile: String,
    /// The directory on the node where room recordings are written (absolute; default
    /// `/var/lib/freeswitch/recordings/switchyard`).
    pub recordings_dir: Option<String>,
    /// Where this controller sees that directory (a shared volume); default: the same path.
    pub recordings_local_dir: Option<std::path::PathBuf>,
    /// How often the store is compared with the node and repaired, in milliseconds (default
    /// 30,000).
    pub audit_ms: Option<u64>,
    /// Event Socket connections that carry commands, besides the one for events (default 4):
    /// FreeSWITCH runs one connection's commands in turn, so this many run at once.
    pub command_connections: Option<usize>,
    /// After each command sent to the node, its event connection is woken every millisecond
    /// for up to this many milliseconds (default 200; 0: never), so the events the command
    /// causes arrive within about a millisecond instead of up to FreeSWITCH's 20 ms idle wait.
    /// A command whose event is known (a join, a leave, a mute…) ends the wake when that event
    /// arrives.
    pub event_wake_ms: Option<u64>,
    /// The SIP profile dial-outs to `sip:` destinations leave through (default `inbound`, the
    /// only profile of `freeswitch-conf/`).
    pub dialout_profile: Option<String>,
    /// The sofia gateway numbers (`+15551234567`) are dialed through; none: this node dials no
    /// numbers.
    pub gateway: Option<String>,
    /// Where the other nodes reach this node's node-to-node SIP profile (`nodes`,
    /// `FS_NODE_SIP_IP:FS_NODE_SIP_PORT`), `ip:port`: calls on other nodes are bridged there
    /// into rooms this node hosts.
    pub node_sip: Option<std::net::SocketAddr>,
}

/// The profile `freeswitch-conf/` defines for rooms.
fn default_profile() -> String {
    "switchyard".into()
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub id: String,
    /// Hex SHA-256 of the API key (`switchyard hash-key <key>`); a list during a rotation,
    /// each key valid until it is removed.
    pub key_sha256: OneOrMore,
    pub webhook_url: Option<String>,
    /// `whsec_…`; two (a list, or space-separated) during a rotation: both sign.
    pub webhook_secret: Option<OneOrMore>,
    #[serde(default)]
    pub dids: Vec<String>,
    /// Talking events (`conference.member.talking`, the member's `talking` flag): off unless
    /// asked for, as they come with every spoken phrase of every member.
    #[serde(default)]
    pub talking_events: bool,
    /// Hosts (`host` or `host:port`; `*`: any) this app may dial out to as `sip:` URIs. None:
    /// no SIP dial-out.
    #[serde(default)]
    pub dialout_hosts: Vec<String>,
    /// Number prefixes (`+1555`; `*`: any) this app may dial out to through a node's gateway.
    /// None: no numbers.
    #[serde(default)]
    pub dialout_numbers: Vec<String>,
    /// The caller ids (`caller_id` of a dial-out) this app may present: exact numbers, prefixes
    /// ending in `*` (`+1555*`), or `*` (any). Absent: its `dids`, exactly; with neither, a
    /// dial-out gives none (the node's default is shown).
    pub caller_ids: Option<Vec<String>>,
    /// Seconds after creation at which the app's rooms end if nobody joined them, unless a
    /// room says otherwise; 0 (the default): never.
    #[serde(default)]
    pub empty_timeout: u64,
    /// Seconds after the last member left at which the app's rooms end, unless a room says
    /// otherwise; 0 (the default): never.
    #[serde(default)]
    pub departure_timeout: u64,
    /// This app's quotas, each field over `[quotas]`'s.
    #[serde(default)]
    pub quotas: crate::rooms::quotas::QuotaOverride,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("webhook_url", &self.webhook_url)
            .field("dids", &self.dids)
            .field("talking_events", &self.talking_events)
            .field("dialout_hosts", &self.dialout_hosts)
            .field("dialout_numbers", &self.dialout_numbers)
            .field("caller_ids", &self.caller_ids)
            .field("empty_timeout", &self.empty_timeout)
            .field("departure_timeout", &self.departure_timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Requests per second per application, all routes (0 = off), and the burst allowed.
    pub global_rps: f64,
    pub global_burst: f64,
    /// The cooldowns (per room or per session; see docs/api.md): 0 turns one off.
    pub conf_play_ms: u64,
    pub conference_control_ms: u64,
    pub conference_ms: u64,
    pub conference_mute_ms: u64,
    /// How long a node has to answer a command.
    pub command_timeout_ms: u64,
    /// How often each node is probed with a cheap command on a connection of its own, to find
    /// one that hangs with its connections open (0: never).
    pub node_probe_ms: u64,
    /// A probe unanswered this long makes the node hung: its commands are answered 503 at
    /// once until it answers again.
    pub node_probe_deadline_ms: u64,
    /// Commands this instance may have waiting on one node at once; one more is answered 503
    /// at once (0: no bound).
    pub node_commands_in_flight: usize,
    /// API requests this instance works on at once; one more is answered 503 at once (0: no
    /// bound). Read at start.
    pub requests_in_flight: usize,
    /// One app's share of those: one more of its own is answered 429 at once (0: no share).
    /// Read at start.
    pub requests_in_flight_per_app: usize,
    /// Event streams (`/api/v1/events/stream`) one app may hold open at once (0: no bound).
    /// Read at start.
    pub event_streams_per_app: usize,
    /// How long a request's body may take to arrive whole; then 408. Read at start.
    pub body_timeout_ms: u64,
    /// From a connection's opening, or the end of its last answer, to the end of the next
    /// request's headers: the slow-headers limit and the keep-alive idle limit. Read at start.
    pub header_timeout_ms: u64,
    /// How long an answer (an event stream's included) may wait on a client that reads
    /// nothing before its connection is closed. Read at start.
    pub write_stall_ms: u64,
    /// API connections open at once (0: the open-file limit, raised to its hard limit at
    /// start, less 512 kept for Redis, the nodes and webhooks). Read at start.
    pub max_connections: usize,
    /// API connections open at once from one client address (an IPv6 /64 is one; 0: no
    /// bound, for a controller behind a proxy). Read at start.
    pub connections_per_client: usize,
    /// Wrong keys one client address may send a minute; past it, 429 until the minute is
    /// over (0: off, for a controller behind a proxy). Read at start.
    pub auth_failures_per_minute: u32,
    /// Percent of each node's `max-sessions` that no new room or dial-out takes, kept for
    /// inbound calls and the joins of rooms already made (0: none; the node is then not
    /// asked for its sessions). Reloadable.
    pub node_sessions_reserved_pct: u32,
    /// A join not confirmed by add-member within this time fails.
    pub join_timeout_ms: u64,
    /// The shortest time between two talking webhooks of a room (see `talking_events`); 0:
    /// every start-talking and stop-talking is told as it comes.
    pub talking_interval_ms: u64,
}

/// How webhooks are delivered (the same for every application).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhooks {
    /// Allow URLs that resolve to loopback, private or link-local addresses (off in production).
    pub allow_private: bool,
    /// The waits before each retry, in seconds (jittered ±20 %); then the dead-letter list.
    pub retry_schedule_secs: Vec<u64>,
    /// The longest one delivery request may take.
    pub timeout_ms: u64,
    /// Outbox entries read at once.
    pub batch: usize,
    /// Entries held between the delivered position and the read cursor (the dispatcher's
    /// memory bound).
    pub max_pending: usize,
    /// Requests in progress at once, each to a different room.
    pub max_in_flight: usize,
    /// How long a dispatcher's lease lasts unless renewed: another instance takes over an
    /// app's webhooks this long after the one delivering them dies.
    pub lease_ms: u64,
}

/// How the outbox's readers (the webhook dispatchers and the event streams) wait once they
/// have caught up. They wake as soon as any controller appends (the store notifies them);
/// these are the fallbacks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbox {
    /// The poll interval while the store's notifications are down (Redis restarting).
    pub poll_ms: u64,
    /// The longest wait while they are up: a safety net, not a schedule.
    pub idle_poll_ms: u64,
}

impl Default for Outbox {
    fn default() -> Outbox {
        let w = Waits::default();
        Outbox {
            poll_ms: w.poll.as_millis() as u64,
            idle_poll_ms: w.idle.as_millis() as u64,
        }
    }
}

impl Outbox {
    pub fn waits(&self) -> Waits {
        Waits {
            poll: Duration::from_millis(self.poll_ms.max(1)),
            idle: Duration::from_millis(self.idle_poll_ms.max(self.poll_ms).max(1)),
        }
    }
}

impl Default for Webhooks {
    fn default() -> Webhooks {
        Webhooks {
            allow_private: false,
            retry_schedule_secs: RetrySchedule::default()
                .delays
                .iter()
                .map(|d| d.as_secs())
                .collect(),
            timeout_ms: 15_000,
            batch: 256,
            max_pending: 10_000,
            max_in_flight: 64,
            lease_ms: 10_000,
        }
    }
}

impl Limits {
    /// The fields read only at start (the listener's and admission's): a reload that changes
    /// one is refused, as a change to `listen` is.
    pub fn read_at_start(&self) -> impl PartialEq + use<> {
        (
            (
                self.requests_in_flight,
                self.requests_in_flight_per_app,
                self.event_streams_per_app,
                self.body_timeout_ms,
            ),
            (
                self.header_timeout_ms,
                self.write_stall_ms,
                self.max_connections,
                self.connections_per_client,
                self.auth_failures_per_minute,
            ),
        )
    }
}

impl Default for Limits {
    fn default() -> Limits {
        let c = Cooldowns::default();
        let http = crate::server::http::ConnectionLimits::default();
        Limits {
            global_rps: 100.0,
            global_burst: 200.0,
            conf_play_ms: c.conf_play.as_millis() as u64,
            conference_control_ms: c.conference_control.as_millis() as u64,
            conference_ms: c.conference.as_millis() as u64,
            conference_mute_ms: c.conference_mute.as_millis() as u64,
            command_timeout_ms: 5000,
            node_probe_ms: crate::node::probe::DEFAULT_INTERVAL.as_millis() as u64,
            node_probe_deadline_ms: crate::node::probe::DEFAULT_DEADLINE.as_millis() as u64,
            node_commands_in_flight: crate::node::DEFAULT_MAX_IN_FLIGHT,
            requests_in_flight: crate::api::admission::DEFAULT_REQUESTS_IN_FLIGHT,
            requests_in_flight_per_app: crate::api::admission::DEFAULT_REQUESTS_PER_APP,
            event_streams_per_app: crate::api::admission::DEFAULT_STREAMS_PER_APP,
            body_timeout_ms: crate::api::admission::DEFAULT_BODY_TIMEOUT.as_millis() as u64,
            header_timeout_ms: http.header_timeout.as_millis() as u64,
            write_stall_ms: http.write_stall.as_millis() as u64,
            max_connections: http.max_connections,
            connections_per_client: http.connections_per_client,
            auth_failures_per_minute: crate::api::throttle::DEFAULT_FAILURES_PER_MINUTE,
            node_sessions_reserved_pct: 10,
            join_timeout_ms: 10_000,
            talking_interval_ms: crate::node::DEFAULT_TALKING_INTERVAL.as_millis() as u64,
        }
    }
}

fn env_name(kind: &str, name: &str, field: &str) -> String {
    format!(
        "SWITCHYARD_{kind}_{}_{field}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

impl Config {
    /// Reads a file, applies the process environment, and checks the result.
    pub fn load(path: &str) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, |k| std::env::var(k).ok())
    }

    /// Parses TOML text, with `env` looked up for overrides.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| parse_error::described(text, &e))?;
        if let Some(v) = env("SWITCHYARD_LISTEN") {
            config.listen = v
                .parse()
                .map_err(|_| invalid(format!("SWITCHYARD_LISTEN: not an address: {v}")))?;
        }
        if let Some(v) = env("SWITCHYARD_REDIS_URL") {
            config.redis_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("SWITCHYARD_REDIS_SHARDS") {
            config.redis_shards = Some(
                v.parse()
                    .map_err(|_| invalid("SWITCHYARD_REDIS_SHARDS: not a number"))?,
            );
        }
        if let Some(v) = env("SWITCHYARD_REDIS_REPLICAS") {
            config.redis_replicas = Some(
                v.parse()
                    .map_err(|_| invalid("SWITCHYARD_REDIS_REPLICAS: not a number"))?,
            );
        }
        if let Some(v) = env("SWITCHYARD_CURSOR_SECRET") {
            config.cursor_secret = Some(v);
        }
        if let Some(v) = env("SWITCHYARD_ADMIN_KEY_SHA256") {
            config.admin_key_sha256 = Some(v).filter(|v| !v.is_empty()).map(OneOrMore::One);
        }
        if let Some(v) = env("SWITCHYARD_GLOBAL_RPS") {
            config.limits.global_rps = v
                .parse()
                .map_err(|_| invalid("SWITCHYARD_GLOBAL_RPS: not a number"))?;
        }
        if let (Some(key), Some(secret)) = (
            env(crate::objects::ACCESS_KEY_ENV),
            env(crate::objects::SECRET_KEY_ENV),
        ) {
            config.recordings.credentials = Some((key, secret));
        }
        for node in &mut config.nodes {
            if let Some(v) = env(&env_name("NODE", &node.name, "PASSWORD")) {
                node.password = v;
            }
        }
        for app in &mut config.apps {
            if let Some(v) = env(&env_name("APP", &app.id, "KEY_SHA256")) {
                app.key_sha256 = OneOrMore::One(v);
            }
            if let Some(v) = env(&env_name("APP", &app.id, "WEBHOOK_SECRET")) {
                app.webhook_secret = Some(OneOrMore::One(v));
            }
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        // An S3 store must be whole (its credentials included) before anything starts.
        self.recordings.object_store()?;
        if self.metrics_listen == Some(self.listen) {
            return Err(invalid(format!(
                "metrics_listen: {} is the API's address (listen); leave it out to serve \
                 /metrics there, with the operator's key",
                self.listen
            )));
        }
        if let Some(n) = self.redis_shards
            && !(1..=MAX_REDIS_SHARDS).contains(&n)
        {
            return Err(invalid(format!(
                "redis_shards: between 1 and {MAX_REDIS_SHARDS}, not {n}"
            )));
        }
        if self.nodes.is_empty() {
            return Err(invalid("at least one [[nodes]] entry is needed"));
        }
        if let Some(u) = self.advertise_url.as_deref().filter(|u| !u.is_empty()) {
            let ok = url::Url::parse(u).is_ok_and(|p| {
                matches!(p.scheme(), "http" | "https")
                    && p.host().is_some()
                    && p.path() == "/"
                    && p.query().is_none()
                    && p.username().is_empty()
                    && !u.contains('@')
            });
            if !ok {
                return Err(invalid(format!(
                    "advertise_url: http:// or https://, a host and a port only                      (\"http://10.0.0.5:8080\"), not {u:?}"
                )));
            }
        }
        for a in &self.apps {
            for (what, secs) in [
                ("empty_timeout", a.empty_timeout),
                ("departure_timeout", a.departure_timeout),
            ] {
                if secs > crate::conference::MAX_TIMEOUT_SECS {
                    return Err(invalid(format!(
                        "app {}: {what}: seconds, 0 (never) to {}, not {secs}",
                        a.id,
                        crate::conference::MAX_TIMEOUT_SECS
                    )));
                }
            }
            let mut patterns = a.caller_ids.iter().flatten();
            if !patterns.all(|c| dial_policy::caller_id_pattern_ok(c)) {
                return Err(invalid(format!(
                    "app {}: caller_ids: each a number (+ and up to 32 digits), a number's start \
                     followed by * (\"+1555*\"), or \"*\"",
                    a.id
                )));
            }
        }
        let mut prefixes = Vec::new();
        for n in &self.nodes {
            let p = NodePrefix::parse(&n.prefix)
                .map_err(|e| invalid(format!("node {}: {e}", n.name)))?;
            if prefixes.contains(&p) {
                return Err(invalid(format!("node prefix {p} is used twice")));
            }
            prefixes.push(p);
            if let Some(dir) = &n.recordings_dir
                && crate::node::commands::record_dir_ok(dir).is_err()
            {
                return Err(invalid(format!(
                    "node {}: recordings_dir must be an absolute path of letters, digits, '/', '.', '_' and '-'",
                    n.name
                )));
            }
        }
        self.app_keys()?;
        self.webhook_dispatchers()?;
        Ok(())
    }

    /// One dispatcher configuration per application with a `webhook_url`. An app with a URL
    /// needs a valid secret (`whsec_…`, at least 24 bytes; two space-separated during a rotation).
    pub fn webhook_dispatchers(&self) -> Result<Vec<DispatcherConfig>, ConfigError> {
        let mut out = Vec::new();
        for a in &self.apps {
            let Some(url) = &a.webhook_url else { continue };
            let id = AppId::parse(&a.id).map_err(|e| invalid(e.to_string()))?;
            let secret = a.webhook_secret.as_ref().ok_or_else(|| {
                invalid(format!("app {}: webhook_url needs a webhook_secret", a.id))
            })?;
            let signer = Signer::parse(&secret.values().join(" "))
                .map_err(|e| invalid(format!("app {}: webhook_secret: {e}", a.id)))?;
            let mut c = DispatcherConfig::new(id, url.clone(), signer);
            c.allow_private = self.webhooks.allow_private;
            c.timeout = Duration::from_millis(self.webhooks.timeout_ms.max(1));
            c.waits = self.outbox.waits();
            c.batch = self.webhooks.batch.max(1);
            c.max_pending = self.webhooks.max_pending.max(1);
            c.max_in_flight = self.webhooks.max_in_flight.max(1);
            c.lease_ttl = Duration::from_millis(self.webhooks.lease_ms.max(100));
            c.retry = RetrySchedule {
                delays: self
                    .webhooks
                    .retry_schedule_secs
                    .iter()
                    .map(|s| Duration::from_secs(*s))
                    .collect(),
                ..RetrySchedule::default()
            };
            out.push(c);
        }
        Ok(out)
    }

    pub fn node_configs(&self) -> Vec<NodeConfig> {
        self.nodes
            .iter()
            .filter_map(|n| {
                let prefix = NodePrefix::parse(&n.prefix).ok()?;
                let mut c = NodeConfig::new(prefix, n.esl.clone(), n.password.clone());
                c.profile = n.profile.clone();
                if let Some(dir) = &n.recordings_dir {
                    c.recordings_dir = dir.clone();
                }
                c.recordings_local_dir = n.recordings_local_dir.clone();
                if let Some(ms) = n.audit_ms {
                    c.audit_interval = Duration::from_millis(ms.max(100));
                }
                if let Some(k) = n.command_connections {
                    c.command_connections = k.clamp(1, 64);
                }
                if let Some(ms) = n.event_wake_ms {
                    c.event_wake = Duration::from_millis(ms.min(10_000));
                }
                if let Some(p) = &n.dialout_profile {
                    c.dialout_profile = p.clone();
                }
                c.gateway = n.gateway.clone();
                c.node_sip = n.node_sip;
                c.command_timeout = Duration::from_millis(self.limits.command_timeout_ms);
                c.probe_interval = Duration::from_millis(self.limits.node_probe_ms);
                c.probe_deadline = Duration::from_millis(self.limits.node_probe_deadline_ms.max(1));
                c.max_in_flight = self.limits.node_commands_in_flight;
                c.join_timeout = Duration::from_millis(self.limits.join_timeout_ms);
                c.talking_interval = Duration::from_millis(self.limits.talking_interval_ms);
                Some(c)
            })
            .collect()
    }

    pub fn app_keys(&self) -> Result<AppKeys, ConfigError> {
        let mut keys = AppKeys::new();
        for a in &self.apps {
            let id = AppId::parse(&a.id).map_err(|e| invalid(e.to_string()))?;
            if keys.key_count(&id) > 0 {
                return Err(invalid(format!("app {} is configured twice", a.id)));
            }
            let hashes = a.key_sha256.values();
            if hashes.is_empty() {
                return Err(invalid(format!("app {}: key_sha256 is empty", a.id)));
            }
            for hash in hashes {
                keys.add_hashed(id.clone(), hash).ok_or_else(|| {
                    invalid(format!("app {}: key_sha256 must be 64 hex digits", a.id))
                })?;
            }
        }
        for admin in self.admin_key_sha256.iter().flat_map(OneOrMore::values) {
            keys.set_admin_hashed(admin)
                .ok_or_else(|| invalid("admin_key_sha256 must be 64 hex digits"))?;
        }
        Ok(keys)
    }

    pub fn directory(&self) -> AppDirectory {
        let mut d = AppDirectory::new();
        for a in &self.apps {
            if let Ok(id) = AppId::parse(&a.id) {
                if a.talking_events {
                    d.hear_talking(id.clone());
                }
                d.may_dial(
                    id.clone(),
                    dial_policy::DialPolicy {
                        hosts: a.dialout_hosts.clone(),
                        numbers: a.dialout_numbers.clone(),
                        caller_ids: a.caller_ids.clone().unwrap_or_else(|| a.dids.clone()),
                    },
                );
                d.set_room_lifetime(id.clone(), a.empty_timeout, a.departure_timeout);
                d.add_app(id, a.dids.iter().cloned());
            }
        }
        d
    }

    pub fn cooldowns(&self) -> Cooldowns {
        let ms = Duration::from_millis;
        Cooldowns {
            conf_play: ms(self.limits.conf_play_ms),
            conference_control: ms(self.limits.conference_control_ms),
            conference: ms(self.limits.conference_ms),
            conference_mute: ms(self.limits.conference_mute_ms),
        }
    }

    /// Every app's quotas: `[quotas]`, under each app's own.
    pub fn quotas(&self) -> crate::rooms::quotas::Quotas {
        crate::rooms::quotas::Quotas {
            node_reserved_pct: self.limits.node_sessions_reserved_pct,
            default: self.quotas,
            apps: self
                .apps
                .iter()
                .filter_map(|a| Some((AppId::parse(&a.id).ok()?, a.quotas.over(self.quotas))))
                .collect(),
        }
    }

    /// The API listener's connection limits.
    pub fn connection_limits(&self) -> crate::server::http::ConnectionLimits {
        crate::server::http::ConnectionLimits {
            header_timeout: Duration::from_millis(self.limits.header_timeout_ms.max(1)),
            write_stall: Duration::from_millis(self.limits.write_stall_ms.max(1)),
            max_connections: self.limits.max_connections,
            connections_per_client: self.limits.connections_per_client,
        }
    }

    /// Where the other instances reach this one's API ([`Config::advertise_url`]).
    pub fn reached_at(&self) -> Option<String> {
        match &self.advertise_url {
            Some(url) if url.is_empty() => None,
            Some(url) => Some(url.trim_end_matches('/').to_owned()),
            None if self.listen.ip().is_unspecified() => None,
            None => Some(format!("http://{}", self.listen)),
        }
    }

    pub fn api_options(&self) -> ApiOptions {
        ApiOptions {
            cursor_secret: self.cursor_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            global_rate: self.limits.global_rps,
            global_burst: self.limits.global_burst,
            stream_waits: self.outbox.waits(),
            metrics_on_api: self.metrics_listen.is_none(),
            forwarding: None,
            media_urls: crate::api::media_url::MediaUrlPolicy {
                allow_private: self.playback.allow_private,
                allow_hosts: self.playback.allow_hosts.clone(),
                unresolved_ok: false,
            },
            admission: crate::api::admission::AdmissionLimits {
                requests_in_flight: self.limits.requests_in_flight,
                requests_per_app: self.limits.requests_in_flight_per_app,
                streams_per_app: self.limits.event_streams_per_app,
                body_timeout: Duration::from_millis(self.limits.body_timeout_ms.max(1)),
                auth_failures_per_minute: self.limits.auth_failures_per_minute,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../switchyard.example.toml");

    #[test]
    fn the_checked_in_example_is_valid_and_env_overrides_it() {
        let c = Config::parse(EXAMPLE, |_| None).unwrap();
        assert_eq!(c.nodes[0].prefix, "acW68");
        assert_eq!(c.log.format, Some(LogFormat::Text));
        assert_eq!(c.cooldowns(), Cooldowns::default());
        let keys = c.app_keys().unwrap();
        assert!(keys.check("app1", "app1-key").is_some());
        let env = |k: &str| match k {
            "SWITCHYARD_REDIS_URL" => Some("redis://10.0.0.1/".to_owned()),
            "SWITCHYARD_LISTEN" => Some("0.0.0.0:9000".to_owned()),
            "SWITCHYARD_NODE_FS1_PASSWORD" => Some("secret".to_owned()),
            _ => None,
        };
        let c = Config::parse(EXAMPLE, env).unwrap();
        assert_eq!(c.redis_url.as_deref(), Some("redis://10.0.0.1/"));
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.node_configs()[0].password, "secret");
        assert_eq!(c.node_configs()[0].command_connections, 4);
        assert!(!format!("{:?}", c.apps).contains("key_sha256"));
        let hooks = c.webhook_dispatchers().unwrap();
        assert_eq!(hooks.len(), 1);
        assert!(!hooks[0].allow_private);
        assert_eq!(hooks[0].retry, RetrySchedule::default());
    }

    #[test]
    fn a_node_names_its_dial_out_gateway_and_node_to_node_address() {
        let node = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n";
        let c = Config::parse(
            &format!("{node}gateway='carrier'\nnode_sip='10.0.0.11:5070'\n"),
            |_| None,
        )
        .unwrap();
        let n = &c.node_configs()[0];
        assert_eq!(n.gateway.as_deref(), Some("carrier"));
        assert_eq!(n.node_sip, Some("10.0.0.11:5070".parse().unwrap()));
        assert_eq!(n.dialout_profile, "inbound");
        // Not an ip:port: refused, not ignored.
        assert!(Config::parse(&format!("{node}node_sip='nodeA'\n"), |_| None).is_err());
    }

    #[test]
    fn recordings_go_to_a_bucket_only_whole_and_with_credentials_from_the_environment() {
        let node = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n";
        let local = Config::parse(node, |_| None).unwrap();
        assert!(
            local.recordings.object_store().unwrap().is_none(),
            "local by default"
        );
        let s3 = format!(
            "{node}[recordings]\nstore='s3'\nendpoint='http://10.0.0.9:3900'\nregion='garage'\n\
             bucket='rec'\nprefix='calls'\n"
        );
        let err = Config::parse(&s3, |_| None).unwrap_err().to_string();
        assert!(err.contains("SWITCHYARD_S3_ACCESS_KEY_ID"), "{err}");
        let env = |k: &str| match k {
            "SWITCHYARD_S3_ACCESS_KEY_ID" => Some("GKexample".to_owned()),
            "SWITCHYARD_S3_SECRET_ACCESS_KEY" => Some("never-shown".to_owned()),
            _ => None,
        };
        let c = Config::parse(&s3, env).unwrap();
        let store = c.recordings.object_store().unwrap().unwrap();
        assert_eq!(store.key("a/r/x.wav"), "calls/a/r/x.wav");
        assert_eq!(c.recordings.url_ttl(), Duration::from_secs(3600));
        assert!(!format!("{c:?}").contains("never-shown"));
        let no_bucket = s3.replace("bucket='rec'\n", "");
        let err = Config::parse(&no_bucket, env).unwrap_err().to_string();
        assert!(err.contains("bucket"), "{err}");
        assert!(Config::parse(&format!("{node}[recordings]\nstore='ftp'\n"), env).is_err());
    }

    #[test]
    fn an_apps_room_lifetime_defaults_reach_its_directory_within_bounds() {
        let base = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n[[apps]]\nid='a'\n\
                    key_sha256='ff23fdeed2bd9e6807eb3e108d3138d4cfc606e938537a88dbf8773c2175859f'\n";
        let app = AppId::parse("a").unwrap();
        let c = Config::parse(base, |_| None).unwrap();
        assert_eq!(c.directory().room_lifetime(&app), (0, 0));
        let set = format!("{base}empty_timeout = 300\ndeparture_timeout = 20\n");
        let c = Config::parse(&set, |_| None).unwrap();
        assert_eq!(c.directory().room_lifetime(&app), (300, 20));
        let err = Config::parse(&format!("{base}departure_timeout = 2592001\n"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("departure_timeout"), "{err}");
    }

    #[test]
    fn an_apps_caller_ids_are_its_dids_unless_given_and_reach_its_directory() {
        let base = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n[[apps]]\nid='a'\n\
                    key_sha256='ff23fdeed2bd9e6807eb3e108d3138d4cfc606e938537a88dbf8773c2175859f'\n";
        let app = AppId::parse("a").unwrap();
        let none = Config::parse(base, |_| None).unwrap().directory();
        assert!(!none.may_present(&app, "+15551230000"));
        let dids = format!("{base}dids = ['+15551230000']\n");
        let d = Config::parse(&dids, |_| None).unwrap().directory();
        assert!(d.may_present(&app, "+15551230000"));
        assert!(!d.may_present(&app, "+15551239999"));
        let given = format!("{dids}caller_ids = ['+1555*', '442071234567']\n");
        let d = Config::parse(&given, |_| None).unwrap().directory();
        assert!(d.may_present(&app, "+15551239999"));
        assert!(d.may_present(&app, "442071234567"));
        assert!(!d.may_present(&app, "+4930123456"));
        let empty = format!("{dids}caller_ids = []\n");
        let d = Config::parse(&empty, |_| None).unwrap().directory();
        assert!(!d.may_present(&app, "+15551230000"));
        let err = Config::parse(&format!("{base}caller_ids = ['+1 555*']\n"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("caller_ids") && !err.contains("+1 555"),
            "{err}"
        );
    }

    #[test]
    fn a_webhook_url_needs_a_valid_secret_and_the_error_does_not_show_it() {
        let base = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n[[apps]]\nid='a'\n\
                    key_sha256='ff23fdeed2bd9e6807eb3e108d3138d4cfc606e938537a88dbf8773c2175859f'\n\
                    webhook_url='https://example.com/h'\n";
        assert!(Config::parse(base, |_| None).is_err());
        let short = format!("{base}webhook_secret='whsec_c2hvcnQtc2VjcmV0'");
        let err = Config::parse(&short, |_| None).unwrap_err().to_string();
        assert!(
            err.contains("24 bytes") && !err.contains("c2hvcnQ"),
            "{err}"
        );
        let good = format!(
            "{base}webhook_secret='whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE='\n\
             [webhooks]\nallow_private=true\nretry_schedule_secs=[1,2]"
        );
        let c = Config::parse(&good, |_| None).unwrap();
        let hooks = c.webhook_dispatchers().unwrap();
        assert!(hooks[0].allow_private);
        assert_eq!(hooks[0].retry.delays.len(), 2);
    }

    #[test]
    fn a_node_s_command_connections_are_configurable() {
        let base = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n";
        let c = Config::parse(base, |_| None).unwrap();
        assert_eq!(
            c.node_configs()[0].command_connections,
            crate::node::DEFAULT_COMMAND_CONNECTIONS
        );
        for (value, used) in [(8, 8), (0, 1), (1000, 64)] {
            let c =
                Config::parse(&format!("{base}command_connections = {value}"), |_| None).unwrap();
            assert_eq!(c.node_configs()[0].command_connections, used, "{value}");
        }
    }

    #[test]
    fn the_log_format_is_text_unless_the_file_says_json() {
        let base = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n";
        let c = Config::parse(base, |_| None).unwrap();
        assert_eq!(c.log.format, None);
        let c = Config::parse(&format!("{base}[log]\nformat = 'json'"), |_| None).unwrap();
        assert_eq!(c.log.format, Some(LogFormat::Json));
        let c = Config::parse(&format!("{base}[log]\nformat = 'text'"), |_| None).unwrap();
        assert_eq!(c.log.format, Some(LogFormat::Text));
        for bad in ["[log]\nformat = 'yaml'", "[log]\nlevel = 'debug'"] {
            assert!(
                Config::parse(&format!("{base}{bad}"), |_| None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_file_that_does_not_parse_is_told_by_line_and_column_never_by_its_text() {
        let node = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n";
        let unterminated = format!("{node}[recordings]\nsecret_access_key = \"SECRETVALUE\n");
        let err = Config::parse(&unterminated, |_| None).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 7, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "invalid configuration: line 7, column 33: invalid basic string, expected `\"`"
        );
        let typed = node.replace("password='p'", "password=86753094242");
        assert_eq!(
            Config::parse(&typed, |_| None).unwrap_err().to_string(),
            "invalid configuration: line 5, column 10: invalid type: integer, expected a string"
        );
    }

    #[test]
    fn metrics_listen_takes_metrics_off_the_api_port() {
        let node = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n";
        let c = Config::parse(node, |_| None).unwrap();
        assert_eq!(c.metrics_listen, None);
        assert!(c.api_options().metrics_on_api);
        let apart = format!("metrics_listen = '127.0.0.1:9090'\n{node}");
        let c = Config::parse(&apart, |_| None).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        assert!(!c.api_options().metrics_on_api);
        let same = format!("metrics_listen = '127.0.0.1:8080'\n{node}");
        let err = Config::parse(&same, |_| None).unwrap_err().to_string();
        assert!(err.contains("metrics_listen"), "{err}");
    }

    #[test]
    fn the_url_the_fleet_reaches_an_instance_at_is_its_listen_address_unless_given() {
        let node = "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n";
        let at =
            |top: &str| Config::parse(&format!("{top}{node}"), |_| None).map(|c| c.reached_at());
        assert_eq!(
            at("listen = '10.0.0.5:8080'\n").unwrap(),
            Some("http://10.0.0.5:8080".into())
        );
        assert_eq!(at("listen = '0.0.0.0:8080'\n").unwrap(), None);
        assert_eq!(
            at("listen = '0.0.0.0:8080'\nadvertise_url = 'https://sy-1.internal:8443/'\n").unwrap(),
            Some("https://sy-1.internal:8443".into())
        );
        assert_eq!(at("advertise_url = ''\n").unwrap(), None);
        for bad in [
            "ftp://10.0.0.5:21",
            "http://10.0.0.5:8080/api",
            "http://user:pw@10.0.0.5:8080",
            "10.0.0.5:8080",
            "http://10.0.0.5:8080/?x=1",
        ] {
            let err = at(&format!("advertise_url = '{bad}'\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("advertise_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        for bad in [
            "nodes = []",
            "[[nodes]]\nname='a'\nprefix='toolong'\nesl='x:1'\npassword='p'",
            "unknown = 1\n[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'",
            "[[nodes]]\nname='a'\nprefix='abcde'\nesl='x:1'\npassword='p'\n[[apps]]\nid='a'\nkey_sha256='nothex'",
        ] {
            assert!(Config::parse(bad, |_| None).is_err(), "{bad}");
        }
    }
}
