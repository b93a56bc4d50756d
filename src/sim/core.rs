//! The simulated FreeSWITCH core: identity, event sequence, channels and conference rooms, and
//! the `api` command dispatcher. One `std::sync::Mutex` guards the state; it is never held across
//! an `.await` (timers are scheduled after the lock is released).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::SimConfig;
use super::channel::{App, Channel};
use super::conference::Room;
use super::events::{Identity, SimEvent, prologue};
use super::media::PlayFile;
use crate::esl::EventData;

/// Work the simulated threads do later: FreeSWITCH runs each channel, each conference and each
/// `bgapi` job in its own thread, so what a command sets off continues after its reply.
#[derive(Debug, Clone)]
pub(crate) enum Deferred {
    /// A room's current file ends, unless the room's playback changed since (`token`).
    PlayDone { room: String, token: u64 },
    /// Files stopped by a command get their play-file-done: the hold music's first (how long
    /// it played, if `stop all`/`stop async` stopped it), then the room's files.
    PlayStopped {
        room: String,
        moh: Option<Duration>,
        files: Vec<(PlayFile, Duration)>,
    },
    /// An originated channel leaves the originate and runs its apps.
    RunApps { uuid: String, apps: Vec<App> },
    /// A channel moved by `uuid_transfer` leaves what it runs and routes to `apps`.
    Transfer {
        uuid: String,
        apps: Vec<App>,
        profile: Option<super::transfer::NewProfile>,
    },
    /// A recording's thread opened its file (start-recording), or closed it (stop-recording):
    /// after the command's API event.
    RecordingStarted { room: String, path: String },
    RecordingStopped {
        room: String,
        recording: super::recording::Recording,
    },
    /// The rest of a hangup whose CHANNEL_HANGUP was fired already.
    FinishHangup { uuid: String },
    /// A hangup now (an unanswered call that timed out).
    Hangup { uuid: String, cause: String },
    /// A node-to-node SIP message to this node (one it generated itself: a port that refused).
    Sip(super::link::SipMsg),
    /// A kicked member leaves the room; its channel runs what its dialplan has next.
    Leave { uuid: String },
    /// The floor moves to the members that talk (see `audio.rs`).
    Floor { room: String },
    /// Members start or stop talking as what they hear changed.
    Talk { room: String },
    /// An enter or exit tone ended.
    ToneDone { room: String, token: u64 },
    /// Files an unhold stopped get their play-file-member-done when the member's thread
    /// closes them: after the command's API event.
    MemberFilesStopped {
        room: String,
        id: u32,
        files: Vec<(PlayFile, Duration)>,
    },
    /// The file a member hears alone ended, unless its files changed since (`token`).
    MemberFileDone { room: String, id: u32, token: u64 },
}

/// Steps run in order, in one go, `after` from now.
#[derive(Debug)]
pub(crate) struct Timer {
    pub after: Duration,
    pub steps: Vec<Deferred>,
}

pub(crate) struct State {
    pub id: Identity,
    pub sequence: u64,
    pub started: Instant,
    pub sessions_since_startup: u64,
    pub channels: BTreeMap<String, Channel>,
    pub rooms: BTreeMap<String, Room>,
    pub next_member_id: u32,
    pub next_token: u64,
    pub timers: Vec<Timer>,
    pub config: Arc<SimConfig>,
    /// `http(s)://` files whose fetch failed ([`SimConfig::fetch_urls`]): they cannot be played.
    pub unreachable_urls: std::collections::HashSet<String>,
    /// `bgapi originate` jobs of calls still ringing, by channel: (Job-UUID, command, argument).
    /// Their BACKGROUND_JOB comes when the call is answered or hung up, as FreeSWITCH's does.
    pub pending_jobs: std::collections::HashMap<String, (String, String, String)>,
    events: broadcast::Sender<Arc<SimEvent>>,
}

