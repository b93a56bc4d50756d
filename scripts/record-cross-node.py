#!/usr/bin/env python3
"""Record what two real FreeSWITCH nodes do when a call on one node is bridged into a room on the
other (rooms that span media nodes; fixtures/esl/10_cross_node.md quotes the transcript).

What it does
------------
Starts TWO isolated FreeSWITCH instances, A (hosts the room) and B (takes the call), each from a
temporary copy of this repository's freeswitch-conf/ with SIP, RTP and the Event Socket on
127.0.0.1, free ports and a random Event Socket password (the helpers of
scripts/record-participants.py are loaded with importlib). In each copy it ADDS:

* vars.xml: `node_sip_ip`, `node_sip_port`, `node_allowed_cidr` (env FS_NODE_SIP_IP,
  FS_NODE_SIP_PORT, FS_NODE_ALLOWED_CIDR);
* acl.conf.xml: the list `switchyard_nodes` (default deny, allow `node_allowed_cidr`);
* sofia.conf.xml: a second sofia profile `nodes` on its own port, context `nodes`, that ACL;
* dialplan/nodes.xml: the context `nodes`, which puts an incoming node leg into the room named by
  the request user, muted (`conference:<room>@switchyard+flags{mute|join-only}`, then hangup);
* on B only: a gateway `node_a` in the `nodes` profile pointing at A's node port, with OPTIONS
  pings (to see what pings tell about a dead node).

The exact XML is in NODE_* below and in the facts file. Then, with one `event plain ALL`
connection per node (every byte kept in `<out>/10_cross_node.<node><n>.{recv,sent}.raw`) and one
api connection per node, it walks through:

  a   the room opened on A as Switchyard opens it (bgapi originate ... null/switchyard
      &conference(<room>@switchyard+flags{mute|deaf}))
  F1  the bridge inline without `m:^:` (the commas of {...} split the inline dialplan)
  F2  `m:^:bridge:{park_after_bridge=true,...}` (the variable lands on the outbound leg), then
      A's leg is killed: what happens to the caller
  J   callers to B's DID, parked, then
      `uuid_transfer <c> 'm:^:set:park_after_bridge=true^set:continue_on_fail=true^bridge:{...}
      sofia/nodes/<room>@127.0.0.1:<A node port>^park' inline`, ended by:
      D0..D4 uuid_kill of A's leg (D0: B's leg without an RTP timer; D2/D3: other forms of the
      command; D1 also: mute/unmute and audio both ways (conference record on A, the caller's
      RTP received by this script), then the caller joined again and moved out on B);
      T1, T2 `uuid_transfer <caller> park inline` on B; K1..K3 conference kick on A (K2, K3: the
      caller's INVITE carries a forged X-Switchyard-Session; K3 with sip_copy_custom_headers=false);
      E1, E2 the caller sends BYE; EK uuid_kill of the caller on B
  N   a bridge to a room A does not host (join-only), to a request user that is not a room id,
      and without the X-Switchyard-Session header
  ACL an INVITE to A's node port from 127.0.0.2 (not in the list), then from 127.0.0.1
  S   a caller whose RTP stops for 12 s, media_timeout on both node legs; S2 with
      bridge_generate_comfort_noise (run it again with --inbound-timer to see the difference)
  G0  a bridge to a node that never answers (a silent UDP socket): default, originate_timeout=3
  G1  SIGKILL of A with bridged callers (B's leg: no timeout, media_timeout=5000,
      rtp_timeout_sec=5, media_timeout without RTP timer, sofia_session_timeout=90), the
      controller's ESL connection, the gateway's OPTIONS pings, bridge attempts to the dead A
      (direct and through the gateway); A restarted; --reps times
  G2  SIGKILL of B with two bridged callers (A's leg with media_timeout=5000 and with none); B
      restarted; --reps times

A loopback capture (AF_PACKET, root only; skipped otherwise) records the SIP between the nodes
(`<out>/10_cross_node.sip.txt`) and counts RTP datagrams between the nodes' RTP ports.

Usage
-----
    python3 scripts/record-cross-node.py [--out DIR] [--freeswitch BIN] [--conf DIR] [--keep]
                                         [--only F1,F2,J,N,ACL,S,G0,G1,G2] [--reps N]
                                         [--inbound-timer] [--siptrace]

--out defaults to $TMPDIR/switchyard-cross-node (transcript, raw files and dumps go there;
nothing in the repository is written). Sequence numbers, uuids and timings differ between runs.

Needs: python3 (standard library only), sipp (Debian's sip-tester) on PATH, an installed
FreeSWITCH with mod_sofia, mod_conference, mod_loopback, mod_commands, mod_dptools,
mod_tone_stream, mod_sndfile. Takes about 6 minutes. Every FreeSWITCH and SIPp it starts is
stopped by pid at the end (SIGTERM, then SIGKILL).
"""

import argparse
import importlib.util
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
import uuid
import wave

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
_spec = importlib.util.spec_from_file_location("record_participants",
                                               os.path.join(HERE, "record-participants.py"))
rp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rp)

now = rp.now
PROFILE = "switchyard"
DID = "15551230000"
CALLER_HZ = 1250.0      # the tone the B caller sends
PLAY_HZ = 440.0         # what A plays into the room
TR = None


def log(msg):
    TR.write("[%8.3f] %s" % (now(), msg))


# ----------------------------------------------------------------------------------------------
# the configuration added to each node's copy (also quoted in fixtures/esl/10_cross_node.md)

NODE_VARS = """
  <!-- Node-to-node SIP (rooms that span media nodes): the second sofia profile "nodes". -->
  <X-PRE-PROCESS cmd="set" data="node_sip_ip=$${sip_listen_ip}"/>
  <X-PRE-PROCESS cmd="env-set" data="node_sip_ip=$FS_NODE_SIP_IP"/>
  <X-PRE-PROCESS cmd="set" data="node_sip_port=5070"/>
  <X-PRE-PROCESS cmd="env-set" data="node_sip_port=$FS_NODE_SIP_PORT"/>
  <X-PRE-PROCESS cmd="set" data="node_allowed_cidr=127.0.0.1/32"/>
  <X-PRE-PROCESS cmd="env-set" data="node_allowed_cidr=$FS_NODE_ALLOWED_CIDR"/>
"""

NODE_ACL = """    <!-- The other media nodes (their node_sip_ip): the only ones that may call the "nodes"
         profile. -->
    <list name="switchyard_nodes" default="deny">
      <node type="allow" cidr="$${node_allowed_cidr}"/>
    </list>
"""

NODE_PROFILE = """    <!--
      Node-to-node SIP: another media node bridges one of its callers into a room hosted here by
      calling sofia/nodes/<room_id>@<this node's node_sip_ip:node_sip_port>. The "nodes" context
      of dialplan/nodes.xml puts the leg into the room. Only the other nodes may call
      (switchyard_nodes in acl.conf.xml).
    -->
    <profile name="nodes">
@GATEWAYS@      <settings>
        <param name="sip-ip" value="$${node_sip_ip}"/>
        <param name="rtp-ip" value="$${node_sip_ip}"/>
        <param name="sip-port" value="$${node_sip_port}"/>
        <param name="dialplan" value="XML"/>
        <param name="context" value="nodes"/>
        <param name="auth-calls" value="false"/>
        <param name="apply-inbound-acl" value="switchyard_nodes"/>
        <param name="disable-register" value="true"/>
        <param name="manage-presence" value="false"/>
        <param name="inbound-codec-prefs" value="$${global_codec_prefs}"/>
        <param name="outbound-codec-prefs" value="$${global_codec_prefs}"/>
        <!--
          A timer on the legs' RTP: without one, a leg whose far end sends no RTP (the other node
          hung up or died) reads in 5-second polls, and the SIP messages queued for it (the other
          node's BYE) wait for the poll to end.
        -->
        <param name="rtp-timer-name" value="soft"/>
        <param name="user-agent-string" value="Switchyard"/>
        <param name="log-auth-failures" value="true"/>
      </settings>
    </profile>
"""

# test only (B): a gateway to A's node port that pings it with OPTIONS
NODE_GATEWAY = """      <gateways>
        <gateway name="node_a">
          <param name="proxy" value="127.0.0.1:@APORT@"/>
          <param name="register" value="false"/>
          <param name="ping" value="@PING@"/>
          <param name="ping-max" value="1"/>
          <param name="ping-min" value="1"/>
        </gateway>
      </gateways>
"""

