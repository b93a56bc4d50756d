//! What the scale bench reads: Redis's figures, the instances' metrics, and the webhooks
//! received (a receiver in the bench's process).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::redis_cluster::RedisCluster;
use crate::redis_server::RedisServer;
use crate::serve::Api;

/// The Redis a phase runs on.
pub enum Redis {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    pub fn toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        match self {
            Redis::Single(r) => format!("redis_url = {}\n", q(&r.url())),
            Redis::Cluster(c) => format!("redis_url = {}\nredis_shards = 3\n", q(&c.url())),
        }
    }

    pub fn masters(&self) -> Vec<&RedisServer> {
        match self {
            Redis::Single(r) => vec![r],
            Redis::Cluster(c) => c.nodes.iter().collect(),
        }
    }

    /// Bytes used (`used_memory`), summed over the masters.
    pub async fn used_memory(&self) -> f64 {
        let mut memory = 0.0;
        for m in self.masters() {
            memory += field(&m.info("memory").await, "used_memory");
        }
        memory
    }

    /// Bytes held by the outbox streams (`MEMORY USAGE` of every `*outbox*` key).
    pub async fn outbox_bytes(&self) -> f64 {
        let mut total = 0.0;
        for m in self.masters() {
            let mut conn = redis::Client::open(m.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("*outbox*")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            for key in keys {
                let used: Option<u64> = redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                total += used.unwrap_or(0) as f64;
            }
        }
        total
    }

    pub fn pids(&self) -> Vec<u32> {
        self.masters().iter().filter_map(|m| m.pid()).collect()
    }
}

fn field(info: &str, name: &str) -> f64 {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The webhooks received: the members' joins, and the latency of each one the load
/// is waiting for (by session, and whether it is a talking one).
#[derive(Default)]
pub struct Hooks {
    pub joined: AtomicU64,
    pub waiting: Mutex<HashMap<(String, bool), Instant>>,
    /// (sent at, talking, latency in ms).
    pub timed: Mutex<Vec<(Instant, bool, f64)>>,
}

impl Hooks {
    pub fn wait_for(&self, session: &str, talking: bool, at: Instant) {
        self.waiting
            .lock()
            .unwrap()
            .insert((session.to_owned(), talking), at);
    }

    pub fn on(&self, body: &[u8]) {
        let now = Instant::now();
        let Ok(hook) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let talking = match hook["type"].as_str().unwrap_or_default() {
            "conference.member.joined" => {
                self.joined.fetch_add(1, Ordering::Relaxed);
                return;
            }
            "conference.member.muted" | "conference.member.unmuted" => false,
            "conference.member.talking" => true,
            _ => return,
        };
        let session = hook["data"]["uuid"].as_str().unwrap_or_default().to_owned();
        let sent = self.waiting.lock().unwrap().remove(&(session, talking));
        if let Some(sent) = sent {
            let ms = (now - sent).as_secs_f64() * 1e3;
            self.timed.lock().unwrap().push((sent, talking, ms));
        }
    }

    pub fn pending(&self) -> usize {
        self.waiting.lock().unwrap().len()
    }
}

pub async fn receiver(hooks: Arc<Hooks>) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let hooks = hooks.clone();
        async move {
            hooks.on(&body);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// An instance's `/metrics` (empty when it does not answer).
pub async fn metrics(api: &Api) -> String {
    match api.metrics_request().send().await {
        Ok(reply) => reply.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The events each scraped instance had applied (every node's counter summed).
pub fn applied(scraped: &[String]) -> Vec<f64> {
    scraped
        .iter()
        .map(|text| metric_sum(text, "switchyard_events_applied_total"))
        .collect()
}

/// Waits until no instance applied an event for a second (the fleet is idle).
pub async fn quiet(apis: &[Api]) {
    let mut last = applied(&scrape(apis).await);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = applied(&scrape(apis).await);
        if now == last {
            return;
        }
        last = now;
    }
}

/// Every instance's `/metrics`, for [`applied`] and [`quantile`].
pub async fn scrape(apis: &[Api]) -> Vec<String> {
    let mut out = Vec::with_capacity(apis.len());
    for api in apis {
        out.push(metrics(api).await);
    }
    out
}

/// The `q` quantile, in ms, of a histogram's samples taken between two scrapes of the
/// instances (every label and instance together): the upper bound of the bucket it falls in,
/// so only as fine as the buckets.
pub fn quantile(before: &[String], after: &[String], name: &str, q: f64) -> f64 {
    let buckets = |texts: &[String]| {
        let mut by_bound: Vec<(f64, f64)> = Vec::new();
        let prefix = format!("{name}_bucket{{");
        for line in texts.iter().flat_map(|t| t.lines()) {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some(le) = rest.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else {
                continue;
            };
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            let count: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0.0);
            match by_bound.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, c)) => *c += count,
                None => by_bound.push((bound, count)),
            }
        }
        by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
        by_bound
    };
    let (was, now) = (buckets(before), buckets(after));
    let delta: Vec<(f64, f64)> = now
        .iter()
        .map(|(b, c)| {
            let old = was.iter().find(|(w, _)| w == b).map_or(0.0, |(_, c)| *c);
            (*b, c - old)
        })
        .collect();
    let total = delta.last().map_or(0.0, |(_, c)| *c);
    if total <= 0.0 {
        return f64::NAN;
    }
    delta
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map_or(f64::INFINITY, |(b, _)| b * 1e3)
}
