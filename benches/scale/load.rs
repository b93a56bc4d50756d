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

/// One rate: half commands, half talking, for the warm-up and the window. Prints its row and
/// whether the next rate is worth trying.
#[allow(clippy::too_many_arguments)]
pub async fn load(
    apis: &[Api],
    pids: &[u32],
    redis: &Redis,
    sims: &[(String, Simulator)],
    members: &mut [Member],
    hooks: &Arc<Hooks>,
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
    let mut scraped = Vec::new();
    let mut from = began;
    let bench = std::process::id();
    hooks.timed.lock().unwrap().clear();
    while began.elapsed() < WARMUP + window {
        ticker.tick().await;
        if before.is_none() && began.elapsed() >= WARMUP {
            from = Instant::now();
            let cpu: Vec<f64> = pids.iter().map(|p| cpu_secs(*p)).collect();
            let rcpu: Vec<f64> = redis.pids().iter().map(|p| cpu_secs(*p)).collect();
            scraped = scrape(apis).await;
            before = Some((
                applied(apis).await,
                cpu,
                rcpu,
                redis.figures().await.1,
                cpu_secs(bench),
            ));
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
    let took = from.elapsed().as_secs_f64();
    let (applied0, cpu0, rcpu0, redis_cpu0, bench0) = before.expect("a window");
    let applied1 = applied(apis).await;
    let after = scrape(apis).await;
    // Where the time goes, from the instances' own histograms (as fine as their buckets): a
    // node's events to their outbox entries, and an outbox entry to its webhook delivered.
    let stored = quantile(&scraped, &after, "switchyard_event_to_outbox_seconds", 0.99);
    let delivered = quantile(
        &scraped,
        &after,
        "switchyard_webhook_delivery_lag_seconds",
        0.99,
    );
    // And before the event: the API's answer, and the node's answer to the command.
    let answered = quantile(
        &scraped,
        &after,
        "switchyard_http_request_duration_seconds",
        0.99,
    );
    let commanded = quantile(
        &scraped,
        &after,
        "switchyard_esl_command_duration_seconds",
        0.99,
    );
    let cpu1: Vec<f64> = pids.iter().map(|p| cpu_secs(*p)).collect();
    let rcpu1: Vec<f64> = redis.pids().iter().map(|p| cpu_secs(*p)).collect();
    let redis_cpu1 = redis.figures().await.1;
    let bench1 = cpu_secs(bench);
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
    let per_instance: Vec<f64> = applied1
        .iter()
        .zip(&applied0)
        .map(|(a, b)| (a - b) / took)
        .collect();
    let events: f64 = per_instance.iter().sum::<f64>() * took;
    let controller: f64 = cpu1.iter().zip(&cpu0).map(|(a, b)| a - b).sum();
    let shares: Vec<String> = cpu1
        .iter()
        .zip(&cpu0)
        .map(|(a, b)| format!("{:.0}", (a - b) / took * 100.0))
        .collect();
    let redis_shares: Vec<String> = rcpu1
        .iter()
        .zip(&rcpu0)
        .map(|(a, b)| format!("{:.0}", (a - b) / took * 100.0))
        .collect();
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
        controller / events.max(1.0) * 1e6,
        (redis_cpu1 - redis_cpu0) / events.max(1.0) * 1e6,
        shares.join(", "),
        redis_shares.join(", "),
        (bench1 - bench0) / took * 100.0,
    );
    let keeping_up = applied_rate >= 0.9 * offered;
    let on_time =
        cmd.p99 <= P99_GOAL_MS && late * 100 <= cmd.n.max(1) && late_talks * 100 <= talk.n.max(1);
    if !on_time || !keeping_up {
        println!(
            "  limit: {} at {rate} events/s offered",
            if on_time {
                "the controllers applied less than 90 % of what was offered"
            } else {
                "p99 command → webhook over 100 ms (or over 1 % late)"
            }
        );
    }
    on_time && keeping_up && failed == 0
}