NODE_DIALPLAN = """<include>
  <!--
    Calls from the other media nodes (the "nodes" sofia profile): the request user is the room id,
    the X-Switchyard-Session header names the caller's session on the other node. The leg joins
    the room muted, and only if this node hosts the room (join-only: no room is created); when
    it leaves the room (kick, room end) it hangs up, which ends the other node's bridge.
  -->
  <context name="nodes">
    <extension name="switchyard_node_leg">
      <!-- $1 is the capture of the LAST condition: keep the room condition last. -->
      <condition field="${sip_h_X-Switchyard-Session}" expression="^[A-Za-z0-9]{5}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"/>
      <condition field="destination_number" expression="^([A-Za-z0-9]{5}-room-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$">
        <action application="set" data="switchyard_role=node_leg"/>
        <action application="set" data="media_timeout=@MEDIA_TIMEOUT@"/>
        <action application="conference" data="$1@switchyard+flags{mute|join-only}"/>
        <action application="hangup" data="NORMAL_CLEARING"/>
      </condition>
    </extension>
    <extension name="not_a_node_leg">
      <condition field="destination_number" expression="^.*$">
        <action application="hangup" data="UNALLOCATED_NUMBER"/>
      </condition>
    </extension>
  </context>
</include>
"""


# ----------------------------------------------------------------------------------------------
# Event Socket

class EventConn(rp.EventConn):
    """`event plain ALL`, bytes kept; notes when the connection closes (node killed)."""

    def __init__(self, *a, **kw):
        self.closed_at = None
        super().__init__(*a, **kw)

    def run(self):
        super().run()
        self.closed_at = now()


class ApiConn(rp.ApiConn):
    def bgapi(self, cmd, job_uuid):
        self.sock.sendall(("bgapi %s\nJob-UUID: %s\n\n" % (cmd, job_uuid)).encode())
        hdrs, _ = self._next(10)
        return dict(hdrs).get("Reply-Text", "")


class SipSniffer(threading.Thread):
    """The SIP messages between the nodes, read off the loopback interface (AF_PACKET; needs
    root, skipped otherwise): every UDP datagram to or from one of `ports` that looks like SIP."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.ports = set()
        self.rtp_ranges = []
        self.rtp = {}   # (src port, dst port) -> [datagrams, first t, last t]
        self.msgs = []  # (t, src, dst, text)
        self.cond = threading.Condition()
        self.f = open(path, "w", encoding="latin-1")
        self.stop = False
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind(("lo", 0))
            self.sock.settimeout(0.3)
            self.ok = True
        except (OSError, AttributeError) as e:
            self.ok = False
            self.why = repr(e)
        if self.ok:
            self.start()

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == 4:  # PACKET_OUTGOING: loopback shows each datagram twice
                continue
            if len(data) < 14 + 20 + 8 or data[12:14] != b"\x08\x00":
                continue
            ip = data[14:]
            ihl = (ip[0] & 15) * 4
            if ip[9] != 17:
                continue
            udp = ip[ihl:]
            sp, dp = struct.unpack("!HH", udp[:4])
            payload = udp[8:]
            if sp not in self.ports and dp not in self.ports:
                if any(lo <= sp <= hi or lo <= dp <= hi for lo, hi in self.rtp_ranges):
                    k = (sp, dp)
                    with self.cond:
                        c = self.rtp.setdefault(k, [0, None, None])
                        c[0] += 1
                        c[2] = now()
                        if c[1] is None:
                            c[1] = c[2]
                continue
            if not (payload[:8] == b"SIP/2.0 " or re.match(rb"^[A-Z]+ sip:", payload)):
                continue
            src = "%s:%d" % (socket.inet_ntoa(ip[12:16]), sp)
            dst = "%s:%d" % (socket.inet_ntoa(ip[16:20]), dp)
            t = now()
            text = payload.decode("latin-1")
            with self.cond:
                self.msgs.append((t, src, dst, text))
                self.cond.notify_all()
            self.f.write("---- %.3f %s -> %s\n%s\n" % (t, src, dst, text.replace("\r\n", "\n")))
            self.f.flush()

    def count(self):
        with self.cond:
            return len(self.msgs)

    def since(self, t_from, t0, names, t_to=None):
        """One line a message from t_from (to t_to): time, direction, first line, a few headers."""
        with self.cond:
            msgs = [m for m in self.msgs if m[0] >= t_from and (t_to is None or m[0] < t_to)]
        out = []
        for t, src, dst, text in msgs:
            head = text.split("\r\n\r\n", 1)[0].split("\r\n")
            first = head[0]
            extra = []
            for line in head[1:]:
                k = line.split(":", 1)[0].strip().lower()
                if k in ("x-switchyard-session", "reason", "cseq"):
                    extra.append(line.strip())
            out.append("             SIP +%.3f %s -> %s  %s  %s" % (
                t - t0, names.get(src, src), names.get(dst, dst), first, " | ".join(extra)))
        return out

    def rtp_report(self, t_from, names):
        """Datagrams between the RTP ports seen since t_from: (src, dst, count, first, last)."""
        with self.cond:
            items = [(k, list(v)) for k, v in self.rtp.items() if v[2] >= t_from]
        out = []
        for (sp, dp), (n, t1, t2) in sorted(items, key=lambda x: x[1][1]):
            out.append("             RTP %s -> %s: %d datagrams seen, first +%.3f, last +%.3f (since t_from)"
                       % (names(sp), names(dp), n, t1 - t_from, t2 - t_from))
        return out

    def close(self):
        self.stop = True
        if self.ok:
            try:
                self.sock.close()
            except OSError:
                pass
        self.f.close()


# ----------------------------------------------------------------------------------------------
# a node

class Node:
    def __init__(self, s, name):
        self.s = s
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="switchyard-xnode-%s-" % name)
        self.password = uuid.uuid4().hex
        self.esl_port = rp.free_tcp_port()
        self.sip_port = rp.free_udp_tcp_port()
        self.node_port = rp.free_udp_tcp_port()
        while self.node_port == self.sip_port:
            self.node_port = rp.free_udp_tcp_port()
        self.rtp = rp.free_rtp_range(200)
        self.fs = None
        self.ev = None
        self.a = None
        self.starts = 0
        self.media_timeout = 10000

    def d(self, sub):
        return os.path.join(self.dir, sub)

    def prepare(self, gateway_to=None, ping=5):
        conf = self.d("conf")
        shutil.copytree(self.s.args.conf, conf)
        for sub in ["log", "db", "run", "rec", "storage", "cache", "sounds"]:
            os.makedirs(self.d(sub), exist_ok=True)

        def edit(rel, old, new):
            p = os.path.join(conf, rel)
            text = open(p).read()
            assert text.count(old) == 1, (rel, old)
            open(p, "w").write(text.replace(old, new))

        edit("vars.xml", "</include>", NODE_VARS + "</include>")
        if self.s.args.inbound_timer:
            edit("autoload_configs/sofia.conf.xml", '        <param name="dialplan" value="XML"/>\n        <param name="context" value="public"/>',
                 '        <param name="rtp-timer-name" value="soft"/>\n        <param name="dialplan" value="XML"/>\n'
                 '        <param name="context" value="public"/>')
        edit("autoload_configs/acl.conf.xml", "  </network-lists>", NODE_ACL + "  </network-lists>")
        gw = ""
        if gateway_to:
            gw = NODE_GATEWAY.replace("@APORT@", str(gateway_to)).replace("@PING@", str(ping))
        edit("autoload_configs/sofia.conf.xml", "  </profiles>",
             NODE_PROFILE.replace("@GATEWAYS@", gw) + "  </profiles>")
        self.write_dialplan()

    def write_dialplan(self):
        with open(os.path.join(self.d("conf"), "dialplan", "nodes.xml"), "w") as f:
            f.write(NODE_DIALPLAN.replace("@MEDIA_TIMEOUT@", str(self.media_timeout)))

    def set_media_timeout(self, ms):
        """Rewrites the nodes context with another media_timeout and reloads the XML."""
        self.media_timeout = ms
        self.write_dialplan()
        self.api("reloadxml")

    def start(self):
        self.starts += 1
        env = dict(os.environ, FS_ESL_PASSWORD=self.password, FS_ESL_LISTEN_IP="127.0.0.1",
                   FS_ESL_LISTEN_PORT=str(self.esl_port), FS_SIP_IP="127.0.0.1",
                   FS_EXTERNAL_IP="127.0.0.1", FS_SIP_PORT=str(self.sip_port),
                   FS_RTP_START_PORT=str(self.rtp[0]), FS_RTP_END_PORT=str(self.rtp[1]),
                   FS_NODE_SIP_IP="127.0.0.1", FS_NODE_SIP_PORT=str(self.node_port),
                   FS_NODE_ALLOWED_CIDR="127.0.0.1/32")
        moddir = os.path.join(os.path.dirname(os.path.dirname(self.s.args.freeswitch)), "mod")
        console = open(self.d("console-%d.txt" % self.starts), "w")
        self.fs = subprocess.Popen(
            [self.s.args.freeswitch, "-nf", "-nc", "-nonat", "-conf", self.d("conf"),
             "-log", self.d("log"), "-db", self.d("db"), "-run", self.d("run"),
             "-recordings", self.d("rec"), "-storage", self.d("storage"), "-cache", self.d("cache"),
             "-sounds", self.d("sounds"), "-mod", moddir],
            cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=console, stderr=console)
        console.close()
        t0 = now()
        deadline = time.monotonic() + 40
        while True:
            if self.fs.poll() is not None:
                raise RuntimeError("FreeSWITCH %s exited at start-up; see %s"
                                   % (self.name, self.d("console-%d.txt" % self.starts)))
            try:
                a = rp.ApiConn(self.esl_port, self.password)
                st = a.raw("sofia status")
                a.sock.close()
                if re.search(r"\binbound\s+profile\s.*RUNNING", st) and \
                        re.search(r"\bnodes\s+profile\s.*RUNNING", st):
                    break
            except (OSError, AssertionError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("FreeSWITCH %s not ready" % self.name)
            time.sleep(0.2)
        tag = "%s%d" % (self.name, self.starts)
        self.ev = EventConn(self.esl_port, self.password,
                            os.path.join(self.s.args.out, "10_cross_node.%s.recv.raw" % tag),
                            os.path.join(self.s.args.out, "10_cross_node.%s.sent.raw" % tag))
        self.a = ApiConn(self.esl_port, self.password)
        log("node %s (start %d) pid %d ready after %.1f s: ESL 127.0.0.1:%d, SIP inbound "
            "127.0.0.1:%d, SIP nodes 127.0.0.1:%d, RTP %d-%d, dir %s"
            % (self.name, self.starts, self.fs.pid, now() - t0, self.esl_port, self.sip_port,
               self.node_port, self.rtp[0], self.rtp[1], self.dir))

    def alive(self):
        return self.fs is not None and self.fs.poll() is None

    def sigkill(self):
        t = now()
        os.kill(self.fs.pid, signal.SIGKILL)
        self.fs.wait()
        log("node %s: SIGKILL sent to pid %d" % (self.name, self.fs.pid))
        return t

    def close_conns(self):
        for c in (self.ev,):
            if c:
                try:
                    c.close()
                except Exception:  # noqa
                    pass
        if self.a:
            try:
                self.a.sock.close()
            except OSError:
                pass

    def stop(self):
        if self.alive():
            try:
                self.ev.close()
            except Exception:  # noqa
                pass
            self.fs.send_signal(signal.SIGTERM)
            try:
                self.fs.wait(30)
            except subprocess.TimeoutExpired:
                self.fs.kill()
                self.fs.wait()

    # ---- commands

    def api(self, cmd, quiet=False, timeout=60):
        t = now()
        seq = self.ev.last_seq()
        reply = self.a.raw(cmd, timeout)
        if not quiet:
            TR.write("[%8.3f] %s: api %s   (last Event-Sequence before: %d; reply after %.0f ms)"
                     % (t, self.name, cmd, seq, 1000 * (now() - t)))
            TR.write("           | %r" % (reply if len(reply) < 600 else reply[:600] + "..."))
        return reply

    def bgapi(self, cmd):
        job = str(uuid.uuid4())
        t = now()
        text = self.a.bgapi(cmd, job)
        TR.write("[%8.3f] %s: bgapi %s   (Job-UUID: %s)" % (t, self.name, cmd, job))
        TR.write("           | Reply-Text: %s" % text)
        return job, t

    def count(self):
        return self.ev.count()

    def wait(self, pred, timeout, since=0):
        return self.ev.wait_for(pred, timeout, since)


# ----------------------------------------------------------------------------------------------
# a caller on B: SIPp for the signalling, a socket of this script for its RTP (sends a tone,
# keeps what B sends)

UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="cross-node caller">
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
      User-Agent: switchyard-cross-node-recorder
@EXTRA@      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio @PORT@ RTP/AVP 0
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
@END@
</scenario>
"""

