#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `switchyard::esl::Client` against a scripted fake FreeSWITCH on 127.0.0.1.
//!
//! Each test binds a listener on port 0, spawns a script that plays mod_event_socket (frames
//! written byte for byte as FreeSWITCH writes them, commands read and checked), and drives the
//! client against it. The script runs in its own task; its assertions surface when the test
//! awaits its handle. Every await is bounded by [`within`], so a regression fails instead of
//! hanging.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard::esl::{
    ApiCommand, Client, ClientConfig, ClientError, ContentType, Event, EventFormat, EventName,
    EventSet, EventStream, FrameWriter, Password,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Upper bound for any single await, so that a broken client fails the test instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

const AUTH_REQUEST: &[u8] = b"Content-Type: auth/request\n\n";
const CORE_UUID: &str = "f7ec4279-8453-4be8-b538-0d420fd03b58";
const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";
const SHUTDOWN: &str = "The system is being shut down.\n";
/// `api status` output from fixtures/esl/04_command_session.recv.raw.
const STATUS_BODY: &str = "UP 0 years, 0 days, 0 hours, 0 minutes, 51 seconds, 755 milliseconds, \
788 microseconds\nFreeSWITCH (Version 1.11.3-dev  64bit) is ready\n12 session(s) since startup\n\
0 session(s) - peak 6, last 5min 6 \n0 session(s) per Sec out of max 30, peak 2, last 5min 2 \n\
1000 session(s) max\nmin idle cpu 0.00/96.40\nCurrent Stack Size/Max 240K/8192K\n";

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Frames as mod_event_socket writes them.

fn command_reply(text: &str) -> Bytes {
    FrameWriter::new()
        .header("Reply-Text", text)
        .to_bytes(&ContentType::CommandReply, None)
}

/// The `command/reply` to `bgapi … Job-UUID: <job>`.
fn job_accepted(job: &str) -> Bytes {
    FrameWriter::new()
        .header("Reply-Text", &format!("+OK Job-UUID: {job}"))
        .header("Job-UUID", job)
        .to_bytes(&ContentType::CommandReply, None)
}

/// `api/response`, headers in the order of the captures.
fn api_response(body: &str) -> Vec<u8> {
    let len = body.len();
    format!("Content-Type: api/response\nContent-Length: {len}\n\n{body}").into_bytes()
}

fn disconnect_notice(text: &str) -> Vec<u8> {
    let len = text.len();
    format!("Content-Type: text/disconnect-notice\nContent-Length: {len}\n\n{text}").into_bytes()
}

/// A `text/event-plain` frame: the standard leading headers, then `extra` (values already
/// percent-encoded, as FreeSWITCH sends them), then an optional inner body.
fn plain_event(name: &str, seq: u64, extra: &[(&str, &str)], body: Option<&str>) -> Bytes {
    let mut inner = format!(
        "Event-Name: {name}\nCore-UUID: {CORE_UUID}\nFreeSWITCH-Hostname: vm\n\
         FreeSWITCH-IPv6: fd00%3A%3A2\nEvent-Date-Local: 2026-11-22%2007%3A51%3A19\n\
         Event-Sequence: {seq}\n"
    );
    for (header, value) in extra {
        inner.push_str(&format!("{header}: {value}\n"));
    }
    match body {
        Some(body) => inner.push_str(&format!("Content-Length: {}\n\n{body}", body.len())),
        None => inner.push('\n'),
    }
    FrameWriter::new().to_bytes(&ContentType::EventPlain, Some(inner.as_bytes()))
}

fn background_job(seq: u64, job: &str, command: &str, body: &str) -> Bytes {
    let extra = [("Job-UUID", job), ("Job-Command", command)];
    plain_event("BACKGROUND_JOB", seq, &extra, Some(body))
}

/// A conference event carrying a percent-encoded UTF-8 caller name.
fn member_event(seq: u64) -> Bytes {
    let member = seq.to_string();
    let extra = [
        ("Event-Subclass", "conference%3A%3Amaintenance"),
        ("Conference-Name", "room1"),
        ("Action", "add-member"),
        ("Member-ID", member.as_str()),
        ("Caller-Caller-ID-Name", "Ren%C3%A9%20M%C3%BCller"),
    ];
    plain_event("CUSTOM", seq, &extra, None)
}

/// Member events numbered `seqs`, back to back as one write.
fn member_events(seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    seqs.flat_map(|seq| member_event(seq).to_vec()).collect()
}

// ---------------------------------------------------------------------------------------------
// The fake FreeSWITCH side of one connection.

