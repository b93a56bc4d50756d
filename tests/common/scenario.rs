//! One scripted scenario layer for the differential tests (`tests/live/differential/mod.rs`): a
//! scenario drives a [`Target`] — the simulator started in process, or a real FreeSWITCH started
//! by [`super::freeswitch`] — over the Event Socket with the project's own [`Client`], and a
//! [`Run`] records what the target answered (every command's reply, every `bgapi` job body) and
//! every event a listener subscribed to `event plain ALL` received. Scenarios wait on events,
//! never on time.
//!
//! Calls: on the real node a SIP call from SIPp (`Caller::dial`), parked by the node's `public`
//! dialplan; on the simulator its equivalent, `Simulator::inbound_call`. Either way the scenario
//! gets the channel uuid once the call is parked, and names it (`call1`, …): [`Run::label`] maps
//! uuids, member ids and conference uuids to names so the two targets can be compared.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::esl::{
    ApiCommand, Client, ClientConfig, Event, EventFormat, EventName, EventSet, Password,
};
use switchyard::sim::{SimConfig, Simulator};
use tokio::sync::Notify;

use super::freeswitch::FreeSwitch;
use super::sipp::{Answer, Callee, Caller};

/// How long one awaited event may take (a SIP call's set-up included).
pub const WAIT: Duration = Duration::from_secs(15);

/// The conference profile of `freeswitch-conf/` (the simulator accepts any name).
pub const PROFILE: &str = "switchyard";

/// Where a scenario runs.
pub enum Target {
    Sim(Simulator),
    Real {
        node: FreeSwitch,
        callers: Mutex<Vec<Caller>>,
        /// SIPp callees of dial-outs.
        callees: Mutex<Vec<Callee>>,
    },
}

/// A simulator of the FreeSWITCH under test: its version, and with it what differs between 1.10
/// and 1.11 where the simulator models both (`fixtures/esl/11_versions.md`).
fn sim_config() -> SimConfig {
    let version = super::freeswitch::version();
    SimConfig {
        version: if version.is_empty() {
            SimConfig::default().version
        } else {
            version.to_owned()
        },
        ..SimConfig::default()
    }
}