END_WAIT_BYE = """  <recv request="BYE"/>
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
  </send>"""

# the caller hangs up when this script writes a line... SIPp has no such hook, so: a pause of
# @MS@ ms, then BYE
END_SEND_BYE = """  <pause milliseconds="@MS@"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[caller_name]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SY[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:[caller]@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>"""


def tone_frame(freq, amp=8000):
    """160 u-law bytes (20 ms) of a tone; 1250 Hz fits 25 periods exactly into 160 samples."""
    return bytes(rp.ulaw_encode(amp * math.sin(2 * math.pi * freq * i / 8000.0)) for i in range(160))


def classify(samples):
    if not samples:
        return "_"
    level = sum(abs(x) for x in samples) / len(samples)
    if level < 60:
        return "."
    if rp.goertzel_ratio(samples, CALLER_HZ) > 0.5:
        return "T"
    if rp.goertzel_ratio(samples, PLAY_HZ) > 0.5:
        return "4"
    return "o"


class RtpEnd(threading.Thread):
    """The caller's RTP: sends CALLER_HZ (or nothing while `sending` is False), keeps what comes
    in."""

    def __init__(self, label):
        super().__init__(daemon=True)
        self.label = label
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.packets = []
        self.peer = None
        self.sending = True
        self.stop = False
        self.alive = lambda: True  # the caller's SIPp: no RTP once its call is over
        self.frame = tone_frame(CALLER_HZ)
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
            if self.peer is None:
                self.peer = addr
            cc = data[0] & 0x0F
            self.packets.append((now(), data[1] & 0x7F, data[12 + 4 * cc:]))

    def _sender(self):
        seq, ts, ssrc = random.randrange(65536), random.randrange(1 << 32), random.randrange(1 << 32)
        nxt = time.monotonic()
        while not self.stop:
            nxt += 0.02
            if self.peer and self.sending and self.alive():
                hdr = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                try:
                    self.sock.sendto(hdr + self.frame, self.peer)
                except OSError:
                    pass
                seq += 1
                ts += 160
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)

    def analyze(self, t_from, t_to, win=0.25):
        chars = []
        t = t_from
        while t + win <= t_to + 1e-9:
            pl = b"".join(p for (tt, pt, p) in self.packets if t <= tt < t + win and pt == 0)
            chars.append(classify([rp.ULAW[b] for b in pl]))
            t += win
        return "".join(chars)

    def close(self):
        self.stop = True
        try:
            self.sock.close()
        except OSError:
            pass


class Caller:
    def __init__(self, s, label, number, extra_headers="", bye_after_ms=None):
        self.label = label
        self.number = number
        self.rtp = RtpEnd(label)
        end = END_WAIT_BYE if bye_after_ms is None else END_SEND_BYE.replace("@MS@", str(bye_after_ms))
        path = os.path.join(s.work, "uac-%s.xml" % label)
        with open(path, "w") as f:
            f.write(UAC.replace("@PORT@", str(self.rtp.port)).replace("@EXTRA@", extra_headers)
                    .replace("@END@", end))
        self.log = open(os.path.join(s.work, "sipp-%s.log" % label), "w")
        self.msgs = os.path.join(s.work, "sipp-%s.messages.txt" % label)
        cmd = ["sipp", "127.0.0.1:%d" % s.B.sip_port, "-sf", path, "-s", DID,
               "-key", "caller", number, "-key", "caller_name", "Caller%s" % label,
               "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(rp.media_port()),
               "-cid_str", "xn-%s-%s" % (label, uuid.uuid4().hex[:12]), "-m", "1", "-nostdin",
               "-trace_msg", "-message_file", self.msgs]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=s.work)
        self.rtp.alive = lambda: self.proc.poll() is None
        self.uuid = None

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
        self.rtp.close()


# ----------------------------------------------------------------------------------------------
# event tables

SKIP_EVENTS = {"CHANNEL_STATE", "RE_SCHEDULE", "HEARTBEAT", "API", "BACKGROUND_JOB", "MESSAGE_QUERY",
               "PRESENCE_IN", "RECV_RTCP_MESSAGE", "SEND_MESSAGE", "MODULE_LOAD", "CODEC",
               "CHANNEL_HOLD", "CHANNEL_UNHOLD"}