struct FakeFs {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl FakeFs {
    /// Reads one command block and returns it without its terminating blank line; `None` at EOF.
    async fn read_command(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Some(String::from_utf8(block[..end].to_vec()).unwrap());
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn expect(&mut self, expected: &str) {
        let got = within(expected, self.read_command()).await;
        assert_eq!(got.as_deref(), Some(expected));
    }

    /// Reads an `api <line>` command and returns `<line>`.
    async fn read_api(&mut self) -> String {
        let command = within("an api command", self.read_command()).await;
        let command = command.expect("client closed instead of sending api");
        command
            .strip_prefix("api ")
            .expect("not an api command")
            .to_owned()
    }

    /// Reads a `bgapi` command; returns its line and the Job-UUID header it must carry.
    async fn read_bgapi(&mut self) -> (String, String) {
        let command = within("a bgapi command", self.read_command()).await;
        let command = command.expect("client closed instead of sending bgapi");
        let (line, headers) = command.split_once('\n').expect("bgapi without headers");
        let line = line.strip_prefix("bgapi ").expect("not a bgapi command");
        let job = headers
            .strip_prefix("Job-UUID: ")
            .expect("no Job-UUID header");
        Uuid::parse_str(job).expect("Job-UUID is not a UUID");
        (line.to_owned(), job.to_owned())
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Waits until the client closes the socket; asserts it sent nothing more.
    async fn expect_eof(mut self) {
        let mut rest = Vec::new();
        // A reset (the client closed with our bytes unread) is a close too.
        drop(within("the client to close", self.stream.read_to_end(&mut rest)).await);
        self.buf.extend_from_slice(&rest);
        assert!(
            self.buf.is_empty(),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

async fn accept(listener: &TcpListener) -> FakeFs {
    let (stream, _) = within("a client", listener.accept()).await.unwrap();
    FakeFs {
        stream,
        buf: Vec::new(),
    }
}

/// Spawns the fake FreeSWITCH: accepts one client, runs the `auth ClueCon` exchange, then
/// `script`.
fn serve<F, Fut>(listener: TcpListener, script: F) -> JoinHandle<()>
where
    F: FnOnce(FakeFs) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut fs = accept(&listener).await;
        fs.send(AUTH_REQUEST).await;
        fs.expect("auth ClueCon").await;
        fs.send(&command_reply("+OK accepted")).await;
        script(fs).await;
    })
}

fn config() -> ClientConfig {
    ClientConfig {
        command_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

/// An event connection that pushes back after five held events.
fn back_pressure() -> ClientConfig {
    ClientConfig {
        event_channel: 2,
        max_event_backlog: 5,
        overflow: switchyard::esl::Overflow::Backpressure,
        ..config()
    }
}

async fn connect(addr: &str, config: ClientConfig) -> (Client, EventStream) {
    let password = Password::new("ClueCon").unwrap();
    within("connect", Client::connect(addr, &password, config))
        .await
        .expect("connect and authenticate")
}

fn api(name: &str, args: &[&str]) -> ApiCommand {
    let command = ApiCommand::new(name).unwrap();
    args.iter().fold(command, |c, arg| c.arg(arg).unwrap())
}

async fn next_event(events: &mut EventStream) -> Event {
    within("an event", events.recv())
        .await
        .expect("event stream ended")
}

/// Reads every remaining event until the stream ends; returns their sequence numbers.
async fn drain_sequences(events: &mut EventStream) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(event) = within("the event stream", events.recv()).await {
        seqs.push(event.sequence().expect("Event-Sequence"));
    }
    seqs
}

fn is_disconnected(err: &ClientError, text: &str) -> bool {
    matches!(err, ClientError::Disconnected(t) if t.contains(text))
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn authenticates_then_api_status_returns_the_body() {
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        assert_eq!(fs.read_api().await, "status");
        fs.send(&api_response(STATUS_BODY)).await;
        fs.expect("event plain BACKGROUND_JOB").await;
        fs.send(&command_reply("+OK event listener enabled plain"))
            .await;
        fs.expect_eof().await;
    });
    let (client, events) = connect(&addr, config()).await;
    let reply = within("api status", client.api(&api("status", &[]))).await;
    assert_eq!(reply.unwrap().text(), STATUS_BODY);
    let set = EventSet::new().name(EventName::BackgroundJob);
    within("subscribe", client.subscribe(EventFormat::Plain, set))
        .await
        .unwrap();
    assert!(!client.is_closed());
    // Dropping every handle and the event stream closes the socket.
    drop((client, events));
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let capture: &[u8] = include_bytes!("../../fixtures/esl/05a_auth_wrong_password.recv.raw");
    let split = capture.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let (greeting, verdict) = capture.split_at(split);
    assert_eq!(greeting, AUTH_REQUEST);
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut fs = accept(&listener).await;
        fs.send(greeting).await;
        fs.expect("auth WrongPassword").await;
        // `-ERR invalid`, the disconnect notice, then close: exactly as captured.
        fs.send(verdict).await;
    });
    let password = Password::new("WrongPassword").unwrap();
    let result = within("connect", Client::connect(&addr, &password, config())).await;
    let err = result.expect_err("a wrong password must not connect");
    assert!(err.is_auth_error(), "{err:?}");
    assert!(!err.is_connection_error(), "{err:?}");
    assert!(err.to_string().contains("-ERR invalid"), "{err}");
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn acl_rude_rejection_is_reported_and_no_password_is_sent() {
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut fs = accept(&listener).await;
        let body = "Access Denied, go away.\n";
        let rejection =
            FrameWriter::new().to_bytes(&ContentType::RudeRejection, Some(body.as_bytes()));
        fs.send(&rejection).await;
        fs.send(&disconnect_notice(GOODBYE)).await;
        fs.expect_eof().await;
    });
    let password = Password::new("ClueCon").unwrap();
    let result = within("connect", Client::connect(&addr, &password, config())).await;
    match result {
        Err(ClientError::Rejected(text)) => assert_eq!(text, "Access Denied, go away."),
        other => panic!("expected Rejected, got {other:?}"),
    }
    within("server script", server).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_api_callers_each_get_their_own_answer() {
    const CALLERS: usize = 50;
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        // Read every pipelined command first, then answer them in order in one write.
        let mut answers = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..CALLERS {
            let line = fs.read_api().await;
            answers.extend(api_response(&format!("+OK {line}\n")));
            seen.push(line);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), CALLERS, "every command arrives once");
        fs.send(&answers).await;
        fs.expect_eof().await;
    });
    let (client, events) = connect(&addr, config()).await;
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let arg = format!("n{i}");
                let reply = client.api(&api("echo", &[&arg])).await.unwrap();
                (arg, reply.text().into_owned())
            })
        })
        .collect();
    for caller in callers {
        let (arg, text) = within("an api caller", caller).await.unwrap();
        assert_eq!(text, format!("+OK echo {arg}\n"));
    }
    drop((client, events));
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn bgapi_results_are_matched_by_job_uuid_out_of_order() {
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        let (first, first_job) = fs.read_bgapi().await;
        fs.send(&job_accepted(&first_job)).await;
        let (second, second_job) = fs.read_bgapi().await;
        fs.send(&job_accepted(&second_job)).await;
        assert_ne!(first_job, second_job);
        // The jobs finish in reverse order.
        let body = format!("+OK done: {second}\n");
        fs.send(&background_job(10, &second_job, &second, &body))
            .await;
        let body = format!("+OK done: {first}\n");
        fs.send(&background_job(11, &first_job, &first, &body))
            .await;
        fs.expect_eof().await;
    });
    let (client, mut events) = connect(&addr, config()).await;
    let status = api("status", &[]);
    let count = api("conference", &["room1", "count"]);
    let (a, b) = within("two bgapi jobs", async {
        tokio::join!(client.bgapi(&status), client.bgapi(&count))
    })
    .await;
    assert_eq!(a.unwrap().text(), "+OK done: status\n");
    assert_eq!(b.unwrap().text(), "+OK done: conference room1 count\n");
    // The BACKGROUND_JOB events also reach the consumer, in arrival order.
    assert_eq!(next_event(&mut events).await.sequence(), Some(10));
    let last = next_event(&mut events).await;
    assert_eq!(last.name(), &EventName::BackgroundJob);
    assert_eq!(last.sequence(), Some(11));
    drop((client, events));
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn bgapi_refused_by_command_reply_is_a_command_failure() {
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        let (line, _job) = fs.read_bgapi().await;
        assert_eq!(line, "originate loopback/9196/default &park");
        fs.send(&command_reply("-ERR permission denied")).await;
        // The refusal consumed its reply slot: the next api gets the next reply.
        assert_eq!(fs.read_api().await, "status");
        fs.send(&api_response(STATUS_BODY)).await;
        fs.expect_eof().await;
    });
    let (client, events) = connect(&addr, config()).await;
    let originate = api("originate", &["loopback/9196/default", "&park"]);
    let err = within("bgapi", client.bgapi(&originate)).await.unwrap_err();
    assert!(err.is_command_failure(), "{err:?}");
    assert!(err.to_string().contains("-ERR permission denied"), "{err}");
    let reply = within("api status", client.api(&api("status", &[]))).await;
    assert_eq!(reply.unwrap().text(), STATUS_BODY);
    drop((client, events));
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn bgapi_without_a_result_times_out_at_its_deadline() {
    const JOB_TIMEOUT: Duration = Duration::from_millis(200);
    let (listener, addr) = listen().await;
    let (timed_out, wait_timed_out) = oneshot::channel::<()>();
    let server = serve(listener, |mut fs| async move {
        let (line, job) = fs.read_bgapi().await;
        fs.send(&job_accepted(&job)).await;
        within("the job to time out", wait_timed_out).await.unwrap();
        // A result after the deadline is only an event; replies stay in step.
        fs.send(&background_job(7, &job, &line, "+OK late\n")).await;
        assert_eq!(fs.read_api().await, "status");
        fs.send(&api_response(STATUS_BODY)).await;
        fs.expect_eof().await;
    });
    let config = ClientConfig {
        job_timeout: JOB_TIMEOUT,
        ..config()
    };
    let (client, mut events) = connect(&addr, config).await;
    let started = Instant::now();
    let err = within("bgapi", client.bgapi(&api("status", &[])))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        started.elapsed() >= JOB_TIMEOUT,
        "failed before its deadline"
    );
    timed_out.send(()).unwrap();
    let reply = within("api status", client.api(&api("status", &[]))).await;
    assert_eq!(reply.unwrap().text(), STATUS_BODY);
    let late = next_event(&mut events).await;
    assert_eq!(late.body().as_deref(), Some("+OK late\n"));
    drop((client, events));
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn disconnect_notice_fails_pending_calls_and_later_ones() {
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        let (_, job) = fs.read_bgapi().await;
        fs.send(&job_accepted(&job)).await;
        assert_eq!(fs.read_api().await, "status");
        // Shutdown while both the job and the api call wait; then close.
        fs.send(&disconnect_notice(SHUTDOWN)).await;
    });
    let (client, _events) = connect(&addr, config()).await;
    let status = api("status", &[]);
    // `join!` polls the job first, so the bgapi is written before the api.
    let job = client.bgapi(&status);
    let call = client.api(&status);
    let (job, call) = within("the pending calls", async { tokio::join!(job, call) }).await;
    let shutdown = SHUTDOWN.trim_end();
    let err = call.unwrap_err();
    assert!(is_disconnected(&err, shutdown), "{err:?}");
    let err = job.unwrap_err();
    assert!(is_disconnected(&err, shutdown), "{err:?}");
    let reason = within("closed", client.closed()).await;
    assert!(
        reason.notice.as_deref().unwrap().contains(shutdown),
        "{reason:?}"
    );
    assert!(client.is_closed());
    let err = within("api", client.api(&api("status", &[])))
        .await
        .unwrap_err();
    assert!(is_disconnected(&err, shutdown), "{err:?}");
    let err = within("bgapi", client.bgapi(&api("status", &[])))
        .await
        .unwrap_err();
    assert!(is_disconnected(&err, shutdown), "{err:?}");
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn events_keep_their_order_and_survive_the_close() {
    const ROUNDS: u64 = 10;
    const PER_ROUND: u64 = 20;
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        let mut seq = 0;
        for _ in 0..ROUNDS {
            let line = fs.read_api().await;
            // Half the round's events before the api/response, half after it.
            let mut out = Vec::new();
            for i in 0..PER_ROUND {
                if i == PER_ROUND / 2 {
                    out.extend(api_response(&format!("+OK {line}\n")));
                }
                seq += 1;
                out.extend_from_slice(&member_event(seq));
            }
            fs.send(&out).await;
        }
        fs.send(&disconnect_notice(GOODBYE)).await;
    });
    // A small channel: most events wait in the backlog when the connection closes.
    let config = ClientConfig {
        event_channel: 16,
        ..config()
    };
    let (client, mut events) = connect(&addr, config).await;
    for round in 0..ROUNDS {
        let arg = format!("r{round}");
        let reply = within("api", client.api(&api("echo", &[&arg])))
            .await
            .unwrap();
        assert_eq!(reply.text(), format!("+OK echo {arg}\n"));
        // The reply knows the newest event that came before it (what a snapshot reflects).
        assert_eq!(reply.events_before(), round * PER_ROUND + PER_ROUND / 2);
    }
    // Nothing read yet; the connection is gone; every event is still delivered, in order.
    let reason = within("closed", client.closed()).await;
    assert!(
        reason
            .notice
            .as_deref()
            .unwrap()
            .starts_with("Disconnected, goodbye.")
    );
    for seq in 1..=ROUNDS * PER_ROUND {
        let event = next_event(&mut events).await;
        assert_eq!(event.sequence(), Some(seq));
        assert_member_event(&event, seq);
    }
    assert!(within("end of stream", events.recv()).await.is_none());
    within("server script", server).await.unwrap();
}

