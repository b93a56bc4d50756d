//! The client side of one Event Socket connection: connect, authenticate, then hand the socket to
//! one task ([`connection`](super::connection)) that owns it. [`Client`] handles are cheap clones
//! that talk to that task; events come out of the [`EventStream`] in the order they arrived.
//!
//! Reconnecting is not done here: when the connection ends, every pending call fails with
//! [`ClientError::Disconnected`] and [`Client::closed`] says why. The node supervisor decides
//! what happens next.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;
use uuid::Uuid;

use super::codec::{EslCodec, Limits};
use super::command::{ApiCommand, Command, EventFormat, EventSet, Password};
use super::connection::{self, CloseReason, Request};
use super::error::ClientError;
use super::event::Event;
use super::frame::{ContentType, Frame};
use super::reply::{ApiReply, reply_result};
use super::wake::{WakeState, Waker};
use crate::telemetry::EslResult;

/// What a connection does when its consumer falls `max_event_backlog` events behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Close the connection (the caller reconnects and resyncs): for connections that also carry
    /// commands, which a stalled socket would hold up.
    Close,
    /// Stop reading the socket until the consumer catches up, so TCP pushes back on FreeSWITCH:
    /// for a connection used for events (and the few commands whose answers must be ordered
    /// with them: while one waits, reads go on past the cap until its reply comes). Logged,
    /// never silent.
    Backpressure,
}

/// See [`ClientConfig::wake_interval`]: an event fired on the node reaches an awake connection
/// within about this, not 20 ms.
pub const DEFAULT_WAKE_INTERVAL: Duration = Duration::from_millis(1);

/// Settings of one client connection.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// TCP connect, greeting and authentication together.
    pub connect_timeout: Duration,
    /// How long a command waits for its reply. A late reply is still matched and discarded.
    pub command_timeout: Duration,
    /// How long a `bgapi` job may run before its waiter fails.
    pub job_timeout: Duration,
    /// Capacity of the event channel handed to the consumer.
    pub event_channel: usize,
    /// Events held back while the consumer is slow; what happens past it is `overflow`.
    pub max_event_backlog: usize,
    pub overflow: Overflow,
    pub limits: Limits,
    /// The node this connection's `api`/`bgapi` commands are counted under in the metrics
    /// (`switchyard_esl_commands_total`); `None` counts nothing.
    pub metrics_node: Option<String>,
    /// While a [`Waker`] window is open, one `\n` is written this often (zero: never), so that
    /// FreeSWITCH's thread for the connection looks at its event queue at least this often
    /// instead of every 20 ms (see `wake.rs`).
    pub wake_interval: Duration,
    /// Where the connection keeps plain events instead of streaming them, while the tape is
    /// taping (see [`Tape`](super::Tape)); `None`: never.
    pub tape: Option<Arc<super::tape::Tape>>,
    /// How many bytes one read from the socket takes at most: a connection that carries a
    /// node's events reads a burst in fewer system calls with more (the default suits one that
    /// carries commands).
    pub read_buffer: usize,
}

/// [`ClientConfig::read_buffer`] by default (tokio-util's own).
pub const DEFAULT_READ_BUFFER: usize = 8 * 1024;

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
            job_timeout: Duration::from_secs(120),
            event_channel: 4096,
            max_event_backlog: 100_000,
            overflow: Overflow::Close,
            limits: Limits::default(),
            metrics_node: None,
            wake_interval: DEFAULT_WAKE_INTERVAL,
            tape: None,
            read_buffer: DEFAULT_READ_BUFFER,
        }
    }
}

/// A handle to an authenticated connection. Clone it freely; the connection lives until FreeSWITCH
/// closes it, [`Client::exit`] is called, or every handle and the event stream are dropped.
#[derive(Debug, Clone)]
pub struct Client {
    requests: mpsc::Sender<Request>,
    closed: watch::Receiver<Option<Arc<CloseReason>>>,
    config: Arc<ClientConfig>,
    /// Requests submitted and not yet answered (shared with the connection task, which counts
    /// the answers).
    pending: Arc<AtomicUsize>,
    wake: Arc<WakeState>,
}

/// The events of one connection, in arrival order. Ends after the connection closed and every
/// event that arrived before has been delivered.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
    /// Events taken from it so far.
    received: u64,
}

impl EventStream {
    pub async fn recv(&mut self) -> Option<Event> {
        let event = self.rx.recv().await;
        self.received += u64::from(event.is_some());
        event
    }

    /// The next event if one is already waiting (to batch a burst).
    pub fn try_recv(&mut self) -> Option<Event> {
        let event = self.rx.try_recv().ok();
        self.received += u64::from(event.is_some());
        event
    }

