//! Putting the controller together: node supervisors, the room service, the API state, and the
//! HTTP listener with graceful shutdown. `serve` builds it from a [`config::Config`] with
//! [`start_controller`] (so do the live tests); `lab` ([`lab::Lab`]) builds it around in-process
//! simulated nodes.

pub mod config;
pub mod http;
pub mod lab;
pub mod logging;
pub mod reload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::config::{Config, ConfigError};
use crate::api::forward::Forwarding;
use crate::api::{ApiOptions, ApiState, AppKeys};
use crate::conference::{AppId, NodePrefix};
use crate::node::fleet::{FleetConfig, Handover, Seat};
use crate::node::spawner::Spawner;
use crate::node::{AppDirectory, NodeConfig, supervisor};
use crate::rooms::{Cooldowns, Rooms};
use crate::store::fleet::Fleet;
use crate::store::{Position, Store};
use crate::webhook::DispatcherConfig;
use crate::webhook::dispatcher::DispatchError;

/// Why a controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start webhooks: {0}")]
    Webhooks(#[from] DispatchError),
}

/// Everything `serve` runs besides its HTTP listener, from `config` over `store`: the webhook
/// dispatchers, one supervisor per node, the room service and the room timeouts, all stopped by
/// `stop`. Returns the state [`crate::api::router`] serves.
pub fn start_controller<S: Store + Fleet>(
    store: Arc<S>,
    config: &Config,
    stop: &CancellationToken,
) -> Result<ApiState<S>, StartError> {
    start_reloadable(store, config, stop).map(|(state, _)| state)
}

/// [`start_controller`], with what a configuration reload changes ([`reload::Running`]).
pub fn start_reloadable<S: Store + Fleet>(
    store: Arc<S>,
    config: &Config,
    stop: &CancellationToken,
) -> Result<(ApiState<S>, Arc<reload::Running<S>>), StartError> {
    let keys = config.app_keys()?;
    let lease = Duration::from_millis(config.node_lease_ms.unwrap_or(5000).max(300));
    let fleet = FleetConfig::new(lease).reached_at(config.reached_at().as_deref());
    // Connections to the others are let go at half the idle time this instance allows its
    // own clients (the fleet's instances share a configuration).
    let keep_idle = Duration::from_millis(config.limits.header_timeout_ms / 2);
    let forwarding = Forwarding::new(fleet.instance.clone(), fleet.owners.clone(), keep_idle);
    let (rooms, spawner) = start_rooms_in_fleet(
        store.clone(),
        config.node_configs(),
        config.directory(),
        config.cooldowns(),
        fleet,
        stop,
    );
    let rooms = rooms.with_objects(
        config.recordings.object_store()?,
        config.recordings.url_ttl(),
        config.recordings.retention(),
    );
    rooms.set_quotas(config.quotas());
    rooms.set_stream_settings(config.streams.settings());
    store.keep_rooms_of(rooms.pool().keeps_rooms());
    store.on_rooms_changed(rooms.pool().expects_events());
    let options = ApiOptions {
        forwarding: Some(forwarding),
        ..config.api_options()
    };
    let state = ApiState::new(rooms, keys, options);
    let running =
        reload::Running::start(state.clone(), store, spawner, config.clone(), stop.clone())?;
    start_timeouts(state.clone(), stop.child_token());
    start_node_watch(state.clone(), stop.child_token());
    start_drain_gauge(state.clone(), stop.child_token());
    start_migrations(state.clone(), stop.child_token());
    let (uploader, token) = (state.clone(), stop.child_token());
    tokio::spawn(async move { uploader.rooms().run_uploads(token).await });
    let (keeper, token) = (state.clone(), stop.child_token());
    tokio::spawn(async move { keeper.rooms().keep_streams(token).await });
    let window = Duration::from_secs(config.event_retention_secs.unwrap_or(24 * 3600));
    start_housekeeping(state.clone(), running.apps(), window, stop.child_token());
    Ok((state, running))
}

