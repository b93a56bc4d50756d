//! The API's HTTP listener, hardened against clients that hold connections open: every
//! connection has a time limit on its request headers (which is also its keep-alive idle
//! limit), a stalled reader is cut off, and the open connections are bounded per client
//! address and per instance, below the process's file limit.
//!
//! Past a bound, a connection is accepted, told `503` in one non-blocking write and closed,
//! so the kernel's accept queue never fills behind it and `/healthz` stays reachable for
//! every other client. What a request may do once in (bodies, per-app shares) is
//! [`crate::api::admission`]'s.
//!
//! Holds no room, no store and no ESL: bytes and connections only.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The connection-level limits (`[limits]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a connection's opening, or the end of its previous answer, to the end of the next
    /// request's headers: the slow-headers limit and the keep-alive idle limit at once.
    pub header_timeout: Duration,
    /// How long an answer may wait on a client that reads nothing before the connection is
    /// closed (an event stream included).
    pub write_stall: Duration,
    /// Connections open at once on this listener (0: derived from the file limit).
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 /64 counts as one; 0: no
    /// bound, e.g. behind a proxy that is every client's address).
    pub connections_per_client: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            write_stall: Duration::from_secs(10),
            max_connections: 0,
            connections_per_client: 256,
        }
    }
}

/// File descriptors kept for everything but API connections: Redis, the nodes' Event Sockets,
/// webhooks, recordings, logs.
pub const RESERVED_FILES: u64 = 512;

/// Raises the soft open-file limit to the hard one (what a process may do unprivileged), and
/// returns the limit in force then; `None` where it cannot be read.
pub fn raise_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "the open-file limit could not be read or raised");
            None
        }
    }
}

/// The connection bound for a file limit: what is left once [`RESERVED_FILES`] are kept,
/// at least 64, at most 65,536.
pub fn connections_for(file_limit: Option<u64>) -> usize {
    let limit = file_limit.unwrap_or(1024);
    limit.saturating_sub(RESERVED_FILES).clamp(64, 65_536) as usize
}

/// Who a connection is counted against: its IPv4 address, or its IPv6 /64 (one host's
/// addresses, usually).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(bits.into()))
                }
            },
        }
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Client,
    Instance,
}

/// The open connections, in all and per client. A std mutex: never held across an `.await`.
#[derive(Debug)]
pub struct Connections {
    open: Mutex<Open>,
    most: usize,
    per_client: usize,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_client: HashMap<ClientKey, usize>,
}

/// One admitted connection; counted until dropped.
#[derive(Debug)]
pub struct Admitted {
    connections: Arc<Connections>,
    client: ClientKey,
}

impl Connections {
    pub fn new(most: usize, per_client: usize) -> Arc<Connections> {
        Arc::new(Connections {
            open: Mutex::new(Open::default()),
            most: most.max(1),
            per_client,
        })
    }

