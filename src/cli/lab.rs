//! `switchyard lab`: everything in one process — simulated FreeSWITCH nodes, the memory store
//! (or Redis), the API, and lab-only routes to make calls happen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::LogFormatArg;
use switchyard::api::ApiOptions;
use switchyard::conference::{AppId, NodePrefix};
use switchyard::server::lab::{Lab, LabOptions};
use switchyard::server::logging::{self, LogFormat};
use switchyard::server::{bind, stop_on_signal};
use switchyard::store::Store;
use switchyard::store::memory::MemoryStore;
use switchyard::store::redis::RedisStore;
use switchyard::webhook::sign::{Secret, Signer};

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How many simulated media nodes to run.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Use Redis instead of the in-memory store.
    #[arg(long)]
    redis: Option<String>,
    /// With --redis: how many rooms to keep in memory under Redis's invalidation (0: none).
    #[arg(long, default_value_t = switchyard::store::room_cache::DEFAULT_CAPACITY)]
    room_cache: usize,
    /// With --redis: how many shards each app spreads over (see `redis_shards` in the config).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    redis_shards: u16,
    /// An application as ID:KEY (repeatable); replaces the default lab-app:lab-key.
    #[arg(long = "app")]
    apps: Vec<String>,
    /// The webhook URL of every lab app.
    #[arg(long)]
    webhook_url: Option<String>,
    /// The webhook signing secret of every lab app.
    #[arg(long, hide_env_values = true)]
    webhook_secret: Option<String>,
    /// How long a played URL lasts on the simulated nodes, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    play_ms: u64,
    /// Requests per second per app (0 = no global limit).
    #[arg(long, default_value_t = 100.0)]
    global_rps: f64,
    /// The operator's key: the dashboard's operator view across the lab's apps (`X-Admin-Key`),
    /// and `GET /metrics` (as `X-Admin-Key` or `Authorization: Bearer`). Empty: neither.
    #[arg(long, default_value = "lab-admin", hide_default_value = false)]
    admin_key: String,
    /// Talking events for every lab app (`conference.member.talking`, the member's `talking`).
    #[arg(long)]
    talking_events: bool,
    /// Wrong keys a client address may send a minute before it is answered 429 (0: off, the
    /// lab's default: its clients are on this machine, and API fuzzers send wrong keys by the
    /// hundred). `serve` throttles by default (`[limits] auth_failures_per_minute`).
    #[arg(long, default_value_t = 0)]
    auth_failures_per_minute: u32,
    /// Set every cooldown window (conf_play, conference_control, conference, conference_mute)
    /// to this many milliseconds instead of the contract's; 0 turns them off (load tests).
    #[arg(long)]
    cooldown_ms: Option<u64>,
    /// How log lines are written on standard error. With `json`, the lab's own greeting (the
    /// API address, the apps, a generated webhook secret) goes to standard output instead, so
    /// standard error holds JSON lines only.
    #[arg(long, value_enum, env = "SWITCHYARD_LOG_FORMAT")]
    log_format: Option<LogFormatArg>,
}

fn parse_apps(specs: &[String]) -> anyhow::Result<Vec<(AppId, String)>> {
    if specs.is_empty() {
        return Ok(vec![(AppId::parse("lab-app")?, "lab-key".into())]);
    }
    specs
        .iter()
        .map(|s| {
            let (id, key) = s
                .split_once(':')
                .filter(|(_, k)| !k.is_empty())
                .with_context(|| format!("--app {s:?}: expected ID:KEY"))?;
            Ok((AppId::parse(id)?, key.to_owned()))
        })
        .collect()
}

impl LabArgs {
    /// The format asked for on the command line (or in the environment), if any.
    pub fn log_format(&self) -> Option<LogFormat> {
        self.log_format.map(LogFormat::from)
    }
}