impl Target {
    pub async fn sim() -> Target {
        let sim = Simulator::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            heartbeat: None,
            // A real node fetches every URL it plays (mod_http_cache).
            fetch_urls: true,
            ..sim_config()
        })
        .await
        .unwrap();
        Target::Sim(sim)
    }

    /// A real node with `freeswitch-conf/` (a few seconds).
    pub async fn real() -> Target {
        let node = tokio::task::spawn_blocking(FreeSwitch::start)
            .await
            .unwrap();
        Target::Real {
            node,
            callers: Mutex::new(Vec::new()),
            callees: Mutex::new(Vec::new()),
        }
    }

    /// A simulator with a node-to-node profile (`SimConfig::node_sip`, a free UDP port): two of
    /// them in this process bridge callers into each other's rooms (`sofia/nodes/…`).
    pub async fn sim_node() -> Target {
        let sim = Simulator::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            heartbeat: None,
            fetch_urls: true,
            node_sip: Some("127.0.0.1:0".parse().unwrap()),
            ..sim_config()
        })
        .await
        .unwrap();
        Target::Sim(sim)
    }

    /// A real node whose node-to-node profile (`nodes`) runs: [`FreeSwitch::start`] is ready
    /// once any profile runs, and sofia starts `nodes` on its own schedule. Polled here, before
    /// a [`Run`] listens, so the polls' `API` events are not recorded.
    pub async fn real_node() -> Target {
        let node = tokio::task::spawn_blocking(|| {
            let node = FreeSwitch::start();
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let running = node.api("sofia status").is_some_and(|s| {
                    s.lines()
                        .any(|l| l.contains("nodes") && l.contains("RUNNING"))
                });
                if running {
                    break node;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the nodes profile of {} does not run",
                    node.esl()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .unwrap();
        Target::Real {
            node,
            callers: Mutex::new(Vec::new()),
            callees: Mutex::new(Vec::new()),
        }
    }

    /// The node's node-to-node SIP address (its `nodes` profile); a simulator must have been
    /// started by [`Target::sim_node`].
    pub fn node_sip(&self) -> SocketAddr {
        match self {
            Target::Sim(sim) => sim
                .node_sip()
                .expect("a simulator started with node_sip (Target::sim_node)"),
            Target::Real { node, .. } => node.node_sip(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Sim(_) => "simulator",
            Target::Real { .. } => "FreeSWITCH",
        }
    }

    fn esl(&self) -> (String, String) {
        match self {
            Target::Sim(sim) => (sim.addr().to_string(), "ClueCon".into()),
            Target::Real { node, .. } => (node.esl(), node.password.clone()),
        }
    }
}

/// One command and what it drew.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The command line (after `api `/`bgapi `), with labels for uuids.
    pub command: String,
    /// `api` reply body, or for `bgapi` the BACKGROUND_JOB body; `ERR …` on a client error.
    pub text: String,
}

/// A scenario's run against one target.
pub struct Run {
    pub target: Target,
    pub ctl: Client,
    events: Arc<Mutex<Vec<Event>>>,
    arrived: Arc<Notify>,
    pub replies: Vec<Reply>,
    /// uuid (or other id) → label, in the order they were named.
    labels: Vec<(String, String)>,
    calls: usize,
}

impl Run {
    /// Connects a listener (`event plain ALL`) and a control connection (subscribed to
    /// BACKGROUND_JOB, as the controller's command connections are).
    pub async fn start(target: Target) -> Run {
        let (addr, password) = target.esl();
        let password = Password::new(&password).unwrap();
        let config = ClientConfig {
            command_timeout: Duration::from_secs(30),
            ..ClientConfig::default()
        };
        let (listener, mut stream) = Client::connect(&addr, &password, config.clone())
            .await
            .unwrap();
        listener
            .subscribe(EventFormat::Plain, EventSet::all())
            .await
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        {
            let (events, arrived) = (events.clone(), arrived.clone());
            tokio::spawn(async move {
                let _keep = listener;
                while let Some(e) = stream.recv().await {
                    events.lock().unwrap().push(e);
                    arrived.notify_waiters();
                }
            });
        }
        let (ctl, mut ctl_events) = Client::connect(&addr, &password, config).await.unwrap();
        ctl.subscribe(
            EventFormat::Plain,
            EventSet::new().names([EventName::BackgroundJob]),
        )
        .await
        .unwrap();
        tokio::spawn(async move { while ctl_events.recv().await.is_some() {} });
        Run {
            target,
            ctl,
            events,
            arrived,
            replies: Vec::new(),
            labels: Vec::new(),
            calls: 0,
        }
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Names an id (a uuid, a member id) for the comparison; the first name given wins.
    pub fn label(&mut self, id: &str, label: &str) {
        if !self.labels.iter().any(|(i, _)| i == id) {
            self.labels.push((id.to_owned(), label.to_owned()));
        }
    }

    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// Replaces every labelled id in `text` with its label.
    pub fn relabel(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (id, label) in &self.labels {
            if id.len() >= 8 {
                out = out.replace(id.as_str(), &format!("<{label}>"));
            }
        }
        out
    }

    /// Waits until an event (counting from the first) satisfies `pred`; returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.wait_from(0, what, pred).await
    }

    /// Waits for an event at index `from` or later satisfying `pred`; a failure dumps the run
    /// (`SWITCHYARD_DIFF_DUMP`) and lists its events.
    pub async fn wait_from(&self, from: usize, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(e) = self.wait_within(from, WAIT, pred).await {
            return e;
        }
        super::diff::dump(self, &format!("timeout.{}", self.target.name()));
        panic!(
            "{}: no {what} within {WAIT:?}; events so far:\n{}",
            self.target.name(),
            self.event_lines()
        );
    }

    /// Like [`Run::wait_from`], but `None` after `within`.
    pub async fn wait_within(
        &self,
        from: usize,
        within: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self
                .events
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .find(|e| pred(e))
            {
                return Some(e.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// How many events arrived so far (to wait for later ones with [`Run::wait_from`]).
    pub fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// The events as one line each, for failure messages.
    pub fn event_lines(&self) -> String {
        self.events()
            .iter()
            .map(|e| {
                format!(
                    "  {} {} {} {}",
                    e.header("Event-Name").unwrap_or_default(),
                    e.header("Action").unwrap_or_default(),
                    self.relabel(&e.header("Unique-ID").unwrap_or_default()),
                    e.header("Channel-State").unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `api <line>`: its reply is recorded (labelled) and returned (raw).
    pub async fn api(&mut self, line: &str) -> String {
        let text = match self.ctl.api(&command(line)).await {
            Ok(r) => r.text().into_owned(),
            Err(e) => format!("ERR {e}"),
        };
        self.record(line, &text, "api");
        text
    }

    /// `bgapi <line>`: the BACKGROUND_JOB body is recorded and returned.
    pub async fn bgapi(&mut self, line: &str) -> String {
        let text = match self.ctl.bgapi(&command(line)).await {
            Ok(r) => r.text().into_owned(),
            Err(e) => format!("ERR {e}"),
        };
        self.record(line, &text, "bgapi");
        text
    }

    pub(crate) fn record(&mut self, line: &str, text: &str, how: &str) {
        let reply = Reply {
            command: format!("{how} {}", self.relabel(line)),
            text: self.relabel(text),
        };
        self.replies.push(reply);
    }

    /// A SIP callee for a dial-out, `sip:<user>@127.0.0.1:<port>`: on the real node a SIPp UAS
    /// that answers as `answer` says; on the simulator an address whose user part says it
    /// (`busy`, `noanswer`, anything else answers). Its address is labelled `callee`.
    pub async fn callee(&mut self, answer: Answer) -> String {
        let user = match answer {
            Answer::Yes => "answer",
            Answer::Busy => "busy",
            Answer::Never => "noanswer",
        };
        let addr = match &self.target {
            Target::Sim(_) => "127.0.0.1:15999".to_owned(),
            Target::Real { callees, .. } => {
                let callee = tokio::task::spawn_blocking(move || Callee::start(answer))
                    .await
                    .unwrap();
                let addr = format!("127.0.0.1:{}", callee.1);
                callees.lock().unwrap().push(callee);
                addr
            }
        };
        self.label(&addr, "callee");
        format!("sip:{user}@{addr}")
    }

    /// A call from `number` (display name `name`) to `did`, answered and parked; labelled
    /// `callN`. Returns its channel uuid.
    pub async fn call(&mut self, did: &str, number: &str, name: &str) -> String {
        self.calls(did, &[(number, name)]).await.remove(0)
    }

    /// Calls placed all at once (`(number, name)` each), labelled in order; their uuids once
    /// every one is parked.
    pub async fn calls(&mut self, did: &str, callers: &[(&str, &str)]) -> Vec<String> {
        self.calls_with(did, callers, false).await
    }

    /// A call whose caller sends no RTP (so it never talks: no talking events race the
    /// scenario's commands on the real node; the simulator's callers are silent unless told).
    pub async fn call_silent(&mut self, did: &str, number: &str, name: &str) -> String {
        self.calls_with(did, &[(number, name)], true)
            .await
            .remove(0)
    }

    async fn calls_with(
        &mut self,
        did: &str,
        callers: &[(&str, &str)],
        silent: bool,
    ) -> Vec<String> {
        let uuids: Vec<String> = match &self.target {
            Target::Sim(sim) => callers
                .iter()
                .map(|(number, name)| {
                    sim.inbound_call(did, number, name)
                        .expect("the simulator places the call")
                })
                .collect(),
            Target::Real {
                node,
                callers: held,
                ..
            } => {
                let dial = |number: &str, name: &str| {
                    let caller = match silent {
                        true => Caller::dial_silent(node.sip(), did, number, name),
                        false => Caller::dial(node.sip(), did, number, name),
                    };
                    let id = caller.call_id.clone();
                    let mut held = held.lock().unwrap();
                    held.push(caller);
                    (id, held.len() - 1)
                };
                let mut placed: Vec<(String, usize)> =
                    callers.iter().map(|(n, m)| dial(n, m)).collect();
                let mut uuids = Vec::new();
                for (i, (number, name)) in callers.iter().enumerate() {
                    let (mut redials, mut waits) = (0, 0);
                    let uuid = loop {
                        let call_id = placed[i].0.clone();
                        let parked = self
                            .wait_within(0, Duration::from_secs(5), |e| {
                                e.header("Event-Name").as_deref() == Some("CHANNEL_PARK")
                                    && e.header("variable_sip_call_id").as_deref() == Some(&call_id)
                            })
                            .await;
                        if let Some(park) = parked {
                            break park.unique_id().unwrap().into_owned();
                        }
                        // A SIPp process that never reached the node (seen about once in a
                        // burst of 30: it exits at once) is dialled again.
                        let reached = self
                            .events()
                            .iter()
                            .any(|e| e.header("variable_sip_call_id").as_deref() == Some(&call_id));
                        let alive = held.lock().unwrap()[placed[i].1].alive();
                        waits += 1;
                        assert!(waits <= 6, "SIP call {number} is not parked after 30 s");
                        if !reached && !alive {
                            redials += 1;
                            assert!(redials <= 3, "SIP call {number} never reached the node");
                            placed[i] = dial(number, name);
                        }
                    };
                    uuids.push(uuid);
                }
                uuids
            }
        };
        for uuid in &uuids {
            self.calls += 1;
            let label = format!("call{}", self.calls);
            self.label(uuid, &label);
            self.wait_for(&format!("CHANNEL_PARK of {label}"), |e| {
                e.header("Event-Name").as_deref() == Some("CHANNEL_PARK")
                    && e.unique_id().as_deref() == Some(uuid.as_str())
            })
            .await;
        }
        uuids
    }

    /// Waits for a channel event of `uuid`.
    pub async fn channel_event(&self, from: usize, name: &str, uuid: &str) -> Event {
        self.wait_from(from, &format!("{name} of {}", self.relabel(uuid)), |e| {
            e.header("Event-Name").as_deref() == Some(name)
                && e.unique_id().as_deref() == Some(uuid)
        })
        .await
    }

    /// Waits until channel `uuid` is gone: its last event, CHANNEL_STATE CS_DESTROY, which
    /// FreeSWITCH fires after CHANNEL_DESTROY from the session's own teardown (waiting only for
    /// CHANNEL_DESTROY let a run end before it arrived now and then).
    pub async fn destroyed(&self, from: usize, uuid: &str) -> Event {
        self.wait_from(
            from,
            &format!("CS_DESTROY of {}", self.relabel(uuid)),
            |e| {
                e.header("Event-Name").as_deref() == Some("CHANNEL_STATE")
                    && e.header("Channel-State").as_deref() == Some("CS_DESTROY")
                    && e.unique_id().as_deref() == Some(uuid)
            },
        )
        .await
    }

    /// Waits for a conference event with `Action` `action` (of channel `uuid`, when given).
    pub async fn conf_event(&self, from: usize, action: &str, uuid: Option<&str>) -> Event {
        let what = format!(
            "{action}{}",
            uuid.map(|u| format!(" of {}", self.relabel(u)))
                .unwrap_or_default()
        );
        self.wait_from(from, &what, |e| {
            e.header("Event-Subclass").as_deref() == Some("conference::maintenance")
                && e.header("Action").as_deref() == Some(action)
                && uuid.is_none_or(|u| e.unique_id().as_deref() == Some(u))
        })
        .await
    }

    /// Waits until every named channel is destroyed (the end of a scenario).
    pub async fn all_destroyed(&self) {
        let uuids: Vec<String> = self
            .labels
            .iter()
            .filter(|(i, _)| uuid::Uuid::try_parse(i).is_ok())
            .map(|(i, _)| i.clone())
            .collect();
        let created: Vec<String> = self
            .events()
            .iter()
            .filter(|e| e.header("Event-Name").as_deref() == Some("CHANNEL_CREATE"))
            .filter_map(|e| e.unique_id().map(|u| u.into_owned()))
            .filter(|u| uuids.contains(u))
            .collect();
        for uuid in created {
            self.destroyed(0, &uuid).await;
        }
    }
}

/// A command line as one `ApiCommand` (name, then the rest as free text).
pub fn command(line: &str) -> ApiCommand {
    let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
    let cmd = ApiCommand::new(name).unwrap();
    if rest.trim().is_empty() {
        cmd
    } else {
        cmd.text(rest).unwrap()
    }
}