impl State {
    /// BACKGROUND_JOB: a bgapi's result.
    pub(crate) fn job_done(&mut self, job: &str, command: &str, arg: &str, output: String) {
        let mut e = self.event(
            "BACKGROUND_JOB",
            None,
            ("mod_event_socket.c", "api_exec", 1580),
        );
        e.push("Job-UUID", job);
        e.push("Job-Command", command);
        if !arg.is_empty() {
            e.push("Job-Command-Arg", arg);
        }
        e.body = Some(output);
        self.fire(e);
    }

    /// The pending originate job of a call ends with it (answered: `+OK <uuid>`; hung up:
    /// `-ERR <cause>`).
    pub(crate) fn pending_job_done(&mut self, uuid: &str, output: String) {
        if let Some((job, command, arg)) = self.pending_jobs.remove(uuid) {
            self.job_done(&job, &command, &arg, output);
        }
    }

    fn new(config: Arc<SimConfig>, events: broadcast::Sender<Arc<SimEvent>>) -> State {
        State {
            id: Identity {
                core_uuid: uuid::Uuid::new_v4().to_string(),
                hostname: config.hostname.clone(),
                ipv4: "127.0.0.1".into(),
                ipv6: "::1".into(),
            },
            // A restarted FreeSWITCH has fired its startup events before anyone can connect
            // (capture 09: the first event a client sees is number 441).
            sequence: 440,
            started: Instant::now(),
            sessions_since_startup: 0,
            unreachable_urls: std::collections::HashSet::new(),
            pending_jobs: std::collections::HashMap::new(),
            channels: BTreeMap::new(),
            rooms: BTreeMap::new(),
            next_member_id: config.first_member_id.max(1),
            next_token: 1,
            timers: Vec::new(),
            config,
            events,
        }
    }

    /// Starts an event with the standard prologue and the next sequence number.
    pub fn event(
        &mut self,
        name: &str,
        subclass: Option<&str>,
        calling: (&str, &str, u32),
    ) -> EventData {
        self.sequence += 1;
        prologue(&self.id, name, subclass, self.sequence, calling)
    }

    /// Hands an event to every connection. Nobody listening is not an error.
    pub fn fire(&self, data: EventData) {
        let _ = self.events.send(Arc::new(SimEvent::new(data)));
    }

    /// Runs `step` after `after` (once the state lock is released).
    pub fn later(&mut self, after: Duration, step: Deferred) {
        self.timers.push(Timer {
            after,
            steps: vec![step],
        });
    }

    fn run(&mut self, step: Deferred) {
        match step {
            Deferred::PlayDone { room, token } => self.play_done(&room, token),
            Deferred::PlayStopped { room, moh, files } => self.files_stopped(&room, moh, files),
            Deferred::RunApps { uuid, apps } => self.proceed(&uuid, apps),
            Deferred::Transfer {
                uuid,
                apps,
                profile,
            } => self.transferred(&uuid, apps, profile),
            Deferred::RecordingStarted { room, path } => self.recording_started(&room, &path),
            Deferred::RecordingStopped { room, recording } => {
                self.finish_recording(&room, &recording)
            }
            Deferred::FinishHangup { uuid } => self.finish_hangup(&uuid),
            Deferred::Hangup { uuid, cause } => self.hangup(&uuid, &cause),
            Deferred::Sip(msg) => self.sip_in(msg),
            Deferred::Leave { uuid } => self.leave_and_continue(&uuid),
            Deferred::Floor { room } => self.floor_to_talkers(&room),
            Deferred::Talk { room } => self.update_talking(&room),
            Deferred::ToneDone { room, token } => self.tone_done(&room, token),
            Deferred::MemberFileDone { room, id, token } => self.member_file_done(&room, id, token),
            Deferred::MemberFilesStopped { room, id, files } => {
                for (file, played) in files {
                    self.fire_member_file_done(&room, id, &file, played);
                }
            }
        }
    }

    pub fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }
}

/// The simulated node. Cheap to share (`Arc<Core>`).
pub struct Core {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<SimEvent>>,
    config: Arc<SimConfig>,
    /// Line feeds received between commands on every connection: clients' wake-ups.
    pub(crate) line_feeds: Arc<std::sync::atomic::AtomicU64>,
}

