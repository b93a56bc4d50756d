//! `switchyard serve`: the controller from a configuration file, and `switchyard hash-key`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::LogFormatArg;
use switchyard::api::router;
use switchyard::conference::NodePrefix;
use switchyard::server::config::Config;
use switchyard::server::logging::{self, LogFormat};
use switchyard::server::reload::{Running, changes};
use switchyard::server::{bind, start_reloadable, stop_on_signal};
use switchyard::store::Store;
use switchyard::store::fleet::Fleet;
use switchyard::store::memory::MemoryStore;
use switchyard::store::redis::RedisStore;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TOML configuration (see switchyard.example.toml).
    #[arg(long, default_value = "switchyard.toml")]
    config: String,
    /// How log lines are written on standard error; wins over `[log] format` in the config.
    #[arg(long, value_enum, env = "SWITCHYARD_LOG_FORMAT")]
    log_format: Option<LogFormatArg>,
}

impl ServeArgs {
    /// The format asked for on the command line (or in the environment), if any.
    pub fn log_format(&self) -> Option<LogFormat> {
        self.log_format.map(LogFormat::from)
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    logging::init(args.log_format().or(config.log.format).unwrap_or_default());
    match probe_bucket(&config).await? {
        Some(Err(e)) if e.is_retryable() => {
            tracing::warn!(error = %e, "[recordings]: the bucket cannot be reached now; finished recordings are copied once it can");
        }
        Some(Err(e)) => return Err(refused(&config, &e)),
        _ => {}
    }
    match &config.redis_url {
        Some(url) => {
            let mut store = RedisStore::connect(url)
                .await
                .context("cannot reach Redis")?;
            if let Some(secs) = config.room_retention_secs {
                store = store.with_retention(std::time::Duration::from_secs(secs));
            }
            if let Some(secs) = config.session_retention_secs {
                store = store.with_session_retention(std::time::Duration::from_secs(secs));
            }
            if let Some(n) = config.redis_shards {
                store = store.with_shards(n);
            }
            if let Some(n) = config.redis_replicas {
                store = store.with_replicas(n)?;
            }
            if store.replicas() > 0 {
                tracing::info!(
                    replicas = store.replicas(),
                    "webhooks are sent only for outbox entries this many replicas have"
                );
            }
            let nodes: Vec<NodePrefix> = config
                .nodes
                .iter()
                .filter_map(|n| NodePrefix::parse(&n.prefix).ok())
                .collect();
            store.claim_layout(&nodes).await?;
            if let Some(rooms) = config.room_cache {
                store = store.with_room_cache(rooms).await?;
            }
            run_with(Arc::new(store), config, &args.config).await
        }
        None => {
            tracing::warn!("no redis_url: using the in-memory store; state is lost on restart");
            run_with(Arc::new(MemoryStore::new()), config, &args.config).await
        }
    }
}

async fn run_with<S: Store + Fleet>(
    store: Arc<S>,
    config: Config,
    path: &str,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    stop_on_signal(stop.clone());
    let (state, running) = start_reloadable(store, &config, &stop)?;
    reload_on_hangup(running, path.to_owned(), stop.clone());
    let webhook_apps = config
        .apps
        .iter()
        .filter(|a| a.webhook_url.is_some())
        .count();
    let listener = bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, nodes = config.nodes.len(), apps = config.apps.len(), webhook_apps, "switchyard API listening");
    start_metrics(&config, stop.clone()).await?;
    switchyard::server::http::serve(router(state), listener, config.connection_limits(), stop)
        .await?;
    // Hand the nodes this instance applies over to the others before exiting.
    switchyard::node::fleet::departed(Duration::from_secs(3)).await;
    Ok(())
}