fn assert_member_event(event: &Event, seq: u64) {
    assert_eq!(event.name(), &EventName::Custom);
    assert!(event.is_conference());
    assert_eq!(event.member_id(), Some(u32::try_from(seq).unwrap()));
    assert_eq!(event.core_uuid().as_deref(), Some(CORE_UUID));
    let date = event.header("Event-Date-Local");
    assert_eq!(date.as_deref(), Some("2026-11-22 07:51:19"));
    assert_eq!(event.header("FreeSWITCH-IPv6").as_deref(), Some("fd00::2"));
    let name = event.header("Caller-Caller-ID-Name");
    assert_eq!(name.as_deref(), Some("René Müller"));
}

#[tokio::test]
async fn slow_consumer_does_not_stall_replies_or_lose_events() {
    const ROUNDS: u64 = 5;
    const PER_ROUND: u64 = 40;
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        let mut seq = 0;
        for _ in 0..ROUNDS {
            let line = fs.read_api().await;
            let mut out = Vec::new();
            for _ in 0..PER_ROUND {
                seq += 1;
                out.extend_from_slice(&member_event(seq));
            }
            // The reply comes after a burst the consumer has not read.
            out.extend(api_response(&format!("+OK {line}\n")));
            fs.send(&out).await;
        }
        let (line, job) = fs.read_bgapi().await;
        fs.send(&job_accepted(&job)).await;
        fs.send(&background_job(seq + 1, &job, &line, "+OK job\n"))
            .await;
        fs.send(&disconnect_notice(GOODBYE)).await;
    });
    let config = ClientConfig {
        event_channel: 2,
        ..config()
    };
    let (client, mut events) = connect(&addr, config).await;
    for round in 0..ROUNDS {
        let arg = format!("r{round}");
        let reply = within("api", client.api(&api("echo", &[&arg])))
            .await
            .unwrap();
        assert_eq!(reply.text(), format!("+OK echo {arg}\n"));
        // Events not yet read by the consumer count too.
        assert_eq!(reply.events_before(), (round + 1) * PER_ROUND);
    }
    let job = within("bgapi", client.bgapi(&api("status", &[]))).await;
    assert_eq!(job.unwrap().text(), "+OK job\n");
    let seqs = drain_sequences(&mut events).await;
    let expected: Vec<u64> = (1..=ROUNDS * PER_ROUND + 1).collect();
    assert_eq!(seqs, expected);
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn event_backlog_overflow_closes_the_connection_without_dropping_events() {
    const MAX_BACKLOG: usize = 5;
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        let burst = member_events(1..=20);
        fs.send(&burst).await;
        // The client gives up on the connection rather than drop events.
        fs.expect_eof().await;
    });
    let config = ClientConfig {
        event_channel: 2,
        max_event_backlog: MAX_BACKLOG,
        ..config()
    };
    let (client, mut events) = connect(&addr, config).await;
    let reason = within("closed", client.closed()).await;
    let error = reason.error.as_deref().unwrap_or_default();
    assert!(error.contains("backlog"), "{reason:?}");
    // Calls fail at once, even though the consumer has not read the held events yet.
    let err = within("api", client.api(&api("status", &[])))
        .await
        .unwrap_err();
    assert!(is_disconnected(&err, "backlog"), "{err:?}");
    let err = within("bgapi", client.bgapi(&api("status", &[])))
        .await
        .unwrap_err();
    assert!(is_disconnected(&err, "backlog"), "{err:?}");
    within("server script", server).await.unwrap();
    // Every event taken off the socket before the overflow is delivered, in order.
    let seqs = drain_sequences(&mut events).await;
    assert!(seqs.len() > MAX_BACKLOG, "{seqs:?}");
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
}

