//! A real `redis-server` for one test: started on a free port in a temporary directory (with an
//! append-only file, so a restart keeps the data), stopped when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// With extra `redis-server` arguments (e.g. `--rename-command CLIENT ""`).
    #[allow(dead_code)]
    pub fn start_with(extra: &[&str]) -> RedisServer {
        // A free port can be taken by another test's server (or a cluster's bus) before ours
        // binds it: that one exits, and another port is tried.
        let mut attempts = 0;
        loop {
            let port = super::ports::tcp();
            let dir = std::env::temp_dir()
                .join(format!("switchyard-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                extra: extra.iter().map(|s| s.to_string()).collect(),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) if attempts < 5 => {
                    attempts += 1;
                    eprintln!("redis-server: {e}; trying another port");
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The same server's Unix socket, as a `redis_url` names it.
    #[allow(dead_code)]
    pub fn socket_url(&self) -> String {
        format!("unix://{}", self.dir.join("redis.sock").display())
    }

    /// The server's process id (while it runs).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .arg("--unixsocket")
            .arg(self.dir.join("redis.sock"))
            .args(["--unixsocketperm", "700"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}). The Redis tests need a real Redis: \
                     install it with `apt-get update && apt-get install -y redis-server`"
                )
            });
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until our server answers `PING` (not while it loads its data), and checks that
    /// the server answering is ours (its process id): another test's server could hold the
    /// port ours failed to bind.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pid = match self.child.as_mut().map(|c| (c.id(), c.try_wait())) {
                Some((pid, Ok(None))) => pid,
                Some((_, Ok(Some(status)))) => {
                    self.child = None;
                    return Err(format!(
                        "redis-server on port {} exited: {status}",
                        self.port
                    ));
                }
                _ => return Err("redis-server is not running".into()),
            };
            if let Some(answer) = ask(self.port, b"PING\r\n", b"\r\n")
                && answer.starts_with(b"+PONG")
            {
                let info = ask(self.port, b"INFO server\r\n", b"process_id:")
                    .map(|a| String::from_utf8_lossy(&a).into_owned())
                    .unwrap_or_default();
                let ours = format!("process_id:{pid}\r");
                if info.contains(&ours) {
                    return Ok(());
                }
                if info.contains("process_id:") {
                    return Err(format!(
                        "port {} is another redis-server's, not ours",
                        self.port
                    ));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not come up on port {}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A section of Redis's `INFO`, read on a connection of the test's own.
    pub async fn info(&self, section: &str) -> String {
        let client = redis::Client::open(self.url()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut raw)
            .await
            .unwrap()
    }

    /// The number `INFO <section>` gives for `field`.
    async fn info_number(&self, section: &str, field: &str) -> u64 {
        let info = self.info(section).await;
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
    }

    /// How many keys Redis's tracking table holds (`tracking_total_keys`): what it must tell
    /// some client about when they change.
    #[allow(dead_code)]
    pub async fn tracked_keys(&self) -> u64 {
        self.info_number("stats", "tracking_total_keys").await
    }

    /// How many clients are connected (`INFO clients`), this one's own counted.
    #[allow(dead_code)]
    pub async fn connected_clients(&self) -> u64 {
        self.info_number("clients", "connected_clients").await
    }

    /// Redis's `INFO commandstats` as (command, calls): what the code under test asked of Redis
    /// (a script's own commands count too).
    #[allow(dead_code)]
    pub async fn command_calls(&self) -> std::collections::HashMap<String, u64> {
        let info = self.info("commandstats").await;
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    /// The last `lines` lines of the server's log (for a failing test's message).
    #[allow(dead_code)]
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("{e}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `request` to the server on `port` and reads its answer up to the line after `until`
/// (at most 16 KB, half a second).
fn ask(port: u16, request: &[u8], until: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(request).ok()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while answer.len() < 16 * 1024 {
        let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
        answer.extend_from_slice(&buf[..n]);
        if let Some(at) = answer.windows(until.len()).position(|w| w == until)
            && answer[at..].windows(2).any(|w| w == b"\r\n")
        {
            return Some(answer);
        }
    }
    Some(answer)
}
