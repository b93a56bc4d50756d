//! A real FreeSWITCH for one test, started the way the Redis tests start `redis-server`: a copy
//! of `freeswitch-conf/` in a temporary directory, SIP and RTP bound to 127.0.0.1, free ports
//! (Event Socket, SIP, an RTP range), a random Event Socket password; ready once its Event Socket
//! logs in and its SIP profile runs; stopped by pid (SIGKILL: the node and its directory are
//! thrown away). [`FreeSwitch::kill`] and [`FreeSwitch::restart`] are a node crash and its
//! return on the same ports.
//!
//! The binary is `SWITCHYARD_FREESWITCH` or `/usr/local/freeswitch/bin/freeswitch`
//! (`../shared/freeswitch/dist/install.sh` installs it there); its modules sit in `../mod`
//! beside `bin/`. `build.rs` turns the live tests on when that binary exists (or when
//! `SWITCHYARD_REQUIRE_FREESWITCH=1`, so a missing one fails with how to install it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where FreeSWITCH is looked for unless `SWITCHYARD_FREESWITCH` names it.
pub const DEFAULT_BINARY: &str = "/usr/local/freeswitch/bin/freeswitch";

const HOW_TO_INSTALL: &str = "install it with `bash ../shared/freeswitch/dist/install.sh` (as \
     root; `scripts/test-deps.sh` does it with the other test dependencies), or set \
     SWITCHYARD_FREESWITCH to a FreeSWITCH binary whose modules sit in ../mod, or point the live \
     tests at a running node with SWITCHYARD_LIVE_ESL=host:port";

/// The FreeSWITCH binary, or why there is none (with how to install it).
pub fn binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("SWITCHYARD_FREESWITCH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no FreeSWITCH at {}: {HOW_TO_INSTALL}",
            path.display()
        ))
    }
}

/// The version of the FreeSWITCH under test, as `freeswitch -version` prints it (e.g.
/// `1.10.12-release~64bit`; empty when there is none).
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let Ok(binary) = binary() else {
            return String::new();
        };
        let out = Command::new(&binary).arg("-version").output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        text.unwrap_or_default()
            .trim()
            .trim_start_matches("FreeSWITCH version: ")
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    })
}

/// Whether the FreeSWITCH under test is of the 1.10 line, where it differs from 1.11 in what
/// `fixtures/esl/11_versions.md` lists.
pub fn is_1_10() -> bool {
    version().starts_with("1.10.")
}

/// From the first node a test binary starts on, every failure message of that binary begins by
/// naming the FreeSWITCH it ran against (`scripts/test` runs the live tests against two).
fn name_the_version_in_failures() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let named = format!(
            "FreeSWITCH under test: {} ({})",
            version(),
            binary()
                .map(|b| b.display().to_string())
                .unwrap_or_default()
        );
        let earlier = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            eprintln!("{named}");
            earlier(info);
        }));
    });
}

/// The repository's `freeswitch-conf/`.
pub fn conf_source() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("freeswitch-conf")
}

pub struct FreeSwitch {
    child: Option<Child>,
    binary: PathBuf,
    pub dir: PathBuf,
    pub esl_port: u16,
    pub sip_port: u16,
    /// The node-to-node SIP profile's port (`nodes`, on 127.0.0.1).
    pub node_sip_port: u16,
    pub rtp: (u16, u16),
    pub password: String,
    /// Extra environment for the node (variables `vars.xml` reads).
    env: Vec<(String, String)>,
}

impl FreeSwitch {
    /// Starts a node with `freeswitch-conf/` and waits until it is ready.
    pub fn start() -> FreeSwitch {
        FreeSwitch::start_with(&[])
    }