    /// Counts a connection from `client` in, or says which bound it is past.
    pub fn admit(self: &Arc<Self>, client: ClientKey) -> Result<Admitted, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.most {
            return Err(Refused::Instance);
        }
        let mine = open.by_client.entry(client).or_default();
        if self.per_client > 0 && *mine >= self.per_client {
            return Err(Refused::Client);
        }
        *mine += 1;
        open.total += 1;
        Ok(Admitted {
            connections: self.clone(),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().map_or(0, |o| o.total)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

/// Serves `router` on `listener` under `limits` until `stop`; then each connection finishes
/// its request in progress and closes, and this returns once all have.
pub async fn serve(
    router: axum::Router,
    listener: TcpListener,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> io::Result<()> {
    let most = match limits.max_connections {
        0 => connections_for(raise_file_limit()),
        n => n,
    };
    let connections = Connections::new(most, limits.connections_per_client);
    tracing::info!(
        max_connections = most,
        connections_per_client = limits.connections_per_client,
        "API connections bounded"
    );
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        match connections.admit(ClientKey::of(peer.ip())) {
            Ok(admitted) => {
                let task = connection(router.clone(), stream, peer, limits, stop.clone());
                tracker.spawn(async move {
                    task.await;
                    drop(admitted);
                });
            }
            Err(why) => turn_away(&stream, why),
        }
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// An accept that failed: out of files (EMFILE, ENFILE) waits a moment instead of spinning;
/// a connection reset before it was accepted is nothing.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting an API connection failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Tells a connection past a bound why, in one write that never waits, and lets it close.
fn turn_away(stream: &TcpStream, why: Refused) {
    crate::telemetry::connection_refused(match why {
        Refused::Client => "client",
        Refused::Instance => "instance",
    });
    let body: &[u8] = match why {
        Refused::Client => {
            br#"{"success":false,"error":"Too many connections from this address","detail":null}"#
        }
        Refused::Instance => {
            br#"{"success":false,"error":"Too many connections to this instance","detail":null}"#
        }
    };
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = stream.try_write(&[head.as_bytes(), body].concat());
}

/// One connection, HTTP/1.1, until the client closes it, a limit cuts it, or `stop` (then it
/// finishes the request in progress).
async fn connection(
    router: axum::Router,
    stream: TcpStream,
    peer: SocketAddr,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Stalling::new(stream, limits.write_stall));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let served = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(served);
    tokio::select! {
        _ = &mut served => return,
        _ = stop.cancelled() => {}
    }
    served.as_mut().graceful_shutdown();
    let _ = served.await;
}

/// A stream whose writes may wait on the client at most `stall` at a time: a client that
/// stops reading (its window full) is cut off instead of holding the answer, and the
/// connection, for ever.
struct Stalling<T> {
    inner: T,
    stall: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<T: AsyncWrite + Unpin> Stalling<T> {
    fn new(inner: T, stall: Duration) -> Stalling<T> {
        Stalling {
            inner,
            stall,
            waiting: None,
        }
    }

    /// After a write that could not go on: starts the stall's clock, or fails once it ran out.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let stall = self.stall;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        ready!(waiting.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing for too long",
        ))
    }

    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                self.waiting = None;
                Poll::Ready(r)
            }
            Poll::Pending => match self.stalled(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stalling<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalling<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))
    }

    #[test]
    fn a_client_is_bounded_alone_and_the_instance_in_all() {
        let c = Connections::new(3, 2);
        let a1 = c.admit(key("10.0.0.1"));
        let a2 = c.admit(key("10.0.0.1"));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(c.admit(key("10.0.0.1")).err(), Some(Refused::Client));
        let b1 = c.admit(key("10.0.0.2"));
        assert!(b1.is_ok());
        assert_eq!(c.admit(key("10.0.0.3")).err(), Some(Refused::Instance));
        drop(a1);
        assert_eq!(c.open(), 2);
        assert!(
            c.admit(key("10.0.0.1")).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn an_ipv6_64_is_one_client_and_a_mapped_ipv4_is_its_ipv4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_waits_on_a_client_that_reads_nothing_for_the_stall_at_most() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (ours, mut theirs) = tokio::io::duplex(16);
        let mut conn = Stalling::new(ours, Duration::from_secs(10));
        conn.write_all(&[0; 16]).await.ok();
        let start = tokio::time::Instant::now();
        let stuck = conn.write_all(&[1; 16]).await;
        assert_eq!(stuck.err().map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // A client that reads keeps it going, however long the whole answer takes.
        let mut conn = Stalling::new(conn.inner, Duration::from_secs(10));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(6)).await;
                let _ = theirs.read(&mut buf).await;
            }
        });
        assert!(conn.write_all(&[2; 48]).await.is_ok());
        let _ = reader.await;
    }

    #[test]
    fn the_bound_keeps_files_for_the_rest() {
        assert_eq!(connections_for(Some(1024)), 512);
        assert_eq!(connections_for(Some(100)), 64);
        assert_eq!(connections_for(Some(1 << 20)), 65_536);
    }
}