    /// How many events have been taken from the stream (see [`Taped::after_streamed`](super::Taped::after_streamed)).
    pub fn received(&self) -> u64 {
        self.received
    }
}

impl Client {
    /// Connects over TCP (with keepalive and no Nagle) and authenticates.
    pub async fn connect(
        addr: &str,
        password: &Password,
        config: ClientConfig,
    ) -> Result<(Client, EventStream), ClientError> {
        let connect_err = |reason: String| ClientError::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| connect_err("timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| connect_err(e.to_string()))?;
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(10))
            .with_interval(Duration::from_secs(5));
        socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(|e| connect_err(e.to_string()))?;
        Client::handshake(stream, password, config).await
    }

    /// Authenticates over an already connected stream and starts the connection task.
    pub async fn handshake<S>(
        stream: S,
        password: &Password,
        config: ClientConfig,
    ) -> Result<(Client, EventStream), ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut framed = Framed::with_capacity(
            stream,
            EslCodec::with_tape(config.limits, config.tape.clone()),
            config.read_buffer.max(1),
        );
        tokio::time::timeout(config.connect_timeout, authenticate(&mut framed, password))
            .await
            .map_err(|_| ClientError::Timeout("auth/request and authentication".into()))??;
        let (requests, rx) = mpsc::channel(256);
        let (events_tx, events_rx) = mpsc::channel(config.event_channel.max(1));
        let (closed_tx, closed) = watch::channel(None);
        let config = Arc::new(config);
        let pending = Arc::new(AtomicUsize::new(0));
        let wake = WakeState::new();
        tokio::spawn(connection::run(
            framed,
            rx,
            events_tx,
            closed_tx,
            config.clone(),
            pending.clone(),
            wake.clone(),
        ));
        Ok((
            Client {
                requests,
                closed,
                config,
                pending,
                wake,
            },
            EventStream {
                rx: events_rx,
                received: 0,
            },
        ))
    }

    /// Sends one command and returns the frame that answers it (`command/reply` or
    /// `api/response`). Replies are matched strictly in order.
    pub async fn send(&self, command: Command) -> Result<Frame, ClientError> {
        Ok(self.send_marked(command).await?.0)
    }

    /// [`Client::send`], with the newest `Event-Sequence` received before the reply.
    async fn send_marked(&self, command: Command) -> Result<(Frame, u64), ClientError> {
        let what = command.describe();
        let (tx, rx) = oneshot::channel();
        self.submit(Request::Command { command, reply: tx }).await?;
        match tokio::time::timeout(self.config.command_timeout, rx).await {
            Err(_) => Err(ClientError::Timeout(format!("the reply to {what}"))),
            Ok(Err(_)) => Err(self.disconnected()),
            Ok(Ok(result)) => result,
        }
    }

    /// `api <command>`: runs on FreeSWITCH's connection thread; its output comes back.
    pub async fn api(&self, command: &ApiCommand) -> Result<ApiReply, ClientError> {
        let started = Instant::now();
        let result = self.api_once(command).await;
        self.count(&result, started);
        result
    }

    async fn api_once(&self, command: &ApiCommand) -> Result<ApiReply, ClientError> {
        let (frame, events_before) = self.send_marked(Command::Api(command.clone())).await?;
        if frame.content_type() != &ContentType::ApiResponse {
            return Err(ClientError::Protocol(format!(
                "api {} answered with {}",
                command.name(),
                frame.content_type()
            )));
        }
        Ok(
            ApiReply::new(command.name(), frame.body_bytes().unwrap_or_default())
                .after_events(events_before),
        )
    }

    /// `bgapi <command>` with a Job-UUID of ours; resolves with the BACKGROUND_JOB body. The
    /// connection must be subscribed to BACKGROUND_JOB (and let it through its filters).
    pub async fn bgapi(&self, command: &ApiCommand) -> Result<ApiReply, ClientError> {
        let started = Instant::now();
        let result = self.bgapi_once(command).await;
        self.count(&result, started);
        result
    }

    async fn bgapi_once(&self, command: &ApiCommand) -> Result<ApiReply, ClientError> {
        let job_uuid = Uuid::new_v4();
        let (tx, rx) = oneshot::channel();
        self.submit(Request::Job {
            command: command.clone(),
            job_uuid,
            result: tx,
        })
        .await?;
        match rx.await {
            Err(_) => Err(self.disconnected()),
            Ok(result) => result,
        }
    }

    /// `event <format> <names…> [CUSTOM <subclasses…>]`.
    pub async fn subscribe(
        &self,
        format: EventFormat,
        events: EventSet,
    ) -> Result<(), ClientError> {
        self.expect_ok(Command::Event { format, events }).await
    }

    pub async fn nixevent(&self, events: EventSet) -> Result<(), ClientError> {
        self.expect_ok(Command::NixEvent(events)).await
    }

    pub async fn noevents(&self) -> Result<(), ClientError> {
        self.expect_ok(Command::NoEvents).await
    }

    pub async fn filter(&self, header: &str, value: &str) -> Result<(), ClientError> {
        self.expect_ok(Command::filter(header, value)?).await
    }

    pub async fn filter_delete(
        &self,
        header: &str,
        value: Option<&str>,
    ) -> Result<(), ClientError> {
        self.expect_ok(Command::filter_delete(header, value)?).await
    }

    /// `exit`: FreeSWITCH answers `+OK bye` and closes the connection.
    pub async fn exit(&self) -> Result<(), ClientError> {
        self.expect_ok(Command::Exit).await
    }

    /// Resolves when the connection has ended, with the reason.
    pub async fn closed(&self) -> Arc<CloseReason> {
        let mut closed = self.closed.clone();
        loop {
            if let Some(reason) = closed.borrow_and_update().clone() {
                return reason;
            }
            if closed.changed().await.is_err() {
                return Arc::new(CloseReason::task_gone());
            }
        }
    }

    /// A handle that keeps FreeSWITCH's side of this connection awake for a while: for the
    /// connection events are expected on, while a command that causes them runs on another.
    pub fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    /// Commands sent on this connection that FreeSWITCH has not answered yet (a `bgapi` until
    /// it accepted the job), timed-out ones included: FreeSWITCH runs a connection's commands
    /// one at a time, so a new command waits behind all of them.
    pub fn in_flight(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// `sendmsg` to a channel: `+OK` means only that the message was queued to it.
    pub async fn sendmsg(&self, command: Command) -> Result<(), ClientError> {
        self.expect_ok(command).await
    }

    async fn expect_ok(&self, command: Command) -> Result<(), ClientError> {
        let what = command.describe();
        let frame = self.send(command).await?;
        reply_result(&what, frame.reply_text().as_deref()).map(drop)
    }

    async fn submit(&self, request: Request) -> Result<(), ClientError> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.requests.send(request).await.map_err(|_| {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.disconnected()
        })
    }

    /// Records a finished command in the metrics, when this connection is counted.
    fn count(&self, result: &Result<ApiReply, ClientError>, started: Instant) {
        let Some(node) = &self.config.metrics_node else {
            return;
        };
        let outcome = match result {
            Ok(reply) if reply.is_error() => EslResult::Error,
            Ok(_) => EslResult::Ok,
            Err(ClientError::Timeout(_)) => EslResult::Timeout,
            Err(ClientError::Disconnected(_)) => EslResult::Disconnected,
            Err(_) => EslResult::Failed,
        };
        crate::telemetry::esl_command(node, outcome, started.elapsed());
    }

    fn disconnected(&self) -> ClientError {
        match self.closed.borrow().as_ref() {
            Some(reason) => ClientError::Disconnected(reason.to_string()),
            None => ClientError::Disconnected("connection task ended".into()),
        }
    }
}

