//! One stream's audio, both ways, between the node's media legs (UDP, L16 in 20 ms datagrams,
//! at the legs' rate) and the server's socket (the stream's protocol and sample rate).
//!
//! - From the node: each datagram is converted to the stream's rate and sent as one `media`
//!   message (or binary frame) at once: nothing is buffered on the way out.
//! - To the node: what the server sends is queued and paced out, one 20 ms datagram every
//!   20 ms (the node's unicast writes each datagram into the call as it comes). A `mark` is
//!   echoed when the audio queued before it has gone out; `clear` drops the queue at once and
//!   echoes every pending mark, as Twilio does.
//! - Datagrams are taken only from the node's address; the first one fixes the leg's port.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::audio::{Downsampler, Upsampler, pcm_from_le, pcm_to_le};
use super::protocol::{Inbound, InboundDecoder, Message, Opening, Outbound};
use super::socket::Socket;

/// No datagram from the node for this long: its media legs are gone.
pub const MEDIA_SILENCE: Duration = Duration::from_millis(1500);

/// Most audio queued toward the node (what a server sends ahead of time): 60 s at 16 kHz.
const MAX_QUEUED_SAMPLES: usize = 16_000 * 60;

/// Told to a running relay by the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// End it: `stop` goes to the server, then the socket is closed.
    Stop(String),
    /// A member pressed a key.
    Dtmf {
        digit: char,
        session: Option<String>,
    },
    /// Another instance carries the stream now: close the socket, with no `stop` (the stream
    /// goes on, on the new carrier's socket).
    Yield,
}

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Asked to ([`Control::Stop`]), with why.
    Stopped(String),
    /// The server closed the socket.
    ServerClosed,
    /// The socket broke (not a close), or the server sent what the protocol does not allow.
    Lost(String),
    /// The node's media legs stopped sending.
    MediaGone,
    /// Given up to another carrier ([`Control::Yield`]).
    Yielded,
}

/// Which way a frame went through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the node's datagram to the server's socket.
    ToServer,
    /// From the server's message to the datagram that carries its first sample to the node.
    ToNode,
}

/// Told how long each frame waited in the relay (the controller's share of a round trip).
pub type Held<'a> = &'a (dyn Fn(Direction, Duration) + Send + Sync);

/// The UDP side: `listen` receives what the leg hears; audio for the node goes to the source
/// of `speak`'s datagrams (the same socket for a room track; a member track's whisper leg has
/// its own).
pub struct Media {
    pub listen: UdpSocket,
    pub speak: Option<UdpSocket>,
    /// Datagrams from any other address are dropped.
    pub node_ip: IpAddr,
}

struct Leg<'s> {
    socket: &'s UdpSocket,
    peer: Option<SocketAddr>,
    /// Samples per datagram the leg sends (its rate / 50), learned from the first one.
    frame: usize,
}

impl Leg<'_> {
    fn new(socket: &UdpSocket) -> Leg<'_> {
        Leg {
            socket,
            peer: None,
            frame: 0,
        }
    }
}

/// What the server sent, waiting to be played, in the legs' rate.
#[derive(Default)]
struct Playout {
    queue: VecDeque<i16>,
    /// Marks and how many samples are still ahead of each (counted from the queue's front).
    marks: VecDeque<(String, usize)>,
    /// When each message's audio came, and how many samples are ahead of its first.
    arrivals: VecDeque<(Instant, usize)>,
    /// How long the messages whose first sample went out last waited.
    held: Vec<Duration>,
}

impl Playout {
    fn push(&mut self, samples: &[i16]) {
        let room = MAX_QUEUED_SAMPLES.saturating_sub(self.queue.len());
        if room > 0 && !samples.is_empty() {
            self.arrivals.push_back((Instant::now(), self.queue.len()));
        }
        self.queue.extend(samples.iter().take(room));
    }

    fn mark(&mut self, name: String) {
        self.marks.push_back((name, self.queue.len()));
    }

