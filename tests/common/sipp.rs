//! Real SIP callers: SIPp (Debian's `sip-tester`) places a call as a carrier would — an INVITE
//! of a DID to the node's SIP profile with G.711 µ-law SDP, the ACK, then RTP audio (a 440 Hz
//! tone, looped; [`Caller::dial_tone`] picks another frequency) until the node sends BYE, which
//! it answers with 200. One SIPp process a call; the process is killed when the [`Caller`] is
//! dropped.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

const HOW_TO_INSTALL: &str = "SIPp places the live tests' calls: install it with \
     `apt-get update && apt-get install -y sip-tester` (or run scripts/test-deps.sh)";

/// The UAC scenario. `AUDIO` is replaced with the raw µ-law file's path (SIPp does not expand
/// keywords inside `rtp_stream`).
const SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="switchyard caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[caller_name]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SY[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:[caller]@[local_ip]:[local_port]
      Max-Forwards: 70
      User-Agent: switchyard-test-caller
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[caller_name]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SY[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:[caller]@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <nop><action><exec rtp_stream="AUDIO,-1,0"/></action></nop>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;

/// The line of [`SCENARIO`] that sends the audio.
const AUDIO_LINE: &str = r#"<nop><action><exec rtp_stream="AUDIO,-1,0"/></action></nop>"#;

/// The scenario of a caller who sends no RTP at all (a phone on hold, silence suppression).
fn silent_scenario() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = files().0.with_file_name("uac-silent.xml");
        std::fs::write(&path, SCENARIO.replace(AUDIO_LINE, "")).unwrap();
        path
    })
}

/// Where the scenario and the audio are written, once per test process.
fn files() -> &'static (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES.get_or_init(|| write_tone(440.0, "uac.xml", "tone-440hz.ulaw"))
}

/// The scenario and audio of a caller sending a `freq` Hz tone, written once per frequency.
fn tone_files(freq: f64) -> (PathBuf, PathBuf) {
    static FILES: Mutex<BTreeMap<u64, (PathBuf, PathBuf)>> = Mutex::new(BTreeMap::new());
    let mut files = FILES.lock().unwrap();
    files
        .entry(freq.to_bits())
        .or_insert_with(|| {
            write_tone(
                freq,
                &format!("uac-{freq}hz.xml"),
                &format!("caller-{freq}hz.ulaw"),
            )
        })
        .clone()
}

