"""A recorded session of two nodes, A (hosts the room) and B (takes the calls): their start,
callers on B, the room on A, and the bridge of a caller into it in its several forms
(`transfer_cmd`); the run and its clean-up. The scenarios are in scenarios.py, joins.py and
kills.py."""

import os
import shutil
import tempfile
import time
import uuid

from ..commands import control_leg
from ..transcript import log, now, write
from .caller import Caller
from .node import Node
from .report import TAG_VAR, Report
from .sniffer import SipSniffer


class Session(Report):
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="switchyard-xnode-work-")
        self.labels = {}
        self.callers = []
        self.next_number = 3001
        self.only = set(args.only.split(",")) if args.only else None
        self.dumps = open(os.path.join(args.out, "10_cross_node.dumps.txt"), "w", encoding="utf-8")
        self.A = Node(args, "A")
        self.B = Node(args, "B")
        self.room = "nodea-room-" + str(uuid.uuid4())
        self.ctl = None
        self.timings = []
        self.sniff = None

    def want(self, name):
        return self.only is None or name in self.only

    def scenarios(self):
        raise NotImplementedError

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
        try:
            self.A.start()
            self.B.start()
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
            self.scenarios()
            write("\n==== timings")
            for what, sec in self.timings:
                write("  %-80s %s" % (what, ("%.3f" % sec) if sec is not None else "never"))
        finally:
            self.clean_up()

    def clean_up(self):
        """Stops every SIPp, hangs up every call, stops both nodes by pid."""
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
            % (self.A.returncode(), self.B.returncode(), len(self.callers), left, self.args.out))
        for node in (self.A, self.B):
            if self.args.keep:
                log("kept %s" % node.dir)
            node.fs.remove(self.args.keep)
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log("kept %s" % self.work)

    def sleep(self, s, why=""):
        log("wait %.1f s %s" % (s, why))
        time.sleep(s)

    # ---- building blocks

    def open_room(self):
        """The room on A, opened as Switchyard opens it (bgapi)."""
        c = str(uuid.uuid4())
        self.ctl = c
        self.labels[c] = "A.ctl"
        n = self.A.count()
        job, t0 = self.A.bgapi("originate " + control_leg(c, self.room))
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
        c = Caller(self.work, self.B.sip_port, label, number, extra_headers, bye_after_ms)
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
        """B's dial string to the room on A for caller c; bo is the outbound leg's uuid."""
        session = session if session is not None else self.session_id(c)
        vars_ = ("origination_uuid=%s,sip_h_X-Switchyard-Session=%s,switchyard_role=node_leg,"
                 "switchyard_room=%s%s" % (bo, session, room or self.room, extra_vars))
        if gateway:
            return "{%s}sofia/gateway/node_a/%s" % (vars_, room or self.room)
        return "{%s}sofia/nodes/%s@127.0.0.1:%d" % (vars_, room or self.room,
                                                    node_port or self.A.node_port)

    def transfer_cmd(self, c, bo, form="main", extra_vars="", **kw):
        """The uuid_transfer that bridges caller c into the room, in one of its forms."""
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

    def check_sipp(self, c):
        log("SIPp %s: %s" % (c.label, "running" if c.proc.poll() is None else
                             "exited %s" % c.proc.returncode))

    def wait_ev(self, node, name, u, timeout, since):
        return node.wait(lambda e: e.name == name and e.get("Unique-ID") == u, timeout, since)
