//! A TCP proxy between the controller and a node, to cut the Event Socket connections as a
//! network fault would: [`Proxy::cut`] drops every open connection (both ends see a reset or
//! EOF) and refuses new ones until [`Proxy::heal`]; [`Proxy::freeze`] passes nothing more while
//! keeping every connection open (and accepts new ones that get nothing), as a hung node does.
//! [`Proxy::hold_replies`] holds back what the upstream sends (a push, a reply) while what the
//! client sends still goes through, until [`Proxy::release_replies`]: a client whose server's
//! news is late, and a way to see whether it asks the server anything meanwhile.
//! [`Proxy::commands`] lists the commands clients sent through it (each `api`/`bgapi` line, when
//! it passed): which instance asked a node what, when one proxy stands before each instance;
//! [`Proxy::lines`] every line they sent (a Redis client's keys, say). [`Proxy::delay_replies`]
//! delivers what the upstream sends that much after it arrived, as a distant server would.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

pub struct Proxy {
    pub addr: SocketAddr,
    /// Bumped by every cut: a connection ends when the generation it started in is over.
    generation: watch::Sender<usize>,
    refusing: Arc<AtomicBool>,
    frozen: watch::Sender<bool>,
    /// Upstream bytes are held back while true.
    holding: watch::Sender<bool>,
    /// Client sends passed upstream while holding (reset by each hold).
    asked: watch::Sender<u64>,
    /// How long after it arrived an upstream byte is passed on.
    latency: watch::Sender<Duration>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    /// Every line clients sent upstream, and when it passed.
    sent: Commands,
    /// The local address of each connection made upstream (as the upstream sees its client).
    upstreams: Arc<std::sync::Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

type Commands = Arc<std::sync::Mutex<Vec<(std::time::Instant, String)>>>;

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (generation, _) = watch::channel(0usize);
        let refusing = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (frozen, _) = watch::channel(false);
        let (holding, _) = watch::channel(false);
        let (asked, _) = watch::channel(0u64);
        let (latency, _) = watch::channel(Duration::ZERO);
        let latency_tx = latency.clone();
        let (gen_tx, refuse, count) = (generation.clone(), refusing.clone(), accepted.clone());
        let frozen_tx = frozen.clone();
        let (holding_tx, asked_tx) = (holding.clone(), asked.clone());
        let sent = Commands::default();
        let sent_tx = sent.clone();
        let upstreams = Arc::<std::sync::Mutex<Vec<SocketAddr>>>::default();
        let upstreams_tx = upstreams.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let mut cut = gen_tx.subscribe();
                let mut hung = frozen_tx.subscribe();
                let born = *cut.borrow();
                let upstream = upstream.clone();
                let (holding, asked) = (holding_tx.clone(), asked_tx.clone());
                let latency = latency_tx.subscribe();
                let sent = sent_tx.clone();
                let upstreams = upstreams_tx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    if let Ok(local) = server.local_addr() {
                        upstreams.lock().unwrap().push(local);
                    }
                    let frozen = tokio::select! {
                        _ = relay(client, server, &holding, &asked, &sent, latency) => false,
                        _ = cut.wait_for(|g| *g != born) => false,
                        _ = hung.wait_for(|f| *f) => true,
                    };
                    if frozen {
                        // Both ends stay open and hear nothing, until a cut.
                        let _ = cut.wait_for(|g| *g != born).await.map(drop);
                    }
                });
            }
        });
        Proxy {
            addr,
            generation,
            refusing,
            frozen,
            holding,
            asked,
            latency,
            accepted,
            sent,
            upstreams,
            task,
        }
    }

    /// The addresses the upstream sees this proxy's connections come from.
    pub fn upstream_addrs(&self) -> Vec<SocketAddr> {
        self.upstreams.lock().unwrap().clone()
    }

    /// The `api` / `bgapi` commands sent through so far (their first line, without the
    /// `api `), with when each passed.
    pub fn commands(&self) -> Vec<(std::time::Instant, String)> {
        self.lines()
            .into_iter()
            .filter_map(|(at, line)| {
                let command = line
                    .strip_prefix("api ")
                    .or_else(|| line.strip_prefix("bgapi "))?;
                Some((at, command.to_owned()))
            })
            .collect()
    }

    /// Every line clients sent through so far (without its end), with when it passed.
    pub fn lines(&self) -> Vec<(std::time::Instant, String)> {
        self.sent.lock().unwrap().clone()
    }

    /// Holds back what the upstream sends, on every connection, until released.
    pub fn hold_replies(&self) {
        self.asked.send_replace(0);
        self.holding.send_replace(true);
    }

    /// Waits until a client sends something upstream while replies are held.
    pub async fn asked_while_held(&self) {
        let _ = self.asked.subscribe().wait_for(|n| *n > 0).await;
    }

    /// Passes on what was held back, and everything after it.
    pub fn release_replies(&self) {
        self.holding.send_replace(false);
    }

    /// Passes on each byte the upstream sends `delay` after it arrived, on every connection
    /// (bytes in flight keep theirs): a server that far away.
    pub fn delay_replies(&self, delay: Duration) {
        self.latency.send_replace(delay);
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Passes nothing more on any connection, open or new, keeping them open.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Accepts connections again.
    pub fn heal(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Copies both ways until both sides end (an end is passed on as a shutdown of the other's
/// writes, as `copy_bidirectional` does); upstream bytes wait while `holding`, and each client
/// send made while holding counts in `asked`; each upstream read is passed on `latency` after
/// it arrived (read on meanwhile, so delays do not add up).
async fn relay(
    client: TcpStream,
    server: TcpStream,
    holding: &watch::Sender<bool>,
    asked: &watch::Sender<u64>,
    sent: &Commands,
    latency: watch::Receiver<Duration>,
) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        // The client's bytes since its last whole line.
        let mut line = Vec::new();
        loop {
            match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = server_tx.shutdown().await;
                    return;
                }
                Ok(n) => {
                    if *holding.borrow() {
                        asked.send_modify(|a| *a += 1);
                    }
                    if server_tx.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let now = std::time::Instant::now();
                    for &b in &buf[..n] {
                        if b != b'\n' {
                            line.push(b);
                            continue;
                        }
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim_end_matches('\r').to_owned();
                        line.clear();
                        sent.lock().unwrap().push((now, text));
                    }
                }
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut held = holding.subscribe();
        // What was read, each with when it is due.
        let mut due: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        let mut open = true;
        loop {
            let next = due.front().map(|(at, _)| *at);
            tokio::select! {
                read = server_rx.read(&mut buf), if open => match read {
                    Ok(0) | Err(_) => open = false,
                    Ok(n) => due.push_back((Instant::now() + *latency.borrow(), buf[..n].to_vec())),
                },
                () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let Some((_, bytes)) = due.pop_front() else { continue };
                    let _ = held.wait_for(|h| !*h).await;
                    if client_tx.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            }
            if !open && due.is_empty() {
                let _ = client_tx.shutdown().await;
                return;
            }
        }
    };
    tokio::join!(up, down);
}