/// With `metrics_listen`: `/metrics` alone, with no key, on that address until `stop` (an
/// address that cannot be bound stops `serve`). Without it `/metrics` is on the API's port and
/// takes the operator's key: one warning when there is none, as nothing can scrape then.
async fn start_metrics(config: &Config, stop: CancellationToken) -> anyhow::Result<()> {
    let Some(addr) = config.metrics_listen else {
        if config
            .admin_key_sha256
            .as_ref()
            .is_none_or(|keys| keys.values().is_empty())
        {
            tracing::warn!(
                "GET /metrics answers 401: it takes the operator's key and none is configured; \
                 set admin_key_sha256 (and scrape with Authorization: Bearer <key>), or \
                 metrics_listen (an address only the scraper reaches)"
            );
        }
        return Ok(());
    };
    let listener = bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
    tracing::info!(metrics_listen = %addr, "metrics listening, with no key: keep this address to the scraper");
    let router = switchyard::api::metrics::standalone_router();
    tokio::spawn(async move {
        if let Err(e) = switchyard::server::serve_http(router, listener, stop).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// On every SIGHUP, reads `path` again and puts it in force, or logs why it was refused (the
/// configuration in force stays).
fn reload_on_hangup<S: Store>(running: Arc<Running<S>>, path: String, stop: CancellationToken) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(hup) => hup,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP: no configuration reloads");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            let result = match Config::load(&path) {
                Ok(new) => running.reload(new).await,
                Err(e) => {
                    switchyard::telemetry::config_reload(false);
                    Err(e)
                }
            };
            match result {
                Ok(changed) => {
                    let generation = running.generation().await;
                    tracing::info!(
                        path = %path,
                        generation,
                        changes = %changed.join("; "),
                        "configuration reloaded"
                    );
                }
                Err(e) => tracing::warn!(
                    path = %path,
                    error = %e,
                    "configuration reload refused; the configuration in force stays"
                ),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (running, path, stop);
}

/// `switchyard config check <file> [--against <file>]`: validates a configuration and prints
/// what putting it in force over `against` (the file in force) would change; exits non-zero
/// when the file is invalid or changes what only a restart applies.
pub async fn config_check(file: &str, against: Option<&str>) -> anyhow::Result<()> {
    let new = Config::load(file)?;
    match probe_bucket(&new).await? {
        Some(Err(e)) if !e.is_retryable() => return Err(refused(&new, &e)),
        Some(Err(e)) => super::out(&format!(
            "[recordings]: the bucket cannot be reached now ({e})\n"
        ))?,
        Some(Ok(())) => super::out("[recordings]: the bucket takes these credentials\n")?,
        None => {}
    }
    super::out(&format!(
        "{file}: valid ({} node(s), {} app(s))\n",
        new.nodes.len(),
        new.apps.len()
    ))?;
    let Some(against) = against else {
        return Ok(());
    };
    let old = Config::load(against).with_context(|| format!("{against}: not valid"))?;
    let lines = changes(&old, &new)?;
    if lines.is_empty() {
        super::out(&format!("no change from {against}\n"))?;
    }
    for line in lines {
        super::out(&format!("{line}\n"))?;
    }
    Ok(())
}

/// With `[recordings] store = "s3"`: whether the bucket takes the controller (see
/// [`switchyard::objects::ObjectStore::probe`]); `None` with local recordings.
async fn probe_bucket(
    config: &Config,
) -> anyhow::Result<Option<Result<(), switchyard::objects::ObjectError>>> {
    match config.recordings.object_store()? {
        None => Ok(None),
        Some(objects) => Ok(Some(objects.probe().await)),
    }
}

/// What a bucket's refusal tells the operator.
fn refused(config: &Config, e: &switchyard::objects::ObjectError) -> anyhow::Error {
    anyhow::anyhow!(
        "[recordings]: the bucket {} at {} refuses this controller ({e}): check its name and \
         the credentials in SWITCHYARD_S3_ACCESS_KEY_ID and SWITCHYARD_S3_SECRET_ACCESS_KEY",
        config.recordings.bucket.as_deref().unwrap_or_default(),
        config.recordings.endpoint.as_deref().unwrap_or_default(),
    )
}

/// `switchyard hash-key <key>`: the value for `key_sha256`.
pub fn hash_key(key: &str) -> anyhow::Result<()> {
    super::out(&format!("{}\n", switchyard::api::hash_key(key)))
}

/// `switchyard openapi`: the OpenAPI document of the REST API, as `openapi.json` holds it.
pub fn openapi() -> anyhow::Result<()> {
    super::out(&switchyard::api::openapi::to_json()?)
}
