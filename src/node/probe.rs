//! Whether a node answers at all. A node can hang with its sockets open (paused, starved, a
//! blocked disk): the kernel still takes our bytes, nothing comes back, and FreeSWITCH's
//! heartbeat (every 20 s) is far too slow to tell. So each connected period of a node's
//! supervisor, on every instance (the one applying its events and those on standby), runs a
//! probe: every [`NodeConfig::probe_interval`] a cheap command on an Event Socket connection of
//! its own, and a node that leaves one unanswered past [`NodeConfig::probe_deadline`] is
//! [`Health::Hung`]. The answer, whenever it comes, makes it [`Health::Answering`] again at once:
//! nothing is reconnected, and the event connection keeps its own silence watch.
//!
//! The command is `global_getvar core_uuid`: FreeSWITCH runs it on the connection's own thread
//! (`api` is not queued anywhere), reading one global variable under a read lock; it touches no
//! session, the core database or the event system, so a node that is merely busy answers it.
//! The connection is the probe's own so that a probe never waits behind a slow command of ours
//! (FreeSWITCH runs one connection's commands in turn: an `http_put` of a recording takes
//! seconds) and is never taken for a hang; one outstanding probe at a time.
//!
//! While a node is hung, [`super::NodeHandle`] refuses its commands at once
//! ([`super::NodeError::Hung`]: 503 with `Retry-After`), fails the `api` commands already
//! waiting as timed out, places no room on it, and the owner skips its audits.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{NodeConfig, describe};
use crate::esl::{ApiCommand, Client, ClientConfig, ClientError, Password};

/// See [`NodeConfig::probe_interval`].
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// See [`NodeConfig::probe_deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);

/// A deadline noticed this long after it passed was missed by this process, not by the node.
const WOKEN_LATE: Duration = Duration::from_millis(250);

/// Whether the node answers, as its probe last found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// It answered its last probe in time (or has not been probed yet, or the probe is off).
    #[default]
    Answering,
    /// A probe sent at `since` is still unanswered past its deadline.
    Hung { since: Instant },
}

impl Health {
    /// How long the node has been hung (from the probe it left unanswered), if it is.
    pub fn hung_for(&self) -> Option<Duration> {
        match self {
            Health::Answering => None,
            Health::Hung { since } => Some(since.elapsed()),
        }
    }

    pub fn is_hung(&self) -> bool {
        matches!(self, Health::Hung { .. })
    }
}

/// A node's health that never changes from [`Health::Answering`] (no probe runs).
pub fn unprobed() -> watch::Receiver<Health> {
    watch::channel(Health::Answering).1
}

