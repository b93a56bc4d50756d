"""Outbound calls (dial-out) placed over the Event Socket (fixtures/esl/09_dialout.md).

The room is opened as Switchyard opens it; then, for each scenario, the called party listens on a
free 127.0.0.1 port (a SIPp UAS, or a sink that never answers) and FreeSWITCH calls it through the
sofia profile `inbound`:

    bgapi originate {origination_uuid=<u>,originate_timeout=N,...}sofia/inbound/sip:<user>@127.0.0.1:<port> <app>

The transcript has, per scenario: the bgapi reply, the BACKGROUND_JOB body, the leg's channel
events in arrival order (Event-Sequence, time, Channel-Call-State, Answer-State, Hangup-Cause,
variable_sip_term_status, whether our `switchyard_*` variables are in the event...), the SIP
messages the called party received (Request-URI, From, To, Contact) and timings.

  A1 answered, `&park()`, then joined with uuid_transfer like a join; the far end hangs up (BYE)
  A1n the same, the UAS sends no RTP (how long the parked leg takes to act on uuid_transfer)
  A2 answered straight into `&conference(<room>@switchyard+flags{mute})`; kicked
  A3 answered into the inline dialplan `conference:<room>@switchyard+flags{mute},park: inline`;
     kicked, then uuid_kill
  A4 `api originate` (blocking) and a caller-id name with a space (single quotes)
  B  486 Busy Here; C1 603 Decline; C2 404 Not Found; C3 480; B2 api originate to a 486
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
  G  dial-string parsing (dialstrings.py)
A second event connection subscribed to a few events only shows that an event's headers do not
depend on the subscription.

Writes to --out (default $TMPDIR/switchyard-dialout; nothing in the repository):
09_dialout.{recv,sent}.raw, 09_dialout.dumps.txt and the transcript (default
<out>/09_dialout.transcript.txt). Event-Sequence numbers, uuids and timings differ from run to
run. About 3 minutes.
"""

import time
import uuid

from ..commands import PROFILE, join_dialplan
from ..transcript import log, now, write
from .dialstrings import DialStrings
from .session import SOFIA, DialoutSession


