#!/usr/bin/env python3
"""Record what a real FreeSWITCH does for outbound calls (dial-out) placed over the Event Socket.

What it does
------------
Starts ONE isolated FreeSWITCH (the installed binary, default /usr/local/freeswitch/bin/freeswitch)
with a temporary copy of this repository's freeswitch-conf/ (SIP, RTP and the Event Socket bound
to 127.0.0.1 on free ports, a random Event Socket password), exactly as
scripts/record-participants.py does (its helpers are loaded from that file with importlib), then:

* opens an Event Socket connection, sends `event plain ALL` and records every byte it receives and
  sends (`<out>/09_dialout.recv.raw`, `<out>/09_dialout.sent.raw`);
* opens a second Event Socket connection for `api` / `bgapi` commands (each command and its reply
  is written to the transcript verbatim);
* opens a room the way Switchyard does (a control leg:
  `originate {...}null/switchyard &conference(<room>@switchyard+flags{mute|deaf})`);
* for each scenario starts the called party on a free 127.0.0.1 UDP port: a SIPp UAS (Debian's
  sip-tester 3.6.1, a scenario XML written by this script) that answers, rings, rejects... or, for
  "never answers anything", a UDP socket of this script that records the datagrams and sends
  nothing back; then has FreeSWITCH call it through the existing sofia profile `inbound`:
      bgapi originate {origination_uuid=<u>,originate_timeout=N,...}sofia/inbound/sip:<user>@127.0.0.1:<port> <app>
* writes, per scenario: the bgapi reply, the BACKGROUND_JOB body, the channel events of the leg in
  arrival order (Event-Sequence, time, Channel-Call-State, Answer-State, Hangup-Cause,
  variable_sip_term_status, whether our `switchyard_*` variables are in the event...), the SIP
  messages the called party received (Request-URI, From, To, Contact; from SIPp's -trace_msg or
  the sink) and timings;
* dumps every header of the first few events of each kind into `<out>/09_dialout.dumps.txt`.

Scenarios (fixtures/esl/09_dialout.md quotes the transcript):
  A1 answered, `&park()`, then joined with uuid_transfer like a join; the far end hangs up (BYE)
  A1n the same, the UAS sends no RTP (how long the parked leg takes to act on uuid_transfer)
  A2 answered straight into `&conference(<room>@switchyard+flags{mute})`; kicked
  A3 answered into the inline dialplan `conference:<room>@switchyard+flags{mute},park: inline`;
     kicked, then uuid_kill
  A4 `api originate` (blocking) and a caller-id name with a space (single quotes)
  B  486 Busy Here; C1 603 Decline; C2 404 Not Found; C3 480; api originate to a 486
  D1 180 then nothing, originate_timeout=3; D2 no answer at all (sink), originate_timeout=3;
  D3 180 then nothing, progress_timeout=2; D4 180 then nothing, leg_progress_timeout=2;
  D5 sink, progress_timeout=2; D6 180 then nothing, leg_timeout=3; D7 sink,
  leg_progress_timeout=2; D8 183 with SDP never answered, ignore_early_media=true; Dt timings
  E1 uuid_kill while ringing (180); E2 uuid_kill <u> ORIGINATOR_CANCEL while ringing;
  E3 uuid_kill while the far end has sent nothing (sink)
  F1 183 with SDP, 200 OK 3 s later, no RTP before the 200 (default ignore_early_media);
  F1r the same with RTP from the 183 on; F2 = F1 with ignore_early_media=true; F3 183 without
  SDP then 200; F4 180 with SDP then 200; F5 = F1r into the inline conference dialplan;
  F6 = F5 with ignore_early_media=true
  G  dial-string parsing: `,` `|` `:_:` `^` `;fs_path=` `;transport=tcp` a space, `#` `%XX`,
     `${...}`, quotes and `<>` in a caller-id name, a uuid in use, unknown profile / gateway
  A second event connection subscribed to a few events only shows that an event's headers do
  not depend on the subscription.

Usage
-----
    python3 scripts/record-dialout.py [--out DIR] [--transcript FILE] [--freeswitch BIN]
                                      [--conf DIR] [--keep] [--only A1,B,...]

--out defaults to $TMPDIR/switchyard-dialout (the raw files and the dumps go there; nothing in
the repository is written). Event-Sequence numbers, uuids and timings differ from run to run.

Needs: python3 (standard library only), sipp on PATH, an installed FreeSWITCH with mod_sofia,
mod_conference, mod_loopback, mod_commands, mod_dptools. Takes about 3 minutes. Starts one
FreeSWITCH and stops it (SIGTERM to its pid) at the end; every SIPp it started is stopped by pid.
"""

import argparse
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

_spec = importlib.util.spec_from_file_location("record_participants",
                                               os.path.join(HERE, "record-participants.py"))
rp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rp)

now = rp.now
PROFILE = "switchyard"       # conference profile
SOFIA = "inbound"            # the only sofia profile of freeswitch-conf
TR = None


def log(msg):
    TR.write("[%8.3f] %s" % (now(), msg))


# ----------------------------------------------------------------------------------------------
# Event Socket: the api connection also does bgapi

class ApiConn(rp.ApiConn):
    def bgapi(self, cmd, job_uuid=None):
        """Returns (Reply-Text, Job-UUID header) of the command/reply."""
        extra = ("Job-UUID: %s\n" % job_uuid) if job_uuid else ""
        self.sock.sendall(("bgapi %s\n%s\n" % (cmd, extra)).encode())
        hdrs, _ = self._next(10)
        d = dict(hdrs)
        return d.get("Reply-Text", ""), d.get("Job-UUID")