    /// The next frame (padded with silence at the end of what was sent), and the marks now
    /// passed.
    fn next_frame(&mut self, frame: usize, out: &mut Vec<i16>) -> Vec<String> {
        out.clear();
        let n = frame.min(self.queue.len());
        out.extend(self.queue.drain(..n));
        if n > 0 {
            out.resize(frame, 0);
        }
        let mut passed = Vec::new();
        if n > 0 {
            let now = Instant::now();
            while self.arrivals.front().is_some_and(|a| a.1 < n) {
                if let Some((at, _)) = self.arrivals.pop_front() {
                    self.held.push(now.saturating_duration_since(at));
                }
            }
            for a in self.arrivals.iter_mut() {
                a.1 -= n;
            }
        }
        for m in self.marks.iter_mut() {
            m.1 = m.1.saturating_sub(n);
        }
        while self.marks.front().is_some_and(|m| m.1 == 0) {
            if let Some((name, _)) = self.marks.pop_front() {
                passed.push(name);
            }
        }
        passed
    }

    fn clear(&mut self) -> Vec<String> {
        self.queue.clear();
        self.arrivals.clear();
        self.marks.drain(..).map(|(name, _)| name).collect()
    }
}

/// A stream's relay, from its socket's opening to its end.
pub struct Relay<'a> {
    pub protocol: super::protocol::Protocol,
    pub opening: Opening<'a>,
    pub bidirectional: bool,
    pub held: Held<'a>,
}