#[tokio::test]
async fn with_back_pressure_a_slow_consumer_pauses_reads_and_loses_nothing() {
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        let burst = member_events(1..=200);
        fs.send(&burst).await;
        // The reply sits behind the events; it is read once the consumer has caught up.
        assert_eq!(fs.read_api().await, "status");
        fs.send(&api_response("UP")).await;
        fs.expect_eof().await;
    });
    let config = back_pressure();
    let (client, mut events) = connect(&addr, config).await;
    let mut seqs = Vec::new();
    for _ in 0..200 {
        seqs.push(next_event(&mut events).await.sequence().unwrap());
    }
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    assert!(
        !client.is_closed(),
        "back-pressure never closes the connection"
    );
    let reply = within("api", client.api(&api("status", &[])))
        .await
        .unwrap();
    assert_eq!(reply.text(), "UP");
    drop(client);
    drop(events);
    within("server script", server).await.unwrap();
}

/// A consumer that asks something and waits for the answer before it takes more events (the
/// supervisor's resync does) while its backlog is full: the reply is behind events FreeSWITCH
/// had already sent, so the connection reads on past the cap until it comes. Before, reads
/// stayed paused, the reply was never read, and the command timed out (the supervisor then
/// dropped the node: an overloaded controller lost its nodes at every resync).
#[tokio::test]
async fn with_back_pressure_a_command_is_answered_while_the_backlog_is_full() {
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        let burst = member_events(1..=200);
        fs.send(&burst).await;
        assert_eq!(fs.read_api().await, "status");
        let mut out = member_events(201..=210);
        out.extend(api_response("UP"));
        fs.send(&out).await;
        fs.expect_eof().await;
    });
    let config = back_pressure();
    let (client, mut events) = connect(&addr, config).await;
    // The first events are read and held (the backlog fills) before the command is sent.
    assert_eq!(next_event(&mut events).await.sequence(), Some(1));
    let reply = within("api", client.api(&api("status", &[])))
        .await
        .unwrap();
    assert_eq!(reply.text(), "UP");
    // Nothing was lost or reordered by reading past the cap.
    let mut seqs = vec![1];
    for _ in 2..=210 {
        seqs.push(next_event(&mut events).await.sequence().unwrap());
    }
    assert_eq!(seqs, (1..=210).collect::<Vec<u64>>());
    drop(client);
    drop(events);
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn timed_out_command_does_not_shift_later_replies() {
    let (listener, addr) = listen().await;
    let (timed_out, wait_timed_out) = oneshot::channel::<()>();
    let server = serve(listener, |mut fs| async move {
        assert_eq!(fs.read_api().await, "echo first");
        within("the first call to time out", wait_timed_out)
            .await
            .unwrap();
        assert_eq!(fs.read_api().await, "echo second");
        // The late answer to the first command, then the answer to the second.
        let mut out = api_response("+OK echo first\n");
        out.extend(api_response("+OK echo second\n"));
        fs.send(&out).await;
        assert_eq!(fs.read_api().await, "echo third");
        fs.send(&api_response("+OK echo third\n")).await;
        fs.expect_eof().await;
    });
    let config = ClientConfig {
        command_timeout: Duration::from_millis(500),
        ..config()
    };
    let (client, events) = connect(&addr, config).await;
    let err = within("first", client.api(&api("echo", &["first"])))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    timed_out.send(()).unwrap();
    let second = within("second", client.api(&api("echo", &["second"]))).await;
    assert_eq!(second.unwrap().text(), "+OK echo second\n");
    let third = within("third", client.api(&api("echo", &["third"]))).await;
    assert_eq!(third.unwrap().text(), "+OK echo third\n");
    drop((client, events));
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn exit_is_acknowledged_and_the_goodbye_is_the_close_reason() {
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        fs.expect("exit").await;
        fs.send(&command_reply("+OK bye")).await;
        fs.send(&disconnect_notice(GOODBYE)).await;
    });
    let (client, mut events) = connect(&addr, config()).await;
    within("exit", client.exit()).await.unwrap();
    let reason = within("closed", client.closed()).await;
    assert_eq!(reason.notice.as_deref(), Some(GOODBYE));
    assert_eq!(reason.error, None);
    assert!(within("end of stream", events.recv()).await.is_none());
    within("server script", server).await.unwrap();
}