SKIP_APPS = {"set", "export"}
TAG_VAR = "variable_sip_h_X-Switchyard-Session"
HANGUP_KEYS = ["Hangup-Cause", "variable_sip_hangup_disposition", "variable_sip_term_status",
               "variable_sip_term_cause", "variable_bridge_hangup_cause",
               "variable_last_bridge_hangup_cause", "variable_originate_disposition",
               "variable_endpoint_disposition", "variable_sip_hangup_phrase"]


class Session:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="switchyard-xnode-work-")
        self.labels = {}
        self.callers = []
        self.next_number = 3001
        self.only = set(args.only.split(",")) if args.only else None
        self.dumps = open(os.path.join(args.out, "10_cross_node.dumps.txt"), "w", encoding="utf-8")
        self.A = Node(self, "A")
        self.B = Node(self, "B")
        self.room = "nodea-room-" + str(uuid.uuid4())
        self.ctl = None
        self.timings = []

    def want(self, name):
        return self.only is None or name in self.only

    # ---- output

    def lab(self, u):
        return self.labels.get(u, (u or "-")[:8])

    def dump(self, node, e, why):
        self.dumps.write("\n==== %s %s #%d t=%.3f (%s)\n" % (node.name, e.name, e.seq, e.t, why))
        for k, v in e.headers:
            self.dumps.write("%s: %s\n" % (k, v))
        if e.body:
            self.dumps.write("\n[body]\n%s\n" % e.body.decode("utf-8", "replace"))
        self.dumps.flush()

    def details(self, e):
        n = e.name
        keys = []
        if n == "CUSTOM":
            keys = ["Action", "Member-ID", "Speak", "Hear", "Conference-Size"]
        elif n in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"):
            keys = ["Application", "Application-Data", "Application-Response"]
        elif n in ("CHANNEL_CREATE", "CHANNEL_OUTGOING"):
            keys = ["Call-Direction", "Channel-Name", "Caller-Caller-ID-Name", "Caller-Caller-ID-Number",
                    "Caller-Destination-Number", "Caller-Context", "variable_sip_call_id",
                    "variable_sip_from_uri"]
        elif n == "CHANNEL_CALLSTATE":
            keys = ["Channel-Call-State"]
        elif n in ("CHANNEL_ANSWER", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA"):
            keys = ["Answer-State"]
        elif n in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            keys = HANGUP_KEYS
        elif n == "CALL_UPDATE":
            keys = ["Caller-Caller-ID-Number", "Caller-Callee-ID-Number", "Bridged-To"]
        parts = []
        for k in keys:
            v = e.get(k)
            if v is not None and v != "":
                if len(v) > 140:
                    v = v[:140] + "..."
                parts.append("%s=%s" % (k, v))
        if n in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"):
            parts.append("Bridge-A=%s Bridge-B=%s" % (self.lab(e.get("Bridge-A-Unique-ID")),
                                                       self.lab(e.get("Bridge-B-Unique-ID"))))
            if e.get("Hangup-Cause"):
                parts.append("Hangup-Cause=%s" % e.get("Hangup-Cause"))
        if n == "CUSTOM" and e.get("Event-Subclass", "").startswith("sofia::"):
            parts += ["%s=%s" % (k, e.get(k)) for k in ("Gateway", "State", "Ping-Status", "Status",
                                                          "Phrase") if e.get(k)]
        nvars = sum(1 for k, _ in e.headers if k.startswith("variable_"))
        if nvars:
            parts.append("[%d variable_*; %s=%s]" % (nvars, TAG_VAR[9:], e.get(TAG_VAR)))
        return " ".join(parts)

    def table(self, node, since, t0, title, uuids=None, dump_as=None, until=None):
        """The events of the legs we know (or of `uuids`) and of the room, on `node`, since index
        `since`, in arrival order; t relative to t0."""
        with node.ev.cond:
            evs = list(node.ev.events[since:until])
        TR.write("           %s events on %s (t = seconds after %s):" % (title, node.name, "the command"))
        rows = []
        for e in evs:
            n = e.name
            if n in SKIP_EVENTS:
                continue
            u = e.get("Unique-ID")
            sub = e.get("Event-Subclass") or ""
            if n == "CUSTOM":
                if sub == "conference::maintenance":
                    if e.get("Conference-Name") != self.room and u not in self.labels:
                        continue
                    if e.get("Action") in ("start-talking", "stop-talking") and not self.args.talking:
                        continue
                elif not sub.startswith("sofia::gateway"):
                    continue
            else:
                if u is None or u not in self.labels:
                    continue
                if uuids is not None and u not in uuids:
                    continue
            if n in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE") and e.get("Application") in SKIP_APPS:
                continue
            name = n + (("/" + sub) if sub else "")
            line = "             %s #%d +%.3f %-9s %s %s" % (node.name, e.seq, e.t - t0, self.lab(u),
                                                          name, self.details(e))
            TR.write(line)
            rows.append(e)
            if dump_as and n in ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE",
                                 "CHANNEL_HANGUP_COMPLETE", "CHANNEL_PARK", "CUSTOM", "CHANNEL_ORIGINATE",
                                 "CHANNEL_OUTGOING"):
                self.dump(node, e, dump_as)
        return rows

    def sleep(self, s, why=""):
        log("wait %.1f s %s" % (s, why))
        time.sleep(s)

    def timing(self, what, seconds):
        self.timings.append((what, seconds))
        log("TIMING %s: %s" % (what, ("%.3f s" % seconds) if seconds is not None else "never"))

    # ---- building blocks

    def open_room(self):
        c = str(uuid.uuid4())
        self.ctl = c
        self.labels[c] = "A.ctl"
        n = self.A.count()
        job, t0 = self.A.bgapi("originate {origination_uuid=%s,switchyard_role=control,switchyard_room=%s,"
                               "origination_caller_id_name=switchyard,origination_caller_id_number=0}"
                               "null/switchyard &conference(%s@%s+flags{mute|deaf})"
                               % (c, self.room, self.room, PROFILE))
        m = self.A.wait(lambda e: e.get("Action") == "add-member" and e.get("Unique-ID") == c, 10, n)
        j = self.A.wait(lambda e: e.name == "BACKGROUND_JOB" and e.get("Job-UUID") == job, 10, n)
        log("BACKGROUND_JOB body %r" % (j.body.decode() if j else None))
        time.sleep(0.3)
        self.table(self.A, n, t0, "room opened:", dump_as="a")
        return m

    def call(self, label, extra_headers="", bye_after_ms=None):
        number = str(self.next_number)
        self.next_number += 1
        n = self.B.count()
        c = Caller(self, label, number, extra_headers, bye_after_ms)
        self.callers.append(c)
        e = self.B.wait(lambda e: e.name == "CHANNEL_PARK" and e.get("Caller-Caller-ID-Number") == number,
                        15, n)
        if not e:
            raise RuntimeError("caller %s was not parked on B" % label)
        c.uuid = e.get("Unique-ID")
        self.labels[c.uuid] = "B." + label
        ip = self.B.api("uuid_getvar %s local_media_ip" % c.uuid, quiet=True).strip()
        port = int(self.B.api("uuid_getvar %s local_media_port" % c.uuid, quiet=True).strip())
        c.rtp.peer = (ip, port)
        log("caller %s (SIPp pid %d, number %s) parked on B: %s (RTP to this script's port %d)"
            % (label, c.proc.pid, number, c.uuid, c.rtp.port))
        return c

    def session_id(self, c):
        return "nodeb-" + c.uuid

    def dial(self, c, bo, extra_vars="", node_port=None, room=None, session=None, gateway=False):
        vars_ = ("origination_uuid=%s,sip_h_X-Switchyard-Session=%s,switchyard_role=node_leg,"
                 "switchyard_room=%s%s" % (bo, session if session is not None else self.session_id(c), room or self.room,
                                           extra_vars))
        if gateway:
            return "{%s}sofia/gateway/node_a/%s" % (vars_, room or self.room)
        return "{%s}sofia/nodes/%s@127.0.0.1:%d" % (vars_, room or self.room,
                                                     node_port or self.A.node_port)

    def transfer_cmd(self, c, bo, form="main", extra_vars="", **kw):
        dial = self.dial(c, bo, extra_vars, **kw)
        if form == "main":
            dest = "m:^:set:park_after_bridge=true^set:continue_on_fail=true^bridge:%s^park" % dial
        elif form == "pab":        # park_after_bridge only
            dest = "m:^:set:park_after_bridge=true^bridge:%s" % dial
        elif form == "tail":       # a park after the bridge only
            dest = "m:^:set:continue_on_fail=true^bridge:%s^park" % dial
        elif form == "nocopy":     # main + do not forward the caller's own X- headers
            dest = ("m:^:set:sip_copy_custom_headers=false^set:park_after_bridge=true^"
                    "set:continue_on_fail=true^bridge:%s^park" % dial)
        elif form == "cn":         # main + comfort noise from B when the caller sends nothing
            dest = ("m:^:set:bridge_generate_comfort_noise=true^set:park_after_bridge=true^"
                    "set:continue_on_fail=true^bridge:%s^park" % dial)
        elif form == "plain":      # no m:^: (commas split the inline dialplan)
            dest = "bridge:%s" % dial
        elif form == "braces":     # park_after_bridge inside {} (the outbound leg's variable)
            dial = dial.replace("{", "{park_after_bridge=true,", 1)
            dest = "m:^:bridge:%s" % dial
        else:
            raise ValueError(form)
        return "uuid_transfer %s '%s' inline" % (c.uuid, dest)

    def join(self, c, label, form="main", extra_vars="", expect=True, **kw):
        """Bridges caller c (on B) into the room on A. Returns (bo, al, member id, t0, nA, nB)."""
        bo = str(uuid.uuid4())
        self.labels[bo] = "B.out" + label
        nA, nB = self.A.count(), self.B.count()
        t0 = now()
        self.B.api(self.transfer_cmd(c, bo, form, extra_vars, **kw))
        if not expect:
            return bo, None, None, t0, nA, nB
        sess = kw.get("session") or self.session_id(c)
        cr = self.A.wait(lambda e: e.name == "CHANNEL_CREATE" and e.get(TAG_VAR) is not None and
                         e.get("Unique-ID") not in self.labels, 10, nA)
        al = None
        if cr:
            al = cr.get("Unique-ID")
            self.labels[al] = "A.in" + label
            self.timing("%s: transfer -> CHANNEL_CREATE on A" % label, cr.t - t0)
        m = self.A.wait(lambda e: e.get("Action") == "add-member" and al and e.get("Unique-ID") == al,
                        10, nA)
        mid = m.get("Member-ID") if m else None
        if m:
            self.timing("%s: transfer -> add-member on A" % label, m.t - t0)
        br = self.B.wait(lambda e: e.name == "CHANNEL_BRIDGE" and e.get("Unique-ID") in (c.uuid, bo),
                         10, nB)
        if br:
            self.timing("%s: transfer -> CHANNEL_BRIDGE on B" % label, br.t - t0)
        ans = self.B.wait(lambda e: e.name == "CHANNEL_ANSWER" and e.get("Unique-ID") == bo, 1, nB)
        if ans:
            self.timing("%s: transfer -> CHANNEL_ANSWER of B's outbound leg" % label, ans.t - t0)
        time.sleep(0.5)
        log("joined %s: B caller %s, B outbound %s, A leg %s, member %s; tag sent %s, seen on A: %r"
            % (label, c.uuid, bo, al, mid, sess, cr.get(TAG_VAR) if cr else None))
        return bo, al, mid, t0, nA, nB

    def show_join(self, label, t0, nA, nB, dump=True):
        self.table(self.B, nB, t0, "join %s:" % label, dump_as=("J-" + label) if dump else None)
        self.table(self.A, nA, t0, "join %s:" % label, dump_as=("J-" + label) if dump else None)
        self.sip(t0, "join %s:" % label)

    def after(self, label, nA, nB, t0, wait=1.5):
        time.sleep(wait)
        self.table(self.A, nA, t0, label)
        self.table(self.B, nB, t0, label)
        self.sip(t0, label)

    def port_name(self, p):
        for node in (self.A, self.B):
            if node.rtp[0] <= p <= node.rtp[1]:
                return "%s.rtp:%d" % (node.name, p)
        for c in self.callers:
            if c.rtp.port == p:
                return "caller %s:%d" % (c.label, p)
        return str(p)

    def rtp(self, t0, title):
        if not self.sniff.ok:
            return
        TR.write("           %s RTP datagrams on loopback since then:" % title)
        for line in self.sniff.rtp_report(t0, self.port_name):
            TR.write(line)

    def sip(self, t0, title, t_to=None):
        if not self.sniff.ok:
            return
        lines = self.sniff.since(t0 - 0.005, t0, self.names, t_to)
        TR.write("           %s SIP between the nodes (loopback capture):" % title)
        for line in lines:
            TR.write(line)

    def check_sipp(self, c):
        log("SIPp %s: %s" % (c.label, "running" if c.proc.poll() is None else
                             "exited %s" % c.proc.returncode))

    def wait_ev(self, node, name, u, timeout, since):
        return node.wait(lambda e: e.name == name and e.get("Unique-ID") == u, timeout, since)

    # ---- scenarios

    def run(self):
        os.makedirs(self.args.out, exist_ok=True)
        self.A.prepare()
        self.B.prepare(gateway_to=self.A.node_port, ping=self.args.ping)
        self.sniff = SipSniffer(os.path.join(self.args.out, "10_cross_node.sip.txt"))
        self.sniff.ports.update({self.A.node_port, self.B.node_port})
        self.sniff.rtp_ranges = [self.A.rtp, self.B.rtp]
        self.names = {"127.0.0.1:%d" % self.A.node_port: "A.nodes",
                      "127.0.0.1:%d" % self.B.node_port: "B.nodes"}
        if not self.sniff.ok:
            log("no SIP capture: %s" % self.sniff.why)
        self.A.start()
        self.B.start()
        try:
            self.A.api("version")
            self.A.api("sofia status")
            self.B.api("sofia status")
            self.B.api("sofia status gateway node_a")
            if self.args.siptrace:
                for node in (self.A, self.B):
                    node.api("sofia global siptrace on")
            log("==== a. the room on A: %s" % self.room)
            self.open_room()
            self.A.api("conference %s list" % self.room)
            if self.want("F1"):
                self.f1()
            if self.want("F2"):
                self.f2()
            if self.want("J"):
                self.joins()
            if self.want("N"):
                self.no_room()
            if self.want("ACL"):
                self.acl()
            if self.want("S"):
                self.silent()
            if self.want("G0"):
                self.blackhole()
            if self.want("G1"):
                for rep in range(1, self.args.reps + 1):
                    self.kill_a(rep)
            if self.want("G2"):
                for rep in range(1, self.args.reps + 1):
                    self.kill_b(rep)
            TR.write("\n==== timings")
            for what, sec in self.timings:
                TR.write("  %-80s %s" % (what, ("%.3f" % sec) if sec is not None else "never"))
        finally:
            for c in self.callers:
                c.stop()
            for node in (self.A, self.B):
                try:
                    if node.alive():
                        node.api("hupall NORMAL_CLEARING", quiet=True)
                except Exception:  # noqa
                    pass
            time.sleep(1)
            for node in (self.A, self.B):
                node.stop()
            self.sniff.close()
            left = [c.proc.pid for c in self.callers if c.proc.poll() is None]
            log("stopped: FreeSWITCH A and B (%s, %s), %d SIPp (still running: %s); out %s"
                % (self.A.fs.returncode if self.A.fs else None,
                   self.B.fs.returncode if self.B.fs else None, len(self.callers), left, self.args.out))
            for node in (self.A, self.B):
                if self.args.keep:
                    log("kept %s" % node.dir)
                else:
                    shutil.rmtree(node.dir, ignore_errors=True)
            if not self.args.keep:
                shutil.rmtree(self.work, ignore_errors=True)
            else:
                log("kept %s" % self.work)

    def f1(self):
        TR.write("\n==== F1 the bridge inline WITHOUT m:^: — uuid_transfer <c> 'bridge:{a=1,b=2,...}sofia/...' inline")
        c = self.call("F1")
        bo = str(uuid.uuid4())
        self.labels[bo] = "B.outF1"
        nA, nB = self.A.count(), self.B.count()
        t0 = now()
        self.B.api(self.transfer_cmd(c, bo, "plain"))
        time.sleep(3)
        self.table(self.B, nB, t0, "F1:")
        self.table(self.A, nA, t0, "F1:")
        self.B.api("uuid_exists %s" % c.uuid)
        self.check_sipp(c)

    def f2(self):
        TR.write("\n==== F2 `m:^:bridge:{park_after_bridge=true,...}...` (the variable is the outbound "
                 "leg's), then uuid_kill of A's leg")
        c = self.call("F2")
        bo, al, mid, t0, nA, nB = self.join(c, "F2", form="braces")
        self.show_join("F2", t0, nA, nB, dump=False)
        nA, nB = self.A.count(), self.B.count()
        t0 = now()
        if al:
            self.A.api("uuid_kill %s" % al)
        self.rtp(t0 - 1, "F2 1 s before the uuid_kill:")
        self.after("F2 after uuid_kill of A's leg:", nA, nB, t0, 2)
        self.B.api("uuid_exists %s" % c.uuid)
        self.check_sipp(c)

    def joins(self):
        # D: uuid_kill of A's leg, three forms
        for i, form, extra in [(0, "main", ",rtp_timer_name=none"), (1, "main", ""), (2, "pab", ""),
                               (3, "tail", ""), (4, "main", "")]:
            lab = "D%d" % i
            TR.write("\n==== %s join (form %s%s), then uuid_kill of A's leg (leave by hanging up on A)"
                     % (lab, form, ", B's outbound leg with {rtp_timer_name=none}" if extra else ""))
            c = self.call(lab)
            bo, al, mid, t0, nA, nB = self.join(c, lab, form=form, extra_vars=extra)
            self.show_join(lab, t0, nA, nB, dump=(i == 1))
            self.A.api("conference %s list" % self.room)
            if i == 1:
                self.media(c, mid)
            self.B.api("uuid_getvar %s sip_call_id" % bo)
            nA, nB = self.A.count(), self.B.count()
            t0 = now()
            self.A.api("uuid_kill %s" % al)
            p = self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 8, nB)
            self.timing("%s: uuid_kill A leg -> CHANNEL_PARK of the caller on B" % lab, p.t - t0 if p else None)
            h = self.wait_ev(self.B, "CHANNEL_HANGUP_COMPLETE", bo, 8, nB)
            self.timing("%s: uuid_kill A leg -> HANGUP_COMPLETE of B's outbound leg" % lab, h.t - t0 if h else None)
            self.after("%s after uuid_kill of A's leg:" % lab, nA, nB, t0)
            self.B.api("uuid_getvar %s current_application" % c.uuid)
            self.B.api("uuid_getvar %s park_after_bridge" % c.uuid)
            self.check_sipp(c)
            # the parked caller can be moved again (a second join of the same caller)
            if i == 1:
                TR.write("\n==== D1b the same caller joined again after it was parked again")
                bo2, al2, mid2, t0, nA, nB = self.join(c, "D1b")
                self.show_join("D1b", t0, nA, nB, dump=False)
                nA, nB = self.A.count(), self.B.count()
                t0 = now()
                self.B.api("uuid_transfer %s park inline" % c.uuid)
                self.after("D1b after uuid_transfer <caller> park inline on B:", nA, nB, t0)
            self.B.api("uuid_kill %s" % c.uuid)

        # T: leave by moving the caller on B
        for i in (1, 2):
            lab = "T%d" % i
            TR.write("\n==== %s join, then `uuid_transfer <caller> park inline` on B (leave by moving the "
                     "caller on B)" % lab)
            c = self.call(lab)
            bo, al, mid, t0, nA, nB = self.join(c, lab)
            self.show_join(lab, t0, nA, nB, dump=False)
            nA, nB = self.A.count(), self.B.count()
            t0 = now()
            self.B.api("uuid_transfer %s park inline" % c.uuid)
            d = self.A.wait(lambda e: e.get("Action") == "del-member" and e.get("Unique-ID") == al, 5, nA)
            self.timing("%s: uuid_transfer caller park -> del-member on A" % lab, d.t - t0 if d else None)
            self.after("%s after uuid_transfer <caller> park inline on B:" % lab, nA, nB, t0)
            self.check_sipp(c)
            self.B.api("uuid_kill %s" % c.uuid)

        # K: kick on A; K2/K3 with a forged X-Switchyard-Session from the caller
        forged = "      X-Switchyard-Session: nodex-forged\n      X-Carrier-Tag: carrier-1\n"
        for i, (extra, form) in enumerate([("", "main"), (forged, "main"), (forged, "nocopy")], 1):
            lab = "K%d" % i
            TR.write("\n==== %s join (form %s%s), then `conference <room> kick <id>` on A"
                     % (lab, form, ", the caller's INVITE carries X-Switchyard-Session: nodex-forged and X-Carrier-Tag: carrier-1"
                        if extra else ""))
            c = self.call(lab, extra_headers=extra)
            if extra:
                self.B.api("uuid_getvar %s sip_h_X-Switchyard-Session" % c.uuid)
            bo, al, mid, t0, nA, nB = self.join(c, lab, form=form)
            self.show_join(lab, t0, nA, nB, dump=(i == 2))
            if al:
                self.A.api("uuid_getvar %s sip_h_X-Switchyard-Session" % al)
                self.A.api("uuid_getvar %s sip_h_X-Switchyard-Session-1" % al)
                self.A.api("uuid_getvar %s sip_h_X-Carrier-Tag" % al)
            nA, nB = self.A.count(), self.B.count()
            t0 = now()
            self.A.api("conference %s kick %s" % (self.room, mid))
            p = self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 8, nB)
            self.timing("%s: kick -> CHANNEL_PARK of the caller on B" % lab, p.t - t0 if p else None)
            self.after("%s after kick:" % lab, nA, nB, t0)
            self.A.api("uuid_exists %s" % al)
            self.check_sipp(c)
            self.B.api("uuid_kill %s" % c.uuid)

        # E: the caller hangs up on B (SIPp sends BYE)
        for i in (1, 2):
            lab = "E%d" % i
            TR.write("\n==== %s join, then the caller sends BYE to B (SIPp, 5 s after its ACK)" % lab)
            c = self.call(lab, bye_after_ms=5000)
            t_call = now()
            bo, al, mid, t0, nA, nB = self.join(c, lab)
            self.show_join(lab, t0, nA, nB, dump=False)
            nA, nB = self.A.count(), self.B.count()
            t0 = now()
            h = self.wait_ev(self.B, "CHANNEL_HANGUP", c.uuid, 10, nB)
            d = self.A.wait(lambda e: e.get("Action") == "del-member" and e.get("Unique-ID") == al, 10, nA)
            if h and d:
                self.timing("%s: CHANNEL_HANGUP of the caller on B -> del-member on A" % lab, d.t - h.t)
            hA = self.wait_ev(self.A, "CHANNEL_HANGUP_COMPLETE", al, 5, nA)
            if h and hA:
                self.timing("%s: CHANNEL_HANGUP of the caller on B -> HANGUP_COMPLETE of A's leg" % lab,
                            hA.t - h.t)
            self.after("%s after the caller's BYE:" % lab, nA, nB, t0)
            self.check_sipp(c)

        lab = "EK"
        TR.write("\n==== EK join, then uuid_kill of the caller on B")
        c = self.call(lab)
        bo, al, mid, t0, nA, nB = self.join(c, lab)
        self.show_join(lab, t0, nA, nB, dump=False)
        nA, nB = self.A.count(), self.B.count()
        t0 = now()
        self.B.api("uuid_kill %s" % c.uuid)
        d = self.A.wait(lambda e: e.get("Action") == "del-member" and e.get("Unique-ID") == al, 10, nA)
        self.timing("EK: uuid_kill caller on B -> del-member on A", d.t - t0 if d else None)
        self.after("EK after uuid_kill of the caller:", nA, nB, t0)
        self.check_sipp(c)

    def media(self, c, mid):
        TR.write("\n==== M mute state, audio both ways (caller -> room: conference record on A; room -> "
                 "caller: conference play of a 440 Hz tone_stream, received by this script)")
        rec1 = os.path.join(self.A.d("rec"), "muted.wav")
        rec2 = os.path.join(self.A.d("rec"), "unmuted.wav")
        self.A.api("conference %s record %s" % (self.room, rec1))
        time.sleep(3)
        self.A.api("conference %s norecord %s" % (self.room, rec1))
        n = self.A.count()
        self.A.api("conference %s unmute %s" % (self.room, mid))
        time.sleep(0.3)
        self.table(self.A, n, now() - 0.3, "unmute:")
        self.A.api("conference %s record %s" % (self.room, rec2))
        time.sleep(3)
        self.A.api("conference %s norecord %s" % (self.room, rec2))
        n = self.A.count()
        self.A.api("conference %s mute %s" % (self.room, mid))
        time.sleep(0.3)
        self.table(self.A, n, now() - 0.3, "mute:")
        time.sleep(0.5)
        for path in (rec1, rec2):
            self.wav_report(path)
        t1 = now()
        self.A.api("conference %s play tone_stream://%%(3000,0,440)" % self.room)
        time.sleep(4)
        s = c.rtp.analyze(t1 - 1, now())
        log("AUDIO the caller received from B, from 1 s before the play (one char per 250 ms: "
            "T=1250 Hz, 4=440 Hz, o=other, .=silence, _=no RTP): %s" % s)
        self.B.api("uuid_getvar %s read_codec" % c.uuid)
        self.B.api("uuid_getvar %s rtp_use_codec_name" % c.uuid)

    def wav_report(self, path):
        try:
            w = wave.open(path)
        except (OSError, wave.Error) as e:
            log("WAV %s: cannot open (%r)" % (path, e))
            return
        rate, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        data = w.readframes(n)
        w.close()
        samples = list(struct.unpack("<%dh" % (len(data) // 2), data))[::ch]
        rms = math.sqrt(sum(x * x for x in samples) / len(samples)) if samples else 0
        win = rate // 4
        chars = []
        for i in range(0, len(samples) - win + 1, win):
            seg = samples[i:i + win]
            if rate != 8000:
                seg = seg[::rate // 8000]
            chars.append(classify(seg))
        log("WAV %s: %d Hz, %d ch, %d bit, %.2f s, RMS %.0f; per 250 ms: %s"
            % (os.path.basename(path), rate, ch, 8 * width, n / float(rate), rms, "".join(chars)))

    def no_room(self):
        TR.write("\n==== N a bridge to a room A does not host (join-only), main form")
        c = self.call("N")
        room = "nodea-room-" + str(uuid.uuid4())
        bo = str(uuid.uuid4())
        self.labels[bo] = "B.outN"
        nA, nB = self.A.count(), self.B.count()
        t0 = now()
        self.B.api(self.transfer_cmd(c, bo, "main", room=room))
        p = self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 10, nB)
        self.timing("N: transfer -> CHANNEL_PARK of the caller on B (no such room)", p.t - t0 if p else None)
        time.sleep(1)
        for e in self.A.ev.events[nA:]:
            if e.name == "CHANNEL_CREATE" and e.get(TAG_VAR):
                self.labels[e.get("Unique-ID")] = "A.inN"
            if e.get("Action") == "rejected-join-only":
                self.dump(self.A, e, "N")
        self.table(self.A, nA, t0, "N:")
        self.table(self.B, nB, t0, "N:")
        self.B.api("uuid_getvar %s originate_failed_cause" % c.uuid)
        self.A.api("conference list summary")
        TR.write("\n==== N2 the same with a request user that is not a room id, and a valid room without the header")
        for what, kw in (("not a room id", dict(room="15551230000")),
                         ("no X-Switchyard-Session", dict(session=""))):
            bo = str(uuid.uuid4())
            self.labels[bo] = "B.outN2"
            nA, nB = self.A.count(), self.B.count()
            t0 = now()
            cmd = self.transfer_cmd(c, bo, "main", **kw)
            if kw.get("session") == "":
                cmd = cmd.replace("sip_h_X-Switchyard-Session=,", "")
            self.B.api(cmd)
            p = self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 10, nB)
            self.timing("N2 (%s): transfer -> CHANNEL_PARK of the caller on B" % what, p.t - t0 if p else None)
            time.sleep(0.5)
            for e in self.A.ev.events[nA:]:
                if e.name == "CHANNEL_CREATE" and e.get("Caller-Destination-Number"):
                    self.labels.setdefault(e.get("Unique-ID"), "A.inN2")
            self.table(self.A, nA, t0, "N2 (%s):" % what)
            self.table(self.B, nB, t0, "N2 (%s):" % what, uuids={bo})
            self.B.api("uuid_getvar %s originate_failed_cause" % c.uuid)
        self.B.api("uuid_kill %s" % c.uuid)

    def acl(self):
        TR.write("\n==== ACL an INVITE to A's node port from 127.0.0.2 (switchyard_nodes allows 127.0.0.1/32 only), "
                 "then the same from 127.0.0.1")
        for src in ("127.0.0.2", "127.0.0.1"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((src, 0))
            s.settimeout(0.5)
            lp = s.getsockname()[1]
            callid = "acl-%s" % uuid.uuid4().hex[:10]
            sdp = ("v=0\r\no=x 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
                   "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" % (src, src))
            msg = ("INVITE sip:%s@127.0.0.1:%d SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s\r\n"
                   "From: <sip:probe@%s:%d>;tag=t1\r\nTo: <sip:%s@127.0.0.1:%d>\r\n"
                   "Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:probe@%s:%d>\r\nMax-Forwards: 70\r\n"
                   "X-Switchyard-Session: nodeb-%s\r\n"
                   "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
                   % (self.room, self.A.node_port, src, lp, uuid.uuid4().hex[:10], src, lp, self.room,
                      self.A.node_port, callid, src, lp, uuid.uuid4(), len(sdp), sdp))
            nA = self.A.count()
            t0 = now()
            s.sendto(msg.encode(), ("127.0.0.1", self.A.node_port))
            got = []
            end = time.monotonic() + 3
            while time.monotonic() < end:
                try:
                    data, _ = s.recvfrom(65536)
                except socket.timeout:
                    continue
                first = data.split(b"\r\n", 1)[0].decode("latin-1")
                got.append("+%.3f %s" % (now() - t0, first))
                if first.startswith("SIP/2.0 2"):
                    break
            log("from %s: responses %s" % (src, got))
            cr = self.A.wait(lambda e: e.name == "CHANNEL_CREATE" and e.get("variable_sip_call_id") == callid,
                             1 if src != "127.0.0.1" else 3, nA)
            if cr:
                self.labels[cr.get("Unique-ID")] = "A.acl"
                time.sleep(0.2)
                self.A.api("uuid_kill %s" % cr.get("Unique-ID"))
            time.sleep(0.5)
            self.table(self.A, nA, t0, "ACL from %s:" % src)
            s.close()

    def silent(self):
        for lab, form in (("S1", "main"), ("S2", "cn")):
            TR.write("\n==== %s a caller whose RTP stops for 12 s while bridged (form %s); media_timeout=5000 on "
                     "A's leg (nodes context) and on B's outbound leg ({media_timeout=5000}); inbound profile "
                     "timer: %s" % (lab, form, "soft" if self.args.inbound_timer else "none (as in the repo)"))
            self.A.set_media_timeout(5000)
            c = self.call(lab)
            bo, al, mid, t0, nA, nB = self.join(c, lab, form=form, extra_vars=",media_timeout=5000")
            self.show_join(lab, t0, nA, nB, dump=False)
            nA, nB = self.A.count(), self.B.count()
            t0 = now()
            c.rtp.sending = False
            log("caller %s stops sending RTP" % lab)
            time.sleep(12)
            c.rtp.sending = True
            log("caller %s sends RTP again" % lab)
            time.sleep(1)
            self.table(self.A, nA, t0, "%s (caller silent from +0 to +12):" % lab)
            self.table(self.B, nB, t0, "%s (caller silent from +0 to +12):" % lab)
            self.rtp(t0 + 2, "%s from +2 (caller silent):" % lab)
            self.A.api("uuid_exists %s" % al)
            self.B.api("uuid_exists %s" % bo)
            self.B.api("uuid_exists %s" % c.uuid)
            self.B.api("uuid_kill %s" % c.uuid)
            time.sleep(1)
            self.A.set_media_timeout(10000)

    def blackhole(self):
        """A node that takes the INVITE and never answers (a UDP socket of this script): no ICMP
        error, as with a frozen node or a partition."""
        for lab, extra in (("G0a", ""), ("G0b", ",originate_timeout=3")):
            TR.write("\n==== %s a bridge to a node that never answers (a silent UDP socket), main form%s"
                     % (lab, (", {%s}" % extra[1:]) if extra else ""))
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sink.bind(("127.0.0.1", 0))
            port = sink.getsockname()[1]
            self.sniff.ports.add(port)
            self.names["127.0.0.1:%d" % port] = "sink"
            c = self.call(lab)
            bo = str(uuid.uuid4())
            self.labels[bo] = "B.out" + lab
            nB = self.B.count()
            t0 = now()
            self.B.api(self.transfer_cmd(c, bo, "main", extra_vars=extra, node_port=port))
            p = self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 70, nB)
            self.timing("%s: transfer -> caller CHANNEL_PARK on B (node never answers)" % lab,
                        p.t - t0 if p else None)
            time.sleep(0.3)
            self.table(self.B, nB, t0, "%s:" % lab)
            self.sip(t0, "%s:" % lab)
            self.B.api("uuid_kill %s" % c.uuid)
            sink.close()

    def kill_a(self, rep):
        lab = "G1.%d" % rep
        TR.write("\n==== %s SIGKILL of A while three callers are bridged into its room: B's outbound legs "
                 "with (x) no timeout, (m) media_timeout=5000, (r) rtp_timeout_sec=5, (n) media_timeout=5000 and "
                 "rtp_timer_name=none, (s, first time only) sofia_session_timeout=90 (SIP session timer)" % lab)
        legs = {}
        kinds = [("x", ""), ("m", ",media_timeout=5000"), ("r", ",rtp_timeout_sec=5"),
                 ("n", ",media_timeout=5000,rtp_timer_name=none")]
        if rep == 1:
            kinds.append(("s", ",sofia_session_timeout=90"))
        for k, extra in kinds:
            c = self.call("%s%s" % (lab, k))
            bo, al, mid, t0, nA, nB = self.join(c, "%s%s" % (lab, k), extra_vars=extra)
            if rep == 1 and k == "m":
                self.show_join("%s%s" % (lab, k), t0, nA, nB, dump=False)
            legs[k] = (c, bo, al)
        self.B.api("sofia status gateway node_a")
        time.sleep(1)
        nB = self.B.count()
        t0 = self.A.sigkill()
        ev_closed = None
        for _ in range(50):
            if self.A.ev.closed_at is not None:
                ev_closed = self.A.ev.closed_at
                break
            time.sleep(0.02)
        self.timing("%s: SIGKILL A -> EOF on the controller's event connection to A" % lab,
                    ev_closed - t0 if ev_closed else None)
        # a bridge attempt to the dead A, direct and through the gateway
        watch = self.args.watch if rep == 1 else self.args.watch2
        attempts = []
        if rep == 1:
            for k, gw in (("d", False), ("g", True)):
                if gw:
                    # after the gateway's pings have marked it down
                    g = self.B.wait(lambda e: e.get("Event-Subclass") == "sofia::gateway_state" and
                                    e.get("Ping-Status") == "DOWN", 3 * self.args.ping + 5, nB)
                    self.timing("%s: SIGKILL A -> gateway node_a Ping-Status DOWN on B" % lab,
                                g.t - t0 if g else None)
                else:
                    time.sleep(1)
                c = self.call("%s%s" % (lab, k))
                bo = str(uuid.uuid4())
                self.labels[bo] = "B.out%s%s" % (lab, k)
                na = self.B.count()
                tt = now()
                self.B.api(self.transfer_cmd(c, bo, "main", gateway=gw))
                attempts.append((k, c, bo, tt, na))
        end = t0 + watch
        res = {}
        while now() < end:
            for k, (c, bo, al) in legs.items():
                if k not in res:
                    h = self.wait_ev(self.B, "CHANNEL_HANGUP", bo, 0, nB)
                    if h:
                        res[k] = h
            if len(res) == len(legs) and all(self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 0, na)
                                              for _, c, _, _, na in attempts):
                break
            time.sleep(0.2)
        for k, (c, bo, al) in legs.items():
            h = res.get(k)
            self.timing("%s%s: SIGKILL A -> CHANNEL_HANGUP of B's outbound leg (%s)"
                        % (lab, k, h.get("Hangup-Cause") if h else "watched %d s" % watch),
                        h.t - t0 if h else None)
            p = self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 0, nB)
            self.timing("%s%s: SIGKILL A -> CHANNEL_PARK of the caller on B" % (lab, k), p.t - t0 if p else None)
        for k, c, bo, tt, na in attempts:
            p = self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 0, na)
            h = self.wait_ev(self.B, "CHANNEL_HANGUP_COMPLETE", bo, 0, na)
            self.timing("%s%s: bridge to dead A (%s) -> caller CHANNEL_PARK on B" %
                        (lab, k, "gateway" if k == "g" else "direct"), p.t - tt if p else None)
            if h:
                log("%s%s: outbound leg hangup %s, sip_term_status %s (+%.3f after the transfer)"
                    % (lab, k, h.get("Hangup-Cause"), h.get("variable_sip_term_status"), h.t - tt))
            self.B.api("uuid_getvar %s originate_failed_cause" % c.uuid)
        self.table(self.B, nB, t0, "%s after SIGKILL of A:" % lab)
        self.B.api("sofia status gateway node_a")
        self.B.api("show channels count")
        for k, (c, bo, al) in legs.items():
            self.B.api("uuid_exists %s" % bo)
        # clean up B's side, restart A
        for c in [v[0] for v in legs.values()] + [a[1] for a in attempts]:
            if c.uuid:
                self.B.api("uuid_kill %s" % c.uuid, quiet=True)
        self.A.close_conns()
        nB = self.B.count()
        tr = now()
        self.A.start()
        self.open_room()
        # the gateway comes back?
        g = self.B.wait(lambda e: e.get("Event-Subclass") == "sofia::gateway_state" and e.get("State") == "UP"
                        or (e.get("Event-Subclass") == "sofia::gateway_state" and e.get("Ping-Status") == "UP"),
                        3 * self.args.ping + 5, nB)
        self.timing("%s: A restarted -> gateway node_a state event UP on B" % lab, g.t - tr if g else None)
        self.B.api("sofia status gateway node_a")

    def kill_b(self, rep):
        lab = "G2.%d" % rep
        TR.write("\n==== %s SIGKILL of B while two callers are bridged: A's legs with media_timeout=5000 (m) "
                 "and without (x), set by A's nodes context" % lab)
        legs = {}
        for k, mt in (("m", 5000), ("x", 0)):
            self.A.set_media_timeout(mt)
            c = self.call("%s%s" % (lab, k))
            bo, al, mid, t0, nA, nB = self.join(c, "%s%s" % (lab, k))
            self.A.api("uuid_getvar %s media_timeout" % al)
            legs[k] = (c, bo, al, mid)
        self.A.set_media_timeout(10000)
        time.sleep(1)
        nA = self.A.count()
        t0 = self.B.sigkill()
        ev_closed = None
        for _ in range(50):
            if self.B.ev.closed_at is not None:
                ev_closed = self.B.ev.closed_at
                break
            time.sleep(0.02)
        self.timing("%s: SIGKILL B -> EOF on the controller's event connection to B" % lab,
                    ev_closed - t0 if ev_closed else None)
        watch = self.args.watch if rep == 1 else self.args.watch2
        res = {}
        end = t0 + watch
        while now() < end and len(res) < len(legs):
            for k, (c, bo, al, mid) in legs.items():
                if k not in res:
                    d = self.A.wait(lambda e: e.get("Action") == "del-member" and e.get("Unique-ID") == al, 0, nA)
                    if d:
                        res[k] = d
            time.sleep(0.2)
        for k, (c, bo, al, mid) in legs.items():
            d = res.get(k)
            h = self.wait_ev(self.A, "CHANNEL_HANGUP", al, 0, nA)
            self.timing("%s%s: SIGKILL B -> del-member on A (%s)"
                        % (lab, k, h.get("Hangup-Cause") if h else "watched %d s" % watch),
                        d.t - t0 if d else None)
        self.table(self.A, nA, t0, "%s after SIGKILL of B:" % lab)
        self.A.api("conference %s list" % self.room)
        for k, (c, bo, al, mid) in legs.items():
            if self.A.api("uuid_exists %s" % al).strip() == "true":
                self.A.api("uuid_kill %s" % al)
            c.stop()
        self.B.close_conns()
        self.B.start()


