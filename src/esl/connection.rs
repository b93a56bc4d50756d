//! The task that owns one authenticated Event Socket connection.
//!
//! It reads frames and routes them: `command/reply` and `api/response` to the oldest waiting
//! command (FreeSWITCH answers strictly in order, and a waiter is queued before its command is
//! written), BACKGROUND_JOB events to the `bgapi` waiter with that Job-UUID, and every event to the
//! consumer's channel. When the consumer is slow, events wait in a backlog instead of stopping the
//! socket reads (a stalled reader would stall FreeSWITCH's command thread too); a backlog past its
//! cap closes the connection rather than drop an event. When the connection ends, every waiter
//! fails with `Disconnected`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;
use tokio_util::time::{DelayQueue, delay_queue};
use uuid::Uuid;

use super::client::{ClientConfig, Overflow};
use super::codec::EslCodec;
use super::command::{ApiCommand, Command};
use super::error::ClientError;
use super::event::Event;
use super::frame::{ContentType, Frame};
use super::names::EventName;
use super::reply::ApiReply;
use super::wake::{Nudge, WakeState};

/// A command's reply, with the newest `Event-Sequence` among the events this connection had
/// received when it came (0: none). FreeSWITCH runs an `api` command on the connection's own
/// thread, the one that writes its events: every event that arrives before the reply was fired
/// before the command ran, so the command's output reflects every event numbered up to this.
pub(crate) type Answer = Result<(Frame, u64), ClientError>;