#[tokio::test]
async fn dropping_the_handles_then_the_event_stream_closes_the_socket() {
    let (listener, addr) = listen().await;
    let (handles_dropped, wait_handles_dropped) = oneshot::channel::<()>();
    let server = serve(listener, |mut fs| async move {
        within("the handles to go", wait_handles_dropped)
            .await
            .unwrap();
        fs.send(&member_event(1)).await;
        fs.expect_eof().await;
    });
    let (client, mut events) = connect(&addr, config()).await;
    drop(client);
    handles_dropped.send(()).unwrap();
    // The consumer still reads events after the last handle is gone…
    assert_eq!(next_event(&mut events).await.sequence(), Some(1));
    // …and when it lets go too, the socket is closed without waiting for more traffic.
    drop(events);
    within("server script", server).await.unwrap();
}

/// mod_event_socket's thread for a connection waits up to 20 ms for a byte before it looks at
/// its event queue again: while a window is open, the client writes a line feed (which the node
/// skips) every `wake_interval`, and nothing before or after.
#[tokio::test]
async fn a_woken_connection_writes_line_feeds_for_its_window_and_nothing_after() {
    const WINDOW: Duration = Duration::from_millis(100);
    let (listener, addr) = listen().await;
    let (woken_tx, woken) = oneshot::channel::<()>();
    let server = serve(listener, |mut fs| async move {
        // Nothing comes before the window opens.
        let mut early = [0u8; 1];
        let idle = tokio::time::timeout(Duration::from_millis(50), fs.stream.read(&mut early));
        assert!(idle.await.is_err(), "bytes before any window: {early:?}");
        woken_tx.send(()).unwrap();
        // Then only line feeds, until the command the client sends once the window is over.
        let mut feeds = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            within("a nudge or the command", fs.stream.read_exact(&mut byte))
                .await
                .unwrap();
            if byte[0] != b'\n' {
                fs.buf.push(byte[0]);
                break;
            }
            feeds.push(Instant::now());
        }
        assert_eq!(fs.read_api().await, "status");
        fs.send(&api_response(STATUS_BODY)).await;
        let span = feeds[feeds.len() - 1] - feeds[0];
        // One a millisecond at most (Tokio's timer rounds a sleep up to its next tick).
        assert!(
            feeds.len() >= 10 && feeds.len() <= 102,
            "{} line feeds in a {WINDOW:?} window at 1 ms",
            feeds.len()
        );
        assert!(
            span <= WINDOW + Duration::from_millis(20),
            "nudged for {span:?}"
        );
        // Nothing after the window: the next bytes are the close.
        fs.expect_eof().await;
    });
    let (client, events) = connect(&addr, config()).await;
    within("the server is listening for nudges", woken)
        .await
        .unwrap();
    client.waker().wake_for(WINDOW);
    // The window passes (this waits on the clock, which the window is).
    tokio::time::sleep(WINDOW + Duration::from_millis(30)).await;
    let reply = within("api status", client.api(&api("status", &[]))).await;
    assert_eq!(reply.unwrap().text(), STATUS_BODY);
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop((client, events));
    within("server script", server).await.unwrap();
}

