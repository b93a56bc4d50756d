#!/usr/bin/env python3
"""Record what a real FreeSWITCH (mod_conference) sends and answers for participant features.

What it does
------------
Starts ONE isolated FreeSWITCH (the installed binary, default /usr/local/freeswitch/bin/freeswitch)
with a temporary copy of this repository's freeswitch-conf/ (SIP, RTP and the Event Socket bound to
127.0.0.1 on free ports, a random Event Socket password), then:

* opens an Event Socket connection, sends `event plain ALL` and records every byte it receives and
  sends (`<out>/07_participants.recv.raw`, `<out>/07_participants.sent.raw`);
* opens a second Event Socket connection for the `api ...` commands (not recorded byte for byte:
  every command and its reply is written to the transcript);
* places real SIP calls with SIPp (Debian's sip-tester) to a DID; the dialplan answers and parks
  them; each is joined into a conference the way Switchyard does it
  (`uuid_transfer <uuid> conference:<room>@switchyard+flags{mute},park: inline`), after a control
  leg opened the room (`originate {...}null/switchyard &conference(<room>@switchyard+flags{mute|deaf})`);
* callers: A sends a 1250 Hz tone in bursts (1.5 s on, 1.5 s off; G.711 u-law through SIPp's
  rtp_stream, from a headerless u-law file: SIPp 3.6.1 sends a WAV file's header bytes as audio);
  B sends u-law silence; S sends real speech (the speech of SIPp's g711a.pcap re-encoded to u-law,
  then 2 s of silence, looped); D sends RFC 2833 DTMF (SIPp's dtmf_2833_*.pcap, nothing else);
  L and L2 are "listeners" whose RTP goes to a UDP socket of this script, which decodes what
  FreeSWITCH sends them and classifies each 250 ms (silence, A's 1250 Hz tone, 440 Hz =
  sounds/test.wav, or other sound such as music on hold or speech);
* walks through: talking, deaf/undeaf, hold/unhold (with and without a file), relate, play and
  saymember to one member, uuid_broadcast, recording pause/resume, DTMF, max members (API and profile
  param), moderator/wait-mod/endconf, mintwo;
* writes a human-readable transcript (--transcript, default $TMPDIR/07_participants.transcript.txt;
  fixtures/esl/07_participants.md quotes it): every api command with its reply verbatim, the
  json_list flags, the interesting events (Event-Sequence, Action, Member-ID, flags headers...) in
  arrival order, and the audio each listener received.

Configuration changes made in the temporary copy only (the repository's files are not touched):
  - conference.conf.xml: the `suppress-events` param (start-talking,stop-talking) is removed, so
    talking events are sent;
  - a second profile `switchyard_max` (the same params plus `max-members` = 2) is added for the
    profile-param max-members test.

Usage
-----
    python3 scripts/record-participants.py [--out DIR] [--transcript FILE] [--freeswitch BIN]
                                           [--conf DIR] [--keep]

--out defaults to fixtures/esl (it overwrites the two .raw files there); use --out /tmp/x to look
first. Event-Sequence numbers, member ids, uuids and timings differ from run to run; the api
replies and the order of events did not change between the runs made for 07_participants.md.

Needs: python3 (standard library only), sipp on PATH, /usr/share/sip-tester/*.pcap, an installed
FreeSWITCH with mod_conference, mod_sofia, mod_loopback (null/), mod_local_stream, mod_flite,
mod_sndfile, mod_tone_stream. Takes about 3 minutes. Starts one FreeSWITCH and stops it (SIGTERM
to its pid) at the end; every SIPp it started is stopped by pid too.
"""

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import wave

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIPP_PCAPS = "/usr/share/sip-tester"
TALK_HZ = 1250.0
PROFILE = "switchyard"

T0 = time.monotonic()


def now():
    return time.monotonic() - T0


# ----------------------------------------------------------------------------------------------
# transcript

class Transcript:
    def __init__(self, path):
        self.f = open(path, "w", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, line=""):
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()
        print(line, flush=True)


TR = None


def log(msg):
    TR.write("[%8.3f] %s" % (now(), msg))


# ----------------------------------------------------------------------------------------------
# ports

def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def free_udp_tcp_port():
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        p = u.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", p))
            return p
        except OSError:
            pass
        finally:
            t.close()
            u.close()