def main():
    global TR
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "switchyard-cross-node"))
    p.add_argument("--freeswitch", default=os.environ.get("SWITCHYARD_FREESWITCH",
                                                          "/usr/local/freeswitch/bin/freeswitch"))
    p.add_argument("--conf", default=os.path.join(REPO, "freeswitch-conf"))
    p.add_argument("--keep", action="store_true", help="keep the nodes' temporary directories")
    p.add_argument("--only", default="", help="comma-separated: F1,F2,J,N,ACL,S,G0,G1,G2 (a always runs)")
    p.add_argument("--reps", type=int, default=2, help="repetitions of G1 and G2")
    p.add_argument("--watch", type=int, default=75, help="seconds to watch after the first SIGKILL")
    p.add_argument("--watch2", type=int, default=20, help="seconds to watch after later SIGKILLs")
    p.add_argument("--ping", type=int, default=5, help="the gateway's OPTIONS ping interval (s)")
    p.add_argument("--siptrace", action="store_true",
                   help="sofia global siptrace on (SIP messages in each node's log; use with --keep)")
    p.add_argument("--inbound-timer", action="store_true",
                   help="test copy only: rtp-timer-name soft in the inbound profile too")
    p.add_argument("--talking", action="store_true", help="show start/stop-talking events")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    TR = rp.Transcript(os.path.join(args.out, "10_cross_node.transcript.txt"))
    rp.TR = TR
    Session(args).run()


if __name__ == "__main__":
    main()