    /// With extra environment for `vars.xml` (e.g. `FS_LOG_LEVEL=debug`).
    pub fn start_with(env: &[(&str, &str)]) -> FreeSwitch {
        let binary = binary().unwrap_or_else(|e| panic!("{e}"));
        name_the_version_in_failures();
        let esl_port = free_tcp_port();
        let sip_port = free_udp_and_tcp_port();
        let node_sip_port = free_udp_and_tcp_port();
        let rtp = free_rtp_range(200);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-fs-{}-{esl_port}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        copy_dir(&conf_source(), &dir.join("conf"));
        for sub in ["log", "db", "run", "rec", "storage", "cache", "sounds"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut node = FreeSwitch {
            child: None,
            binary,
            dir,
            esl_port,
            sip_port,
            node_sip_port,
            rtp,
            password: uuid::Uuid::new_v4().simple().to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        node.spawn();
        node
    }

    pub fn esl(&self) -> String {
        format!("127.0.0.1:{}", self.esl_port)
    }

    pub fn sip(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    /// Where the other nodes reach this one's node-to-node profile (`nodes`).
    pub fn node_sip(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.node_sip_port))
    }

    /// Where the node writes recordings (this machine sees the same path).
    pub fn recordings(&self) -> PathBuf {
        self.dir.join("rec")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The node's log file so far (every start appends to it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/freeswitch.log")).unwrap_or_default()
    }

    /// What the process wrote to stdout/stderr (the console is off; start-up errors land here).
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.txt")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let d = |s: &str| self.dir.join(s);
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d("console.txt"))
            .unwrap();
        let mut cmd = Command::new(&self.binary);
        let modules = self
            .binary
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("mod"))
            .unwrap();
        cmd.args(["-nf", "-nc", "-nonat"])
            .arg("-conf")
            .arg(d("conf"))
            .arg("-log")
            .arg(d("log"))
            .arg("-db")
            .arg(d("db"))
            .arg("-run")
            .arg(d("run"))
            .arg("-recordings")
            .arg(d("rec"))
            .arg("-storage")
            .arg(d("storage"))
            .arg("-cache")
            .arg(d("cache"))
            .arg("-sounds")
            .arg(d("sounds"))
            .arg("-mod")
            .arg(modules)
            .current_dir(&self.dir)
            .env("FS_ESL_PASSWORD", &self.password)
            .env("FS_ESL_LISTEN_IP", "127.0.0.1")
            .env("FS_ESL_LISTEN_PORT", self.esl_port.to_string())
            .env("FS_SIP_IP", "127.0.0.1")
            .env("FS_EXTERNAL_IP", "127.0.0.1")
            .env("FS_SIP_PORT", self.sip_port.to_string())
            .env("FS_NODE_SIP_IP", "127.0.0.1")
            .env("FS_NODE_SIP_PORT", self.node_sip_port.to_string())
            .env("FS_NODE_ALLOWED_CIDR", "127.0.0.1/32")
            .env("FS_RTP_START_PORT", self.rtp.0.to_string())
            .env("FS_RTP_END_PORT", self.rtp.1.to_string())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Ready: the Event Socket logs in, and the SIP profile runs (`sofia status` lists it RUNNING).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "FreeSWITCH exited at start-up ({status}):\n{}\n{}",
                    self.console(),
                    tail(&self.log(), 40)
                );
            }
            if let Some(status) = self.api("sofia status")
                && status.contains("RUNNING")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "FreeSWITCH is not ready after 30 s (Event Socket on {}):\n{}",
                self.esl(),
                tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One `api` command on a fresh blocking Event Socket connection: its reply body, or `None`
    /// when the node cannot be reached or refuses the password.
    pub fn api(&self, command: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.esl_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut reader = FrameReader::default();
        reader.next(&mut s)?; // auth/request
        s.write_all(format!("auth {}\n\n", self.password).as_bytes())
            .ok()?;
        let (headers, _) = reader.next(&mut s)?;
        if !headers.contains("+OK") {
            return None;
        }
        s.write_all(format!("api {command}\n\n").as_bytes()).ok()?;
        let (_, body) = reader.next(&mut s)?;
        Some(body)
    }

    /// SIGKILL: a node crash. The ports and the directory stay for [`FreeSwitch::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the node (SIGKILL) and removes its directory when this process exits, however it
    /// exits, for a node kept in a `static` (never dropped): a `sh` waits on a pipe that only this
    /// process holds open. Dropping what this returns does the same at once (after the node was
    /// dropped: its directory is then kept or removed as [`Drop`] decided, and nothing is killed).
    // The `sh` outlives this process on purpose: nothing here waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn killed_when_this_process_exits(&self) -> std::process::ChildStdin {
        let pid = self.pid().expect("a running node");
        let mut reaper = Command::new("sh")
            .args([
                "-c",
                // Only while it is still this FreeSWITCH (a pid is used again once it ended).
                "read _; grep -q freeswitch /proc/\"$0\"/cmdline 2>/dev/null \
                 && kill -9 \"$0\" && sleep 0.2 && rm -rf \"$1\"",
                &pid.to_string(),
                &self.dir.to_string_lossy(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh starts");
        reaper.stdin.take().expect("a piped stdin")
    }

    /// Starts the node again on the same ports with the same password and directories.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The log's lines at `[ERR]` or `[CRIT]`.
    pub fn errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("[ERR]") || l.contains("[CRIT]"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for FreeSwitch {
    fn drop(&mut self) {
        self.kill();
        RTP_GIVEN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|r| *r != self.rtp);
        if std::thread::panicking() {
            let _ = writeln!(
                std::io::stderr(),
                "FreeSWITCH's log is kept in {} (the test failed)",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reads Event Socket frames (headers, then a body of `Content-Length`) from a blocking socket.
#[derive(Default)]
struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    fn next(&mut self, s: &mut TcpStream) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let headers = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len = headers
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let start = end + 2;
                if self.buf.len() >= start + len {
                    let body = String::from_utf8_lossy(&self.buf[start..start + len]).into_owned();
                    self.buf.drain(..start + len);
                    return Some((headers, body));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

pub fn free_tcp_port() -> u16 {
    super::ports::unused(false)
}

/// A port free for both UDP and TCP (SIP listens on both).
pub fn free_udp_and_tcp_port() -> u16 {
    super::ports::unused(true)
}

/// The RTP ranges of the nodes this process runs (a dropped node gives its range back).
static RTP_GIVEN: std::sync::Mutex<Vec<(u16, u16)>> = std::sync::Mutex::new(Vec::new());

/// An even UDP port whose next `len` ports look free, away from the ephemeral range the kernel
/// hands out for port 0 (so the other helpers' ports do not land in it), and overlapping no range
/// this process handed out before: a node binds its RTP ports only during calls, so an idle
/// node's range looks free, and two nodes sharing ports hear each other's calls (seen: a silent
/// caller's member "talking" in a differential test, the tone of another test's call).
pub fn free_rtp_range(len: u16) -> (u16, u16) {
    loop {
        let start = 10_000 + 2 * fastrand::u16(0..(20_000 - len) / 2);
        let end = start + len - 1;
        let mut given = RTP_GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.iter().any(|(a, b)| start <= *b && *a <= end) {
            continue;
        }
        let free = (start..start + len)
            .step_by(10)
            .all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok());
        if free {
            given.push((start, end));
            return (start, end);
        }
    }
}