/// A command that names the event it causes (`ApiCommand::awaiting`) keeps the connection awake
/// only until that event arrives: other events do not end it, the awaited one does, well
/// before the window would (a mute's event comes right after the command; issue 59).
#[tokio::test]
async fn a_wake_for_an_awaited_event_ends_when_the_event_comes() {
    const WINDOW: Duration = Duration::from_millis(300);
    let (listener, addr) = listen().await;
    let (woken_tx, woken) = oneshot::channel::<()>();
    let server = serve(listener, |mut fs| async move {
        woken_tx.send(()).unwrap();
        let mut byte = [0u8; 1];
        // Line feeds come; another member's event does not stop them.
        for event in [None, Some(8)] {
            if let Some(member) = event {
                fs.send(&member_event(member)).await;
            }
            for _ in 0..3 {
                within("a nudge", fs.stream.read_exact(&mut byte))
                    .await
                    .unwrap();
                assert_eq!(byte[0], b'\n');
            }
        }
        // The awaited event: at most one line feed already on its way, then the command the
        // client sends later.
        fs.send(&member_event(7)).await;
        let sent = Instant::now();
        let mut after = 0;
        loop {
            within("a nudge or the command", fs.stream.read_exact(&mut byte))
                .await
                .unwrap();
            if byte[0] != b'\n' {
                fs.buf.push(byte[0]);
                break;
            }
            after += 1;
        }
        assert!(after <= 1, "{after} line feeds after the awaited event");
        assert!(sent.elapsed() < WINDOW, "the command came after the window");
        assert_eq!(fs.read_api().await, "status");
        fs.send(&api_response(STATUS_BODY)).await;
        fs.expect_eof().await;
    });
    let (client, mut events) = connect(&addr, config()).await;
    within("the server is listening for nudges", woken)
        .await
        .unwrap();
    client.waker().wake_until_heard(
        &[("Action", "add-member".into()), ("Member-ID", "7".into())],
        WINDOW,
    );
    assert_eq!(next_event(&mut events).await.sequence(), Some(8));
    assert_eq!(next_event(&mut events).await.sequence(), Some(7));
    // Long enough for several more line feeds, were the wake still on.
    tokio::time::sleep(Duration::from_millis(40)).await;
    let reply = within("api status", client.api(&api("status", &[]))).await;
    assert_eq!(reply.unwrap().text(), STATUS_BODY);
    drop((client, events));
    within("server script", server).await.unwrap();
}