def udp_free(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_rtp_range(n=200):
    while True:
        start = 10000 + 2 * random.randrange(0, (20000 - n) // 2)
        if all(udp_free(p) for p in range(start, start + n, 10)):
            return start, start + n - 1


_next_media = [30000 + 4 * random.randrange(0, 300)]


def media_port():
    while True:
        p = _next_media[0]
        _next_media[0] += 4
        if _next_media[0] > 32760:
            _next_media[0] = 30000
        if udp_free(p) and udp_free(p + 1):
            return p


# ----------------------------------------------------------------------------------------------
# Event Socket

def parse_headers(block):
    out = []
    for line in block.split(b"\n"):
        if not line:
            continue
        k, _, v = line.partition(b":")
        out.append((k.decode("latin-1"), v.lstrip(b" ").decode("latin-1")))
    return out


class Frames:
    """Splits an Event Socket byte stream into (headers, body) frames."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            i = self.buf.find(b"\n\n")
            if i < 0:
                break
            hdrs = parse_headers(self.buf[:i])
            clen = 0
            for k, v in hdrs:
                if k.lower() == "content-length":
                    clen = int(v)
            if len(self.buf) < i + 2 + clen:
                break
            body = self.buf[i + 2:i + 2 + clen]
            self.buf = self.buf[i + 2 + clen:]
            out.append((hdrs, body))
        return out


class Event:
    def __init__(self, t, offset, body):
        self.t = t
        self.offset = offset
        head, sep, inner = body.partition(b"\n\n")
        self.headers = [(k, urllib.parse.unquote(v, encoding="latin-1")) for k, v in parse_headers(head)]
        self.body = inner if sep else b""
        self.h = {}
        for k, v in self.headers:
            self.h.setdefault(k.lower(), v)

    def get(self, k, default=None):
        return self.h.get(k.lower(), default)

    @property
    def name(self):
        return self.get("Event-Name")

    @property
    def seq(self):
        return int(self.get("Event-Sequence", "0"))


class EventConn(threading.Thread):
    """`event plain ALL`; every byte received and sent is kept."""

    def __init__(self, port, password, recv_path, sent_path):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.recv_f = open(recv_path, "wb")
        self.sent_f = open(sent_path, "wb")
        self.received = 0
        self.frames = Frames()
        self.events = []
        self.cond = threading.Condition()
        self.replies = []
        self.closed = False
        self.start()
        self._wait_reply()  # auth/request
        self.send("auth %s\n\n" % password)
        r = self._wait_reply()
        assert "+OK" in dict(r).get("Reply-Text", ""), r
        self.send("event plain ALL\n\n")
        r = self._wait_reply()
        assert "+OK" in dict(r).get("Reply-Text", ""), r

    def send(self, text):
        data = text.encode()
        self.sent_f.write(data)
        self.sent_f.flush()
        self.sock.sendall(data)

    def _wait_reply(self, timeout=10):
        end = time.monotonic() + timeout
        with self.cond:
            while not self.replies:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no reply on event connection")
                self.cond.wait(left)
            return self.replies.pop(0)

    def run(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    self.closed = True
                    self.cond.notify_all()
                return
            t = now()
            self.recv_f.write(data)
            self.recv_f.flush()
            base = self.received
            self.received += len(data)
            for hdrs, body in self.frames.feed(data):
                ct = dict(hdrs).get("Content-Type", "")
                with self.cond:
                    if ct == "text/event-plain":
                        self.events.append(Event(t, base, body))
                    else:
                        self.replies.append(hdrs)
                    self.cond.notify_all()

    def last_seq(self):
        with self.cond:
            return self.events[-1].seq if self.events else 0

    def wait_for(self, pred, timeout, since=0):
        """First event (index >= since) matching pred, or None after timeout."""
        end = time.monotonic() + timeout
        with self.cond:
            i = since
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def count(self):
        with self.cond:
            return len(self.events)

    def close(self):
        try:
            self.send("exit\n\n")
            time.sleep(0.5)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.join(3)
        self.recv_f.close()
        self.sent_f.close()


class ApiConn:
    def __init__(self, port, password):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.frames = Frames()
        self.pending = []
        self._next()
        self.sock.sendall(("auth %s\n\n" % password).encode())
        h, _ = self._next()
        assert "+OK" in dict(h).get("Reply-Text", ""), h

    def _next(self, timeout=60):
        self.sock.settimeout(timeout)
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("api connection closed")
            self.pending.extend(self.frames.feed(data))
        return self.pending.pop(0)

    def raw(self, cmd, timeout=60):
        self.sock.sendall(("api %s\n\n" % cmd).encode())
        _, body = self._next(timeout)
        return body.decode("utf-8", "replace")


# ----------------------------------------------------------------------------------------------
# audio helpers

def ulaw_encode(sample):
    BIAS = 0x84
    s = int(sample)
    sign = 0
    if s < 0:
        s = -s
        sign = 0x80
    s = min(s, 32635) + BIAS
    exponent = max(0, min(7, s.bit_length() - 1 - 7))
    mantissa = (s >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa)) & 0xFF


def ulaw_decode(b):
    b = ~b & 0xFF
    sign = b & 0x80
    exponent = (b >> 4) & 0x07
    mantissa = b & 0x0F
    s = ((mantissa << 3) + 0x84) << exponent
    s -= 0x84
    return -s if sign else s


ULAW = [ulaw_decode(i) for i in range(256)]


def alaw_decode(a):
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def speech_ulaw_from_pcap(path, tail_ms=2000):
    """The speech of SIPp's g711a.pcap (A-law RTP, 7 s) as headerless u-law, then silence: sent
    with rtp_stream it is continuous RTP, so the end of speech is a real silence, not a gap."""
    d = open(path, "rb").read()
    off, out = 24, bytearray()
    while off + 16 <= len(d):
        incl = struct.unpack("<I", d[off + 8:off + 12])[0]
        pkt = d[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[14:]
        udp = ip[(ip[0] & 15) * 4:]
        payload = udp[8 + 12:]
        out += bytes(ulaw_encode(alaw_decode(b)) for b in payload)
    return bytes(out) + b"\xff" * (8 * tail_ms)


def tone_bursts_ulaw(freq, on_ms, off_ms, amp=8000):
    """Headerless G.711 u-law: SIPp 3.6.1's rtp_stream sends a file's bytes as they are, so a WAV
    header would go out as 58 bytes of noise at the start of every loop (seen on the wire)."""
    out = bytearray()
    for i in range(8 * on_ms):
        out.append(ulaw_encode(amp * math.sin(2 * math.pi * freq * i / 8000.0)))
    out += b"\xff" * (8 * off_ms)
    return bytes(out)


def silence_ulaw(ms=2000):
    return b"\xff" * (8 * ms)


def goertzel_ratio(samples, freq):
    n = len(samples)
    if n == 0:
        return 0.0
    k = 2 * math.cos(2 * math.pi * freq / 8000.0)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + k * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    total = sum(x * x for x in samples)
    if total <= 0:
        return 0.0
    return 2.0 * power / (n * total)


class RtpListener(threading.Thread):
    """A caller's RTP endpoint: records what FreeSWITCH sends (u-law) and answers with silence."""

    def __init__(self, label):
        super().__init__(daemon=True)
        self.label = label
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.packets = []  # (t, payload type, payload bytes)
        self.peer = None
        self.stop = False
        self.start()
        threading.Thread(target=self._sender, daemon=True).start()

    def run(self):
        self.sock.settimeout(0.5)
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            self.peer = addr
            cc = data[0] & 0x0F
            off = 12 + 4 * cc
            self.packets.append((now(), data[1] & 0x7F, data[off:]))

    def _sender(self):
        seq = random.randrange(65536)
        ts = random.randrange(1 << 32)
        ssrc = random.randrange(1 << 32)
        payload = b"\xff" * 160
        nxt = time.monotonic()
        while not self.stop:
            nxt += 0.02
            if self.peer:
                hdr = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                try:
                    self.sock.sendto(hdr + payload, self.peer)
                except OSError:
                    return
                seq += 1
                ts += 160
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)

    def analyze(self, t_from, t_to, win=0.25):
        """One character per window: '.' silence, 'T' A's tone, '4' 440 Hz, 'o' other sound,
        '_' no packet."""
        chars = []
        t = t_from
        while t + win <= t_to + 1e-9:
            pl = b"".join(p for (tt, pt, p) in self.packets if t <= tt < t + win and pt == 0)
            samples = [ULAW[b] for b in pl]
            if not samples:
                chars.append("_")
            else:
                level = sum(abs(x) for x in samples) / len(samples)
                if level < 60:
                    chars.append(".")
                elif goertzel_ratio(samples, TALK_HZ) > 0.5:
                    chars.append("T")
                elif goertzel_ratio(samples, 440.0) > 0.5:
                    chars.append("4")
                else:
                    chars.append("o")
            t += win
        return "".join(chars)

    def close(self):
        self.stop = True
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# SIPp

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="participants caller">
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
      User-Agent: switchyard-participants-recorder
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
@SDP@
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
@MEDIA@
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
"""

SDP_PCMU = """      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv"""

SDP_DTMF = """      m=audio [auto_media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv"""

SDP_LISTENER = """      m=audio @PORT@ RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv"""


def media_stream(path):
    return '  <nop><action><exec rtp_stream="%s,-1,0"/></action></nop>' % path


def media_pcap_steps(steps):
    out = []
    for kind, val in steps:
        if kind == "pause":
            out.append('  <pause milliseconds="%d"/>' % val)
        else:
            out.append('  <nop><action><exec play_pcap_audio="%s"/></action></nop>' % val)
    return "\n".join(out)


class Sipp:
    def __init__(self, workdir, label, sip_port, did, number, sdp, media):
        self.label = label
        self.number = number
        path = os.path.join(workdir, "uac-%s.xml" % label)
        with open(path, "w") as f:
            f.write(SCENARIO.replace("@SDP@", sdp).replace("@MEDIA@", media))
        self.log = open(os.path.join(workdir, "sipp-%s.log" % label), "w")
        cmd = ["sipp", "127.0.0.1:%d" % sip_port, "-sf", path, "-s", did,
               "-key", "caller", number, "-key", "caller_name", "Caller%s" % label,
               "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(media_port()),
               "-cid_str", "pr-%s-%s" % (label, uuid.uuid4().hex[:12]),
               "-m", "1", "-nostdin"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=workdir)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ----------------------------------------------------------------------------------------------
# the session

INTERESTING = {
    "CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_UNPARK", "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY",
    "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "DTMF", "PLAYBACK_START",
    "PLAYBACK_STOP", "RECORD_START", "RECORD_STOP", "CUSTOM", "CHANNEL_PROGRESS_MEDIA",
}
SKIP_APPS = {"set", "export"}

EXTRA = ["Caller-Caller-ID-Number", "Conference-Name", "Conference-Size", "Member-Type", "Hear",
         "Speak", "Talking", "Hold", "Mute-Detect", "Floor", "Member-Ghost", "Energy-Level",
         "Current-Energy", "File", "Async", "Text", "Path", "Other-Recordings", "DTMF-Digit",
         "DTMF-Duration", "DTMF-Source", "DTMF-Key", "Digits", "Data", "Channel-State",
         "Answer-State", "Hangup-Cause", "Application", "Application-Data", "Application-Response",
         "Old-ID", "New-ID", "seconds", "milliseconds", "samples", "talking-gate-hits",
         "talking-total-packets", "talking-duration-ms", "talking-average-energy",
         "Samples-Out", "Milliseconds-Elapsed", "Record-File-Size", "Playback-File-Path",
         "Playback-Status", "Error", "Reason", "Result"]


class Session:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="switchyard-participants-")
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        self.labels = {}  # uuid -> label
        self.members = {}  # label -> member id
        self.uuids = {}  # label -> uuid
        self.sipps = {}
        self.listeners = {}
        self.fs = None
        self.next_number = 2001
        self.shown = 0

    # ---- node

    def start_node(self):
        conf = os.path.join(self.dir, "conf")
        shutil.copytree(self.args.conf, conf)
        for sub in ["log", "db", "run", "rec", "storage", "cache", "sounds"]:
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        cpath = os.path.join(conf, "autoload_configs", "conference.conf.xml")
        text = open(cpath).read()
        text, n = re.subn(r'\s*<param name="suppress-events" value="[^"]*"/>', "", text)
        assert n == 1, "suppress-events param not found"
        prof = re.search(r'(<profile name="switchyard">.*?</profile>)', text, re.S).group(1)
        maxprof = prof.replace('name="switchyard"', 'name="switchyard_max"').replace(
            "</profile>", '  <param name="max-members" value="2"/>\n    </profile>')
        text = text.replace("</profiles>", "  " + maxprof + "\n  </profiles>")
        open(cpath, "w").write(text)
        self.password = uuid.uuid4().hex
        self.esl_port = free_tcp_port()
        self.sip_port = free_udp_tcp_port()
        rtp = free_rtp_range(200)
        d = lambda s: os.path.join(self.dir, s)
        env = dict(os.environ, FS_ESL_PASSWORD=self.password, FS_ESL_LISTEN_IP="127.0.0.1",
                   FS_ESL_LISTEN_PORT=str(self.esl_port), FS_SIP_IP="127.0.0.1",
                   FS_EXTERNAL_IP="127.0.0.1", FS_SIP_PORT=str(self.sip_port),
                   FS_RTP_START_PORT=str(rtp[0]), FS_RTP_END_PORT=str(rtp[1]))
        moddir = os.path.join(os.path.dirname(os.path.dirname(self.args.freeswitch)), "mod")
        console = open(d("console.txt"), "w")
        self.fs = subprocess.Popen(
            [self.args.freeswitch, "-nf", "-nc", "-nonat", "-conf", conf, "-log", d("log"),
             "-db", d("db"), "-run", d("run"), "-recordings", d("rec"), "-storage", d("storage"),
             "-cache", d("cache"), "-sounds", d("sounds"), "-mod", moddir],
            cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=console, stderr=console)
        deadline = time.monotonic() + 40
        while True:
            if self.fs.poll() is not None:
                raise RuntimeError("FreeSWITCH exited at start-up; see %s" % d("console.txt"))
            try:
                a = ApiConn(self.esl_port, self.password)
                if "RUNNING" in a.raw("sofia status"):
                    a.sock.close()
                    break
                a.sock.close()
            except (OSError, AssertionError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("FreeSWITCH not ready")
            time.sleep(0.2)
        log("FreeSWITCH pid %d ready: ESL 127.0.0.1:%d SIP 127.0.0.1:%d RTP %d-%d dir %s"
            % (self.fs.pid, self.esl_port, self.sip_port, rtp[0], rtp[1], self.dir))
        self.rec_dir = d("rec")

    def stop_node(self):
        if self.fs and self.fs.poll() is None:
            self.fs.send_signal(signal.SIGTERM)
            try:
                self.fs.wait(30)
            except subprocess.TimeoutExpired:
                self.fs.kill()
                self.fs.wait()

    # ---- logging of events

    def short(self, u):
        if not u:
            return "-"
        return self.labels.get(u, u[:8])

    def flush_events(self):
        """Writes the interesting events that arrived since the last call."""
        with self.ev.cond:
            evs = self.ev.events[self.shown:]
            self.shown = len(self.ev.events)
        for e in evs:
            if e.name not in INTERESTING:
                continue
            if e.name in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE") and \
                    e.get("Application") in SKIP_APPS:
                continue
            sub = e.get("Event-Subclass")
            parts = ["ev seq=%d %s%s" % (e.seq, e.name, ("/" + sub) if sub else "")]
            if e.get("Action"):
                parts.append("Action=%s" % e.get("Action"))
            if e.get("Member-ID"):
                parts.append("Member-ID=%s" % e.get("Member-ID"))
            if e.get("Unique-ID"):
                parts.append("Unique-ID=%s(%s)" % (self.short(e.get("Unique-ID")), e.get("Unique-ID")))
            for k in EXTRA:
                v = e.get(k)
                if v is not None:
                    parts.append("%s=%s" % (k, v))
            TR.write("[%8.3f]   %s" % (e.t, " ".join(parts)))
        TR.f.flush()

    # ---- commands

    def api(self, cmd, quiet=False):
        self.flush_events()
        t = now()
        seq = self.ev.last_seq()
        reply = self.a.raw(cmd)
        if not quiet:
            TR.write("[%8.3f] api %s   (last Event-Sequence before: %d; reply after %.0f ms)"
                     % (t, cmd, seq, 1000 * (now() - t)))
            for line in reply.split("\n"):
                TR.write("           | %s" % line)
            if not reply.endswith("\n"):
                TR.write("           (reply has no trailing newline)")
        return reply

    def sleep(self, s, why=""):
        log("wait %.1f s %s" % (s, why))
        end = time.monotonic() + s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.25))
            self.flush_events()
        self.flush_events()

    def json_list(self, room, note=""):
        reply = self.api("conference %s json_list" % room, quiet=True)
        t = now()
        try:
            data = json.loads(reply)[0]
        except (ValueError, IndexError):
            TR.write("[%8.3f] json_list %s %s -> %s" % (t, room, note, reply.strip()))
            return None
        conf_keys = ["member_count", "wait_mod", "locked", "recording", "max_members", "running"]
        head = " ".join("%s=%s" % (k, json.dumps(data.get(k))) for k in conf_keys if k in data)
        TR.write("[%8.3f] json_list %s %s: %s" % (t, room, note, head))
        for m in data.get("members", []):
            if m.get("type") != "caller":
                TR.write("           %s" % json.dumps(m, sort_keys=True))
                continue
            f = m["flags"]
            keys = ["can_hear", "can_speak", "hold", "talking", "mute_detect", "has_floor",
                    "is_moderator", "end_conference"]
            TR.write("           id=%s %-8s %s energy=%s last_talking=%s" % (
                m["id"], self.short(m["uuid"]),
                " ".join("%s=%s" % (k, "T" if f.get(k) else "f") for k in keys),
                m.get("energy"), m.get("last_talking")))
        return data

    def originate_control(self, room, profile=PROFILE, flags="mute|deaf", extra_vars=""):
        u = str(uuid.uuid4())
        label = "ctl:" + room
        self.labels[u] = label
        self.uuids[label] = u
        n = self.ev.count()
        self.api("originate {origination_uuid=%s,switchyard_role=control,switchyard_room=%s,"
                 "origination_caller_id_name=switchyard,origination_caller_id_number=0%s}"
                 "null/switchyard &conference(%s@%s+flags{%s})"
                 % (u, room, extra_vars, room, profile, flags))
        e = self.ev.wait_for(lambda e: e.get("Action") == "add-member" and e.get("Unique-ID") == u, 10, n)
        if e:
            self.members[label] = e.get("Member-ID")
        self.flush_events()
        return u

    def call(self, label, kind, steps=None):
        number = str(self.next_number)
        self.next_number += 1
        listener = None
        if kind == "tone":
            path = os.path.join(self.work, "tone-bursts-%d.ulaw" % TALK_HZ)
            if not os.path.exists(path):
                open(path, "wb").write(tone_bursts_ulaw(TALK_HZ, 1500, 1500))
            sdp, media = SDP_PCMU, media_stream(path)
        elif kind == "silent":
            path = os.path.join(self.work, "silence.ulaw")
            if not os.path.exists(path):
                open(path, "wb").write(silence_ulaw())
            sdp, media = SDP_PCMU, media_stream(path)
        elif kind == "speech":
            path = os.path.join(self.work, "g711a-speech.ulaw")
            if not os.path.exists(path):
                open(path, "wb").write(speech_ulaw_from_pcap(SIPP_PCAPS + "/g711a.pcap"))
            sdp, media = SDP_PCMU, media_stream(path)
        elif kind == "dtmf":
            sdp = SDP_DTMF
            media = media_pcap_steps(steps)
        elif kind == "listener":
            listener = RtpListener(label)
            self.listeners[label] = listener
            sdp, media = SDP_LISTENER.replace("@PORT@", str(listener.port)), ""
        else:
            raise ValueError(kind)
        n = self.ev.count()
        log("SIPp caller %s (%s) calls DID 15550000100 from %s%s" % (
            label, kind, number, (" (RTP to this script's port %d)" % listener.port) if listener else ""))
        self.sipps[label] = Sipp(self.work, label, self.sip_port, "15550000100", number, sdp, media)
        e = self.ev.wait_for(lambda e: e.name == "CHANNEL_PARK" and
                             e.get("Caller-Caller-ID-Number") == number, 15, n)
        if not e:
            raise RuntimeError("caller %s was not parked" % label)
        u = e.get("Unique-ID")
        self.labels[u] = label
        self.uuids[label] = u
        if listener:
            # Start sending (silence) at once: a parked channel that receives no RTP only acts on
            # a uuid_transfer when its read times out (seen: 5 s).
            ip = self.api("uuid_getvar %s local_media_ip" % u).strip()
            port = int(self.api("uuid_getvar %s local_media_port" % u).strip())
            listener.peer = (ip, port)
        self.flush_events()
        return u

    def join(self, label, room, profile=PROFILE, flags="mute", expect=True):
        u = self.uuids[label]
        n = self.ev.count()
        self.api("uuid_transfer %s conference:%s@%s+flags{%s},park: inline" % (u, room, profile, flags))
        if not expect:
            return None
        e = self.ev.wait_for(lambda e: e.get("Action") == "add-member" and e.get("Unique-ID") == u, 10, n)
        if not e:
            log("!! no add-member for %s" % label)
            return None
        mid = e.get("Member-ID")
        self.members[label] = mid
        self.flush_events()
        return mid

    def m(self, label):
        return self.members[label]

    def hear(self, label, t_from, t_to, what=""):
        s = self.listeners[label].analyze(t_from, t_to)
        TR.write("[%8.3f] AUDIO %s received %.2f..%.2f (%s; one char per 250 ms: T=1250 Hz tone of A, "
                 "4=440 Hz, o=other sound, .=silence, _=no RTP): %s" % (now(), label, t_from, t_to, what, s))
        return s

    # ---- the run

    def run(self):
        out = self.args.out
        os.makedirs(out, exist_ok=True)
        self.start_node()
        self.ev = EventConn(self.esl_port, self.password,
                            os.path.join(out, "07_participants.recv.raw"),
                            os.path.join(out, "07_participants.sent.raw"))
        log("event connection: auth + `event plain ALL` accepted")
        self.a = ApiConn(self.esl_port, self.password)
        self.api("version")
        try:
            self.scenario()
        finally:
            self.flush_events()
            try:
                self.api("hupall NORMAL_CLEARING")
                self.sleep(2, "(after hupall)")
            except Exception as e:  # noqa
                log("cleanup: %r" % e)
            self.ev.close()
            for s in self.sipps.values():
                s.stop()
            for l in self.listeners.values():
                l.close()
            self.stop_node()
            log("FreeSWITCH stopped; raw files in %s; node dir %s" % (out, self.dir))
            if not self.args.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def scenario(self):
        R1, R2, R3, RM, RN, RW = "pr-room1", "pr-room2", "pr-room3", "pr-roomm", "pr-roomn", "pr-roomw"
        test_wav = os.path.join(os.path.dirname(os.path.dirname(self.args.freeswitch)), "sounds", "test.wav")

        TR.write("\n==== setup: control leg, callers A (tone bursts), B (silence), L (listener) joined muted")
        self.originate_control(R1)
        self.call("A", "tone")
        self.call("B", "silent")
        self.call("L", "listener")
        for c in ["A", "B", "L"]:
            self.join(c, R1)
        self.json_list(R1, "after joins")

        TR.write("\n==== 3. talking")
        t = now()
        self.sleep(4, "(A sends its tone bursts while muted: expect no start-talking)")
        self.hear("L", t, now(), "A muted")
        self.api("conference %s unmute %s" % (R1, self.m("A")))
        self.api("conference %s unmute %s" % (R1, self.m("B")))
        t = now()
        for i in range(12):
            self.json_list(R1, "poll %d" % i)
            self.sleep(0.5)
        self.sleep(2)
        self.hear("L", t, now(), "A and B unmuted")
        TR.write("---- mute A while it talks, then unmute")
        n = self.ev.count()
        self.ev.wait_for(lambda e: e.get("Action") == "start-talking" and
                         e.get("Member-ID") == self.m("A"), 5, n)
        self.sleep(0.3)
        self.api("conference %s mute %s" % (R1, self.m("A")))
        self.json_list(R1, "A muted while talking")
        self.sleep(3)
        self.api("conference %s unmute %s" % (R1, self.m("A")))
        self.sleep(1)
        self.call("S", "speech")
        self.join("S", R1)
        self.api("conference %s unmute %s" % (R1, self.m("S")))
        t = now()
        self.sleep(10, "(S speaks: the speech of g711a.pcap, 7 s, then 2 s of silence, looped)")
        self.json_list(R1, "while S speaks")
        self.hear("L", t, now(), "A tone + S speech")
        self.api("uuid_kill %s" % self.uuids["S"])
        self.sleep(1.5)

        TR.write("\n==== 1. deaf / undeaf (L)")
        self.json_list(R1, "before deaf")
        self.api("conference %s deaf %s" % (R1, self.m("L")))
        self.json_list(R1, "after deaf")
        t = now()
        self.sleep(4)
        self.hear("L", t, now(), "L deaf")
        self.api("conference %s deaf %s" % (R1, self.m("L")))
        self.api("conference %s undeaf %s" % (R1, self.m("L")))
        self.json_list(R1, "after undeaf")
        t = now()
        self.sleep(3.5)
        self.hear("L", t, now(), "L undeaf")

        TR.write("\n==== 2. hold / unhold")
        TR.write("---- 2a. hold L (muted) without a file")
        self.api("conference %s hold %s" % (R1, self.m("L")))
        self.json_list(R1, "L held")
        t = now()
        self.sleep(4)
        self.hear("L", t, now(), "L held, no file")
        self.api("conference %s list" % R1)
        self.api("conference %s unhold %s" % (R1, self.m("L")))
        self.json_list(R1, "L unheld (was muted before hold)")
        self.api("conference %s list" % R1)
        t = now()
        self.sleep(3)
        self.hear("L", t, now(), "L unheld")

        TR.write("---- 2b. hold B (unmuted) with local_stream://moh, unhold")
        self.api("conference %s hold %s local_stream://moh" % (R1, self.m("B")))
        self.json_list(R1, "B held with moh")
        self.sleep(2)
        self.api("conference %s unhold %s" % (R1, self.m("B")))
        self.json_list(R1, "B unheld (was unmuted before hold)")
        self.sleep(1)

        TR.write("---- 2c. hold B, mute B while held, unmute while held, unhold")
        self.api("conference %s hold %s" % (R1, self.m("B")))
        self.api("conference %s mute %s" % (R1, self.m("B")))
        self.json_list(R1, "B held and muted")
        self.api("conference %s unhold %s" % (R1, self.m("B")))
        self.json_list(R1, "B unheld after mute-while-held")
        self.api("conference %s hold %s" % (R1, self.m("B")))
        self.api("conference %s unmute %s" % (R1, self.m("B")))
        self.json_list(R1, "B held, unmuted while held")
        self.api("conference %s unhold %s" % (R1, self.m("B")))
        self.json_list(R1, "B unheld after unmute-while-held")
        self.sleep(1)

        TR.write("---- 2d. hold L with local_stream://moh (what does L hear)")
        self.api("conference %s hold %s local_stream://moh" % (R1, self.m("L")))
        t = now()
        self.sleep(4)
        self.hear("L", t, now(), "L held with local_stream://moh")
        self.api("conference %s unhold %s" % (R1, self.m("L")))
        t = now()
        self.sleep(3)
        self.hear("L", t, now(), "L unheld")

        TR.write("---- 2e. hold L with a WAV (2 s of 440 Hz), keep holding after it ends")
        self.api("conference %s hold %s %s" % (R1, self.m("L"), test_wav))
        self.json_list(R1, "L held with wav")
        t = now()
        self.sleep(6)
        self.hear("L", t, now(), "L held with test.wav (2 s)")
        self.api("conference %s unhold %s" % (R1, self.m("L")))
        self.sleep(1)

        TR.write("---- 2f. hold A (the talker) while it talks: does L still hear A, are talking events sent")
        n = self.ev.count()
        self.ev.wait_for(lambda e: e.get("Action") == "start-talking" and
                         e.get("Member-ID") == self.m("A"), 5, n)
        self.sleep(0.3)
        self.api("conference %s hold %s" % (R1, self.m("A")))
        self.json_list(R1, "A held")
        t = now()
        self.sleep(4.5)
        self.hear("L", t, now(), "A held")
        self.api("conference %s unhold %s" % (R1, self.m("A")))
        self.json_list(R1, "A unheld")
        t = now()
        self.sleep(3.5)
        self.hear("L", t, now(), "A unheld")
        self.api("conference %s hold 999" % R1)
        self.api("conference %s hold" % R1)

        TR.write("\n==== 7. relate")
        self.api("conference %s relate" % R1)
        self.api("conference %s relate %s %s nospeak" % (R1, self.m("A"), self.m("L")))
        self.api("conference %s relate %s" % (R1, self.m("A")))
        self.api("conference %s relate" % R1)
        self.json_list(R1, "after relate A L nospeak")
        t = now()
        self.sleep(4)
        self.hear("L", t, now(), "relate A->L nospeak")
        self.api("conference %s relate %s %s clear" % (R1, self.m("A"), self.m("L")))
        self.api("conference %s relate %s" % (R1, self.m("A")))
        t = now()
        self.sleep(3)
        self.hear("L", t, now(), "cleared")
        self.api("conference %s relate %s %s nohear" % (R1, self.m("L"), self.m("A")))
        self.api("conference %s relate %s" % (R1, self.m("L")))
        t = now()
        self.sleep(4)
        self.hear("L", t, now(), "relate L->A nohear")
        self.api("conference %s relate %s %s clear" % (R1, self.m("L"), self.m("A")))
        self.api("conference %s relate %s %s nospeak,nohear" % (R1, self.m("B"), self.m("L")))
        self.api("conference %s relate %s %s clear" % (R1, self.m("B"), self.m("L")))
        self.api("conference %s relate %s %s clear" % (R1, self.m("B"), self.m("L")))
        self.api("conference %s relate 999 %s nospeak" % (R1, self.m("L")))
        self.api("conference %s relate %s %s" % (R1, self.m("A"), self.m("L")))
        self.api("conference %s relate %s %s bogus" % (R1, self.m("A"), self.m("L")))
        self.api("conference %s relate %s,%s %s nospeak" % (R1, self.m("A"), self.m("B"), self.m("L")))
        self.api("conference %s relate %s,%s %s clear" % (R1, self.m("A"), self.m("B"), self.m("L")))
        self.sleep(1)

        TR.write("\n==== 9. play to one member, saymember, uuid_broadcast")
        self.api("conference %s play %s %s" % (R1, test_wav, self.m("L")))
        t = now()
        self.sleep(3.5)
        self.hear("L", t, now(), "play test.wav to L (mux)")
        self.api("conference %s play %s %s nomux" % (R1, test_wav, self.m("L")))
        t = now()
        self.sleep(3.5)
        self.hear("L", t, now(), "play test.wav to L nomux")
        self.api("conference %s play %s 999" % (R1, test_wav))
        self.api("conference %s play /nonexistent/x.wav %s" % (R1, self.m("L")))
        self.api("conference %s saymember %s hello from switchyard" % (R1, self.m("L")))
        t = now()
        self.sleep(4)
        self.hear("L", t, now(), "saymember")
        self.api("conference %s saymember %s #rms#hello again" % (R1, self.m("L")))
        self.sleep(3.5)
        self.api("conference %s saymember 999 hello" % R1)
        self.api("conference %s saymember %s" % (R1, self.m("L")))
        self.api("uuid_broadcast %s %s aleg" % (self.uuids["L"], test_wav))
        t = now()
        self.sleep(3.5)
        self.hear("L", t, now(), "uuid_broadcast test.wav aleg")
        self.json_list(R1, "after uuid_broadcast")

        TR.write("\n==== 8. recording pause / resume")
        path = os.path.join(self.rec_dir, "participants.wav")
        self.api("conference %s record %s" % (R1, path))
        self.sleep(2)
        self.json_list(R1, "recording")
        self.api("conference %s recording pause %s" % (R1, path))
        self.json_list(R1, "recording paused")
        self.api("conference %s recording pause %s" % (R1, path))
        self.sleep(3)
        self.api("conference %s recording resume %s" % (R1, path))
        self.api("conference %s recording pause /nonexistent.wav" % R1)
        self.api("conference %s recording resume" % R1)
        self.sleep(2)
        self.api("conference %s chkrecord" % R1)
        self.api("conference %s norecord %s" % (R1, path))
        self.sleep(1)
        try:
            w = wave.open(path)
            log("recording %s: %d frames at %d Hz = %.2f s (2 s + 3 s paused + 2 s wall clock)"
                % (path, w.getnframes(), w.getframerate(), w.getnframes() / w.getframerate()))
        except Exception as e:  # noqa
            log("recording %s unreadable: %r" % (path, e))

        TR.write("\n==== 4. DTMF (RFC 2833 from SIPp pcaps; caller-controls=none)")
        steps = [("pause", 2000), ("play", SIPP_PCAPS + "/dtmf_2833_1.pcap"), ("pause", 4000),
                 ("play", SIPP_PCAPS + "/dtmf_2833_2.pcap"), ("pause", 1000),
                 ("play", SIPP_PCAPS + "/dtmf_2833_3.pcap"), ("pause", 1000),
                 ("play", SIPP_PCAPS + "/dtmf_2833_star.pcap"), ("pause", 1000),
                 ("play", SIPP_PCAPS + "/dtmf_2833_pound.pcap"), ("pause", 1000)]
        n = self.ev.count()
        u = self.call("D", "dtmf", steps)
        e = self.ev.wait_for(lambda e: e.name == "DTMF" and e.get("Unique-ID") == u, 5, n)
        log("first DTMF while parked: %s" % (e.get("DTMF-Digit") if e else "none within 5 s"))
        self.join("D", R1)
        self.sleep(6.5, "(D sends 2, 3, *, # while in the room, muted)")
        self.api("conference %s unmute %s" % (R1, self.m("D")))
        self.api("conference %s dtmf %s 5" % (R1, self.m("D")))
        self.sleep(1)
        self.api("uuid_kill %s" % u)
        self.sleep(1)

        TR.write("\n==== 5. max members")
        self.originate_control(R2)
        self.call("E1", "silent")
        self.call("E2", "silent")
        self.join("E1", R2)
        self.api("conference %s get max_members" % R2)
        self.api("conference %s set max_members 2" % R2)
        self.api("conference %s get max_members" % R2)
        self.json_list(R2, "max_members 2 (control leg + E1)")
        n = self.ev.count()
        self.join("E2", R2, expect=False)
        self.sleep(3, "(E2 tries to join a full room)")
        self.api("uuid_getvar %s conference_name" % self.uuids["E2"])
        self.api("uuid_getvar %s conference_member_id" % self.uuids["E2"])
        self.api("conference %s count" % R2)
        self.api("conference %s set max_members 1" % R2)
        self.api("conference %s set max_members -1" % R2)
        self.api("conference %s set max_members 3" % R2)
        self.join("E2", R2)
        self.json_list(R2, "max_members 3, E2 in")
        TR.write("---- profile param max-members=2 (profile switchyard_max)")
        self.originate_control(R3, profile="switchyard_max")
        self.json_list(R3, "profile max-members 2")
        self.join("E1", R3, profile="switchyard_max")
        self.join("E2", R3, profile="switchyard_max", expect=False)
        self.sleep(3, "(E2 tries to join the full room R3)")
        self.api("uuid_getvar %s conference_name" % self.uuids["E2"])
        self.json_list(R3, "after E2 refused")
        self.json_list(R2, "R2 after E1 and E2 left")

        TR.write("\n==== 6. moderator, wait-mod, endconf")
        self.originate_control(RM, flags="mute|deaf|wait-mod")
        self.api("conference %s get wait_mod" % RM)
        self.json_list(RM, "wait-mod room, control leg only")
        self.join("A", RM)
        self.join("L", RM)
        self.api("conference %s unmute %s" % (RM, self.m("A")))
        self.json_list(RM, "A and L waiting for a moderator")
        t = now()
        self.sleep(5, "(A talks while no moderator)")
        self.hear("L", t, now(), "waiting for moderator")
        self.call("Mod", "silent")
        self.join("Mod", RM, flags="moderator|endconf")
        self.api("conference %s get wait_mod" % RM)
        self.json_list(RM, "moderator in")
        t = now()
        self.sleep(4)
        self.hear("L", t, now(), "moderator present")
        self.api("uuid_transfer %s park inline" % self.uuids["Mod"])
        self.sleep(4, "(the endconf moderator left)")
        for c in ["A", "L", "Mod", "ctl:" + RM]:
            self.api("uuid_exists %s" % self.uuids[c])
        self.api("conference %s json_list" % RM)

        TR.write("---- mintwo")
        self.originate_control(RN)
        self.join("E1", RN, flags="mute|mintwo")
        self.join("E2", RN)
        self.json_list(RN, "control + E1(mintwo) + E2")
        self.api("uuid_transfer %s park inline" % self.uuids["E2"])
        self.sleep(2)
        self.json_list(RN, "E2 left")
        self.api("uuid_kill %s" % self.uuids["ctl:" + RN])
        self.sleep(3, "(control leg gone: 1 member left, below min 2)")
        for c in ["E1", "E2"]:
            self.api("uuid_exists %s" % self.uuids[c])

        TR.write("---- wait-mod with conference_moh_sound=local_stream://moh")
        self.originate_control(RW, flags="mute|deaf|wait-mod",
                               extra_vars=",conference_moh_sound=local_stream://moh")
        self.call("L2", "listener")
        self.join("L2", RW)
        self.json_list(RW, "L2 waiting")
        t = now()
        self.sleep(4)
        self.hear("L2", t, now(), "waiting, moh var set")
        self.join("Mod", RW, flags="moderator")
        t = now()
        self.sleep(3)
        self.hear("L2", t, now(), "moderator (no endconf) joined")
        self.json_list(RW, "moderator in")
        self.api("conference %s kick all" % RW)
        self.sleep(3)
        for c in ["L2", "Mod"]:
            self.api("uuid_exists %s" % self.uuids[c])
        self.json_list(R1, "R1 at the end")


def main():
    global TR
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--out", default=os.path.join(REPO, "fixtures", "esl"),
                   help="where the two .raw files go (default fixtures/esl)")
    p.add_argument("--freeswitch", default=os.environ.get("SWITCHYARD_FREESWITCH",
                                                          "/usr/local/freeswitch/bin/freeswitch"))
    p.add_argument("--conf", default=os.path.join(REPO, "freeswitch-conf"))
    p.add_argument("--transcript", default=None,
                   help="transcript path (default $TMPDIR/07_participants.transcript.txt)")
    p.add_argument("--keep", action="store_true", help="keep the node's temporary directory")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    TR = Transcript(args.transcript or
                    os.path.join(tempfile.gettempdir(), "07_participants.transcript.txt"))
    s = Session(args)
    s.run()


if __name__ == "__main__":
    main()
