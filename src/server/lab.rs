//! `switchyard lab`: simulated FreeSWITCH nodes in process, the controller over them, and the API
//! with the lab-only call routes. Also what the API tests run against.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{start_rooms, start_webhooks};
use crate::api::lab::LabNodes;
use crate::api::{ApiOptions, ApiState, AppKeys};
use crate::conference::{AppId, NodePrefix};
use crate::node::dial_policy::DialPolicy;
use crate::node::{AppDirectory, NodeConfig};
use crate::rooms::Cooldowns;
use crate::sim::{SimConfig, Simulator};
use crate::store::Store;
use crate::webhook::DispatcherConfig;
use crate::webhook::sign::Signer;

/// How a lab is set up.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Simulated nodes (prefixes `lab01`, `lab02`, … for the default `node_prefix` `lab`).
    pub nodes: usize,
    /// Three characters that start each node's prefix.
    pub node_prefix: String,
    /// Applications and their plain keys.
    pub apps: Vec<(AppId, String)>,
    /// The operator's plain key (the dashboard's view across apps, and `/metrics`, which takes
    /// it as on `serve`: the dashboard does not read the metrics); `None`: no operator, and
    /// `/metrics` answers 401.
    pub admin_key: Option<String>,
    pub cooldowns: Cooldowns,
    pub api: ApiOptions,
    pub join_timeout: Duration,
    pub command_timeout: Duration,
    /// See [`crate::node::NodeConfig::max_in_flight`].
    pub node_commands_in_flight: usize,
    /// How long a URL plays on the simulated nodes.
    pub play_duration: Duration,
    /// Where every lab app's webhooks go, and what they are signed with (private addresses
    /// are allowed in the lab).
    pub webhook: Option<(String, Signer)>,
    /// Where the simulated nodes write room recordings (and the controller reads them).
    pub recordings_dir: std::path::PathBuf,
    /// The lab apps that get talking events.
    pub talking_events: Vec<AppId>,
    /// See [`NodeConfig::talking_interval`].
    pub talking_interval: Duration,
    /// Where every app may dial out to (SIP hosts, number prefixes; `*`, the default: any
    /// public host, as on `serve`; a name that does not resolve passes in the lab, whose
    /// simulated callees place no real calls, and an internal address is refused as anywhere).
    pub dialout: (Vec<String>, Vec<String>),
    /// The caller ids every app may present on a dial-out (as `caller_ids` on `serve`; `*`,
    /// the default: any); `None`: each app's `dids`.
    pub caller_ids: Option<Vec<String>>,
    /// The DIDs each lab app owns (`app`, `did`): its calls by DID, and its caller ids when
    /// `caller_ids` is `None`. Lab calls name their app anyway; none by default.
    pub dids: Vec<(AppId, String)>,
    /// Every app's default `(empty_timeout, departure_timeout)`, seconds (0: never, the
    /// default).
    pub room_lifetime: (u64, u64),
    /// Each simulated node's `max-sessions` (what its `status` says).
    pub max_sessions: usize,
}

impl Default for LabOptions {
    fn default() -> LabOptions {
        LabOptions {
            nodes: 1,
            node_prefix: "lab".into(),
            apps: Vec::new(),
            admin_key: None,
            cooldowns: Cooldowns::default(),
            api: ApiOptions::default(),
            join_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(5),
            node_commands_in_flight: crate::node::DEFAULT_MAX_IN_FLIGHT,
            play_duration: Duration::from_secs(3),
            webhook: None,
            recordings_dir: std::env::temp_dir().join("switchyard-lab-recordings"),
            talking_events: Vec::new(),
            talking_interval: crate::node::DEFAULT_TALKING_INTERVAL,
            dialout: (vec!["*".into()], vec!["*".into()]),
            caller_ids: Some(vec!["*".into()]),
            dids: Vec::new(),
            room_lifetime: (0, 0),
            max_sessions: 1000,
        }
    }
}

/// A running lab. Dropping it stops the simulators; `stop` stops the supervisors.
pub struct Lab<S> {
    pub state: ApiState<S>,
    pub sims: Vec<(NodePrefix, Arc<Simulator>)>,
    pub stop: CancellationToken,
}