/// Once the command that opened a window is answered, the events it fired are queued on the
/// node: `nudge_now` writes a line feed at once, not at the next interval; and nothing once
/// the awaited event came.
#[tokio::test]
async fn a_nudge_asked_now_goes_at_once_while_a_window_is_open() {
    const INTERVAL: Duration = Duration::from_millis(300);
    let (listener, addr) = listen().await;
    let (woken_tx, woken) = oneshot::channel::<()>();
    let (asked_tx, asked) = oneshot::channel::<Instant>();
    let server = serve(listener, |mut fs| async move {
        woken_tx.send(()).unwrap();
        let mut byte = [0u8; 1];
        within("a nudge", fs.stream.read_exact(&mut byte))
            .await
            .unwrap();
        let came = Instant::now();
        assert_eq!(byte[0], b'\n');
        let asked = asked.await.unwrap();
        assert!(
            came.duration_since(asked) < INTERVAL / 3,
            "the line feed came {:?} after it was asked",
            came.duration_since(asked)
        );
        fs.send(&member_event(7)).await;
        assert_eq!(fs.read_api().await, "status");
        fs.send(&api_response(STATUS_BODY)).await;
        fs.expect_eof().await;
    });
    let config = ClientConfig {
        wake_interval: INTERVAL,
        ..config()
    };
    let (client, mut events) = connect(&addr, config).await;
    within("the server is listening for nudges", woken)
        .await
        .unwrap();
    let awaited = [("Action", "add-member".into()), ("Member-ID", "7".into())];
    client
        .waker()
        .wake_until_heard(&awaited, Duration::from_secs(5));
    asked_tx.send(Instant::now()).unwrap();
    client.waker().nudge_now();
    assert_eq!(next_event(&mut events).await.sequence(), Some(7));
    // The awaited event came: a nudge asked now writes nothing (the server reads the command
    // next, and fails on a line feed before it).
    client.waker().nudge_now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reply = within("api status", client.api(&api("status", &[]))).await;
    assert_eq!(reply.unwrap().text(), STATUS_BODY);
    drop((client, events));
    within("server script", server).await.unwrap();
}

