//! `switchyard serve`: the controller from a configuration file, and `switchyard hash-key`.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use switchyard::api::{ApiState, router};
use switchyard::server::config::Config;
use switchyard::server::{
    bind, serve_http, start_rooms, start_timeouts, start_webhooks, stop_on_signal,
};
use switchyard::store::Store;
use switchyard::store::memory::MemoryStore;
use switchyard::store::redis::RedisStore;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TOML configuration (see switchyard.example.toml).
    #[arg(long, default_value = "switchyard.toml")]
    config: String,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    match &config.redis_url {
        Some(url) => {
            let mut store = RedisStore::connect(url)
                .await
                .context("cannot reach Redis")?;
            if let Some(secs) = config.room_retention_secs {
                store = store.with_retention(std::time::Duration::from_secs(secs));
            }
            run_with(Arc::new(store), config).await
        }
        None => {
            tracing::warn!("no redis_url: using the in-memory store; state is lost on restart");
            run_with(Arc::new(MemoryStore::new()), config).await
        }
    }
}

async fn run_with<S: Store>(store: Arc<S>, config: Config) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    stop_on_signal(stop.clone());
    let hooks = config.webhook_dispatchers()?;
    let webhook_apps = hooks.len();
    start_webhooks(store.clone(), hooks, &stop)?;
    let rooms = start_rooms(
        store,
        config.node_configs(),
        config.directory(),
        config.cooldowns(),
        &stop,
    );
    let state = ApiState::new(rooms, config.app_keys()?, config.api_options());
    start_timeouts(state.clone(), stop.child_token());
    let listener = bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, nodes = config.nodes.len(), apps = config.apps.len(), webhook_apps, "switchyard API listening");
    serve_http(router(state), listener, stop).await?;
    Ok(())
}

/// `switchyard hash-key <key>`: the value for `key_sha256`.
pub fn hash_key(key: &str) {
    println!("{}", switchyard::api::hash_key(key));
}

/// `switchyard openapi`: the OpenAPI document of the REST API, as `openapi.json` holds it.
pub fn openapi() -> anyhow::Result<()> {
    print!("{}", switchyard::api::openapi::to_json()?);
    Ok(())
}