/// A request from a [`Client`](super::Client) handle.
pub(crate) enum Request {
    Command {
        command: Command,
        reply: oneshot::Sender<Answer>,
    },
    Job {
        command: ApiCommand,
        job_uuid: Uuid,
        result: oneshot::Sender<Result<ApiReply, ClientError>>,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The text of FreeSWITCH's `text/disconnect-notice` (or rude rejection), if one came.
    pub notice: Option<String>,
    /// What went wrong on our side of the socket, if anything.
    pub error: Option<String>,
}

impl CloseReason {
    pub(crate) fn task_gone() -> CloseReason {
        CloseReason {
            notice: None,
            error: Some("connection task ended".into()),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.notice, &self.error) {
            (Some(n), Some(e)) => write!(f, "{} ({e})", n.trim_end()),
            (Some(n), None) => f.write_str(n.trim_end()),
            (None, Some(e)) => f.write_str(e),
            (None, None) => f.write_str("connection closed by peer"),
        }
    }
}

/// Who waits for the next `command/reply` or `api/response`.
enum Waiter {
    Reply(oneshot::Sender<Answer>),
    /// The `command/reply` of a bgapi: `+OK Job-UUID: …`, or an error that fails the job at once.
    JobAccepted(Uuid),
}

struct Job {
    command: String,
    result: oneshot::Sender<Result<ApiReply, ClientError>>,
    deadline: delay_queue::Key,
}

struct Connection {
    waiters: VecDeque<Waiter>,
    jobs: HashMap<Uuid, Job>,
    deadlines: DelayQueue<Uuid>,
    backlog: VecDeque<Event>,
    events: mpsc::Sender<Event>,
    notice: Option<String>,
    config: Arc<ClientConfig>,
    /// The client's count of requests not yet answered; lowered here as their answers come.
    pending: Arc<AtomicUsize>,
    /// The newest `Event-Sequence` received so far (they are not in order on the wire).
    newest_sequence: u64,
    /// Told of every event, which may be one a command awaits (`wake.rs`).
    wake: Arc<WakeState>,
    /// Whether the read buffer was grown to [`TAPE_READ_BUFFER`] for a tape.
    grown: bool,
}

/// How much one read takes at most while the connection tapes: a tape consumes what it reads
/// in place, handing nothing on, so a standby reads its node's events in an eighth of the
/// system calls. Back to [`ClientConfig::read_buffer`] once the tape stops (larger reads made an
/// owner's applier fall further behind under saturation: issue 59).
const TAPE_READ_BUFFER: usize = 64 * 1024;

pub(crate) async fn run<S>(
    mut framed: Framed<S, EslCodec>,
    mut requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<Event>,
    closed: watch::Sender<Option<Arc<CloseReason>>>,
    config: Arc<ClientConfig>,
    pending: Arc<AtomicUsize>,
    wake: Arc<WakeState>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Connection {
        waiters: VecDeque::new(),
        jobs: HashMap::new(),
        deadlines: DelayQueue::new(),
        backlog: VecDeque::new(),
        events: events.clone(),
        notice: None,
        config,
        pending,
        newest_sequence: 0,
        wake: wake.clone(),
        grown: false,
    };
    let mut handles_alive = true;
    // When the next `\n` goes out while a wake window is open (`wake.rs`).
    let interval = conn.config.wake_interval;
    let mut nudge_at: Option<tokio::time::Instant> = None;
    let error: Option<String> = loop {
        conn.size_read_buffer(framed.read_buffer_mut());
        tokio::select! {
            frame = framed.next(), if !conn.reading_paused() => match frame {
                None => break None,
                Some(Err(e)) => break Some(e.to_string()),
                Some(Ok(frame)) => {
                    if let Err(e) = conn.on_frame(frame) {
                        break Some(e.to_string());
                    }
                    // A frame decoded from what is buffered costs the task no budget (only a
                    // socket read does): with a large read buffer the task would otherwise go
                    // on for thousands of events before the runtime's other tasks (a lease's
                    // renewal) run. Each frame counts, as it would if read alone.
                    tokio::task::coop::consume_budget().await;
                }
            },
            request = requests.recv(), if handles_alive => match request {
                None => handles_alive = false,
                Some(request) => {
                    let command = conn.register(request);
                    if let Err(e) = framed.send(command).await {
                        break Some(e.to_string());
                    }
                }
            },
            Some(expired) = conn.deadlines.next() => conn.expire(expired.into_inner()),
            () = wake.opened(), if nudge_at.is_none() && !interval.is_zero() => {
                nudge_at = Some(tokio::time::Instant::now() + interval);
            },
            () = wake.nudge_asked(), if !interval.is_zero() => {
                let now = tokio::time::Instant::now();
                if wake.open_at(now) {
                    nudge_at = Some(now + interval);
                    if let Err(e) = framed.send(Nudge).await {
                        break Some(e.to_string());
                    }
                }
            },
            () = tokio::time::sleep_until(nudge_at.unwrap_or_else(tokio::time::Instant::now)),
                if nudge_at.is_some() => {
                // Not once the window is over, or its awaited events came meanwhile.
                let now = tokio::time::Instant::now();
                nudge_at = wake.open_at(now).then(|| now + interval);
                if nudge_at.is_some() && let Err(e) = framed.send(Nudge).await {
                    break Some(e.to_string());
                }
            },
            // Every handle is gone and now the consumer too: nothing else would wake us.
            () = events.closed(), if !handles_alive => break None,
            permit = events.reserve(), if !conn.backlog.is_empty() => {
                if let (Ok(permit), Some(event)) = (permit, conn.backlog.pop_front()) {
                    permit.send(event);
                }
            },
        }
        if !handles_alive && events.is_closed() {
            break None;
        }
    };
    let reason = Arc::new(CloseReason {
        notice: conn.notice.take(),
        error,
    });
    tracing::debug!(%reason, "event socket connection closed");
    conn.fail_all(&reason);
    closed.send_replace(Some(reason));
    drop(framed);
    // Refuse new requests now: the drain below may wait on a slow consumer for a long time.
    drop(requests);
    // Events that arrived before the close are still delivered, in order.
    for event in conn.backlog.drain(..) {
        if events.send(event).await.is_err() {
            break;
        }
    }
}

impl Connection {
    /// Grows the read buffer while the connection tapes, and gives it back once the tape has
    /// stopped and nothing is left in it (see [`TAPE_READ_BUFFER`]).
    fn size_read_buffer(&mut self, buf: &mut BytesMut) {
        let taping = self.config.tape.as_ref().is_some_and(|t| t.taping());
        if taping {
            let want = TAPE_READ_BUFFER.max(self.config.read_buffer);
            if buf.capacity() < want {
                // In place when the events read so far were all taped (the buffer is ours
                // alone): what is left is moved to its front.
                buf.reserve(want - buf.len());
                self.grown = true;
            }
        } else if self.grown && buf.is_empty() {
            *buf = BytesMut::with_capacity(self.config.read_buffer.max(1));
            self.grown = false;
        }
    }

    /// With back-pressure, the socket is not read while the backlog is full — unless a command
    /// waits for its reply. FreeSWITCH answers after the events it had already sent, and a
    /// consumer may wait for the answer before it takes more events (a resync does): paused
    /// reads would never reach the reply. The backlog then grows by what came before it.
    fn reading_paused(&self) -> bool {
        self.config.overflow == Overflow::Backpressure
            && self.backlog.len() >= self.config.max_event_backlog
            && self.waiters.is_empty()
    }

