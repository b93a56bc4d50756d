//! The scale bench's load at one rate: half commands through the API, half talking on the
//! simulated nodes; what it cost and how late the webhooks came.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::measure::{Hooks, Redis, applied, quantile, scrape};
use crate::serve::Api;
use crate::support::{cpu_secs, dist};
use crate::{P99_GOAL_MS, WARMUP};
use switchyard::sim::Simulator;

/// One member: its session, the node's simulator index, its channel, and its switches.
pub struct Member {
    pub session: String,
    pub sim: usize,
    pub channel: String,
    pub muted: bool,
    pub talking: bool,
}

/// What the processes had used and the instances had done, at one moment.
struct Sample {
    at: Instant,
    /// Each instance's `/metrics`.
    scraped: Vec<String>,
    /// CPU seconds: each instance's, each Redis master's, and this process's.
    instances: Vec<f64>,
    redis: Vec<f64>,
    bench: f64,
}

impl Sample {
    async fn take(apis: &[Api], pids: &[u32], redis: &Redis) -> Sample {
        let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_secs(*p)).collect::<Vec<f64>>();
        Sample {
            at: Instant::now(),
            scraped: scrape(apis).await,
            instances: cpu(pids),
            redis: cpu(&redis.pids()),
            bench: cpu_secs(std::process::id()),
        }
    }
}

/// Each process's CPU seconds between two samples.
fn used(before: &[f64], after: &[f64]) -> Vec<f64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// One rate: half commands, half talking, for the warm-up and the window. Prints its row and
/// whether the next rate is worth trying.
#[allow(clippy::too_many_arguments)]
pub async fn load(
    apis: &[Api],
    pids: &[u32],
    redis: &Redis,
    sims: &[(String, Simulator)],
    members: &mut [Member],
    hooks: &Hooks,
    rate: u64,
    window: Duration,
) -> bool {
    let answers: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let tick = Duration::from_millis(10);
    let per_tick = rate as f64 * tick.as_secs_f64();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let began = Instant::now();
    let (mut owed, mut sent) = (0.0, 0u64);
    // Even members are muted and unmuted, odd ones talk.
    let (mut commands, mut talks) = (0usize, 0usize);
    let (muters, talkers) = (members.len().div_ceil(2), members.len() / 2);
    let mut before = None;
    hooks.timed.lock().unwrap().clear();
    while began.elapsed() < WARMUP + window {
        ticker.tick().await;
        if before.is_none() && began.elapsed() >= WARMUP {
            before = Some(Sample::take(apis, pids, redis).await);
            sent = 0;
        }
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            sent += 1;
            let now = Instant::now();
            if sent % 2 == 0 {
                let m = &mut members[2 * (commands % muters)];
                let api = apis[commands % apis.len()].clone();
                commands += 1;
                m.muted = !m.muted;
                hooks.wait_for(&m.session, false, now);
                let verb = if m.muted { "mute" } else { "unmute" };
                let path = format!("/api/v1/sessions/{}/commands/conference/{verb}", m.session);
                let answers = answers.clone();
                tokio::spawn(async move {
                    let (status, _) = api.call("POST", &path, Some(json!({}))).await;
                    *answers.lock().unwrap().entry(status).or_default() += 1;
                });
            } else {
                let m = &mut members[2 * (talks % talkers) + 1];
                talks += 1;
                m.talking = !m.talking;
                hooks.wait_for(&m.session, true, now);
                sims[m.sim].1.caller_talk(&m.channel, m.talking);
            }
        }
    }
    let before = before.expect("a window");
    let after = Sample::take(apis, pids, redis).await;
    let (from, took) = (before.at, (after.at - before.at).as_secs_f64());
    // Where the time goes, from the instances' own histograms (as fine as their buckets): the
    // API's answer and the node's answer to a command, before the event; a node's events to
    // their outbox entries, and an outbox entry to its webhook delivered, after it.
    let p99 = |name: &str| quantile(&before.scraped, &after.scraped, name, 0.99);
    let answered = p99("switchyard_http_request_duration_seconds");
    let commanded = p99("switchyard_esl_command_duration_seconds");
    let stored = p99("switchyard_event_to_outbox_seconds");
    let delivered = p99("switchyard_webhook_delivery_lag_seconds");
    // What the window sent and has not heard of yet gets 5 s more.
    let deadline = Instant::now() + Duration::from_secs(5);
    while hooks.pending() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (late_talks, late) = {
        let mut waiting = hooks.waiting.lock().unwrap();
        let talks = waiting.keys().filter(|(_, t)| *t).count();
        let all = waiting.len();
        waiting.clear();
        (talks, all - talks)
    };
    let timed: Vec<(bool, f64)> = hooks
        .timed
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _, _)| *at >= from)
        .map(|(_, t, ms)| (*t, *ms))
        .collect();
    let cmd = dist(timed.iter().filter(|(t, _)| !t).map(|(_, ms)| *ms));
    let talk = dist(timed.iter().filter(|(t, _)| *t).map(|(_, ms)| *ms));
    let per_instance: Vec<f64> = used(&applied(&before.scraped), &applied(&after.scraped))
        .into_iter()
        .map(|n| n / took)
        .collect();
    let events: f64 = per_instance.iter().sum::<f64>() * took;
    let (instances, redis_cpu) = (
        used(&before.instances, &after.instances),
        used(&before.redis, &after.redis),
    );
    let shares = |cpu: &[f64]| {
        cpu.iter()
            .map(|c| format!("{:.0}", c / took * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let answers = answers.lock().unwrap().clone();
    let refused: BTreeMap<u16, u64> = answers.into_iter().filter(|(s, _)| *s != 202).collect();
    let failed: u64 = refused.values().sum();
    let offered = sent as f64 / took;
    let applied_rate = events / took;
    println!(
        "| {rate} offered | {applied_rate:.0}/s applied ({}) | commands p50 {:.1} p99 {:.1} ms, talking p50 {:.0} p99 {:.0} ms; not heard of: {late} commands, {late_talks} talking; refused {refused:?}; p99 ≤ {answered} ms API answer, ≤ {commanded} ms node command, ≤ {stored} ms event → outbox, ≤ {delivered} ms event → delivered | controllers {:.0} µs, Redis {:.0} µs per event | CPU % of a core: instances {}, Redis {}, bench and simulators {:.0} |",
        per_instance
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" + "),
        cmd.p50,
        cmd.p99,
        talk.p50,
        talk.p99,
        instances.iter().sum::<f64>() / events.max(1.0) * 1e6,
        redis_cpu.iter().sum::<f64>() / events.max(1.0) * 1e6,
        shares(&instances),
        shares(&redis_cpu),
        (after.bench - before.bench) / took * 100.0,
    );
    let keeping_up = applied_rate >= 0.9 * offered;
    let on_time =
        cmd.p99 <= P99_GOAL_MS && late * 100 <= cmd.n.max(1) && late_talks * 100 <= talk.n.max(1);
    let why = if !on_time {
        Some("p99 command → webhook over 100 ms (or over 1 % late)")
    } else if !keeping_up {
        Some("the controllers applied less than 90 % of what was offered")
    } else if failed > 0 {
        Some("commands refused")
    } else {
        None
    };
    if let Some(why) = why {
        println!("  limit: {why} at {rate} events/s offered");
    }
    why.is_none()
}