impl Relay<'_> {
    /// Waits for the node's first datagram (within `within`); `false` if none came.
    pub async fn media_flows(listen: &UdpSocket, node_ip: IpAddr, within: Duration) -> bool {
        let mut buf = [0u8; 2048];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, listen.peek_from(&mut buf)).await {
                Ok(Ok((_, from))) if from.ip() == node_ip => return true,
                Ok(Ok(_)) => {
                    // Not the node's: dropped.
                    let _ = listen.try_recv_from(&mut buf);
                }
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// Sends the server the opening messages; what the stream keeps from then on.
    pub async fn open(&self, socket: &mut Socket) -> Result<Running, Outcome> {
        let mut out = Outbound::new(
            self.protocol,
            self.opening.stream_id,
            self.opening.sample_rate,
        );
        for m in out.opening(&self.opening) {
            if let Err(e) = socket.send(ws(m)).await {
                return Err(Outcome::Lost(e.to_string()));
            }
        }
        let rate = out.sample_rate();
        Ok(Running {
            out,
            decoder: InboundDecoder::new(self.protocol, rate),
            playout: Playout::default(),
            up: Upsampler::new(),
            down: Downsampler::new(),
            up_in: Upsampler::new(),
            down_in: Downsampler::new(),
            began: Instant::now(),
        })
    }

    /// Ends the stream: `stop` (unless the server closed the socket or it broke), then a close.
    pub async fn close(&self, running: &mut Running, mut socket: Socket, outcome: &Outcome) {
        if !matches!(
            outcome,
            Outcome::ServerClosed | Outcome::Lost(_) | Outcome::Yielded
        ) {
            let reason = match outcome {
                Outcome::Stopped(r) => r.as_str(),
                _ => "media_gone",
            };
            let _ = socket
                .send(ws(running.out.stop(&self.opening, reason)))
                .await;
        }
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(Some(close))).await;
    }

    /// Relays between `media` and the socket until something ends it (the socket stays open:
    /// after [`Outcome::MediaGone`] it may go on with new legs).
    pub async fn run(
        &self,
        running: &mut Running,
        socket: &mut Socket,
        media: &Media,
        control: &mut mpsc::Receiver<Control>,
    ) -> Outcome {
        let Running {
            out,
            decoder,
            playout,
            up,
            down,
            up_in,
            down_in,
            began,
        } = running;
        let rate = out.sample_rate();
        let node_ip = media.node_ip;
        let mut listen = Leg::new(&media.listen);
        let mut speak = media.speak.as_ref().map(Leg::new);
        let mut buf = vec![0u8; 4096];
        let mut spare = vec![0u8; 4096];
        let mut pcm = Vec::new();
        let mut frame = Vec::new();
        let mut bytes = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut heard = tokio::time::Instant::now();
        loop {
            let silence = tokio::time::sleep_until(heard + MEDIA_SILENCE);
            tokio::select! {
                got = listen.socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = got else { continue };
                    if from.ip() != node_ip || n < 2 {
                        continue;
                    }
                    heard = tokio::time::Instant::now();
                    let got = Instant::now();
                    listen.peer.get_or_insert(from);
                    let samples = pcm_from_le(&buf[..n]);
                    listen.frame = samples.len();
                    let leg_rate = (samples.len() * 50) as u32;
                    pcm.clear();
                    convert(&samples, leg_rate, rate, up, down, &mut pcm);
                    let at = began.elapsed().as_millis() as u64;
                    if let Err(e) = socket.send(ws(out.media(&pcm, at))).await {
                        break Outcome::Lost(e.to_string());
                    }
                    (self.held)(Direction::ToServer, got.elapsed());
                }
                got = recv_speak(&mut speak, &mut spare), if speak.is_some() => {
                    if let (Some(leg), Some((n, from))) = (speak.as_mut(), got)
                        && from.ip() == node_ip && n >= 2
                    {
                        leg.peer.get_or_insert(from);
                        leg.frame = n / 2;
                    }
                }
                _ = tick.tick() => {
                    let leg = speak.as_ref().unwrap_or(&listen);
                    let (Some(peer), true) = (leg.peer, leg.frame > 0) else { continue };
                    let marks = playout.next_frame(leg.frame, &mut frame);
                    if !frame.is_empty() {
                        bytes.clear();
                        pcm_to_le(&frame, &mut bytes);
                        let sent = leg.socket.send_to(&bytes, peer).await;
                        tracing::trace!(?sent, %peer, "stream frame to the node");
                        for took in playout.held.drain(..) {
                            (self.held)(Direction::ToNode, took);
                        }
                    }
                    for name in marks {
                        if let Err(e) = socket.send(ws(out.mark(&name))).await {
                            return Outcome::Lost(e.to_string());
                        }
                    }
                }
                msg = socket.next() => {
                    let inbound = match msg {
                        None => break Outcome::ServerClosed,
                        Some(Err(e)) => break Outcome::Lost(e.to_string()),
                        Some(Ok(WsMessage::Close(_))) => break Outcome::ServerClosed,
                        Some(Ok(WsMessage::Text(t))) => decoder.text(t.as_str()),
                        Some(Ok(WsMessage::Binary(b))) => decoder.binary(&b),
                        Some(Ok(_)) => continue,
                    };
                    tracing::trace!(?inbound, "stream message from the server");
                    match inbound {
                        Ok(Inbound::Media(samples)) if self.bidirectional => {
                            let leg = speak.as_ref().unwrap_or(&listen);
                            let leg_rate = match leg.frame { 0 => 8000, n => (n * 50) as u32 };
                            pcm.clear();
                            convert(&samples, rate, leg_rate, up_in, down_in, &mut pcm);
                            playout.push(&pcm);
                        }
                        Ok(Inbound::Media(_)) | Ok(Inbound::Ignored) => {}
                        Ok(Inbound::Mark(name)) => playout.mark(name),
                        Ok(Inbound::Clear) => {
                            for name in playout.clear() {
                                if let Err(e) = socket.send(ws(out.mark(&name))).await {
                                    return Outcome::Lost(e.to_string());
                                }
                            }
                        }
                        Err(e) => break Outcome::Lost(format!("the server sent {e}")),
                    }
                }
                ctl = control.recv() => match ctl {
                    None => break Outcome::Stopped("controller".into()),
                    Some(Control::Stop(reason)) => break Outcome::Stopped(reason),
                    Some(Control::Yield) => break Outcome::Yielded,
                    Some(Control::Dtmf { digit, session }) => {
                        if let Err(e) = socket.send(ws(out.dtmf(digit, session.as_deref()))).await {
                            break Outcome::Lost(e.to_string());
                        }
                    }
                },
                () = silence => break Outcome::MediaGone,
            }
        }
    }
}

