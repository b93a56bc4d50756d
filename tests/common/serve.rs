//! `switchyard serve` as a child process (started with a config file, stopped by pid), and a
//! small client for its API.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use serde_json::Value;

/// `switchyard serve` as a child process; killed when dropped.
pub struct Serve {
    child: Child,
}

impl Serve {
    /// Starts it and waits until `/readyz` answers 200 at `api` (its base URL).
    pub async fn start(config: &std::path::Path, api: &str) -> Serve {
        Serve::start_on(config, api, None).await
    }

    /// As [`Serve::start`], on one CPU if `cpu` names one (`taskset -c`, from its start: its
    /// runtime sizes itself to the CPUs it may use).
    pub async fn start_on(config: &std::path::Path, api: &str, cpu: Option<usize>) -> Serve {
        Serve::start_env(config, api, cpu, &[]).await
    }

    /// As [`Serve::start`], its log (at `info`, or `SERVE_LOG`) written to `<config>.log`
    /// beside its configuration, for a test that leaves its directory behind when it fails.
    #[allow(dead_code)]
    pub async fn start_logged(config: &std::path::Path, api: &str) -> Serve {
        let log = std::fs::File::create(config.with_extension("log")).expect("a log file");
        let level = std::env::var("SERVE_LOG").unwrap_or_else(|_| "info".into());
        let env = [("RUST_LOG", level.as_str()), ("NO_COLOR", "1")];
        Serve::spawn(config, api, None, &env, Stdio::from(log)).await
    }

    /// As [`Serve::start_on`], with these variables in its environment too.
    pub async fn start_env(
        config: &std::path::Path,
        api: &str,
        cpu: Option<usize>,
        env: &[(&str, &str)],
    ) -> Serve {
        Serve::spawn(config, api, cpu, env, Stdio::inherit()).await
    }

    async fn spawn(
        config: &std::path::Path,
        api: &str,
        cpu: Option<usize>,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Serve {
        // SWITCHYARD_SERVE_BIN runs another build instead (an earlier one: does a test fail
        // on it, as it must?).
        let bin = std::env::var("SWITCHYARD_SERVE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchyard").to_owned());
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = command
            .arg("serve")
            .arg("--config")
            .arg(config)
            // SERVE_LOG (a RUST_LOG filter) shows more of what the controllers do.
            .env(
                "RUST_LOG",
                std::env::var("SERVE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("switchyard serve starts");
        let http = reqwest::Client::new();
        let ready = until(Duration::from_secs(20), "serve is ready", || async {
            http.get(format!("{api}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
                .then_some(())
        });
        ready.await;
        Serve { child }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a graceful stop: the instance hands its nodes over at once), and waits until
    /// the process ends.
    pub fn terminate(&mut self) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM to {pid}");
        let _ = tokio::task::block_in_place(|| self.child.wait());
    }

    /// SIGSTOP: the process stalls, its sockets open (as a paused VM, a starved or swapped
    /// process does) until [`Serve::resume`].
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// SIGCONT after [`Serve::pause`].
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (`-STOP`, `-CONT`...) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill {signal} {pid}");
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `get` until it gives a value, at most `limit`.
pub async fn until<T, F, Fut>(limit: Duration, what: &str, mut get: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = get().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One application's view of a controller's API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub app: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, app: &str, key: &str) -> Api {
        Api {
            base: base.to_owned(),
            app: app.to_owned(),
            key: key.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `GET /metrics` with the operator's key ([`OPERATOR_KEY`]), as Prometheus sends it.
    pub fn metrics_request(&self) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(OPERATOR_KEY)
    }

    /// The status and JSON body (status 0: no answer).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("X-App-ID", &self.app)
            .header("X-API-Key", &self.key)
            .timeout(Duration::from_secs(5));
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let bytes = r.bytes().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                )
            }
            // What went wrong on the way, for a message (nothing of the API's answer).
            Err(e) => (0, serde_json::json!({ "transport_error": e.to_string() })),
        }
    }

    /// (channel, muted) of the room's members as the API lists them.
    pub async fn members(&self, room: &str) -> BTreeSet<(String, bool)> {
        let path = format!("/api/v1/conferences/{room}/members?limit=100");
        let (_, body) = self.call("GET", &path, None).await;
        body["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let session = m["uuid"].as_str().unwrap_or_default();
                (
                    session.get(6..).unwrap_or_default().to_owned(),
                    m["muted"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }
}

/// The operator's key of the `serve` configurations the benches write ([`operator_toml`]):
/// what `/metrics` on the API's port takes.
pub const OPERATOR_KEY: &str = "switchyard-bench-operator";

/// The top-level line (before any `[table]`) that gives an instance [`OPERATOR_KEY`].
pub fn operator_toml() -> String {
    format!(
        "admin_key_sha256 = \"{}\"\n",
        switchyard::api::hash_key(OPERATOR_KEY)
    )
}

/// A free TCP port on the loopback (for an instance's API).
pub fn free_port() -> u16 {
    super::ports::tcp()
}

/// A `[[nodes]]` entry of a configuration (`extra`: more of its lines, each ending in `\n`).
pub fn node_toml(prefix: &str, esl: &str, password: &str, extra: &str) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    format!(
        "[[nodes]]\nname = {}\nprefix = {}\nesl = {}\npassword = {}\n{extra}",
        q(prefix),
        q(prefix),
        q(esl),
        q(password)
    )
}