/// Once a minute: keeps each app's outbox (the webhook source and the event feed) to its
/// retained window — entries older than `window` are dropped, but never ones the app's webhook
/// dispatcher has not settled yet (`apps`: each app and whether it has a webhook URL) — drops
/// the app's expired rooms from its listing index, and indexes the nodes' live rooms that the
/// live listings miss (rooms an older controller made during a rolling upgrade) and the apps'
/// live rooms with media that the media index misses (a recording or stream an older
/// controller began: this reads each live room once a minute).
pub fn start_housekeeping<S: Store>(
    state: ApiState<S>,
    apps: Arc<arc_swap::ArcSwap<Vec<(AppId, bool)>>>,
    window: Duration,
    stop: CancellationToken,
) {
    let store = state.rooms().store_arc();
    let nodes: Vec<NodePrefix> = state
        .rooms()
        .pool()
        .nodes()
        .iter()
        .map(|n| n.config.prefix.clone())
        .collect();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now_ms = (supervisor::now_micros() / 1000).max(0) as u64;
            let cutoff = format!("{}-0", now_ms.saturating_sub(window.as_millis() as u64));
            for (app, has_webhook) in apps.load_full().iter() {
                if let Err(e) = trim_one(&*store, app, *has_webhook, &cutoff).await {
                    tracing::warn!(app = %app, error = %e, "outbox not trimmed");
                }
                match store.sweep_ended_rooms(app).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(app = %app, rooms = n, "expired rooms unlisted"),
                    Err(e) => tracing::warn!(app = %app, error = %e, "expired rooms not swept"),
                }
                match store.index_media_rooms(app).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(app = %app, rooms = n, "rooms with media indexed"),
                    Err(e) => {
                        tracing::warn!(app = %app, error = %e, "rooms with media not indexed")
                    }
                }
            }
            for node in &nodes {
                match store.index_live_rooms(node).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(node = %node, rooms = n, "live rooms indexed"),
                    Err(e) => tracing::warn!(node = %node, error = %e, "live rooms not indexed"),
                }
            }
        }
    });
}

async fn trim_one<S: Store>(
    store: &S,
    app: &AppId,
    has_webhook: bool,
    cutoff: &str,
) -> Result<(), crate::store::StoreError> {
    let before = if has_webhook {
        // Up to the dispatcher's position at most: what it has not settled stays.
        match store.outbox_position(app).await? {
            Some(position) => match (Position::parse(&position), Position::parse(cutoff)) {
                (Some(p), Some(c)) => p.min(&c).to_string(),
                _ => cutoff.to_owned(),
            },
            None => return Ok(()),
        }
    } else {
        cutoff.to_owned()
    };
    store.trim_outbox(app, &before).await
}

/// Starts one supervisor per node, applying every node's events (a controller alone), and
/// returns the room service over them.
pub fn start_rooms<S: Store>(
    store: Arc<S>,
    nodes: Vec<NodeConfig>,
    directory: AppDirectory,
    cooldowns: Cooldowns,
    stop: &CancellationToken,
) -> Rooms<S> {
    let spawner = Spawner::new(store.clone(), Arc::new(directory), None, stop.clone());
    for n in nodes {
        spawner.start_with(n, Handover::sole());
    }
    rooms_over(store, &spawner, cooldowns)
}

/// [`start_rooms`] for one instance of a fleet sharing the store: it applies the events of
/// the nodes whose leases it holds (see [`crate::node::fleet`]). With the spawner that adds and
/// removes nodes while it runs (a reload).
pub fn start_rooms_in_fleet<S: Store + Fleet>(
    store: Arc<S>,
    nodes: Vec<NodeConfig>,
    directory: AppDirectory,
    cooldowns: Cooldowns,
    fleet: FleetConfig,
    stop: &CancellationToken,
) -> (Rooms<S>, Arc<Spawner<S>>) {
    let (seats, handovers): (Vec<_>, Vec<_>) =
        nodes.iter().map(|n| Seat::pair(n.prefix.clone())).unzip();
    tracing::info!(instance = %fleet.instance, "controller instance joins the fleet");
    let (changes, changed) = tokio::sync::mpsc::unbounded_channel();
    crate::node::fleet::start(store.clone(), fleet, seats, changed, stop.child_token());
    let spawner = Spawner::new(
        store.clone(),
        Arc::new(directory),
        Some(changes),
        stop.clone(),
    );
    for (n, handover) in nodes.into_iter().zip(handovers) {
        spawner.start_with(n, handover);
    }
    let rooms = rooms_over(store, &spawner, cooldowns);
    (rooms, Arc::new(spawner))
}

