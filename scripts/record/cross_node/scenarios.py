"""Two nodes and a room that spans them (fixtures/esl/10_cross_node.md): A hosts the room, B takes
the calls; a caller on B is bridged into the room on A over the `nodes` sofia profile
(config.py). With one `event plain ALL` connection per node and start (every byte kept in
<out>/10_cross_node.<node><n>.{recv,sent}.raw) and one api connection per node, it walks
through:

  a   the room opened on A as Switchyard opens it (bgapi originate ... null/switchyard
      &conference(<room>@switchyard+flags{mute|deaf}))
  F1  the bridge inline without `m:^:` (the commas of {...} split the inline dialplan)
  F2  `m:^:bridge:{park_after_bridge=true,...}` (the variable lands on the outbound leg), then
      A's leg is killed: what happens to the caller
  J   callers to B's DID, parked, then
      `uuid_transfer <c> 'm:^:set:park_after_bridge=true^set:continue_on_fail=true^bridge:{...}
      sofia/nodes/<room>@127.0.0.1:<A node port>^park' inline`, ended each way (joins.py)
  N   a bridge to a room A does not host (join-only), to a request user that is not a room id,
      and without the X-Switchyard-Session header
  ACL an INVITE to A's node port from 127.0.0.2 (not in the list), then from 127.0.0.1
  S   a caller whose RTP stops for 12 s, media_timeout on both node legs; S2 with
      bridge_generate_comfort_noise (run it again with --inbound-timer to see the difference)
  G0  a bridge to a node that never answers (a silent UDP socket): default, originate_timeout=3
  G1  SIGKILL of A with bridged callers, A restarted; G2 SIGKILL of B, B restarted; --reps
      times each (kills.py)

A loopback capture (root only; skipped otherwise) records the SIP between the nodes
(<out>/10_cross_node.sip.txt) and counts RTP datagrams between the nodes' RTP ports.

Writes to --out (default $TMPDIR/switchyard-cross-node; nothing in the repository): the raw
files, 10_cross_node.dumps.txt, 10_cross_node.sip.txt and the transcript (default
<out>/10_cross_node.transcript.txt). Sequence numbers, uuids and timings differ between runs.
About 6 minutes.
"""

import socket
import time
import uuid

from ..transcript import log, now, write
from .joins import Joins
from .kills import Kills
from .report import TAG_VAR
from .session import Session


class CrossNode(Joins, Kills, Session):

    def scenarios(self):
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

    def f1(self):
        write("\n==== F1 the bridge inline WITHOUT m:^: — uuid_transfer <c> 'bridge:{a=1,b=2,...}sofia/...' inline")
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
        write("\n==== F2 `m:^:bridge:{park_after_bridge=true,...}...` (the variable is the outbound "
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

    def no_room(self):
        write("\n==== N a bridge to a room A does not host (join-only), main form")
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
        for e in self.A.ev.since(nA):
            if e.name == "CHANNEL_CREATE" and e.get(TAG_VAR):
                self.labels[e.get("Unique-ID")] = "A.inN"
            if e.get("Action") == "rejected-join-only":
                self.dump(self.A, e, "N")
        self.table(self.A, nA, t0, "N:")
        self.table(self.B, nB, t0, "N:")
        self.B.api("uuid_getvar %s originate_failed_cause" % c.uuid)
        self.A.api("conference list summary")
        write("\n==== N2 the same with a request user that is not a room id, and a valid room without the header")
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
            for e in self.A.ev.since(nA):
                if e.name == "CHANNEL_CREATE" and e.get("Caller-Destination-Number"):
                    self.labels.setdefault(e.get("Unique-ID"), "A.inN2")
            self.table(self.A, nA, t0, "N2 (%s):" % what)
            self.table(self.B, nB, t0, "N2 (%s):" % what, uuids={bo})
            self.B.api("uuid_getvar %s originate_failed_cause" % c.uuid)
        self.B.api("uuid_kill %s" % c.uuid)

    def acl(self):
        write("\n==== ACL an INVITE to A's node port from 127.0.0.2 (switchyard_nodes allows 127.0.0.1/32 only), "
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
            write("\n==== %s a caller whose RTP stops for 12 s while bridged (form %s); media_timeout=5000 on "
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
            write("\n==== %s a bridge to a node that never answers (a silent UDP socket), main form%s"
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


def run(args):
    CrossNode(args).run()
