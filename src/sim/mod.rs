//! A FreeSWITCH stand-in that speaks the real Event Socket: `switchyard sim`, and the media node
//! of every controller test and of `switchyard lab`. It is a separate peer: it shares only the
//! wire layer with the controller and knows nothing of rooms as the controller sees them.
//!
//! Its truth is the real captures in `fixtures/esl/`: reply texts, event headers and event order.
//! [`Simulator`] is also the in-process handle tests use to inject calls and faults.

mod audio;
mod bridge;
mod callflow;
mod channel;
mod channels;
mod cjson;
mod conf_api;
mod conference;
mod core;
mod dialout;
mod events;
mod formats;
mod http_put;
mod link;
mod listener;
mod loopback;
mod media;
mod member_files;
mod membership;
mod node_leg;
mod recording;
mod sofia;
mod subscription;
mod transfer;
mod wav;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use self::core::Core;

/// How the simulated node behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    pub password: String,
    /// `FreeSWITCH-Hostname` / `-Switchname`.
    pub hostname: String,
    /// `Conference-Domain` of room events: a conference profile's `domain`; FreeSWITCH's
    /// default, with none set (as in `freeswitch-conf`), is `cluecon.com`.
    pub domain: String,
    /// What `api version` reports.
    pub version: String,
    /// HEARTBEAT period; `None` turns heartbeats off.
    pub heartbeat: Option<Duration>,
    /// How long a new connection may stay silent before it is dropped (FreeSWITCH: about 25 s).
    pub auth_timeout: Duration,
    /// How long a URL, stream or non-WAV file plays.
    pub default_play_duration: Duration,
    /// Paths that exist on the simulated node (with their length) without existing locally.
    pub virtual_files: Vec<(String, Duration)>,
    /// Events the core buffers per connection before the connection is killed for lost events.
    pub event_queue: usize,
    /// The first member id handed out (FreeSWITCH counts node-wide from 1 after a start).
    pub first_member_id: u32,
    /// How far `show channels` trails the channels: FreeSWITCH answers it from its core
    /// database, which its SQL thread fills a few hundred milliseconds behind the events
    /// (0.2–0.3 s measured on 1.11), so a channel younger than this is not listed yet. Zero
    /// (the default) lists every channel at once.
    pub channel_list_lag: Duration,
    /// Fetch an `http(s)://` file before playing it, as mod_http_cache does, so a URL its server
    /// refuses (or that cannot be reached) fails the play as on a real node. Off by default: the
    /// lab has no network and its URLs are made up, so every URL plays.
    pub fetch_urls: bool,
    /// What `status` reports as the node's `max-sessions` (FreeSWITCH's default: 1,000).
    pub max_sessions: usize,
    /// The node's `nodes` SIP profile (rooms that span media nodes): other simulators in this
    /// process bridge callers into its rooms through this address, and it bridges its own
    /// callers into theirs (`bridge:…sofia/nodes/<room>@<address>`). Port 0 reserves a free UDP
    /// port. `None`: no node-to-node profile (a bridge fails).
    pub node_sip: Option<SocketAddr>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8021)),
            password: "ClueCon".into(),
            hostname: "sim".into(),
            domain: "cluecon.com".into(),
            version: "1.11.3-dev~64bit".into(),
            heartbeat: Some(Duration::from_secs(20)),
            auth_timeout: Duration::from_secs(25),
            default_play_duration: Duration::from_secs(3),
            virtual_files: vec![
                (
                    "/usr/share/freeswitch/sounds/test.wav".into(),
                    Duration::from_secs(10),
                ),
                (
                    "/usr/share/freeswitch/sounds/test16k.wav".into(),
                    Duration::from_secs(10),
                ),
            ],
            event_queue: 100_000,
            first_member_id: 1,
            channel_list_lag: Duration::ZERO,
            fetch_urls: false,
            max_sessions: 1000,
            node_sip: None,
        }
    }
}

/// Events a connection must not receive: every event whose `header` equals `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRule {
    pub header: String,
    pub value: String,
}

impl DropRule {
    pub fn matches(&self, event: &crate::esl::EventData) -> bool {
        event.get(&self.header).is_some_and(|v| v == self.value)
    }
}

/// The fault switches every connection watches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fault {
    /// Bumped to make every open connection close.
    pub generation: u64,
    /// Whether that close sends FreeSWITCH's shutdown notice first (a restart) or not (a network drop).
    pub notice_on_drop: bool,
    pub stall_events: bool,
    pub heartbeats_off: bool,
    pub delay: Option<Duration>,
    /// Each `api` command is answered this much later (a node slow to answer).
    pub delay_api: Option<Duration>,
    pub drop_events: Vec<DropRule>,
}