/// Waits for `auth/request`, sends `auth`, and reads the verdict.
async fn authenticate<S>(
    framed: &mut Framed<S, EslCodec>,
    password: &Password,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let greeting = next_frame(framed).await?;
    match greeting.content_type() {
        ContentType::AuthRequest => {}
        ContentType::RudeRejection => {
            let text = greeting
                .body_text()
                .unwrap_or_default()
                .trim_end()
                .to_owned();
            return Err(ClientError::Rejected(text));
        }
        ContentType::DisconnectNotice => {
            let text = greeting
                .body_text()
                .unwrap_or_default()
                .trim_end()
                .to_owned();
            return Err(ClientError::Disconnected(text));
        }
        other => {
            return Err(ClientError::Protocol(format!(
                "expected auth/request, got {other}"
            )));
        }
    }
    framed
        .send(Command::Auth(password.clone()))
        .await
        .map_err(|e| ClientError::Disconnected(e.to_string()))?;
    let reply = next_frame(framed).await?;
    match reply.reply_text() {
        Some(text) if text.starts_with("+OK") => Ok(()),
        Some(text) => Err(ClientError::AuthFailed(text.into_owned())),
        None => Err(ClientError::Protocol(format!(
            "expected a reply to auth, got {}",
            reply.content_type()
        ))),
    }
}

async fn next_frame<S>(framed: &mut Framed<S, EslCodec>) -> Result<Frame, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match framed.next().await {
        Some(Ok(frame)) => Ok(frame),
        Some(Err(e)) if e.is_protocol_error() => Err(ClientError::Protocol(e.to_string())),
        Some(Err(e)) => Err(ClientError::Disconnected(e.to_string())),
        None => Err(ClientError::Disconnected(
            "closed before authentication".into(),
        )),
    }
}