fn rooms_over<S: Store>(store: Arc<S>, spawner: &Spawner<S>, cooldowns: Cooldowns) -> Rooms<S> {
    Rooms::new(store, spawner.pool())
        .with_cooldowns(cooldowns)
        .with_directory(spawner.apps())
}

/// Starts one webhook dispatcher per configured application; they stop with `stop`.
pub fn start_webhooks<S: Store>(
    store: Arc<S>,
    dispatchers: Vec<DispatcherConfig>,
    stop: &CancellationToken,
) -> Result<(), DispatchError> {
    for config in dispatchers {
        crate::webhook::spawn(store.clone(), config, stop.child_token())?;
    }
    Ok(())
}

/// Ends rooms whose timeout is due, checking four times a second until `stop`. Every
/// controller instance runs one; the store hands each due room to one of them.
pub fn start_timeouts<S: Store>(state: ApiState<S>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = supervisor::now_micros();
            if let Err(e) = state.rooms().end_timed_out(now, 100).await {
                tracing::warn!(error = %e, "timed-out rooms could not be ended; retrying");
            }
        }
    });
}

/// Moves the rooms of nodes drained with `migrate` (see `rooms/migrate.rs`) until `stop`.
pub fn start_migrations<S: Store>(state: ApiState<S>, stop: CancellationToken) {
    tokio::spawn(async move { state.rooms().run_migrations(stop).await });
}

/// Every second, sets `switchyard_node_draining` of each node from the store (a drain asked
/// of any instance shows on every one).
pub fn start_drain_gauge<S: Store>(state: ApiState<S>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Ok(draining) = state.rooms().store().draining().await else {
                continue;
            };
            for node in state.rooms().pool().nodes().iter() {
                let prefix = &node.config.prefix;
                crate::telemetry::node_draining(prefix.as_str(), draining.contains_key(prefix));
            }
        }
    });
}

/// Watches every node: when one is lost, the calls rooms carry across it are let go at once
/// (see [`Rooms::node_failed`]), not after the bridges' media timeouts.
pub fn start_node_watch<S: Store>(state: ApiState<S>, stop: CancellationToken) {
    for node in state.rooms().pool().nodes().to_vec() {
        watch_node(state.clone(), node, stop.clone());
    }
}

/// [`start_node_watch`] for one node (one a reload added).
pub fn watch_node<S: Store>(
    state: ApiState<S>,
    node: crate::node::NodeHandle,
    stop: CancellationToken,
) {
    {
        tokio::spawn(async move {
            loop {
                let lost = tokio::select! {
                    _ = stop.cancelled() => return,
                    lost = node.lost() => lost,
                };
                if !lost {
                    return;
                }
                // In a fleet, the instance that applies the node's events lets its calls go.
                if !node.applies_events() {
                    continue;
                }
                let prefix = &node.config.prefix;
                match state.rooms().node_failed(prefix).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::warn!(node = %prefix, members = n, "media node lost: the calls carried across it were let go")
                    }
                    Err(e) => {
                        tracing::warn!(node = %prefix, error = %e, "media node lost: its carried calls could not all be let go")
                    }
                }
            }
        });
    }
}

/// The API state of a `serve` controller.
pub fn api_state<S: Store>(rooms: Rooms<S>, keys: AppKeys, options: ApiOptions) -> ApiState<S> {
    ApiState::new(rooms, keys, options)
}

/// Serves `router` on `listen` until `stop` is cancelled; in-flight requests finish first.
pub async fn serve_http(
    router: axum::Router,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

/// Binds the API's address.
pub async fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await
}

/// Cancels `stop` on SIGTERM or Ctrl-C.
pub fn stop_on_signal(stop: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
            match term {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        stop.cancel();
    });
}
