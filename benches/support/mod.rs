//! What the benches share: a throwaway `redis-server` on a free port (none if it is not
//! installed; the bench then says which figure it skips), one SIPp process placing many calls,
//! and the percentiles the benches report.

pub mod prom;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A throwaway redis-server for the bench.
pub struct RedisServer(Child, u16, Option<String>);

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_on(None)
    }

    /// Also listening on a Unix socket at `unix`; `url` then names the socket.
    pub fn start_on(unix: Option<String>) -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(
                unix.iter()
                    .flat_map(|u| ["--unixsocket", u.as_str(), "--unixsocketperm", "700"]),
            )
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && unix.as_ref().is_none_or(|u| Path::new(u).exists())
            {
                return Some(RedisServer(child, port, unix));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn url(&self) -> String {
        if let Some(unix) = &self.2 {
            return format!("unix://{unix}");
        }
        format!("redis://127.0.0.1:{}/", self.1)
    }

    /// Empties the database between iterations, so each starts from the same state.
    pub fn flush(&self) {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        redis::cmd("FLUSHALL").exec(&mut conn).unwrap();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One SIPp process placing `calls` calls to `did` at `node` with the live tests' UAC scenario
/// (`tests/common/sipp.rs`: G.711 µ-law audio until the node's BYE), 25 a second, caller number
/// 20000, SIP Call-IDs `{tag}-<n>`; killed on drop.
pub struct SippLoad(Child);

impl SippLoad {
    pub fn start(
        node: SocketAddr,
        scenario: &Path,
        did: &str,
        calls: usize,
        tag: &str,
    ) -> std::io::Result<SippLoad> {
        let media = 30_000 + 4 * fastrand::u16(0..200);
        let child = Command::new("sipp")
            .arg(node.to_string())
            .arg("-sf")
            .arg(scenario)
            .args(["-s", did, "-key", "caller", "20000"])
            .args(["-key", "caller_name", "Bench"])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-mp", &media.to_string()])
            .args(["-cid_str", &format!("{tag}-%u")])
            .args([
                "-r",
                "25",
                "-m",
                &calls.to_string(),
                "-l",
                &calls.to_string(),
            ])
            .arg("-nostdin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(SippLoad(child))
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for SippLoad {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `p`th percentile of sorted values (nearest rank).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub struct Dist {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn dist(values: impl Iterator<Item = f64>) -> Dist {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    Dist {
        n: v.len(),
        p50: pct(&v, 50.0),
        p90: pct(&v, 90.0),
        p99: pct(&v, 99.0),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

/// The 1, 5 and 15 minute load averages (other work on the machine skews the figures).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name's closing parenthesis: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A process's resident memory (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A number from the environment, or `default` when unset or not a number.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A bench's `main`: runs `run` on a multi-threaded runtime when invoked with `--bench` (as
/// `cargo bench` does), and nothing otherwise (as `cargo test --benches` runs it).
pub fn bench_main<F: std::future::Future<Output = anyhow::Result<()>>>(
    run: impl FnOnce() -> F,
) -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// How to install what the benches on a real node need.
pub const HOW_TO_INSTALL: &str = "install the live-test dependencies with `sudo scripts/test-deps.sh` \
     (redis-server, SIPp, FreeSWITCH in /usr/local/freeswitch)";

/// SIGTERM (as `timeout` sends it): stop like on Ctrl-C, killing what the bench started.
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// A clear error when a process the bench `name` starts is not installed (`node`: the
/// FreeSWITCH binary, or why there is none).
pub fn preflight(name: &str, node: Result<std::path::PathBuf, String>) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    let runs = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !runs("redis-server", "--version") {
        missing.push("redis-server".to_owned());
    }
    if !runs("sipp", "-v") {
        missing.push("sipp".to_owned());
    }
    if let Err(e) = node {
        missing.push(e);
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "{name} needs a real node and callers; missing: {}.\n{HOW_TO_INSTALL}",
            missing.join("; ")
        );
    }
    Ok(())
}

/// Polls `check` every 20 ms until it holds, at most `limit`.
pub async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Tasks aborted when this is dropped (the bench's servers and taps).
pub struct AbortOnDrop(pub Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// A child process (`switchyard serve`), killed and reaped on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The controller: `SWITCHYARD_BIN` (another build, to compare), else the `switchyard` cargo
/// built for this bench.
pub fn binary() -> PathBuf {
    std::env::var_os("SWITCHYARD_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_switchyard")))
}