class Dialout(DialStrings, DialoutSession):

    def scenarios(self):
        self.room = "dialout-room"
        write("\n==== setup: the room, opened by a control leg")
        self.ctl = self.open_room(self.room)
        self.api("conference %s list count" % self.room)
        self.api("sofia status profile %s" % SOFIA)

        if self.want("A1"):
            write("\n==== A1 answered (100, 180, 1 s, 200 + RTP), &park(), then uuid_transfer into "
                  "the room like a join; the far end hangs up (BYE) 6 s after the ACK")
            x = self.uas("A1", "answer_bye", ring_ms=1000, hold_ms=6000)
            u, job, t0, since = self.dial("A1", "2001", x.port, extra=",originate_timeout=10")
            self.job_done(job, t0, since)
            tj = now()
            self.api("uuid_transfer %s %s" % (u, join_dialplan(self.room)))
            m = self.member_id(u, since)
            log("add-member %s after %.3f s from uuid_transfer" % (
                m.get("Member-ID") if m else None, (m.t - tj) if m else -1))
            self.api("uuid_getvar %s switchyard_role" % u)
            self.api("uuid_getvar %s sip_term_status" % u)
            self.api("conference %s list" % self.room)
            self.finish("A1", u, job, t0, since, x, destroy_timeout=15)
            self.compare_subscription(u, job)

        if self.want("A1n"):
            write("\n==== A1n answered, the UAS sends no RTP: &park(), then uuid_transfer")
            x = self.uas("A1n", "answer_norpt", ring_ms=500)
            u, job, t0, since = self.dial("A1n", "2011", x.port, extra=",originate_timeout=10")
            self.job_done(job, t0, since)
            time.sleep(0.5)
            tj = now()
            self.api("uuid_transfer %s %s" % (u, join_dialplan(self.room)))
            m = self.member_id(u, since, timeout=15)
            log("add-member %s after %.3f s from uuid_transfer (no RTP from the far end)" % (
                m.get("Member-ID") if m else None, (m.t - tj) if m else -1))
            self.api("uuid_kill %s" % u)
            self.finish("A1n", u, job, t0, since, x)

        if self.want("A2"):
            write("\n==== A2 answered straight into &conference(room@switchyard+flags{mute}); "
                  "then kicked")
            x = self.uas("A2", "answer", ring_ms=1000)
            u, job, t0, since = self.dial(
                "A2", "2002", x.port, app="&conference(%s@%s+flags{mute})" % (self.room, PROFILE),
                extra=",originate_timeout=10")
            self.job_done(job, t0, since)
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
            write("\n==== A3 answered into the inline dialplan "
                  "`conference:<room>@switchyard+flags{mute},park: inline`; kicked, then uuid_kill")
            x = self.uas("A3", "answer", ring_ms=1000)
            u, job, t0, since = self.dial("A3", "2003", x.port, app=join_dialplan(self.room),
                                          extra=",originate_timeout=10")
            self.job_done(job, t0, since)
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
            write("\n==== A4 `api originate` (blocking) with origination_caller_id_name='Switch Yard' "
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
            write("\n==== %s UAS answers %d %s" % (name, code, reason))
            x = self.uas(name, "reject:%d:%s" % (code, reason))
            u, job, t0, since = self.dial(name, "20%d" % code, x.port, extra=",originate_timeout=10")
            self.job_done(job, t0, since)
            self.finish(name, u, job, t0, since, x)

        if self.want("B2"):
            write("\n==== B2 `api originate` (blocking) to a 486")
            x = self.uas("B2", "reject:486:Busy Here")
            u = str(uuid.uuid4())
            since = self.ev.count()
            t0 = now()
            self.api("originate {origination_uuid=%s,originate_timeout=10}%s &park()"
                     % (u, self.dest("2486", x.port)))
            self.finish("B2", u, None, t0, since, x)

        # (name, what the far end does, its kind (a sink never answers), user, originate vars,
        # seconds to wait for CHANNEL_DESTROY)
        for name, what, kind, user, extra, destroy in [
                ("D1", "180 then nothing", "ring", "2101", "originate_timeout=3", 15),
                ("D2", "the far end never answers anything (no 100)", "sink", "2102",
                 "originate_timeout=3", 40),
                ("D3", "180 then nothing", "ring", "2103", "progress_timeout=2,originate_timeout=8", 15),
                ("D4", "180 then nothing", "ring", "2104", "leg_progress_timeout=2,originate_timeout=5", 15),
                ("D5", "the far end never answers anything", "sink", "2105",
                 "progress_timeout=2,originate_timeout=8", 40),
                ("D6", "180 then nothing", "ring", "2106", "leg_timeout=3,originate_timeout=8", 15),
                ("D7", "the far end never answers anything", "sink", "2107",
                 "leg_progress_timeout=2,originate_timeout=8", 15),
                ("D8", "183 with SDP and RTP, never answered", "ring183", "2108",
                 "ignore_early_media=true,leg_progress_timeout=2,originate_timeout=4", 15)]:
            if not self.want(name):
                continue
            write("\n==== %s %s; %s" % (name, what, extra.replace(",", ", ")))
            x = self.sink(name) if kind == "sink" else self.uas(name, kind)
            u, job, t0, since = self.dial(name, user, x.port, extra="," + extra)
            self.job_done(job, t0, since)
            self.finish(name, u, job, t0, since, x, destroy_timeout=destroy)

        if self.want("Dt"):
            write("\n==== Dt timing of originate_timeout (180 then nothing): seconds from bgapi to "
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
            write("\n==== %s uuid_kill%s on the ringing leg (180 received), 2 s after the originate"
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
            write("\n==== E3 uuid_kill while the far end has sent nothing (sink), 2 s after the originate")
            s = self.sink("E3")
            u, job, t0, since = self.dial("E3", "2203", s.port, extra=",originate_timeout=20")
            time.sleep(2)
            tk = now()
            self.api("uuid_kill %s" % u)
            j = self.wait_job(job, 15, since)
            log("BACKGROUND_JOB %.3f s after uuid_kill: %r" % ((j.t - tk) if j else -1,
                                                               j.body.decode() if j else None))
            self.finish("E3", u, job, t0, since, s, destroy_timeout=40)

        inline = join_dialplan(self.room)
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
            write("\n==== %s %s, then 200 OK 3 s later; app `%s`; originate vars: "
                  "originate_timeout=10%s"
                  % (name, {"183sdp": "183 with SDP (no RTP before the 200)",
                            "rtp183sdp": "183 with SDP and RTP from the 183 on",
                            "183": "183 without SDP",
                            "180sdp": "180 with SDP (no RTP before the 200)"}[prov], app, extra))
            kind = ("earlyrtp:183sdp" if prov == "rtp183sdp" else "early:" + prov)
            x = self.uas(name, kind, ring_ms=3000)
            u, job, t0, since = self.dial(name, user, x.port, app=app,
                                          extra=",originate_timeout=10" + extra)
            self.job_done(job, t0, since)
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


def run(args):
    Dialout(args).run()