class SubConn(threading.Thread):
    """A second event connection subscribed to a few events only (not recorded byte for byte):
    to see whether the headers of an event depend on the subscription."""

    SUB = ("event plain CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER "
           "CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB CUSTOM conference::maintenance")

    def __init__(self, port, password):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.frames = rp.Frames()
        self.events = []
        self.replies = []
        self.cond = threading.Condition()
        self.start()
        self._reply()
        self.sock.sendall(("auth %s\n\n" % password).encode())
        self._reply()
        self.sock.sendall(("%s\n\n" % self.SUB).encode())
        self.sub_reply = dict(self._reply()).get("Reply-Text")

    def _reply(self, timeout=10):
        end = time.monotonic() + timeout
        with self.cond:
            while not self.replies:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no reply")
                self.cond.wait(left)
            return self.replies.pop(0)

    def run(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            for hdrs, body in self.frames.feed(data):
                with self.cond:
                    if dict(hdrs).get("Content-Type") == "text/event-plain":
                        self.events.append(rp.Event(now(), 0, body))
                    else:
                        self.replies.append(hdrs)
                    self.cond.notify_all()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# the called party

UAS_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="dialout uas %(kind)s">
  <recv request="INVITE" crlf="true">
    <action>
%(ereg)s    </action>
  </recv>
"""

EREG_FROM_TO_CONTACT = """      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="contact"/>
"""
EREG_CSEQ = """      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseqnum"/>
"""
EREG_NONE = """      <log message="INVITE received"/>
"""

TAG = "[pid]SY[call_number]"

RESP_100 = """  <send>
    <![CDATA[
      SIP/2.0 100 Trying
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""

SDP = """
      v=0
      o=uas 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv"""


def resp(code, reason, sdp=False, retrans=False):
    body = SDP if sdp else ""
    ctype = "      Content-Type: application/sdp\n" if sdp else ""
    return """  <send%s>
    <![CDATA[
      SIP/2.0 %d %s
      [last_Via:]
      [last_From:]
      [last_To:];tag=%s
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
%s      Content-Length: [len]
%s
    ]]>
  </send>
""" % (' retrans="500"' if retrans else "", code, reason, TAG, ctype, body)


def pause(ms):
    return '  <pause milliseconds="%d"/>\n' % ms


RECV_ACK = '  <recv request="ACK" crlf="true"/>\n'

RTP = '  <nop><action><exec rtp_stream="%s,-1,0"/></action></nop>\n'

WAIT_BYE = """  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""

SEND_BYE = """  <send retrans="500">
    <![CDATA[
      BYE [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to];tag=%s
      To: [$from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
""" % TAG

WAIT_CANCEL = """  <recv request="CANCEL"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=%s
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=%s
      [last_Call-ID:]
      CSeq: [$cseqnum] INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
""" % (TAG, TAG)


def uas_xml(kind, silence_path, ring_ms=1000, hold_ms=0):
    """kind: answer | answer_norpt | answer_bye (the UAS hangs up hold_ms after the ACK) |
    reject:<code>:<reason> | ring (100, 180, then waits for CANCEL) | ring183 (183 with SDP) |
    early:<provisional> (a provisional, ring_ms, then 200: 183sdp, 183, 180sdp)."""
    parts = []
    if kind == "answer_bye":
        ereg = EREG_FROM_TO_CONTACT
    elif kind in ("ring", "ring183"):
        ereg = EREG_CSEQ
    else:
        ereg = EREG_NONE
    parts.append(UAS_HEAD % {"kind": kind, "ereg": ereg})
    parts.append(RESP_100)
    if kind in ("answer", "answer_norpt", "answer_bye"):
        parts.append(resp(180, "Ringing"))
        parts.append(pause(ring_ms))
        parts.append(resp(200, "OK", sdp=True, retrans=True))
        parts.append(RECV_ACK)
        if kind != "answer_norpt":
            parts.append(RTP % silence_path)
        if kind == "answer_bye":
            parts.append(pause(hold_ms))
            parts.append(SEND_BYE)
        else:
            parts.append(WAIT_BYE)
    elif kind.startswith("reject:"):
        _, code, reason = kind.split(":", 2)
        parts.append(resp(int(code), reason, retrans=True))
        parts.append(RECV_ACK)
    elif kind == "ring":
        parts.append(resp(180, "Ringing"))
        parts.append(WAIT_CANCEL)
    elif kind == "ring183":
        parts.append(resp(183, "Session Progress", sdp=True))
        parts.append(RTP % silence_path)
        parts.append(WAIT_CANCEL)
    elif kind.startswith("early:") or kind.startswith("earlyrtp:"):
        prov = kind.split(":", 1)[1]
        if prov == "183sdp":
            parts.append(resp(183, "Session Progress", sdp=True))
        elif prov == "183":
            parts.append(resp(183, "Session Progress"))
        elif prov == "180sdp":
            parts.append(resp(180, "Ringing", sdp=True))
        else:
            raise ValueError(prov)
        if kind.startswith("earlyrtp:"):
            parts.append(RTP % silence_path)
        parts.append(pause(ring_ms))
        parts.append(resp(200, "OK", sdp=True, retrans=True))
        parts.append(RECV_ACK)
        if not kind.startswith("earlyrtp:"):
            parts.append(RTP % silence_path)
        parts.append(WAIT_BYE)
    else:
        raise ValueError(kind)
    parts.append("</scenario>\n")
    return "".join(parts)


class Uas:
    """A SIPp UAS on a free 127.0.0.1 UDP port, one call (-m 1)."""

    def __init__(self, workdir, label, kind, silence_path, **kw):
        self.label = label
        self.kind = kind
        self.port = rp.free_udp_tcp_port()
        path = os.path.join(workdir, "uas-%s.xml" % label)
        with open(path, "w") as f:
            f.write(uas_xml(kind, silence_path, **kw))
        self.msg_path = os.path.join(workdir, "uas-%s.messages.txt" % label)
        self.err_path = os.path.join(workdir, "uas-%s.errors.txt" % label)
        self.log_path = os.path.join(workdir, "uas-%s.log" % label)
        self.log = open(self.log_path, "w")
        cmd = ["sipp", "-sf", path, "-i", "127.0.0.1", "-p", str(self.port), "-m", "1",
               "-mi", "127.0.0.1", "-mp", str(rp.media_port()), "-nostdin",
               "-trace_msg", "-message_file", self.msg_path,
               "-trace_err", "-error_file", self.err_path]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=workdir)
        # SIPp binds its port at start; give it a moment
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and rp.udp_free(self.port):
            time.sleep(0.05)

    def wait(self, timeout):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()

    def messages(self):
        """The SIP messages the UAS received and sent, as (seconds after the first message,
        "recv"/"sent", first line, [(header, value)]), from SIPp's -trace_msg file."""
        try:
            text = open(self.msg_path, encoding="latin-1").read()
        except OSError:
            return []
        out = []
        t_first = None
        for m in re.finditer(r"-{10,} (\d{4}-\d\d-\d\d) (\d\d):(\d\d):(\d\d\.\d+)\n"
                             r"UDP message (received|sent)[^\n]*\n\n?(.*?)(?=\n-{10,} |\Z)",
                             text, re.S):
            t = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            if t_first is None:
                t_first = t
            first, hdrs = parse_sip(m.group(6))
            out.append((t - t_first, "recv" if m.group(5) == "received" else "sent", first, hdrs))
        return out


def parse_sip(text):
    lines = text.replace("\r\n", "\n").split("\n")
    first = lines[0].strip()
    hdrs = []
    for line in lines[1:]:
        if not line.strip():
            break
        k, _, v = line.partition(":")
        hdrs.append((k.strip(), v.strip()))
    return first, hdrs


class Sink(threading.Thread):
    """Receives SIP over UDP on a free port and never answers."""

    def __init__(self, label):
        super().__init__(daemon=True)
        self.label = label
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.msgs = []  # (t, first line, headers)
        self.stop_flag = False
        self.start()

    def run(self):
        self.sock.settimeout(0.3)
        while not self.stop_flag:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            first, hdrs = parse_sip(data.decode("latin-1"))
            self.msgs.append((now(), first, hdrs))

    def stop(self):
        self.stop_flag = True
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# the session

CHANNEL_EVENTS = {
    "CHANNEL_CREATE", "CHANNEL_OUTGOING", "CHANNEL_ORIGINATE", "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_UNPARK",
    "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_DESTROY", "CHANNEL_CALLSTATE", "CHANNEL_STATE", "CALL_UPDATE", "CUSTOM",
    "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_APPLICATION", "CHANNEL_UUID",
    "CHANNEL_HOLD", "CHANNEL_UNHOLD", "RECV_INFO",
}

ALWAYS = ["Channel-State", "Channel-Call-State", "Answer-State", "Hangup-Cause"]
DETAIL_EVENTS = {"CHANNEL_OUTGOING", "CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA",
                 "CHANNEL_ANSWER", "CALL_UPDATE", "CHANNEL_HANGUP_COMPLETE"}
DETAIL = ["Call-Direction", "Channel-Name", "Caller-Caller-ID-Name", "Caller-Caller-ID-Number",
          "Caller-Callee-ID-Name", "Caller-Callee-ID-Number", "Caller-Destination-Number",
          "Other-Type", "variable_sip_req_uri", "variable_sip_to_uri",
          "variable_originate_early_media", "variable_ignore_early_media"]
TERM = ["variable_sip_term_status", "variable_sip_term_cause",
        "variable_sip_invite_failure_status", "variable_sip_invite_failure_phrase",
        "variable_sip_hangup_disposition", "variable_originate_disposition",
        "variable_endpoint_disposition"]
APP = ["Application", "Application-Data", "Application-Response", "Action", "Member-ID",
       "Speak", "Hear"]

DUMP_LABELS = {"A1", "A2", "A3", "B", "C1", "D1", "D2", "D3", "E1", "F1", "F2", "F3", "F5"}
DUMP_KINDS = {"CHANNEL_CREATE", "CHANNEL_OUTGOING", "CHANNEL_ORIGINATE", "CHANNEL_PROGRESS",
              "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_CALLSTATE",
              "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY", "BACKGROUND_JOB",
              "CHANNEL_EXECUTE", "CALL_UPDATE", "CUSTOM"}


class Session:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="switchyard-dialout-")
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        self.fs = None
        self.uases = []
        self.sinks = []
        self.labels = {}
        self.only = set(args.only.split(",")) if args.only else None
        self.silence = os.path.join(self.work, "silence.ulaw")
        open(self.silence, "wb").write(rp.silence_ulaw())
        self.dumps = open(os.path.join(args.out, "09_dialout.dumps.txt"), "w", encoding="utf-8")

    # ---- node (as record-participants.py, without its conference.conf changes)

    def start_node(self):
        conf = os.path.join(self.dir, "conf")
        shutil.copytree(self.args.conf, conf)
        for sub in ["log", "db", "run", "rec", "storage", "cache", "sounds"]:
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.password = uuid.uuid4().hex
        self.esl_port = rp.free_tcp_port()
        self.sip_port = rp.free_udp_tcp_port()
        rtp = rp.free_rtp_range(200)
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
                a = rp.ApiConn(self.esl_port, self.password)
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

    def stop_node(self):
        if self.fs and self.fs.poll() is None:
            self.fs.send_signal(signal.SIGTERM)
            try:
                self.fs.wait(30)
            except subprocess.TimeoutExpired:
                self.fs.kill()
                self.fs.wait()

    # ---- commands and events

    def api(self, cmd):
        t = now()
        seq = self.ev.last_seq()
        reply = self.a.raw(cmd)
        TR.write("[%8.3f] api %s   (last Event-Sequence before: %d; reply after %.0f ms)"
                 % (t, cmd, seq, 1000 * (now() - t)))
        TR.write("           | %r" % reply)
        return reply

    def bgapi(self, cmd):
        job = str(uuid.uuid4())
        t = now()
        seq = self.ev.last_seq()
        text, hj = self.a.bgapi(cmd, job)
        TR.write("[%8.3f] bgapi %s   (Job-UUID header sent: %s; last Event-Sequence before: %d)"
                 % (t, cmd, job, seq))
        TR.write("           | Reply-Text: %s   Job-UUID: %s" % (text, hj))
        return job, t

    def wait_job(self, job, timeout, since=0):
        e = self.ev.wait_for(lambda e: e.name == "BACKGROUND_JOB" and e.get("Job-UUID") == job,
                             timeout, since)
        return e

    def dump(self, e, why):
        """Every header of the interesting events of a few scenarios."""
        if why not in DUMP_LABELS or e.name not in DUMP_KINDS:
            return
        self.dumps.write("\n==== %s  seq %d  t=%.3f  (%s)\n" % (e.name, e.seq, e.t, why))
        for k, v in e.headers:
            self.dumps.write("%s: %s\n" % (k, v))
        if e.body:
            self.dumps.write("\n[body]\n%s\n" % e.body.decode("utf-8", "replace"))
        self.dumps.flush()

    def show_events(self, since, u, job, t0, label):
        """The events of leg u (and the job) since index `since`, in arrival order."""
        with self.ev.cond:
            evs = list(self.ev.events[since:])
        TR.write("           events of %s (t relative to the command):" % label)
        for e in evs:
            mine = e.get("Unique-ID") == u or (job and e.get("Job-UUID") == job)
            if not mine:
                continue
            if e.name not in CHANNEL_EVENTS and e.name != "BACKGROUND_JOB":
                continue
            sub = e.get("Event-Subclass")
            if sub and sub != "conference::maintenance":
                continue
            self.dump(e, label)
            parts = ["seq=%d +%.3f %s%s" % (e.seq, e.t - t0, e.name, ("/" + sub) if sub else "")]
            if e.name == "BACKGROUND_JOB":
                parts.append("body=%r" % e.body.decode("utf-8", "replace"))
                parts.append("Job-Command=%s" % e.get("Job-Command"))
            keys = list(ALWAYS)
            if e.name in DETAIL_EVENTS:
                keys += DETAIL
            if e.name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
                keys += TERM
            keys += APP
            for k in keys:
                v = e.get(k)
                if v is not None:
                    parts.append("%s=%s" % (k, v))
            nvars = sum(1 for k, _ in e.headers if k.startswith("variable_"))
            if nvars:
                parts.append("[%d variable_*; switchyard_*: %s]" % (
                    nvars, "yes" if e.get("variable_switchyard_role") else "no"))
            TR.write("             " + " ".join(parts))

    def show_sip(self, who, t0):
        if isinstance(who, Sink):
            TR.write("           SIP received by sink %s (port %d):" % (who.label, who.port))
            for t, first, hdrs in who.msgs:
                TR.write("             +%.3f %s" % (t - t0, first))
                for k, v in hdrs:
                    if k.lower() in ("from", "to", "contact", "cseq", "via", "call-id",
                                     "remote-party-id", "p-asserted-identity", "max-forwards",
                                     "user-agent", "allow", "supported"):
                        TR.write("                 %s: %s" % (k, v))
            return
        TR.write("           SIP at UAS %s (port %d), from SIPp -trace_msg (seconds after the "
                 "INVITE arrived):" % (who.label, who.port))
        for t, way, first, hdrs in who.messages():
            TR.write("             +%.3f %s %s" % (t, "<-" if way == "recv" else "->", first))
            if way == "recv" and first.split(" ")[0] in ("INVITE", "CANCEL", "BYE"):
                for k, v in hdrs:
                    if k.lower() in ("from", "to", "contact", "cseq", "remote-party-id",
                                     "p-asserted-identity", "user-agent", "reason", "x-fs-support",
                                     "content-type"):
                        TR.write("                 %s: %s" % (k, v))

    def sink_summary(self):
        """Everything each sink received during the whole run: INVITE retransmissions go on
        after FreeSWITCH gave up on a leg that never got a provisional response."""
        TR.write("\n==== sinks: every request received during the whole run (seconds after the "
                 "first one)")
        for x in self.sinks:
            if not x.msgs:
                TR.write("  %s (port %d): nothing" % (x.label, x.port))
                continue
            t_first = x.msgs[0][0]
            TR.write("  %s (port %d): %s" % (x.label, x.port, ", ".join(
                "+%.1f %s" % (t - t_first, first.split(" ")[0]) for t, first, _ in x.msgs)))

    def compare_subscription(self, u, job):
        """The same events as received on the `event plain ALL` connection and on the
        connection subscribed to a few events only."""
        TR.write("           the same events on the connection subscribed with `%s`:" % SubConn.SUB)
        with self.sub.cond:
            sub = [e for e in self.sub.events
                   if e.get("Unique-ID") == u or e.get("Job-UUID") == job]
        with self.ev.cond:
            full = {e.seq: e for e in self.ev.events}
        for e in sub:
            f = full.get(e.seq)
            same = f is not None and f.headers == e.headers and f.body == e.body
            TR.write("             seq=%d %s%s: %d headers, switchyard_*: %s; identical to the ALL "
                     "connection's copy: %s" % (
                         e.seq, e.name, ("/" + e.get("Action")) if e.get("Action") else "",
                         len(e.headers), "yes" if e.get("variable_switchyard_role") else "no", same))

    def wait_destroy(self, u, timeout, since=0):
        return self.ev.wait_for(lambda e: e.name == "CHANNEL_DESTROY" and e.get("Unique-ID") == u,
                                timeout, since)

    def sleep(self, s, why=""):
        log("wait %.1f s %s" % (s, why))
        time.sleep(s)

    def want(self, name):
        return self.only is None or name in self.only

    # ---- building blocks

    def vars(self, u, extra=""):
        return ("{origination_uuid=%s,switchyard_role=dialout,switchyard_room=%s,"
                "switchyard_dialout=%s,origination_caller_id_name=Switchyard,"
                "origination_caller_id_number=15550001111%s}" % (u, self.room, u[:8], extra))

    def uas(self, label, kind, **kw):
        x = Uas(self.work, label, kind, self.silence, **kw)
        self.uases.append(x)
        log("UAS %s (%s) listening on 127.0.0.1:%d" % (label, kind, x.port))
        return x

    def sink(self, label):
        s = Sink(label)
        self.sinks.append(s)
        log("sink %s (never answers) on 127.0.0.1:%d" % (label, s.port))
        return s

    def dest(self, user, port):
        return "sofia/%s/sip:%s@127.0.0.1:%d" % (SOFIA, user, port)

    def dial(self, label, user, port, app="&park()", extra=""):
        u = str(uuid.uuid4())
        self.labels[u] = label
        since = self.ev.count()
        job, t0 = self.bgapi("originate %s%s %s" % (self.vars(u, extra), self.dest(user, port), app))
        return u, job, t0, since

    def finish(self, label, u, job, t0, since, who, destroy_timeout=15):
        e = self.wait_destroy(u, destroy_timeout, since)
        if not e:
            log("!! no CHANNEL_DESTROY for %s within %d s" % (label, destroy_timeout))
        self.wait_job(job, 2, since)
        time.sleep(0.3)
        self.show_events(since, u, job, t0, label)
        if who is not None:
            for w in (who if isinstance(who, (list, tuple)) else [who]):
                if isinstance(w, Uas):
                    w.wait(3)
                self.show_sip(w, t0)

    def member_id(self, u, since, timeout=10):
        e = self.ev.wait_for(lambda e: e.get("Action") == "add-member" and
                             e.get("Unique-ID") == u, timeout, since)
        return e

    def open_room(self, room):
        u = str(uuid.uuid4())
        since = self.ev.count()
        self.api("originate {origination_uuid=%s,switchyard_role=control,switchyard_room=%s,"
                 "origination_caller_id_name=switchyard,origination_caller_id_number=0}"
                 "null/switchyard &conference(%s@%s+flags{mute|deaf})" % (u, room, room, PROFILE))
        self.member_id(u, since)
        return u

    # ---- the run

    def run(self):
        out = self.args.out
        self.start_node()
        self.ev = rp.EventConn(self.esl_port, self.password,
                               os.path.join(out, "09_dialout.recv.raw"),
                               os.path.join(out, "09_dialout.sent.raw"))
        log("event connection: auth + `event plain ALL` accepted")
        self.a = ApiConn(self.esl_port, self.password)
        self.sub = SubConn(self.esl_port, self.password)
        log("second event connection: `%s` -> %s" % (SubConn.SUB, self.sub.sub_reply))
        self.api("version")
        try:
            self.scenarios()
            self.sink_summary()
        finally:
            try:
                self.api("hupall NORMAL_CLEARING")
                time.sleep(2)
            except Exception as e:  # noqa
                log("cleanup: %r" % e)
            self.ev.close()
            self.sub.close()
            for x in self.uases:
                x.stop()
            for s in self.sinks:
                s.stop()
            self.stop_node()
            self.dumps.close()
            log("FreeSWITCH stopped; raw files in %s; node dir %s" % (out, self.dir))
            if not self.args.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def scenarios(self):
        self.room = "dialout-room"
        TR.write("\n==== setup: the room, opened by a control leg")
        self.ctl = self.open_room(self.room)
        self.api("conference %s list count" % self.room)
        self.api("sofia status profile %s" % SOFIA)

        if self.want("A1"):
            TR.write("\n==== A1 answered (100, 180, 1 s, 200 + RTP), &park(), then uuid_transfer into "
                     "the room like a join; the far end hangs up (BYE) 6 s after the ACK")
            x = self.uas("A1", "answer_bye", ring_ms=1000, hold_ms=6000)
            u, job, t0, since = self.dial("A1", "2001", x.port, extra=",originate_timeout=10")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            tj = now()
            self.api("uuid_transfer %s conference:%s@%s+flags{mute},park: inline"
                     % (u, self.room, PROFILE))
            m = self.member_id(u, since)
            log("add-member %s after %.3f s from uuid_transfer" % (
                m.get("Member-ID") if m else None, (m.t - tj) if m else -1))
            self.api("uuid_getvar %s switchyard_role" % u)
            self.api("uuid_getvar %s sip_term_status" % u)
            self.api("conference %s list" % self.room)
            self.finish("A1", u, job, t0, since, x, destroy_timeout=15)
            self.compare_subscription(u, job)

        if self.want("A1n"):
            TR.write("\n==== A1n answered, the UAS sends no RTP: &park(), then uuid_transfer")
            x = self.uas("A1n", "answer_norpt", ring_ms=500)
            u, job, t0, since = self.dial("A1n", "2011", x.port, extra=",originate_timeout=10")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            time.sleep(0.5)
            tj = now()
            self.api("uuid_transfer %s conference:%s@%s+flags{mute},park: inline"
                     % (u, self.room, PROFILE))
            m = self.member_id(u, since, timeout=15)
            log("add-member %s after %.3f s from uuid_transfer (no RTP from the far end)" % (
                m.get("Member-ID") if m else None, (m.t - tj) if m else -1))
            self.api("uuid_kill %s" % u)
            self.finish("A1n", u, job, t0, since, x)

        if self.want("A2"):
            TR.write("\n==== A2 answered straight into &conference(room@switchyard+flags{mute}); "
                     "then kicked")
            x = self.uas("A2", "answer", ring_ms=1000)
            u, job, t0, since = self.dial(
                "A2", "2002", x.port, app="&conference(%s@%s+flags{mute})" % (self.room, PROFILE),
                extra=",originate_timeout=10")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            m = self.member_id(u, since)
            log("add-member %s at +%.3f s" % (m.get("Member-ID") if m else None,
                                               (m.t - t0) if m else -1))
            self.api("conference %s list" % self.room)
            time.sleep(1)
            if m:
                self.api("conference %s kick %s" % (self.room, m.get("Member-ID")))
            time.sleep(2)
            self.api("uuid_exists %s" % u)
            self.finish("A2", u, job, t0, since, x)

        if self.want("A3"):
            TR.write("\n==== A3 answered into the inline dialplan "
                     "`conference:<room>@switchyard+flags{mute},park: inline`; kicked, then uuid_kill")
            x = self.uas("A3", "answer", ring_ms=1000)
            u, job, t0, since = self.dial(
                "A3", "2003", x.port,
                app="conference:%s@%s+flags{mute},park: inline" % (self.room, PROFILE),
                extra=",originate_timeout=10")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            m = self.member_id(u, since)
            log("add-member %s at +%.3f s" % (m.get("Member-ID") if m else None,
                                               (m.t - t0) if m else -1))
            time.sleep(1)
            if m:
                self.api("conference %s kick %s" % (self.room, m.get("Member-ID")))
            time.sleep(2)
            self.api("uuid_exists %s" % u)
            self.api("uuid_getvar %s current_application" % u)
            self.api("uuid_kill %s" % u)
            self.finish("A3", u, job, t0, since, x)

        if self.want("A4"):
            TR.write("\n==== A4 `api originate` (blocking) with origination_caller_id_name='Switch Yard' "
                     "(single quotes around a value with a space)")
            x = self.uas("A4", "answer", ring_ms=500)
            u = str(uuid.uuid4())
            since = self.ev.count()
            t0 = now()
            self.api("originate {origination_uuid=%s,origination_caller_id_name='Switch Yard',"
                     "origination_caller_id_number=+15550002222,originate_timeout=10}%s &park()"
                     % (u, self.dest("2004", x.port)))
            log("api originate returned after %.3f s" % (now() - t0))
            self.api("uuid_kill %s" % u)
            self.finish("A4", u, None, t0, since, x)

        for name, code, reason in [("B", 486, "Busy Here"), ("C1", 603, "Decline"),
                                   ("C2", 404, "Not Found"), ("C3", 480, "Temporarily Unavailable")]:
            if not self.want(name):
                continue
            TR.write("\n==== %s UAS answers %d %s" % (name, code, reason))
            x = self.uas(name, "reject:%d:%s" % (code, reason))
            u, job, t0, since = self.dial(name, "20%d" % code, x.port, extra=",originate_timeout=10")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            self.finish(name, u, job, t0, since, x)

        if self.want("B2"):
            TR.write("\n==== B2 `api originate` (blocking) to a 486")
            x = self.uas("B2", "reject:486:Busy Here")
            u = str(uuid.uuid4())
            since = self.ev.count()
            t0 = now()
            self.api("originate {origination_uuid=%s,originate_timeout=10}%s &park()"
                     % (u, self.dest("2486", x.port)))
            self.finish("B2", u, None, t0, since, x)

        if self.want("D1"):
            TR.write("\n==== D1 180 then nothing; originate_timeout=3")
            x = self.uas("D1", "ring")
            u, job, t0, since = self.dial("D1", "2101", x.port, extra=",originate_timeout=3")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            self.finish("D1", u, job, t0, since, x)

        if self.want("D2"):
            TR.write("\n==== D2 the far end never answers anything (no 100); originate_timeout=3")
            s = self.sink("D2")
            u, job, t0, since = self.dial("D2", "2102", s.port, extra=",originate_timeout=3")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            self.finish("D2", u, job, t0, since, s, destroy_timeout=40)

        if self.want("D3"):
            TR.write("\n==== D3 180 then nothing; progress_timeout=2, originate_timeout=8")
            x = self.uas("D3", "ring")
            u, job, t0, since = self.dial("D3", "2103", x.port,
                                          extra=",progress_timeout=2,originate_timeout=8")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            self.finish("D3", u, job, t0, since, x)

        if self.want("D4"):
            TR.write("\n==== D4 180 then nothing; leg_progress_timeout=2, originate_timeout=5")
            x = self.uas("D4", "ring")
            u, job, t0, since = self.dial("D4", "2104", x.port,
                                          extra=",leg_progress_timeout=2,originate_timeout=5")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            self.finish("D4", u, job, t0, since, x)

        if self.want("D5"):
            TR.write("\n==== D5 the far end never answers anything; progress_timeout=2, originate_timeout=8")
            s = self.sink("D5")
            u, job, t0, since = self.dial("D5", "2105", s.port,
                                          extra=",progress_timeout=2,originate_timeout=8")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            self.finish("D5", u, job, t0, since, s, destroy_timeout=40)

        if self.want("D6"):
            TR.write("\n==== D6 180 then nothing; leg_timeout=3, originate_timeout=8")
            x = self.uas("D6", "ring")
            u, job, t0, since = self.dial("D6", "2106", x.port,
                                          extra=",leg_timeout=3,originate_timeout=8")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            self.finish("D6", u, job, t0, since, x)

        if self.want("D7"):
            TR.write("\n==== D7 the far end never answers anything; leg_progress_timeout=2, originate_timeout=8")
            s = self.sink("D7")
            u, job, t0, since = self.dial("D7", "2107", s.port,
                                          extra=",leg_progress_timeout=2,originate_timeout=8")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            self.finish("D7", u, job, t0, since, s)

        if self.want("D8"):
            TR.write("\n==== D8 183 with SDP and RTP, never answered; ignore_early_media=true, "
                     "leg_progress_timeout=2, originate_timeout=4")
            x = self.uas("D8", "ring183")
            u, job, t0, since = self.dial(
                "D8", "2108", x.port,
                extra=",ignore_early_media=true,leg_progress_timeout=2,originate_timeout=4")
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            self.finish("D8", u, job, t0, since, x)

        if self.want("Dt"):
            TR.write("\n==== Dt timing of originate_timeout (180 then nothing): seconds from bgapi to "
                     "BACKGROUND_JOB")
            for i, to in enumerate([1, 2, 3, 3, 3, 5]):
                x = self.uas("Dt%d" % i, "ring")
                u, job, t0, since = self.dial("Dt%d" % i, "240%d" % i, x.port,
                                              extra=",originate_timeout=%d" % to)
                j = self.wait_job(job, 15, since)
                log("originate_timeout=%d: BACKGROUND_JOB after %.3f s: %r" % (
                    to, (j.t - t0) if j else -1, j.body.decode() if j else None))
                self.wait_destroy(u, 5, since)
                x.wait(3)

        for name, cause in [("E1", None), ("E2", "ORIGINATOR_CANCEL")]:
            if not self.want(name):
                continue
            TR.write("\n==== %s uuid_kill%s on the ringing leg (180 received), 2 s after the originate"
                     % (name, (" <u> " + cause) if cause else ""))
            x = self.uas(name, "ring")
            u, job, t0, since = self.dial(name, "22%s" % name[1], x.port,
                                          extra=",originate_timeout=20")
            p = self.ev.wait_for(lambda e: e.name == "CHANNEL_PROGRESS" and e.get("Unique-ID") == u,
                                 5, since)
            log("CHANNEL_PROGRESS at +%.3f" % ((p.t - t0) if p else -1))
            time.sleep(1.5)
            tk = now()
            self.api("uuid_kill %s%s" % (u, (" " + cause) if cause else ""))
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB %.3f s after uuid_kill: %r" % ((j.t - tk) if j else -1,
                                                               j.body.decode() if j else None))
            self.finish(name, u, job, t0, since, x)

        if self.want("E3"):
            TR.write("\n==== E3 uuid_kill while the far end has sent nothing (sink), 2 s after the originate")
            s = self.sink("E3")
            u, job, t0, since = self.dial("E3", "2203", s.port, extra=",originate_timeout=20")
            time.sleep(2)
            tk = now()
            self.api("uuid_kill %s" % u)
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB %.3f s after uuid_kill: %r" % ((j.t - tk) if j else -1,
                                                               j.body.decode() if j else None))
            self.finish("E3", u, job, t0, since, s, destroy_timeout=40)

        inline = "conference:%s@%s+flags{mute},park: inline" % (self.room, PROFILE)
        for name, prov, extra, app in [
                ("F1", "183sdp", "", "&park()"), ("F1r", "rtp183sdp", "", "&park()"),
                ("F2", "183sdp", ",ignore_early_media=true", "&park()"),
                ("F3", "183", "", "&park()"), ("F4", "180sdp", "", "&park()"),
                ("F5", "rtp183sdp", "", inline),
                ("F6", "rtp183sdp", ",ignore_early_media=true", inline)]:
            user = {"F1": "2301", "F1r": "2302", "F2": "2303", "F3": "2304", "F4": "2305",
                    "F5": "2306", "F6": "2307"}[name]
            if not self.want(name):
                continue
            TR.write("\n==== %s %s, then 200 OK 3 s later; app `%s`; originate vars: "
                     "originate_timeout=10%s"
                     % (name, {"183sdp": "183 with SDP (no RTP before the 200)",
                               "rtp183sdp": "183 with SDP and RTP from the 183 on",
                               "183": "183 without SDP",
                               "180sdp": "180 with SDP (no RTP before the 200)"}[prov], app, extra))
            kind = ("earlyrtp:183sdp" if prov == "rtp183sdp" else "early:" + prov)
            x = self.uas(name, kind, ring_ms=3000)
            u, job, t0, since = self.dial(name, user, x.port, app=app,
                                          extra=",originate_timeout=10" + extra)
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            a = self.ev.wait_for(lambda e: e.name == "CHANNEL_ANSWER" and e.get("Unique-ID") == u,
                                 6, since)
            log("CHANNEL_ANSWER: %s" % (("at +%.3f" % (a.t - t0)) if a else "none within 6 s"))
            m = self.ev.wait_for(lambda e: e.get("Action") == "add-member" and
                                 e.get("Unique-ID") == u, 0.1, since)
            if m:
                log("add-member %s at +%.3f" % (m.get("Member-ID"), m.t - t0))
            self.api("uuid_getvar %s endpoint_disposition" % u)
            time.sleep(0.5)
            self.api("uuid_kill %s" % u)
            self.finish(name, u, job, t0, since, x)

        if self.want("G"):
            self.dialstring_tests()

    def dialstring_tests(self):
        TR.write("\n==== G dial-string parsing, against sinks (they never answer) and rejecting UASes")

        def run(name, dial, sinks, app="&park()", kill_others_after=None):
            """dial: the whole originate argument (variable blocks included); <u> is replaced by
            a fresh uuid."""
            u = str(uuid.uuid4())
            since = self.ev.count()
            TR.write("\n---- %s" % name)
            job, t0 = self.bgapi("originate %s %s" % (dial.replace("<u>", u), app))
            if kill_others_after:
                time.sleep(kill_others_after)
                with self.ev.cond:
                    evs = list(self.ev.events[since:])
                for e in evs:
                    if e.name == "CHANNEL_CREATE" and e.get("Unique-ID") != u:
                        self.api("uuid_kill %s" % e.get("Unique-ID"))
            j = self.wait_job(job, 40, since)
            log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                     j.body.decode() if j else None))
            time.sleep(1)
            with self.ev.cond:
                evs = list(self.ev.events[since:])
            for e in evs:
                if e.name in ("CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE"):
                    TR.write("             seq=%d +%.3f %s Unique-ID=%s (the origination_uuid: %s) "
                             "Channel-Name=%s Caller-Destination-Number=%s "
                             "Caller-Caller-ID-Name=%s Caller-Caller-ID-Number=%s variable_sip_req_uri=%s "
                             "variable_sip_destination_url=%s variable_originate_timeout=%s "
                             "Hangup-Cause=%s"
                             % (e.seq, e.t - t0, e.name, e.get("Unique-ID"), e.get("Unique-ID") == u,
                                e.get("Channel-Name"), e.get("Caller-Destination-Number"),
                                e.get("Caller-Caller-ID-Name"), e.get("Caller-Caller-ID-Number"),
                                e.get("variable_sip_req_uri"),
                                e.get("variable_sip_destination_url"),
                                e.get("variable_originate_timeout"), e.get("Hangup-Cause")))
            for x in sinks:
                if isinstance(x, Uas):
                    x.wait(3)
                self.show_sip(x, t0)
            return u

        d = self.dest
        s1, s2 = self.sink("G-1"), self.sink("G-2")
        run("G1 `,` : two legs at once; origination_uuid only on the first ([...] block)",
            "{originate_timeout=2}[origination_uuid=<u>]%s,%s" % (d("3001", s1.port), d("3002", s2.port)),
            [s1, s2])
        s1, s2 = self.sink("G-3"), self.sink("G-4")
        run("G1b `,` typed into the destination of Switchyard's command shape "
            "({origination_uuid=<u>,...}sofia/inbound/sip:<dest>): a second leg with the same uuid",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_number=15550001111}%s,%s"
            % (d("3003", s1.port), d("3004", s2.port)), [s1, s2])
        x, s2 = self.uas("G-5", "reject:486:Busy Here"), self.sink("G-6")
        run("G2 `|` : the second leg after the first failed (first leg: 486)",
            "{originate_timeout=2}[origination_uuid=<u>]%s|%s" % (d("3005", x.port), d("3006", s2.port)),
            [x, s2])
        x, s2 = self.uas("G-7", "reject:486:Busy Here"), self.sink("G-8")
        run("G2b `|` in Switchyard's command shape (global origination_uuid)",
            "{origination_uuid=<u>,originate_timeout=2}%s|%s" % (d("3007", x.port), d("3008", s2.port)),
            [x, s2])
        s1, s2 = self.sink("G-9"), self.sink("G-10")
        run("G3 `:_:` : enterprise originate; the part after :_: gets none of the {...} variables "
            "(its leg is killed after 4 s)",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_number=15550001111}%s:_:%s"
            % (d("3009", s1.port), d("3010", s2.port)), [s1, s2], kill_others_after=4)
        s1 = self.sink("G-11")
        run("G4 `^` in the user part: sofia/inbound/sip:3011^9999@127.0.0.1:p",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:3011^9999@127.0.0.1:%d"
            % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-12")
        run("G4b `^` after the host: sofia/inbound/sip:3012@127.0.0.1:p^9999@evil.example",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:3012@127.0.0.1:%d^9999@evil.example"
            % (SOFIA, s1.port), [s1])
        s1, s2 = self.sink("G-13"), self.sink("G-14")
        run("G5 `;fs_path=` parameter: the INVITE goes to p2 although the URI says p1",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:3013@127.0.0.1:%d;fs_path=<sip:127.0.0.1:%d>"
            % (SOFIA, s1.port, s2.port), [s1, s2])
        s1 = self.sink("G-15")
        run("G6 `;transport=tcp` parameter: sent over TCP (nothing listens there)",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:3015@127.0.0.1:%d;transport=tcp"
            % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-16")
        run("G7 a space in the user part (originate's arguments are split on spaces)",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:30 16@127.0.0.1:%d"
            % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-17")
        run("G8 `#` and `%41` in the user part",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:30#17%%41@127.0.0.1:%d"
            % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-18")
        run("G9 `${uuid}` as a variable value",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_number=${uuid}}"
            "sofia/%s/sip:3018@127.0.0.1:%d" % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-19")
        run("G10 a caller-id name with `\"` `<` `>` `;`",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_name=A\"B<sip:evil@x>;c}"
            "sofia/%s/sip:3019@127.0.0.1:%d" % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-20")
        run("G11 a caller-id name with `,` inside single quotes and a variable after it",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_name='Doe, John'}"
            "sofia/%s/sip:3020@127.0.0.1:%d" % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-21")
        run("G12 origination_uuid already in use (the room's control leg)",
            "{origination_uuid=%s,originate_timeout=2}sofia/%s/sip:3021@127.0.0.1:%d"
            % (self.ctl, SOFIA, s1.port), [s1])
        s1 = self.sink("G-22")
        run("G13 an unknown sofia profile",
            "{origination_uuid=<u>,originate_timeout=2}sofia/nosuchprofile/sip:3022@127.0.0.1:%d"
            % s1.port, [s1])
        run("G14 an unknown gateway",
            "{origination_uuid=<u>,originate_timeout=2}sofia/gateway/nosuchgw/3023", [])
        run("G15 no user part and no host dots: sofia/inbound/3024 (a registered-user lookup)",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/3024" % SOFIA, [])


def main():
    global TR
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "switchyard-dialout"),
                   help="where the raw files and the dumps go (default $TMPDIR/switchyard-dialout)")
    p.add_argument("--freeswitch", default=os.environ.get("SWITCHYARD_FREESWITCH",
                                                          "/usr/local/freeswitch/bin/freeswitch"))
    p.add_argument("--conf", default=os.path.join(REPO, "freeswitch-conf"))
    p.add_argument("--transcript", default=None,
                   help="transcript path (default <out>/09_dialout.transcript.txt)")
    p.add_argument("--keep", action="store_true", help="keep the node's temporary directory")
    p.add_argument("--only", default="", help="comma-separated scenario names (A1,B,G...)")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    TR = rp.Transcript(args.transcript or os.path.join(args.out, "09_dialout.transcript.txt"))
    rp.TR = TR
    Session(args).run()


if __name__ == "__main__":
    main()