impl Core {
    pub fn new(config: Arc<SimConfig>) -> Arc<Core> {
        let (events, _) = broadcast::channel(config.event_queue.max(16));
        Arc::new(Core {
            state: Mutex::new(State::new(config.clone(), events.clone())),
            events,
            config,
            line_feeds: Arc::default(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a simulator bug; keep serving rather than cascade.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SimEvent>> {
        self.events.subscribe()
    }

    /// Events fired and not yet taken by the slowest connection.
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn core_uuid(&self) -> String {
        self.lock().id.core_uuid.clone()
    }

    /// Runs one `api` command line and returns what FreeSWITCH would print. Empty output is
    /// returned empty; the listener turns it into `-ERR no reply`. In process: no API event.
    pub fn api(self: &Arc<Self>, line: &str) -> String {
        let mut state = self.lock();
        let out = state.execute(line, &self.config.version);
        self.release(state);
        out
    }

    /// `api <line>` from an ESL client: the command, then its API event (FreeSWITCH creates the
    /// event, and so takes its sequence number, before the command runs, and fires it after).
    /// Notes that fetching `url` failed (see [`SimConfig::fetch_urls`]).
    pub fn url_unreachable(self: &Arc<Self>, url: &str) {
        let mut state = self.lock();
        state.unreachable_urls.insert(url.to_owned());
        self.release(state);
    }

    pub fn esl_api(self: &Arc<Self>, line: &str) -> String {
        let mut state = self.lock();
        let api = state.api_event(line);
        let mut out = state.execute(line, &self.config.version);
        // A blocking originate of a call that rings on: the simulator does not hold the
        // connection; it answers as the timeout would.
        if let Some(uuid) = out.strip_prefix(super::channels::PENDING_JOB) {
            let uuid = uuid.to_owned();
            state.hangup(&uuid, "NO_ANSWER");
            state.pending_jobs.remove(&uuid);
            out = "-ERR NO_ANSWER\n".into();
        }
        state.fire(api);
        self.release(state);
        out
    }

    /// `bgapi <line>`: the job runs, fires its API event, then BACKGROUND_JOB with the output.
    pub fn bgapi(self: &Arc<Self>, line: &str, job: &str) {
        let mut state = self.lock();
        let api = state.api_event(line);
        let output = state.execute(line, &self.config.version);
        state.fire(api);
        let (command, arg) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        match output.strip_prefix(super::channels::PENDING_JOB) {
            Some(uuid) => {
                let job = (job.to_owned(), command.to_owned(), arg.to_owned());
                state.pending_jobs.insert(uuid.to_owned(), job);
            }
            None => state.job_done(job, command, arg, output),
        }
        self.release(state);
    }

    /// Drops the lock, then arms the timers the work left behind.
    fn release(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        let timers = std::mem::take(&mut state.timers);
        drop(state);
        self.schedule(timers);
    }

    fn schedule(self: &Arc<Self>, timers: Vec<Timer>) {
        for timer in timers {
            let core = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(timer.after).await;
                let mut state = core.lock();
                for step in timer.steps {
                    state.run(step);
                }
                core.release(state);
            });
        }
    }

    /// A node-to-node SIP message arrived (see `link.rs`).
    pub(crate) fn sip_in(self: &Arc<Self>, msg: super::link::SipMsg) {
        let mut state = self.lock();
        state.sip_in(msg);
        self.release(state);
    }

    /// Fires HEARTBEAT and its RE_SCHEDULE, as the core does every 20 s.
    pub fn heartbeat(&self) {
        let mut state = self.lock();
        let up = state.started.elapsed();
        let sessions = state.channels.len();
        let since = state.sessions_since_startup;
        let mut e = state.event("HEARTBEAT", None, ("switch_core.c", "send_heartbeat", 81));
        e.push("Event-Info", "System Ready");
        e.push("Up-Time", uptime_text(up));
        e.push("FreeSWITCH-Version", self.config.version.clone());
        e.push("Uptime-msec", up.as_millis().to_string());
        e.push("Session-Count", sessions.to_string());
        e.push("Max-Sessions", "1000");
        e.push("Session-Per-Sec", "30");
        e.push("Session-Per-Sec-Last", "0");
        e.push("Session-Per-Sec-Max", "2");
        e.push("Session-Per-Sec-FiveMin", "0");
        e.push("Session-Since-Startup", since.to_string());
        e.push("Session-Peak-Max", sessions.to_string());
        e.push("Session-Peak-FiveMin", sessions.to_string());
        e.push("Idle-CPU", "96.400000");
        state.fire(e);
        let mut r = state.event(
            "RE_SCHEDULE",
            None,
            ("switch_scheduler.c", "switch_scheduler_execute", 73),
        );
        r.push("Task-ID", "2");
        r.push("Task-Desc", "heartbeat");
        r.push("Task-Group", "core");
        r.push(
            "Task-Runtime",
            (super::events::now_micros() / 1_000_000 + 20).to_string(),
        );
        state.fire(r);
    }

    /// A FreeSWITCH restart as clients see it: every channel and room is gone (no events reach
    /// anyone; connections are dropped by the caller), a new Core-UUID, the sequence restarted.
    pub fn restart(&self) {
        let mut state = self.lock();
        // Its calls end: the other nodes' legs get their BYE.
        state.bye_all();
        *state = State::new(self.config.clone(), self.events.clone());
    }
}

pub(crate) fn uptime_text(up: Duration) -> String {
    let total = up.as_secs();
    let micros = up.subsec_micros();
    format!(
        "0 years, {} days, {} hours, {} minutes, {} seconds, {} milliseconds, {} microseconds",
        total / 86_400,
        (total % 86_400) / 3600,
        (total % 3600) / 60,
        total % 60,
        micros / 1000,
        micros % 1000
    )
}

impl State {
    fn api_event(&mut self, line: &str) -> EventData {
        let line = line.trim();
        let (name, args) = line.split_once(' ').unwrap_or((line, ""));
        let mut e = self.event(
            "API",
            None,
            ("switch_loadable_module.c", "switch_api_execute", 3140),
        );
        e.push("API-Command", name);
        if !args.trim().is_empty() {
            e.push("API-Command-Argument", args.trim());
        }
        e
    }

    fn execute(&mut self, line: &str, version: &str) -> String {
        let line = line.trim();
        let (name, args) = line.split_once(' ').unwrap_or((line, ""));
        let args = args.trim();
        match name {
            "status" => self.status(),
            "version" => format!("FreeSWITCH Version {version} ( 64bit)\n"),
            "global_getvar" => match args {
                "core_uuid" => self.id.core_uuid.clone(),
                "hostname" => self.id.hostname.clone(),
                _ => String::new(),
            },
            "originate" => self.originate(args),
            "uuid_kill" => self.uuid_kill(args),
            "uuid_transfer" => self.uuid_transfer(args),
            "uuid_exists" => self.channels.contains_key(args).to_string(),
            "uuid_getvar" => self.uuid_getvar(args),
            "hupall" => self.hupall(args),
            "show" => self.show(args),
            "conference" => self.conference(args),
            "sim_inbound" => self.inbound(args),
            "sim_dtmf" => self.caller_dtmf(args),
            "uuid_recv_dtmf" => self.recv_dtmf(args),
            "sim_talk" => self.caller_talk(args),
            "http_put" => super::http_put::http_put(args),
            _ => format!("-ERR {name} Command not found!\n"),
        }
    }

    fn status(&self) -> String {
        format!(
            "UP {}\nFreeSWITCH (Version {}  64bit) is ready\n{} session(s) since startup\n{} session(s) - peak {}, last 5min {} \n0 session(s) per Sec out of max 30, peak 2, last 5min 2 \n{} session(s) max\nmin idle cpu 0.00/96.40\nCurrent Stack Size/Max 240K/8192K\n",
            uptime_text(self.started.elapsed()),
            self.config.version.split('~').next().unwrap_or_default(),
            self.sessions_since_startup,
            self.channels.len(),
            self.channels.len(),
            self.channels.len(),
            self.config.max_sessions,
        )
    }
}