pub async fn run(args: LabArgs) -> anyhow::Result<()> {
    logging::init(args.log_format().unwrap_or_default());
    let apps = parse_apps(&args.apps)?;
    let webhook = match &args.webhook_url {
        Some(url) => {
            let secret = args.webhook_secret.clone().unwrap_or_else(Secret::generate);
            let signer = Signer::parse(&secret).context("--webhook-secret")?;
            Some((url.clone(), signer, secret))
        }
        None => None,
    };
    // A secret the lab made up is shown to the user once; a given one never is.
    let generated = webhook
        .as_ref()
        .filter(|_| args.webhook_secret.is_none())
        .map(|(_, _, secret)| secret.clone());
    let options = LabOptions {
        webhook: webhook.as_ref().map(|(u, s, _)| (u.clone(), s.clone())),
        nodes: args.nodes,
        play_duration: Duration::from_millis(args.play_ms),
        talking_events: if args.talking_events {
            apps.iter().map(|(app, _)| app.clone()).collect()
        } else {
            Vec::new()
        },
        apps,
        admin_key: Some(args.admin_key.clone()).filter(|k| !k.is_empty()),
        api: ApiOptions {
            global_rate: args.global_rps,
            admission: switchyard::api::admission::AdmissionLimits {
                auth_failures_per_minute: args.auth_failures_per_minute,
                ..Default::default()
            },
            ..ApiOptions::default()
        },
        cooldowns: match args.cooldown_ms {
            Some(ms) => {
                let w = Duration::from_millis(ms);
                switchyard::rooms::Cooldowns {
                    conf_play: w,
                    conference_control: w,
                    conference: w,
                    conference_mute: w,
                }
            }
            None => switchyard::rooms::Cooldowns::default(),
        },
        ..LabOptions::default()
    };
    match &args.redis {
        Some(url) => {
            let store = RedisStore::connect(url)
                .await
                .context("cannot reach Redis")?
                .with_shards(usize::from(args.redis_shards));
            let nodes: Vec<NodePrefix> = (1..=options.nodes.max(1))
                .filter_map(|i| NodePrefix::parse(&format!("{}{i:02}", options.node_prefix)).ok())
                .collect();
            store.claim_layout(&nodes).await?;
            let store = store.with_room_cache(args.room_cache).await?;
            run_with(Arc::new(store), options, &args, generated).await
        }
        None => run_with(Arc::new(MemoryStore::new()), options, &args, generated).await,
    }
}

async fn run_with<S: Store>(
    store: Arc<S>,
    options: LabOptions,
    args: &LabArgs,
    generated: Option<String>,
) -> anyhow::Result<()> {
    let apps = options.apps.clone();
    let lab = Lab::start(store, options).await?;
    stop_on_signal(lab.stop.clone());
    if !lab.wait_ready(Duration::from_secs(10)).await {
        anyhow::bail!("the simulated nodes did not come up");
    }
    let listener = bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // The bound address: `--listen 127.0.0.1:0` takes a free port and says which.
    let bound = listener.local_addr().unwrap_or(args.listen);
    let mut greeting = vec![format!("switchyard lab: API on http://{bound}")];
    for (prefix, sim) in &lab.sims {
        greeting.push(format!(
            "  node {prefix}: simulated FreeSWITCH on {} (ESL password ClueCon)",
            sim.addr()
        ));
    }
    for (app, key) in &apps {
        greeting.push(format!("  app: X-App-ID: {app}  X-API-Key: {key}"));
    }
    if !args.admin_key.is_empty() {
        greeting.push(format!(
            "  operator: X-Admin-Key: {} (also what GET /metrics takes)",
            args.admin_key
        ));
    }
    greeting.push(format!("  dashboard: http://{bound}/ui"));
    if let Some(url) = &args.webhook_url {
        greeting.push(format!(
            "  webhooks: POST {url} (Standard Webhooks signatures)"
        ));
        if let Some(secret) = &generated {
            greeting.push(format!("  webhook secret (generated): {secret}"));
        }
    }
    // Not a log line (it shows keys and a secret once, to the person who started the lab):
    // beside JSON logs it goes to standard output, which log shippers do not read.
    for line in greeting {
        if logging::installed() == Some(LogFormat::Json) {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
    switchyard::server::http::serve(
        lab.router(),
        listener,
        switchyard::server::http::ConnectionLimits::default(),
        lab.stop.clone(),
    )
    .await?;
    Ok(())
}
