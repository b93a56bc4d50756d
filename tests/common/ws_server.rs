//! A WebSocket server the tests control, standing in for an application that receives live audio
//! streams: plain `ws://` on 127.0.0.1, every upgraded connection recorded (text frames parsed as
//! JSON, binary frames kept as they are, each with its arrival time) so a test can wait for a
//! Twilio Media Streams event, decode the audio, measure gaps between frames, and answer.
//!
//! Dropping a [`WsServer`] stops accepting; dropping a [`Conn`] drops its connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, http};

/// What the server does with a TCP connection.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Upgrades it to a WebSocket.
    Upgrade,
    /// Answers the upgrade request with this HTTP status.
    Refuse(u16),
    /// Keeps it open and never answers.
    Silent,
}

/// A WebSocket server on 127.0.0.1 (a free port); its accept loop stops when it is dropped.
pub struct WsServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    conns: tokio::sync::Mutex<mpsc::UnboundedReceiver<Conn>>,
    task: JoinHandle<()>,
}

impl WsServer {
    /// A server that upgrades every connection.
    pub async fn start() -> WsServer {
        WsServer::with_mode(Mode::Upgrade).await
    }

    /// A server that answers every upgrade request with the HTTP `status` (e.g. 403).
    pub async fn refusing(status: u16) -> WsServer {
        WsServer::with_mode(Mode::Refuse(status)).await
    }

    /// A server that accepts TCP connections and never answers anything.
    pub async fn silent() -> WsServer {
        WsServer::with_mode(Mode::Silent).await
    }

    async fn with_mode(mode: Mode) -> WsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(accept_loop(listener, mode, accepted.clone(), tx));
        WsServer {
            addr,
            accepted,
            conns: tokio::sync::Mutex::new(rx),
            task,
        }
    }

    /// `ws://127.0.0.1:PORT{path}` (`path` starts with `/`, and may carry a query).
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next upgraded connection (in the order their handshakes completed); panics if none
    /// comes `within`.
    pub async fn next(&self, within: Duration) -> Conn {
        let mut conns = self.conns.lock().await;
        match tokio::time::timeout(within, conns.recv()).await {
            Ok(Some(conn)) => conn,
            Ok(None) => panic!("the WebSocket server at {} stopped", self.addr),
            Err(_) => panic!(
                "no WebSocket connection upgraded at {} within {within:?} ({} TCP connections \
                 accepted)",
                self.addr,
                self.accepted()
            ),
        }
    }

    /// TCP connections accepted so far (upgraded, refused or left unanswered).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    mode: Mode,
    accepted: Arc<AtomicUsize>,
    conns: mpsc::UnboundedSender<Conn>,
) {
    // The silent server's connections, held open until the loop is aborted.
    let mut held = Vec::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        match mode {
            Mode::Silent => held.push(stream),
            Mode::Refuse(status) => drop(tokio::spawn(refuse(stream, status))),
            Mode::Upgrade => {
                let conns = conns.clone();
                tokio::spawn(async move {
                    if let Some(conn) = upgrade(stream).await {
                        let _ = conns.send(conn);
                    }
                });
            }
        }
    }
}

/// Answers the handshake with `status` (tungstenite writes the response, then fails the accept).
/// (The callback's error type is tungstenite's: a whole HTTP response.)
#[allow(clippy::result_large_err)]
async fn refuse(stream: TcpStream, status: u16) {
    let callback = move |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
        let mut response = ErrorResponse::new(Some(format!("refused with {status}")));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Err(response)
    };
    let _ = tokio_tungstenite::accept_hdr_async(stream, callback).await;
}

/// Upgrades the connection and starts its reader; `None` if the handshake failed.
#[allow(clippy::result_large_err)]
async fn upgrade(stream: TcpStream) -> Option<Conn> {
    let path = Arc::new(Mutex::new(String::new()));
    let seen = path.clone();
    let callback = move |req: &Request, response: Response| -> Result<Response, ErrorResponse> {
        *seen.lock().unwrap() = req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.to_string());
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, callback)
        .await
        .ok()?;
    let path = path.lock().unwrap().clone();
    let (sink, mut source) = ws.split();
    let (state, _) = watch::channel(State::default());
    let state = Arc::new(state);
    let recorder = state.clone();
    let sink = Arc::new(tokio::sync::Mutex::new(Some(sink)));
    let closer = sink.clone();
    let reader = tokio::spawn(async move {
        let mut closed = false;
        while let Some(message) = source.next().await {
            let now = Instant::now();
            let received = match message {
                Ok(Message::Text(text)) => match serde_json::from_str(&text) {
                    Ok(value) => Received::Text(value, now),
                    Err(e) => {
                        let bad =
                            format!("the client sent a text frame that is not JSON ({e}): {text}");
                        recorder.send_modify(|s| s.bad_text = Some(bad.clone()));
                        panic!("{bad}");
                    }
                },
                Ok(Message::Binary(bytes)) => Received::Binary(bytes.to_vec(), now),
                // Read on: the next read sends the reply (to a close from the client), then
                // the stream ends.
                Ok(Message::Close(_)) => {
                    closed = true;
                    Received::Closed(now)
                }
                Err(_) => break,
                Ok(_) => continue,
            };
            recorder.send_modify(|s| s.received.push(received));
        }
        if !closed {
            recorder.send_modify(|s| s.received.push(Received::Closed(Instant::now())));
        }
        // The close handshake is over, or the connection broke: drop the TCP connection, as a
        // server does.
        drop(source);
        closer.lock().await.take();
    });
    Some(Conn {
        path,
        state,
        sink,
        reader,
    })
}