/// A standby's tape (issue 59) starts while the connection still holds events it read before
/// (in its channel and backlog): those are older than anything taped, and the tape says how
/// many the stream had been given when it kept its first, so the consumer takes exactly those
/// before the taped ones and has every event once, in order. Before, a takeover put the taped
/// events before the older ones still in the stream and judged its coverage from the newer (a
/// false gap in the fleet bench).
#[tokio::test]
async fn a_tape_started_behind_held_events_says_how_many_came_before_it() {
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        fs.send(&member_events(1..=200)).await;
        assert_eq!(fs.read_api().await, "status");
        let mut out = member_events(201..=300);
        out.extend(api_response("UP"));
        fs.send(&out).await;
        fs.expect_eof().await;
    });
    let tape = std::sync::Arc::new(switchyard::esl::Tape::default());
    let config = ClientConfig {
        tape: Some(tape.clone()),
        ..back_pressure()
    };
    let (client, mut events) = connect(&addr, config).await;
    assert_eq!(next_event(&mut events).await.sequence(), Some(1));
    tape.start(CORE_UUID, 1_000);
    // The reply comes after every event: all 300 are decoded when it is answered.
    within("api", client.api(&api("status", &[])))
        .await
        .unwrap();
    let taped = tape.stop();
    let before = taped.after_streamed.expect("events were taped");
    assert!(
        before > 1,
        "events held when the tape started went to the stream"
    );
    let mut seqs = vec![1];
    while events.received() < before {
        seqs.push(next_event(&mut events).await.sequence().unwrap());
    }
    assert!(events.try_recv().is_none(), "nothing else was streamed");
    seqs.extend(
        taped
            .events
            .into_iter()
            .map(|body| Event::plain(body).sequence().unwrap()),
    );
    assert_eq!(seqs, (1..=300).collect::<Vec<u64>>());
    drop(client);
    drop(events);
    within("server script", server).await.unwrap();
}

/// A burst already in the read buffer is decoded without a system call, which is what tokio
/// counts to make a task give the others their turn: a connection must still let the runtime's
/// other tasks (a node lease's renewal) run every few hundred events, however large its reads.
#[tokio::test]
async fn a_burst_of_buffered_events_does_not_keep_the_runtime_to_itself() {
    const EVENTS: u64 = 3_000;
    let (listener, addr) = listen().await;
    let server = serve(listener, |mut fs| async move {
        fs.send(&member_events(1..=EVENTS)).await;
        fs.expect_eof().await;
    });
    let config = ClientConfig {
        read_buffer: 256 * 1024,
        event_channel: EVENTS as usize,
        ..config()
    };
    let (client, mut events) = connect(&addr, config).await;
    // On this one thread, each turn of this task takes what the connection delivered since
    // its last turn: the most it took at once is what the connection did in one go.
    let mut seqs = Vec::new();
    let mut most = 0;
    within("every event", async {
        while seqs.len() < EVENTS as usize {
            let before = seqs.len();
            while let Some(event) = events.try_recv() {
                seqs.push(event.sequence().unwrap());
            }
            most = most.max(seqs.len() - before);
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(seqs, (1..=EVENTS).collect::<Vec<u64>>());
    assert!(
        most <= 512,
        "{most} events were decoded before any other task ran"
    );
    drop(client);
    drop(events);
    within("server script", server).await.unwrap();
}