/// Resolves once `health` says hung; never if its probe has ended.
pub async fn hung(mut health: watch::Receiver<Health>) {
    if health.wait_for(Health::is_hung).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Starts the probe of one connected period of a node; it ends with `stop` (cancel it when the
/// period ends). `client` is the node's command connections' configuration. With a zero
/// `probe_interval` nothing runs and the node is always answering.
pub fn spawn(
    config: Arc<NodeConfig>,
    client: ClientConfig,
    stop: CancellationToken,
) -> watch::Receiver<Health> {
    let (health, rx) = watch::channel(Health::Answering);
    if config.probe_interval.is_zero() {
        return rx;
    }
    // Counted by the probe's own metrics, not among the node's commands.
    let client = ClientConfig {
        metrics_node: None,
        ..client
    };
    crate::telemetry::node_hung(config.prefix.as_str(), false);
    tokio::spawn(async move {
        let probe = Probe {
            config,
            client,
            health,
        };
        tokio::select! {
            () = stop.cancelled() => {}
            () = probe.run() => {}
        }
        // The period is over: whatever the node does now is the next period's to find.
        crate::telemetry::node_hung(probe.config.prefix.as_str(), false);
        probe.health.send_replace(Health::Answering);
    });
    rx
}

struct Probe {
    config: Arc<NodeConfig>,
    client: ClientConfig,
    health: watch::Sender<Health>,
}

impl Probe {
    async fn run(&self) {
        let (Ok(password), Ok(command)) = (
            Password::new(&self.config.password),
            ApiCommand::new("global_getvar").and_then(|c| c.arg("core_uuid")),
        ) else {
            return;
        };
        let interval = self.config.probe_interval;
        loop {
            let sent = Instant::now();
            let connecting = Client::connect(&self.config.addr, &password, self.client.clone());
            // A node that accepts the connection and never greets it is hung too.
            let client = match self.answered(connecting, sent).await {
                Ok((client, _events)) => client,
                Err(e) => {
                    tracing::debug!(node = %describe(&self.config), error = %e, "media node probe could not connect");
                    tokio::time::sleep_until((sent + interval).into()).await;
                    continue;
                }
            };
            let mut next = Instant::now();
            loop {
                tokio::time::sleep_until(next.into()).await;
                let sent = Instant::now();
                next = sent + interval;
                match self.answered(client.api(&command), sent).await {
                    Ok(_) => {}
                    // Past even the command timeout: still hung, and probed again at once
                    // (queued behind the first: both are answered when the node is back).
                    Err(ClientError::Timeout(_)) => next = Instant::now(),
                    // Closed: the node went away (the supervisor finds that out on its own
                    // connections), or only this connection did.
                    Err(_) => break,
                }
            }
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// Waits for `work`, sent at `sent`. Past the deadline the node is hung, and the answer is
    /// still waited for: when it comes, the node answers again at once. A deadline this process
    /// wakes up to well after it passed says that the process was paused or starved, not the
    /// node (the answer may be waiting, unread, on the socket): it gets one more deadline.
    async fn answered<T>(
        &self,
        work: impl Future<Output = Result<T, ClientError>>,
        sent: Instant,
    ) -> Result<T, ClientError> {
        tokio::pin!(work);
        let deadline = self.config.probe_deadline;
        let mut due = sent + deadline;
        let mut extended = false;
        let result = loop {
            tokio::select! {
                biased;
                result = &mut work => break result,
                () = tokio::time::sleep_until(due.into()) => {
                    let now = Instant::now();
                    if !extended && now.saturating_duration_since(due) > WOKEN_LATE {
                        extended = true;
                        due = now + deadline;
                        continue;
                    }
                    self.hang(sent);
                    break work.await;
                }
            }
        };
        if result.is_ok() {
            self.answer();
        }
        result
    }

    fn hang(&self, since: Instant) {
        let newly = self.health.send_if_modified(|h| match h {
            Health::Answering => {
                *h = Health::Hung { since };
                true
            }
            Health::Hung { .. } => false,
        });
        if newly {
            crate::telemetry::node_hung(self.config.prefix.as_str(), true);
            tracing::warn!(node = %describe(&self.config), deadline = ?self.config.probe_deadline, "media node does not answer (hung): its commands are refused until it does");
        }
    }

    fn answer(&self) {
        // Receivers are told only of a change (commands waiting on the node watch for a hang).
        let mut was = None;
        self.health.send_if_modified(|h| {
            was = h.hung_for();
            *h = Health::Answering;
            was.is_some()
        });
        if let Some(hung) = was {
            crate::telemetry::node_hung(self.config.prefix.as_str(), false);
            tracing::info!(node = %describe(&self.config), hung_for = ?hung, "media node answers again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::NodePrefix;
    use crate::esl::RequestCodec;
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_util::codec::Framed;

    /// A node's Event Socket whose answers wait while `paused` is true (the commands are read
    /// and queued, as the kernel queues them for a stopped process), counting connections.
    async fn node(paused: watch::Receiver<bool>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut paused = paused.clone();
                tokio::spawn(async move {
                    let mut framed = Framed::new(socket, RequestCodec::default());
                    let _ = paused.wait_for(|p| !*p).await;
                    let greeting = Bytes::from_static(b"Content-Type: auth/request\n\n");
                    if framed.send(greeting).await.is_err() {
                        return;
                    }
                    let _auth = framed.next().await;
                    let _ = framed
                        .send(Bytes::from_static(
                            b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n",
                        ))
                        .await;
                    while let Some(Ok(_request)) = framed.next().await {
                        let _ = paused.wait_for(|p| !*p).await;
                        let body = "0a1b2c3d-core";
                        let reply = format!(
                            "Content-Type: api/response\nContent-Length: {}\n\n{body}",
                            body.len()
                        );
                        if framed.send(Bytes::from(reply)).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn config(addr: &str) -> Arc<NodeConfig> {
        let mut c = NodeConfig::new(NodePrefix::parse("prb01").unwrap(), addr, "ClueCon");
        c.probe_interval = Duration::from_millis(100);
        c.probe_deadline = Duration::from_millis(200);
        Arc::new(c)
    }

    async fn becomes(health: &mut watch::Receiver<Health>, hung: bool) {
        tokio::time::timeout(
            Duration::from_secs(5),
            health.wait_for(|h| h.is_hung() == hung),
        )
        .await
        .expect("in time")
        .expect("the probe runs");
    }

    #[tokio::test]
    async fn a_node_that_stops_answering_is_hung_past_the_deadline_and_answers_again_at_once() {
        let (pause, paused) = watch::channel(false);
        let (addr, accepted) = node(paused).await;
        let stop = CancellationToken::new();
        let mut health = spawn(config(&addr), ClientConfig::default(), stop.clone());
        // Answering, probed over and over on one connection.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(*health.borrow(), Health::Answering);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);

        pause.send_replace(true);
        let paused_at = Instant::now();
        becomes(&mut health, true).await;
        // A probe sent within an interval of the pause, hung a deadline later.
        let found = paused_at.elapsed();
        assert!(found < Duration::from_millis(600), "{found:?}");
        // Held: it stays hung (no answer ends it, nothing else does).
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(health.borrow().is_hung());
        assert!(health.borrow().hung_for().unwrap() >= Duration::from_millis(700));

        pause.send_replace(false);
        let resumed = Instant::now();
        becomes(&mut health, false).await;
        assert!(
            resumed.elapsed() < Duration::from_millis(100),
            "{:?}",
            resumed.elapsed()
        );
        // On the same connection.
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Stopped with its period: answering, whatever comes next.
        pause.send_replace(true);
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(*health.borrow(), Health::Answering);
    }

    /// This process paused (here: its runtime's thread blocked) while a probe's answer was on
    /// its way: when it wakes up past the deadline, the answer is there but not read yet (here:
    /// ready on the poll after next), and the node is not taken for hung.
    #[test]
    fn a_deadline_missed_by_a_paused_controller_does_not_make_the_node_hung() {
        let controller = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        controller.block_on(async {
            let (health, rx) = watch::channel(Health::Answering);
            let probe = Probe {
                config: config("127.0.0.1:9"),
                client: ClientConfig::default(),
                health,
            };
            let sent = Instant::now();
            let answer = async move {
                tokio::time::sleep_until((sent + Duration::from_millis(50)).into()).await;
                tokio::task::yield_now().await;
                Ok::<_, ClientError>(())
            };
            let waiting = tokio::spawn(async move {
                let answered = probe.answered(answer, sent).await;
                (answered, probe)
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
            // Paused three deadlines long.
            std::thread::sleep(Duration::from_millis(600));
            let (answered, _probe) = waiting.await.unwrap();
            answered.unwrap();
            assert!(!rx.has_changed().unwrap(), "the node was taken for hung");
            assert_eq!(*rx.borrow(), Health::Answering);
        });
    }

    #[tokio::test]
    async fn a_node_that_takes_connections_and_never_greets_them_is_hung() {
        let (_pause, paused) = watch::channel(true);
        let (addr, _) = node(paused).await;
        let stop = CancellationToken::new();
        let mut health = spawn(config(&addr), ClientConfig::default(), stop.clone());
        becomes(&mut health, true).await;
        stop.cancel();
    }

    #[tokio::test]
    async fn a_probe_interval_of_zero_probes_nothing() {
        let (_pause, paused) = watch::channel(true);
        let (addr, accepted) = node(paused).await;
        let mut c = NodeConfig::clone(&config(&addr));
        c.probe_interval = Duration::ZERO;
        let health = spawn(
            Arc::new(c),
            ClientConfig::default(),
            CancellationToken::new(),
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(*health.borrow(), Health::Answering);
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