/// One message from the client, with its arrival time.
#[derive(Debug, Clone)]
pub enum Received {
    /// A text frame, parsed as JSON.
    Text(Value, Instant),
    /// A binary frame.
    Binary(Vec<u8>, Instant),
    /// The client's close frame, or the end of the TCP connection.
    Closed(Instant),
}

impl Received {
    pub fn at(&self) -> Instant {
        match self {
            Received::Text(_, t) | Received::Binary(_, t) | Received::Closed(t) => *t,
        }
    }
}

/// How the audio of a stream is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audio {
    /// Twilio Media Streams: JSON `media` events, base64 G.711 µ-law at 8000 Hz.
    Twilio,
    /// Binary frames of 16-bit little-endian PCM (mono) at this sample rate.
    L16(u32),
}

impl Audio {
    pub fn rate(self) -> u32 {
        match self {
            Audio::Twilio => 8000,
            Audio::L16(rate) => rate,
        }
    }

    /// The samples of one received message, if it carries audio in this format.
    fn decode(self, message: &Received) -> Option<Vec<i16>> {
        match (self, message) {
            (Audio::Twilio, Received::Text(value, _)) if value["event"] == "media" => {
                let payload = value["media"]["payload"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a media event without a payload: {value}"));
                let bytes = BASE64.decode(payload).unwrap_or_else(|e| {
                    panic!("a media payload that is not base64 ({e}): {value}")
                });
                Some(bytes.into_iter().map(ulaw_decode).collect())
            }
            (Audio::L16(_), Received::Binary(bytes, _)) => Some(
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// A connection's record: everything received, and which text messages `text_event` returned.
#[derive(Default)]
struct State {
    received: Vec<Received>,
    consumed: Vec<usize>,
    bad_text: Option<String>,
}

impl State {
    fn check(&self) {
        if let Some(bad) = &self.bad_text {
            panic!("{bad}");
        }
    }

    fn closed(&self) -> bool {
        matches!(self.received.last(), Some(Received::Closed(_)))
    }
}

/// The writing half of a connection.
type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;

/// One upgraded connection, server side. A task reads it and records every message.
pub struct Conn {
    path: String,
    state: Arc<watch::Sender<State>>,
    /// `None` once the connection is over.
    sink: Arc<tokio::sync::Mutex<Option<Sink>>>,
    reader: JoinHandle<()>,
}

impl Conn {
    /// The path (and query) the client asked for in its upgrade request.
    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        let state = self.state.borrow();
        state.check();
        state.received.clone()
    }

    /// The text messages received so far, in order.
    pub fn texts(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter_map(|r| match r {
                Received::Text(v, _) => Some(v),
                _ => None,
            })
            .collect()
    }

    /// Waits (until `within`) for `check` to find something in the record; `what` describes
    /// it for the panic.
    async fn wait_for<T>(
        &self,
        within: Duration,
        what: impl Fn(&State) -> String,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        let mut changes = self.state.subscribe();
        loop {
            let mut found = None;
            self.state.send_if_modified(|s| {
                s.check();
                found = check(s);
                found.is_some()
            });
            if let Some(found) = found {
                return found;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    let state = self.state.borrow();
                    state.check();
                    panic!("{} within {within:?}", what(&state));
                }
            }
        }
    }

    /// The first text message not yet returned by this function whose `"event"` is `event`
    /// (already received, or the next to come); panics after `within`, listing the events seen.
    pub async fn text_event(&self, event: &str, within: Duration) -> Value {
        let what = |s: &State| {
            let events: Vec<String> = s
                .received
                .iter()
                .map(|r| match r {
                    Received::Text(v, _) => v["event"].to_string(),
                    Received::Binary(b, _) => format!("<{} bytes>", b.len()),
                    Received::Closed(_) => "<closed>".to_owned(),
                })
                .collect();
            format!(
                "no {event:?} event on {} (received: {})",
                self.path,
                events.join(", ")
            )
        };
        self.wait_for(within, what, |s| {
            let index = s.received.iter().enumerate().position(|(i, r)| {
                matches!(r, Received::Text(v, _) if v["event"] == event) && !s.consumed.contains(&i)
            })?;
            s.consumed.push(index);
            match &s.received[index] {
                Received::Text(v, _) => Some(v.clone()),
                _ => None,
            }
        })
        .await
    }

    /// Each audio message received (Twilio `media` events, or L16 binary frames), decoded, with
    /// its arrival time.
    pub fn audio_frames(&self, audio: Audio) -> Vec<(Instant, Vec<i16>)> {
        self.received()
            .iter()
            .filter_map(|r| audio.decode(r).map(|samples| (r.at(), samples)))
            .collect()
    }

    /// The audio received after `t`, concatenated.
    pub fn audio_since(&self, t: Instant, audio: Audio) -> Vec<i16> {
        self.audio_frames(audio)
            .into_iter()
            .filter(|(at, _)| *at > t)
            .flat_map(|(_, samples)| samples)
            .collect()
    }

    /// Waits for at least `millis` of audio received from now on, and returns it (all of it,
    /// perhaps a little more); panics if it takes more than ten seconds beyond `millis`.
    pub async fn wait_audio(&self, millis: u64, audio: Audio) -> Vec<i16> {
        let since = Instant::now();
        let wanted = (millis * u64::from(audio.rate()) / 1000) as usize;
        let within = Duration::from_millis(millis) + Duration::from_secs(10);
        let count = |s: &State| -> usize {
            s.received
                .iter()
                .filter(|r| r.at() > since)
                .filter_map(|r| audio.decode(r))
                .map(|samples| samples.len())
                .sum()
        };
        let what = |s: &State| {
            format!(
                "only {} of {wanted} samples of {audio:?} audio on {} (closed: {})",
                count(s),
                self.path,
                s.closed()
            )
        };
        self.wait_for(within, what, |s| (count(s) >= wanted).then_some(()))
            .await;
        self.audio_since(since, audio)
    }

    /// The intervals between consecutive audio messages (for "no gap over 40 ms").
    pub fn frame_gaps(&self, audio: Audio) -> Vec<Duration> {
        let frames = self.audio_frames(audio);
        frames.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }

    async fn send(&self, message: Message) -> bool {
        match self.sink.lock().await.as_mut() {
            Some(sink) => sink.send(message).await.is_ok(),
            None => false,
        }
    }

    /// Sends a text frame of `value`; whether it was written (false once the connection is gone).
    pub async fn send_text(&self, value: Value) -> bool {
        self.send(Message::text(value.to_string())).await
    }

    /// Sends a binary frame; whether it was written.
    pub async fn send_binary(&self, bytes: Vec<u8>) -> bool {
        self.send(Message::binary(bytes)).await
    }

    /// Sends a normal close frame (1000) from the server.
    pub async fn close(&self) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        self.send(Message::Close(Some(frame))).await;
    }

    /// Whether the client closed the connection (a close frame, or the end of TCP) `within`.
    pub async fn closed(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut changes = self.state.subscribe();
        loop {
            {
                let state = changes.borrow_and_update();
                state.check();
                if state.closed() {
                    return true;
                }
            }
            if !matches!(
                tokio::time::timeout_at(deadline, changes.changed()).await,
                Ok(Ok(()))
            ) {
                return self.state.borrow().closed();
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A G.711 µ-law byte decoded to a 16-bit sample (ITU-T G.711, bias 0x84): the inverse of
/// [`super::sipp::ulaw`].
pub fn ulaw_decode(byte: u8) -> i16 {
    const BIAS: i32 = 0x84;
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// A Twilio Media Streams `media` message carrying `samples` (8000 Hz), as an application sends
/// it back to be played.
pub fn twilio_media(stream_sid: &str, samples: &[i16]) -> Value {
    let ulaw: Vec<u8> = samples.iter().map(|&s| super::sipp::ulaw(s)).collect();
    json!({
        "event": "media",
        "streamSid": stream_sid,
        "media": {"payload": BASE64.encode(ulaw)},
    })
}

/// `samples` as the bytes of an L16 binary frame (little-endian).
pub fn l16_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// `millis` of a sine tone of `freq` Hz at `rate`, at about a quarter of full scale.
pub fn tone(freq: f64, rate: u32, millis: u32) -> Vec<i16> {
    let n = rate as usize * millis as usize / 1000;
    (0..n)
        .map(|i| {
            let v = (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin();
            (v * 8000.0) as i16
        })
        .collect()
}

/// How much of `samples`' power is at `freq` Hz, from 0 (none) to about 1 (a pure tone at that
/// frequency): tells which callers' tones are in a stream. Goertzel's power over each 20 ms
/// block, summed: one block over the whole buffer would add the tone coherently, so a single
/// frame a relay or a jitter buffer dropped or repeated (a phase step: 440 Hz is 8.8 cycles a
/// frame) would cancel most of it, though every frame still carries the tone.
pub fn tone_share(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let block = (rate / 50).max(1) as usize;
    let (mut at_freq, mut energy) = (0.0f64, 0.0f64);
    for b in samples.chunks(block) {
        let (p, e) = goertzel(b, rate, freq);
        // A pure tone of N samples gives a Goertzel power of (N/2)² A² against an energy of
        // N A²/2.
        at_freq += 2.0 * p / b.len() as f64;
        energy += e;
    }
    if energy == 0.0 {
        return 0.0;
    }
    at_freq / energy
}

/// Goertzel's power at `freq` over `samples`, and their energy.
pub fn goertzel(samples: &[i16], rate: u32, freq: f64) -> (f64, f64) {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0f64;
    for &x in samples {
        let x = f64::from(x);
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2, energy)
}
