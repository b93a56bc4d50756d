//! One simulated Event Socket connection: mod_event_socket's listener thread. It answers commands
//! strictly in order and, between commands, writes the events its subscription and filters let
//! through, framed exactly as FreeSWITCH frames them.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tokio_util::codec::Framed;

use super::core::Core;
use super::events::SimEvent;
use super::subscription::{SubscribeOutcome, Subscription};
use super::{Fault, SimConfig};
use crate::esl::{ContentType, FrameWriter, Request, RequestCodec, command_reply};

const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";
pub(crate) const SHUTDOWN: &str = "The system is being shut down.\n";
/// Events written per flush at most, so commands are still read promptly under a flood.
const BATCH: usize = 256;
const LOST_EVENTS: &str = "killed listener because of lost events\n";

/// `text/disconnect-notice`, with the header order FreeSWITCH uses for it.
fn notice(text: &str) -> Bytes {
    Bytes::from(format!(
        "Content-Type: text/disconnect-notice\nContent-Length: {}\n\n{text}",
        text.len()
    ))
}

fn reply(text: &str) -> Bytes {
    let mut dst = BytesMut::new();
    command_reply(text, &[], &mut dst);
    dst.freeze()
}

fn api_response(output: &str) -> Bytes {
    let body = if output.is_empty() {
        "-ERR no reply\n"
    } else {
        output
    };
    FrameWriter::new().to_bytes(&ContentType::ApiResponse, Some(body.as_bytes()))
}

/// mod_event_socket matches command keywords by case-insensitive prefix (`strncasecmp(cmd,
/// "event", 5)`), so `events plain …` subscribes and `exit…` or `...` exits.
fn keyword(word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    const KEYWORDS: [&str; 8] = [
        "auth", "bgapi", "api", "nixevent", "noevents", "event", "filter", "exit",
    ];
    if lower == "..." {
        return "exit".into();
    }
    KEYWORDS
        .iter()
        .find(|k| lower.starts_with(*k))
        .map_or(lower.clone(), |k| (*k).to_owned())
}

/// What the connection does after a command.
enum Next {
    Continue,
    Close,
}

struct Listener {
    core: Arc<Core>,
    config: Arc<SimConfig>,
    authed: bool,
    sub: Subscription,
    fault: Fault,
}