impl<S: Store> Lab<S> {
    pub async fn start(store: Arc<S>, options: LabOptions) -> std::io::Result<Lab<S>> {
        let stop = CancellationToken::new();
        let mut sims = Vec::new();
        let mut configs = Vec::new();
        for i in 1..=options.nodes.max(1) {
            let prefix = NodePrefix::parse(&format!("{}{i:02}", options.node_prefix))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let sim = Simulator::start(SimConfig {
                listen: "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
                heartbeat: Some(Duration::from_secs(5)),
                default_play_duration: options.play_duration,
                max_sessions: options.max_sessions,
                // Each lab node has its `nodes` profile: a call on one joins a room on another.
                node_sip: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                ..SimConfig::default()
            })
            .await?;
            let mut config = NodeConfig::new(prefix.clone(), sim.addr().to_string(), "ClueCon");
            config.node_sip = sim.node_sip();
            config.join_timeout = options.join_timeout;
            config.command_timeout = options.command_timeout;
            config.max_in_flight = options.node_commands_in_flight;
            config.silence_timeout = Duration::from_secs(15);
            config.recordings_dir = options.recordings_dir.to_string_lossy().into_owned();
            config.talking_interval = options.talking_interval;
            // The simulated callees answer numbers too.
            config.gateway = Some("lab".into());
            configs.push(config);
            sims.push((prefix, Arc::new(sim)));
        }
        let mut directory = AppDirectory::new();
        directory.dial_unresolved_names();
        let mut keys = AppKeys::new();
        for (app, key) in &options.apps {
            if options.talking_events.contains(app) {
                directory.hear_talking(app.clone());
            }
            let dids: Vec<String> = options
                .dids
                .iter()
                .filter(|(owner, _)| owner == app)
                .map(|(_, did)| did.clone())
                .collect();
            directory.may_dial(
                app.clone(),
                DialPolicy {
                    hosts: options.dialout.0.clone(),
                    numbers: options.dialout.1.clone(),
                    caller_ids: options.caller_ids.clone().unwrap_or_else(|| dids.clone()),
                },
            );
            let (empty, departure) = options.room_lifetime;
            directory.set_room_lifetime(app.clone(), empty, departure);
            directory.add_app(app.clone(), dids);
            keys.add_plain(app.clone(), key);
        }
        if let Some(admin) = &options.admin_key {
            keys.set_admin_plain(admin);
        }
        let hooks = match &options.webhook {
            Some((url, signer)) => options
                .apps
                .iter()
                .map(|(app, _)| {
                    let mut c = DispatcherConfig::new(app.clone(), url.clone(), signer.clone());
                    c.allow_private = true;
                    c
                })
                .collect(),
            None => Vec::new(),
        };
        start_webhooks(store.clone(), hooks, &stop).map_err(std::io::Error::other)?;
        let rooms = start_rooms(store, configs, directory, options.cooldowns, &stop);
        // Streams may go to a server on this machine (`ws://127.0.0.1:…`), as webhooks may.
        // The simulated nodes carry no stream media (no `unicast`): a stream there fails with
        // `media_unavailable`, as on a node that refuses its media leg.
        let mut streams = crate::rooms::streams::StreamSettings::default();
        streams.policy.allow_private = true;
        streams.policy.require_wss = false;
        streams.policy.connect_timeout = Duration::from_secs(2);
        rooms.set_stream_settings(streams);
        // The simulated nodes fetch nothing: a name that does not resolve here may be played
        // (tests play `https://cdn.example.com/…` on machines without DNS); an internal
        // address is refused as anywhere.
        let mut api = options.api;
        api.media_urls.unresolved_ok = true;
        let state = ApiState::with_lab(rooms, keys, api, LabNodes::new(sims.clone()));
        std::fs::create_dir_all(&options.recordings_dir)?;
        super::start_timeouts(state.clone(), stop.child_token());
        super::start_node_watch(state.clone(), stop.child_token());
        super::start_drain_gauge(state.clone(), stop.child_token());
        super::start_migrations(state.clone(), stop.child_token());
        let apps: Vec<_> = options
            .apps
            .iter()
            .map(|(app, _)| (app.clone(), options.webhook.is_some()))
            .collect();
        let apps = Arc::new(arc_swap::ArcSwap::from_pointee(apps));
        super::start_housekeeping(
            state.clone(),
            apps,
            Duration::from_secs(24 * 3600),
            stop.child_token(),
        );
        Ok(Lab { state, sims, stop })
    }

    /// Waits until every node is connected and resynced.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        for node in self.state.rooms().pool().nodes().iter() {
            if !node.wait_up(timeout).await {
                return false;
            }
        }
        true
    }

    pub fn router(&self) -> axum::Router {
        crate::api::router(self.state.clone())
    }
}

impl<S> Drop for Lab<S> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
