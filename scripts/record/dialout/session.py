"""A recorded dial-out session on one node: the `event plain ALL` connection kept byte for byte
in <out>/09_dialout.{recv,sent}.raw, a second event connection subscribed to a few events only,
the api connection (api and bgapi), the called parties (uas.py), and how a dialled leg is shown:
its events in arrival order, the SIP its called party saw, and every header of some events in
<out>/09_dialout.dumps.txt. The configuration copy is freeswitch-conf/ unchanged.
"""

import os
import time
import uuid

from .. import audio
from ..commands import control_leg
from ..esl import ApiConn, EventConn
from ..node import FreeSwitch
from ..transcript import log, now, write
from .uas import Sink, Uas

SOFIA = "inbound"            # the only sofia profile of freeswitch-conf
SUB = ("event plain CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER "
       "CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB CUSTOM conference::maintenance")

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


class DialoutSession:
    def __init__(self, args):
        self.args = args
        self.fs = FreeSwitch(args.freeswitch, args.conf, "switchyard-dialout-")
        self.work = self.fs.d("work")
        os.makedirs(self.work)
        self.ev = self.a = self.sub = None
        self.uases = []
        self.sinks = []
        self.only = set(args.only.split(",")) if args.only else None
        self.silence = os.path.join(self.work, "silence.ulaw")
        open(self.silence, "wb").write(audio.silence_ulaw())
        self.dumps = open(os.path.join(args.out, "09_dialout.dumps.txt"), "w", encoding="utf-8")

    # ---- the run

    def run(self):
        out = self.args.out
        try:
            self.fs.copy_conf()
            self.fs.start()
            log("FreeSWITCH pid %d ready: ESL 127.0.0.1:%d SIP 127.0.0.1:%d RTP %d-%d dir %s"
                % (self.fs.proc.pid, self.fs.esl_port, self.fs.sip_port, self.fs.rtp[0],
                   self.fs.rtp[1], self.fs.dir))
            self.ev = EventConn(self.fs.esl_port, self.fs.password,
                                os.path.join(out, "09_dialout.recv.raw"),
                                os.path.join(out, "09_dialout.sent.raw"))
            log("event connection: auth + `event plain ALL` accepted")
            self.a = ApiConn(self.fs.esl_port, self.fs.password)
            self.sub = EventConn(self.fs.esl_port, self.fs.password, subscription=SUB)
            log("second event connection: `%s` -> %s" % (SUB, self.sub.sub_reply))
            self.api("version")
            self.scenarios()
            self.sink_summary()
        finally:
            self.clean_up()

    def clean_up(self):
        """Hangs up every call, stops every SIPp and the node by pid, closes the sinks."""
        if self.ev and self.a:
            try:
                self.api("hupall NORMAL_CLEARING")
                time.sleep(2)
            except Exception as e:  # noqa
                log("cleanup: %r" % e)
        for c in (self.ev, self.sub):
            if c:
                c.close()
        for x in self.uases:
            x.stop()
        for s in self.sinks:
            s.stop()
        self.fs.stop()
        self.dumps.close()
        log("FreeSWITCH stopped; raw files in %s; node dir %s" % (self.args.out, self.fs.dir))
        self.fs.remove(self.args.keep)

    def scenarios(self):
        raise NotImplementedError

    def want(self, name):
        return self.only is None or name in self.only

    # ---- commands and events

    def api(self, cmd):
        t = now()
        seq = self.ev.last_seq()
        reply = self.a.raw(cmd)
        write("[%8.3f] api %s   (last Event-Sequence before: %d; reply after %.0f ms)"
              % (t, cmd, seq, 1000 * (now() - t)))
        write("           | %r" % reply)
        return reply

    def bgapi(self, cmd):
        job = str(uuid.uuid4())
        t = now()
        seq = self.ev.last_seq()
        text, hj = self.a.bgapi(cmd, job)
        write("[%8.3f] bgapi %s   (Job-UUID header sent: %s; last Event-Sequence before: %d)"
              % (t, cmd, job, seq))
        write("           | Reply-Text: %s   Job-UUID: %s" % (text, hj))
        return job, t

    def wait_job(self, job, timeout, since=0):
        e = self.ev.wait_for(lambda e: e.name == "BACKGROUND_JOB" and e.get("Job-UUID") == job,
                             timeout, since)
        return e

    def job_done(self, job, t0, since, timeout=15):
        """Waits for the job's BACKGROUND_JOB and writes when it came, and its body."""
        j = self.wait_job(job, timeout, since)
        log("BACKGROUND_JOB after %.3f s: %r" % ((j.t - t0) if j else -1,
                                                 j.body.decode() if j else None))
        return j

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
        evs = self.ev.since(since)
        write("           events of %s (t relative to the command):" % label)
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
            write("             " + " ".join(parts))

    def show_sip(self, who, t0):
        if isinstance(who, Sink):
            write("           SIP received by sink %s (port %d):" % (who.label, who.port))
            for t, first, hdrs in who.msgs:
                write("             +%.3f %s" % (t - t0, first))
                for k, v in hdrs:
                    if k.lower() in ("from", "to", "contact", "cseq", "via", "call-id",
                                     "remote-party-id", "p-asserted-identity", "max-forwards",
                                     "user-agent", "allow", "supported"):
                        write("                 %s: %s" % (k, v))
            return
        write("           SIP at UAS %s (port %d), from SIPp -trace_msg (seconds after the "
              "INVITE arrived):" % (who.label, who.port))
        for t, way, first, hdrs in who.messages():
            write("             +%.3f %s %s" % (t, "<-" if way == "recv" else "->", first))
            if way == "recv" and first.split(" ")[0] in ("INVITE", "CANCEL", "BYE"):
                for k, v in hdrs:
                    if k.lower() in ("from", "to", "contact", "cseq", "remote-party-id",
                                     "p-asserted-identity", "user-agent", "reason", "x-fs-support",
                                     "content-type"):
                        write("                 %s: %s" % (k, v))

    def sink_summary(self):
        """Everything each sink received during the whole run: INVITE retransmissions go on
        after FreeSWITCH gave up on a leg that never got a provisional response."""
        write("\n==== sinks: every request received during the whole run (seconds after the "
              "first one)")
        for x in self.sinks:
            if not x.msgs:
                write("  %s (port %d): nothing" % (x.label, x.port))
                continue
            t_first = x.msgs[0][0]
            write("  %s (port %d): %s" % (x.label, x.port, ", ".join(
                "+%.1f %s" % (t - t_first, first.split(" ")[0]) for t, first, _ in x.msgs)))

    def compare_subscription(self, u, job):
        """The same events as received on the `event plain ALL` connection and on the
        connection subscribed to a few events only."""
        write("           the same events on the connection subscribed with `%s`:" % SUB)
        sub = [e for e in self.sub.since(0) if e.get("Unique-ID") == u or e.get("Job-UUID") == job]
        full = {e.seq: e for e in self.ev.since(0)}
        for e in sub:
            f = full.get(e.seq)
            same = f is not None and f.headers == e.headers and f.body == e.body
            write("             seq=%d %s%s: %d headers, switchyard_*: %s; identical to the ALL "
                  "connection's copy: %s" % (
                      e.seq, e.name, ("/" + e.get("Action")) if e.get("Action") else "",
                      len(e.headers), "yes" if e.get("variable_switchyard_role") else "no", same))

    def wait_destroy(self, u, timeout, since=0):
        return self.ev.wait_for(lambda e: e.name == "CHANNEL_DESTROY" and e.get("Unique-ID") == u,
                                timeout, since)

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
        self.api("originate " + control_leg(u, room))
        self.member_id(u, since)
        return u