pub(crate) async fn serve(stream: TcpStream, core: Arc<Core>, mut faults: watch::Receiver<Fault>) {
    let _ = stream.set_nodelay(true);
    let config = Arc::new(core.config().clone());
    let mut framed = Framed::new(
        stream,
        RequestCodec::counting_line_feeds(core.line_feeds.clone()),
    );
    let mut events = core.subscribe();
    let mut me = Listener {
        core,
        config: config.clone(),
        authed: false,
        sub: Subscription::default(),
        fault: faults.borrow().clone(),
    };
    if framed
        .send(Bytes::from_static(b"Content-Type: auth/request\n\n"))
        .await
        .is_err()
    {
        return;
    }
    let generation = me.fault.generation;
    let mut held: VecDeque<Arc<SimEvent>> = VecDeque::new();
    let auth_deadline = tokio::time::sleep(config.auth_timeout);
    tokio::pin!(auth_deadline);
    loop {
        tokio::select! {
            request = framed.next() => {
                let Some(Ok(request)) = request else { return };
                let slow = faults.borrow().delay_api;
                if let Some(delay) = slow.filter(|_| request.command.starts_with("api ")) {
                    tokio::time::sleep(delay).await;
                }
                if me.authed && config.fetch_urls {
                    fetch_played_url(&me.core, &request.command).await;
                }
                let (out, next) = me.handle(request);
                for frame in out {
                    if framed.feed(frame).await.is_err() {
                        return;
                    }
                }
                if framed.flush().await.is_err() {
                    return;
                }
                if let Next::Close = next {
                    return;
                }
            }
            () = &mut auth_deadline, if !me.authed => {
                let _ = framed.send(notice(GOODBYE)).await;
                return;
            }
            event = events.recv(), if !me.fault.stall_events => match event {
                Ok(event) => {
                    // Faults are read at delivery time, so a switch flipped before an event
                    // was fired always applies to it.
                    me.fault = faults.borrow().clone();
                    if me.fault.stall_events {
                        held.push_back(event);
                        continue;
                    }
                    if !me.send_event(&mut framed, &event).await {
                        return;
                    }
                    // Write what else is already queued in the same flush, as FreeSWITCH drains
                    // its queue between commands.
                    for _ in 0..BATCH {
                        let Ok(event) = events.try_recv() else { break };
                        if !me.send_event(&mut framed, &event).await {
                            return;
                        }
                    }
                    if framed.flush().await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "simulated listener lost events; closing it as FreeSWITCH does");
                    let _ = framed.send(notice(LOST_EVENTS)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
                me.fault = faults.borrow_and_update().clone();
                if !me.fault.stall_events {
                    while let Some(event) = held.pop_front() {
                        if !me.send_event(&mut framed, &event).await {
                            return;
                        }
                    }
                    if framed.flush().await.is_err() {
                        return;
                    }
                }
                if me.fault.generation != generation {
                    if me.fault.notice_on_drop {
                        let _ = framed.send(notice(SHUTDOWN)).await;
                    }
                    return;
                }
            }
        }
    }
}

impl Listener {
    /// Queues an event for writing if this connection should get it (the caller flushes);
    /// false when the socket is gone.
    async fn send_event(
        &self,
        framed: &mut Framed<TcpStream, RequestCodec>,
        event: &SimEvent,
    ) -> bool {
        let Some(frame) = self.deliver(event) else {
            return true;
        };
        if let Some(delay) = self.fault.delay {
            tokio::time::sleep(delay).await;
        }
        framed.feed(frame).await.is_ok()
    }

    /// The frame for an event this connection should get, if any.
    fn deliver(&self, event: &SimEvent) -> Option<Bytes> {
        if !self.authed || !self.sub.wants(&event.name, event.subclass.as_deref()) {
            return None;
        }
        if !self.sub.passes_filters(&event.data) {
            return None;
        }
        if self
            .fault
            .drop_events
            .iter()
            .any(|d| d.matches(&event.data))
        {
            return None;
        }
        Some(event.frame(&self.sub.content_type()))
    }

    fn handle(&mut self, request: Request) -> (Vec<Bytes>, Next) {
        let line = request.command.trim().to_owned();
        let (word, args) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let word = keyword(word);
        if !self.authed {
            return match word.as_str() {
                "auth" if args == self.config.password => {
                    self.authed = true;
                    (vec![reply("+OK accepted")], Next::Continue)
                }
                "auth" => (vec![reply("-ERR invalid"), notice(GOODBYE)], Next::Close),
                "exit" => (vec![reply("+OK bye"), notice(GOODBYE)], Next::Close),
                _ => (vec![reply("-ERR command not found")], Next::Continue),
            };
        }
        let words: Vec<&str> = args.split_whitespace().collect();
        let out = match word.as_str() {
            "api" => api_response(&self.core.esl_api(args)),
            "bgapi" => return (vec![self.bgapi(args, &request)], Next::Continue),
            "event" => match self.sub.subscribe(&words) {
                SubscribeOutcome::Ok => reply(&format!(
                    "+OK event listener enabled {}",
                    self.sub.format_name()
                )),
                SubscribeOutcome::NoKeywords => reply("-ERR no keywords supplied"),
            },
            "nixevent" => match self.sub.nix(&words) {
                SubscribeOutcome::Ok => reply("+OK events nixed"),
                SubscribeOutcome::NoKeywords => reply("-ERR no keywords supplied"),
            },
            "noevents" if self.sub.is_listening() => {
                self.sub.clear();
                reply("+OK no longer listening for events")
            }
            "noevents" => reply("-ERR not listening for events"),
            "filter" => self.filter(&words),
            "exit" => return (vec![reply("+OK bye"), notice(GOODBYE)], Next::Close),
            _ => reply("-ERR command not found"),
        };
        (vec![out], Next::Continue)
    }

    fn filter(&mut self, words: &[&str]) -> Bytes {
        match words {
            ["delete", header] => reply(&self.sub.delete_filter(header, None)),
            ["delete", header, value, ..] => reply(&self.sub.delete_filter(header, Some(value))),
            [header, value, ..] => reply(&self.sub.add_filter(header, value)),
            [_] => reply("-ERR invalid syntax"),
            [] => reply("-ERR command not found"),
        }
    }

    /// Acknowledges at once and runs the job on its own task; the result is a BACKGROUND_JOB
    /// event for whoever is subscribed (FreeSWITCH has no owner filter on inbound sockets).
    fn bgapi(&mut self, args: &str, request: &Request) -> Bytes {
        let job = request
            .header("Job-UUID")
            .map(|j| j.chars().take(36).collect::<String>())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut dst = BytesMut::new();
        command_reply(
            &format!("+OK Job-UUID: {job}"),
            &[("Job-UUID", &job)],
            &mut dst,
        );
        let core = Arc::clone(&self.core);
        let args = args.to_owned();
        tokio::spawn(async move { core.bgapi(&args, &job) });
        dst.freeze()
    }
}

/// For `api|bgapi conference <room> play <file>` of an `http(s)://` file, fetches it first, as
/// mod_http_cache does inside the command; a failure (no answer in 5 s, or not 2xx) is noted so
/// the play fails as on a real node.
async fn fetch_played_url(core: &Arc<Core>, command: &str) {
    let words: Vec<&str> = command.split_whitespace().collect();
    let arg = match words.as_slice() {
        [api, "conference", _, "play", arg, ..]
            if api.eq_ignore_ascii_case("api") || api.eq_ignore_ascii_case("bgapi") =>
        {
            *arg
        }
        _ => return,
    };
    let (_, file) = super::media::split_params(arg);
    if !(file.starts_with("http://") || file.starts_with("https://")) {
        return;
    }
    let fetched = reqwest::Client::new()
        .get(&file)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if !fetched {
        core.url_unreachable(&file);
    }
}