/// What a stream keeps while it runs, across its legs: Twilio's numbering, the audio queued
/// for the node, the rate converters' state, when it began.
pub struct Running {
    out: Outbound,
    decoder: InboundDecoder,
    playout: Playout,
    up: Upsampler,
    down: Downsampler,
    up_in: Upsampler,
    down_in: Downsampler,
    began: Instant,
}

async fn recv_speak(speak: &mut Option<Leg<'_>>, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match speak {
        Some(leg) => leg.socket.recv_from(buf).await.ok(),
        None => std::future::pending().await,
    }
}

/// `input` at `from` Hz appended to `out` at `to` Hz (the same, twice, or half).
fn convert(
    input: &[i16],
    from: u32,
    to: u32,
    up: &mut Upsampler,
    down: &mut Downsampler,
    out: &mut Vec<i16>,
) {
    match (from, to) {
        (f, t) if f == t => out.extend_from_slice(input),
        (8000, 16000) => up.process(input, out),
        (16000, 8000) => down.process(input, out),
        // A rate the legs never use: passed as it is rather than dropped.
        _ => out.extend_from_slice(input),
    }
}

fn ws(m: Message) -> WsMessage {
    match m {
        Message::Text(t) => WsMessage::Text(t.into()),
        Message::Binary(b) => WsMessage::Binary(b.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_passes_once_the_audio_before_it_has_gone_out() {
        let mut p = Playout::default();
        let mut frame = Vec::new();
        p.push(&[1; 200]);
        p.mark("a".into());
        p.push(&[2; 100]);
        p.mark("b".into());
        p.push(&[3; 160]);
        p.mark("c".into());
        assert!(p.next_frame(160, &mut frame).is_empty());
        assert_eq!(frame.len(), 160);
        // Both marks pass with the frame that carries the end of their audio.
        assert_eq!(
            p.next_frame(160, &mut frame),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert_eq!(&frame[..40], &[1; 40]);
        assert_eq!(&frame[40..140], &[2; 100]);
        assert_eq!(&frame[140..], &[3; 20]);
        assert_eq!(p.next_frame(160, &mut frame), vec!["c".to_owned()]);
        assert_eq!(&frame[140..], &[0; 20]);
        assert!(p.next_frame(160, &mut frame).is_empty());
        assert!(frame.is_empty());
    }

    #[test]
    fn clear_drops_the_queue_and_gives_back_every_pending_mark() {
        let mut p = Playout::default();
        let mut frame = Vec::new();
        p.push(&[1; 8000]);
        p.mark("x".into());
        p.mark("y".into());
        assert_eq!(p.clear(), vec!["x".to_owned(), "y".to_owned()]);
        assert!(p.next_frame(160, &mut frame).is_empty());
        assert!(frame.is_empty());
    }

    #[test]
    fn a_message_is_held_until_the_frame_that_carries_its_first_sample() {
        let mut p = Playout::default();
        let mut frame = Vec::new();
        p.push(&[1; 100]);
        p.push(&[2; 100]);
        p.push(&[3; 160]);
        p.next_frame(160, &mut frame);
        assert_eq!(p.held.len(), 2, "the first two began in the first frame");
        p.held.clear();
        p.next_frame(160, &mut frame);
        assert_eq!(p.held.len(), 1, "the third began in the second");
        p.held.clear();
        p.next_frame(160, &mut frame);
        assert!(p.held.is_empty());
        p.push(&[4; 10]);
        p.clear();
        p.next_frame(160, &mut frame);
        assert!(p.held.is_empty(), "cleared audio never went out");
    }

    #[test]
    fn a_mark_with_nothing_queued_passes_at_the_next_tick() {
        let mut p = Playout::default();
        let mut frame = Vec::new();
        p.mark("now".into());
        assert_eq!(p.next_frame(160, &mut frame), vec!["now".to_owned()]);
    }
}