/// A running simulator. Dropping it stops accepting connections.
pub struct Simulator {
    core: Arc<Core>,
    faults: watch::Sender<Fault>,
    addr: SocketAddr,
    stop: CancellationToken,
    /// The `nodes` profile: registered while the simulator runs (see `link.rs`), with the UDP
    /// port that keeps its address unique across processes.
    node_link: std::sync::Mutex<Option<(link::Registration, std::net::UdpSocket)>>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Simulator {
    /// Binds `config.listen` (port 0 picks a free port) and starts serving.
    pub async fn start(mut config: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let heartbeat = config.heartbeat;
        let udp = match config.node_sip {
            Some(at) => {
                let socket = std::net::UdpSocket::bind(at)?;
                config.node_sip = Some(socket.local_addr()?);
                Some(socket)
            }
            None => None,
        };
        let core = Core::new(Arc::new(config));
        let (faults, _) = watch::channel(Fault::default());
        let stop = CancellationToken::new();
        let node_link = match (core.config().node_sip, udp) {
            (Some(at), Some(udp)) => Some((
                link::Registration::open(at, core.clone(), stop.clone()),
                udp,
            )),
            _ => None,
        };
        tokio::spawn(accept_loop(
            listener,
            core.clone(),
            faults.subscribe(),
            stop.clone(),
        ));
        if let Some(period) = heartbeat {
            tokio::spawn(heartbeat_loop(
                core.clone(),
                faults.subscribe(),
                period,
                stop.clone(),
            ));
        }
        Ok(Simulator {
            core,
            faults,
            addr,
            stop,
            node_link: std::sync::Mutex::new(node_link),
        })
    }

    /// The node dies (a SIGKILL): its Event Socket connections close, it accepts no more, and
    /// its peers stop getting its RTP (their bridged legs end on their `media_timeout`). Its
    /// ports are free for a new simulator.
    pub fn kill(&self) {
        self.stop.cancel();
        self.node_link
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the node's `nodes` SIP profile ([`SimConfig::node_sip`]).
    pub fn node_sip(&self) -> Option<SocketAddr> {
        self.core.config().node_sip
    }

    pub fn core_uuid(&self) -> String {
        self.core.core_uuid()
    }

    /// How many line feeds the node's Event Socket connections have received between
    /// commands: the wake-ups clients sent it (`esl/wake.rs`).
    pub fn line_feeds(&self) -> u64 {
        self.core
            .line_feeds
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Events the node fired that its slowest Event Socket connection has not taken yet (a
    /// load generator keeps this bounded, as a busy FreeSWITCH's callers slow down with it).
    pub fn queued_events(&self) -> usize {
        self.core.queued_events()
    }

    /// Runs an API command in process, as `api <line>` would.
    pub fn api(&self, line: &str) -> String {
        self.core.api(line)
    }

    /// A call from `caller_number` to `did`, answered and parked; returns its channel uuid.
    pub fn inbound_call(
        &self,
        did: &str,
        caller_number: &str,
        caller_name: &str,
    ) -> Option<String> {
        let out = self
            .core
            .api(&format!("sim_inbound {did} {caller_number} {caller_name}"));
        out.trim().strip_prefix("+OK ").map(str::to_owned)
    }

    /// The caller of `channel` presses `digit` (the core `DTMF` event FreeSWITCH sends).
    pub fn caller_dtmf(&self, channel: &str, digit: char) -> bool {
        self.core
            .api(&format!("sim_dtmf {channel} {digit}"))
            .starts_with("+OK")
    }

    /// The caller starts (`on`) or stops speaking; false for an unknown channel.
    pub fn caller_talk(&self, channel: &str, on: bool) -> bool {
        let state = if on { "on" } else { "off" };
        self.core
            .api(&format!("sim_talk {channel} {state}"))
            .starts_with("+OK")
    }

    /// Fires a HEARTBEAT (and its RE_SCHEDULE) now.
    pub fn heartbeat_now(&self) {
        self.core.heartbeat();
    }

    /// Closes every ESL connection without a word, as a network failure would.
    pub fn drop_connections(&self) {
        self.faults.send_modify(|f| {
            f.generation += 1;
            f.notice_on_drop = false;
        });
    }

    /// A FreeSWITCH restart: connections get the shutdown notice and are closed; calls and
    /// rooms are gone; a new Core-UUID; the event sequence starts again.
    pub fn restart(&self) {
        self.faults.send_modify(|f| {
            f.generation += 1;
            f.notice_on_drop = true;
        });
        self.core.restart();
    }

    pub fn set_heartbeats(&self, on: bool) {
        self.faults.send_modify(|f| f.heartbeats_off = !on);
    }

    /// Holds back event delivery (events queue up) until called again with `false`.
    pub fn stall_events(&self, on: bool) {
        self.faults.send_modify(|f| f.stall_events = on);
    }

    /// Delays each event delivered from now on.
    pub fn delay_events(&self, delay: Option<Duration>) {
        self.faults.send_modify(|f| f.delay = delay);
    }

    /// Answers each `api` command this much later from now on (`None`: at once).
    pub fn delay_api(&self, delay: Option<Duration>) {
        self.faults.send_modify(|f| f.delay_api = delay);
    }

    /// Stops delivering events whose `header` equals `value` (e.g. `Action` `add-member`).
    pub fn drop_events(&self, header: &str, value: &str) {
        self.faults.send_modify(|f| {
            f.drop_events.push(DropRule {
                header: header.into(),
                value: value.into(),
            })
        });
    }

    pub fn clear_dropped_events(&self) {
        self.faults.send_modify(|f| f.drop_events.clear());
    }
}

async fn accept_loop(
    listener: TcpListener,
    core: Arc<Core>,
    faults: watch::Receiver<Fault>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "simulator: new ESL connection");
                    let core = core.clone();
                    let faults = faults.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = listener::serve(stream, core, faults) => {}
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "simulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn heartbeat_loop(
    core: Arc<Core>,
    faults: watch::Receiver<Fault>,
    period: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {
                if !faults.borrow().heartbeats_off {
                    core.heartbeat();
                }
            }
        }
    }
}