/// Writes two seconds of a `freq` Hz tone (looped by SIPp: a whole number of cycles when `freq`
/// is a multiple of 0.5 Hz) and the scenario sending it, in this process's temporary directory.
fn write_tone(freq: f64, scenario: &str, audio: &str) -> (PathBuf, PathBuf) {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("switchyard-sipp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    let audio = dir.join(audio);
    std::fs::write(&audio, ulaw_tone(freq, 2_000)).unwrap();
    let scenario = dir.join(scenario);
    std::fs::write(
        &scenario,
        SCENARIO.replace("AUDIO", &audio.to_string_lossy()),
    )
    .unwrap();
    (scenario, audio)
}

/// Whether SIPp is installed (the live tests need it).
pub fn require() {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(found, "{HOW_TO_INSTALL}");
}

/// One call in progress (or ended: the node's BYE ends the SIPp process).
pub struct Caller {
    child: Option<Child>,
    pub call_id: String,
    pub number: String,
    pub name: String,
}

impl Caller {
    /// Calls `did` at the node's SIP address, from `number` with the display name `name`.
    pub fn dial(node: SocketAddr, did: &str, number: &str, name: &str) -> Caller {
        Caller::dial_with(node, did, number, name, &files().0)
    }

    /// The same caller, but sending no RTP at all.
    pub fn dial_silent(node: SocketAddr, did: &str, number: &str, name: &str) -> Caller {
        Caller::dial_with(node, did, number, name, silent_scenario())
    }

    /// The same caller, sending a tone of `freq` Hz (rather than 440 Hz): tells callers apart
    /// in the conference's audio.
    pub fn dial_tone(node: SocketAddr, did: &str, number: &str, name: &str, freq: f64) -> Caller {
        Caller::dial_with(node, did, number, name, &tone_files(freq).0)
    }

    fn dial_with(node: SocketAddr, did: &str, number: &str, name: &str, scenario: &Path) -> Caller {
        require();
        let call_id = format!("sy-{}", uuid::Uuid::new_v4().simple());
        let media_port = media_port();
        let child = Command::new("sipp")
            .arg(node.to_string())
            .arg("-sf")
            .arg(scenario)
            .args(["-s", did])
            .args(["-key", "caller", number])
            .args(["-key", "caller_name", name])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-mp", &media_port.to_string()])
            .args(["-cid_str", &call_id])
            .args(["-m", "1", "-nostdin"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sipp ({e}): {HOW_TO_INSTALL}"));
        Caller {
            child: Some(child),
            call_id,
            number: number.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Whether SIPp is still in the call.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIPp's exit code once the call is over: 0 when the node's BYE was answered.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
            .and_then(|s| s.code())
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An RTP port for the next caller: this process hands them out in turn (four apart: RTP and
/// RTCP, and room to spare) from a random start in 30000–32767, below the kernel's ephemeral
/// range and above the test nodes' RTP ranges, skipping ports found taken. (The SIP port is left
/// to SIPp, which asks the system for a free one.)
pub fn media_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        30_000 + 4 * fastrand::u16(0..300),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let p = NEXT.fetch_add(4, Ordering::SeqCst);
        let p = if p >= 32_760 {
            NEXT.store(30_004, Ordering::SeqCst);
            30_000
        } else {
            p
        };
        if UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
}

/// G.711 µ-law of one 16-bit sample (ITU-T G.711, with the usual bias of 0x84).
pub fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = (s.min(32_635) + BIAS) as u32;
    let exponent = (31 - s.leading_zeros()).saturating_sub(7).min(7);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

/// Headerless G.711 µ-law (8 kHz) of a sine tone. SIPp's `rtp_stream` sends a file's bytes as
/// they are, a WAV's header included (seen on the wire): a header would be a burst of noise at
/// every loop, which FreeSWITCH hears as talking.
pub fn ulaw_tone(freq: f64, millis: u32) -> Vec<u8> {
    (0..8 * millis as usize)
        .map(|i| {
            let v = (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin();
            ulaw((v * 8000.0) as i16)
        })
        .collect()
}

/// The raw µ-law the callers send (for a test that wants to compare what was recorded).
pub fn audio_path() -> &'static Path {
    &files().1
}

/// The callers' UAC scenario (for one SIPp process placing many calls, as the benches do).
pub fn scenario_path() -> &'static Path {
    &files().0
}

/// A SIPp UAS on a free port, killed when dropped: SIPp's built-in `uas` (rings, answers), a
/// scenario that answers every INVITE `486 Busy Here`, or one that rings and never answers.
pub struct Callee(Child, pub u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    Busy,
    Never,
}

/// Rings (180) and waits for the CANCEL, which it accepts.
const RINGING: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ringing callee">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SYR[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:callee@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <recv request="CANCEL"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SYR[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;

const BUSY: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy callee">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SYB[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"#;

impl Callee {
    pub fn start(answer: Answer) -> Callee {
        let port = super::freeswitch::free_udp_and_tcp_port();
        let mut cmd = Command::new("sipp");
        let scenario = match answer {
            Answer::Yes => None,
            Answer::Busy => Some(BUSY),
            Answer::Never => Some(RINGING),
        };
        match scenario {
            Some(xml) => {
                let path = std::env::temp_dir().join(format!("switchyard-callee-{port}.xml"));
                std::fs::write(&path, xml).unwrap();
                cmd.arg("-sf").arg(path);
            }
            None => drop(cmd.args(["-sn", "uas"])),
        }
        // SIPp's own stderr says why it stopped (a port taken, a bad scenario).
        let log = std::env::temp_dir().join(format!("switchyard-callee-{port}.log"));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = cmd
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string()])
            // A free RTP port: SIPp's default (6000) may be anyone's.
            .args(["-mp", &media_port().to_string()])
            .args(["-m", "1", "-nostdin"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("sipp starts (scripts/test-deps.sh installs it)");
        // Listening once the kernel lists its socket. (Probing by binding the port ourselves
        // would race SIPp's own bind and make it exit.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !udp_listening(port) {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || std::time::Instant::now() > deadline {
                panic!(
                    "sipp never listened on {port} ({exited:?}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Callee(child, port)
    }
}

/// Whether a UDP socket is bound to 127.0.0.1:`port` (from the kernel's `/proc/net/udp`).
fn udp_listening(port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|table| {
        table
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
    })
}

impl Drop for Callee {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