    /// Queues the waiter for a request and returns the command to write.
    fn register(&mut self, request: Request) -> Command {
        match request {
            Request::Command { command, reply } => {
                self.waiters.push_back(Waiter::Reply(reply));
                command
            }
            Request::Job {
                command,
                job_uuid,
                result,
            } => {
                let deadline = self.deadlines.insert(job_uuid, self.config.job_timeout);
                self.jobs.insert(
                    job_uuid,
                    Job {
                        command: command.name().to_owned(),
                        result,
                        deadline,
                    },
                );
                self.waiters.push_back(Waiter::JobAccepted(job_uuid));
                Command::BgApi { command, job_uuid }
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), ClientError> {
        match frame.content_type() {
            ContentType::CommandReply | ContentType::ApiResponse => self.on_reply(frame),
            ContentType::EventPlain | ContentType::EventJson => match Event::from_frame(&frame) {
                Ok(event) => return self.on_event(event),
                Err(e) => tracing::warn!(error = %e, "undecodable event skipped"),
            },
            ContentType::DisconnectNotice => self.on_notice(&frame),
            ContentType::RudeRejection => {
                self.notice = frame.body_text().map(|t| t.into_owned());
            }
            ContentType::LogData => tracing::trace!("log/data frame ignored"),
            other => tracing::warn!(content_type = %other, "unexpected frame ignored"),
        }
        Ok(())
    }

    fn on_reply(&mut self, frame: Frame) {
        let waiter = self.waiters.pop_front();
        if waiter.is_some() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
        match waiter {
            // A dropped receiver means its caller timed out; the reply is discarded here so the
            // next reply still goes to the right waiter.
            Some(Waiter::Reply(tx)) => {
                // Events kept by a tape arrived before the reply too.
                let taped = self.config.tape.as_ref().map_or(0, |t| t.newest());
                drop(tx.send(Ok((frame, self.newest_sequence.max(taped)))))
            }
            Some(Waiter::JobAccepted(job_uuid)) => {
                let text = frame.reply_text().unwrap_or_default().into_owned();
                if !text.starts_with("+OK") {
                    self.finish_job(job_uuid, |command| {
                        Err(ClientError::CommandFailed {
                            command,
                            reply: text,
                        })
                    });
                }
            }
            None => {
                tracing::warn!(content_type = %frame.content_type(), "reply with no command waiting")
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Result<(), ClientError> {
        if let Some(sequence) = event.sequence() {
            self.newest_sequence = self.newest_sequence.max(sequence);
        }
        self.wake.heard(&event);
        if event.name() == &EventName::BackgroundJob {
            let job = event.job_uuid().and_then(|j| Uuid::parse_str(&j).ok());
            if let Some(job_uuid) = job {
                let body = event.body().map(|b| b.into_owned()).unwrap_or_default();
                self.finish_job(job_uuid, |command| Ok(ApiReply::new(command, body.into())));
            }
        }
        if self.events.is_closed() {
            return Ok(());
        }
        // Counted as given to the stream now: it is delivered, in order (see `tape.rs`).
        if let Some(tape) = &self.config.tape {
            tape.streamed();
        }
        if self.backlog.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(event)) => self.backlog.push_back(event),
            }
        } else {
            self.backlog.push_back(event);
        }
        if self.config.overflow == Overflow::Backpressure {
            if self.backlog.len() == self.config.max_event_backlog {
                tracing::warn!(
                    backlog = self.backlog.len(),
                    "event consumer is behind; pausing reads (TCP back-pressure)"
                );
            }
            return Ok(());
        }
        if self.backlog.len() > self.config.max_event_backlog {
            return Err(ClientError::EventBacklogOverflow(
                self.config.max_event_backlog,
            ));
        }
        Ok(())
    }

    fn on_notice(&mut self, frame: &Frame) {
        if frame
            .header("Content-Disposition")
            .is_some_and(|d| d.eq_ignore_ascii_case("linger"))
        {
            tracing::info!("FreeSWITCH lingers before closing the session socket");
            return;
        }
        let text = frame.body_text().unwrap_or_default().into_owned();
        tracing::info!(notice = %text.trim_end(), "FreeSWITCH disconnect notice");
        self.notice = Some(text);
    }

    fn finish_job(
        &mut self,
        job_uuid: Uuid,
        result: impl FnOnce(String) -> Result<ApiReply, ClientError>,
    ) {
        if let Some(job) = self.jobs.remove(&job_uuid) {
            self.deadlines.remove(&job.deadline);
            drop(job.result.send(result(job.command)));
        }
    }

    fn expire(&mut self, job_uuid: Uuid) {
        if let Some(job) = self.jobs.remove(&job_uuid) {
            let what = format!("the result of bgapi {} (job {job_uuid})", job.command);
            drop(job.result.send(Err(ClientError::Timeout(what))));
        }
    }

    fn fail_all(&mut self, reason: &CloseReason) {
        let err = || ClientError::Disconnected(reason.to_string());
        for waiter in self.waiters.drain(..) {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            if let Waiter::Reply(tx) = waiter {
                drop(tx.send(Err(err())));
            }
        }
        for (_, job) in self.jobs.drain() {
            drop(job.result.send(Err(err())));
        }
        self.deadlines.clear();
    }
}
