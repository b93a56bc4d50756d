"""A recorded session of rooms on one FreeSWITCH: the node, the `event plain ALL` connection kept
byte for byte in <out>/<name>.{recv,sent}.raw, the api connection, SIPp callers parked on a DID and
joined into rooms the way Switchyard joins them, and the transcript of it all.

The configuration copy differs from freeswitch-conf/ in two ways: no `suppress-events` param (it
is removed if there is one, so talking events are sent), and a second conference profile
`switchyard_max` (the same params plus `max-members` = 2).
"""

import json
import os
import re
import time
import uuid

from .. import audio, sipp
from ..commands import PROFILE, control_leg, join_dialplan
from ..esl import ApiConn, EventConn
from ..node import FreeSwitch
from ..rtp import RtpEnd
from ..transcript import log, now, write

SIPP_PCAPS = "/usr/share/sip-tester"
TALK_HZ = 1250.0
DID = "15550000100"

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

MEMBER_FLAGS = ["can_hear", "can_speak", "hold", "talking", "mute_detect", "has_floor",
                "is_moderator", "end_conference"]


def edit_conference_conf(conf):
    path = os.path.join(conf, "autoload_configs", "conference.conf.xml")
    text = open(path).read()
    text, n = re.subn(r'\s*<param name="suppress-events" value="[^"]*"/>', "", text)
    assert n <= 1, "more than one suppress-events param"
    prof = re.search(r'(<profile name="switchyard">.*?</profile>)', text, re.S).group(1)
    maxprof = prof.replace('name="switchyard"', 'name="switchyard_max"').replace(
        "</profile>", '  <param name="max-members" value="2"/>\n    </profile>')
    text = text.replace("</profiles>", "  " + maxprof + "\n  </profiles>")
    open(path, "w").write(text)


class RoomSession:
    """`name` is the stem of the .raw files; a subclass writes `scenario()`."""

    name = None

    def __init__(self, args):
        self.args = args
        self.fs = FreeSwitch(args.freeswitch, args.conf, "switchyard-participants-")
        self.work = self.fs.d("work")
        os.makedirs(self.work)
        self.labels = {}  # uuid -> label
        self.members = {}  # label -> member id
        self.uuids = {}  # label -> uuid
        self.sipps = {}
        self.listeners = {}
        self.ev = None
        self.a = None
        self.next_number = 2001
        self.shown = 0

    # ---- the run

    def run(self):
        out = self.args.out
        os.makedirs(out, exist_ok=True)
        try:
            self.before_start()
            self.fs.copy_conf(edit_conference_conf)
            self.fs.start()
            log("FreeSWITCH pid %d ready: ESL 127.0.0.1:%d SIP 127.0.0.1:%d RTP %d-%d dir %s"
                % (self.fs.proc.pid, self.fs.esl_port, self.fs.sip_port, self.fs.rtp[0],
                   self.fs.rtp[1], self.fs.dir))
            self.ev = EventConn(self.fs.esl_port, self.fs.password,
                                os.path.join(out, self.name + ".recv.raw"),
                                os.path.join(out, self.name + ".sent.raw"))
            log("event connection: auth + `event plain ALL` accepted")
            self.a = ApiConn(self.fs.esl_port, self.fs.password)
            self.api("version")
            self.scenario()
        finally:
            self.clean_up()

    def clean_up(self):
        """Hangs up every call, stops every SIPp and the node by pid."""
        if self.ev and self.a:
            self.flush_events()
            try:
                self.api("hupall NORMAL_CLEARING")
                self.sleep(2, "(after hupall)")
            except Exception as e:  # noqa
                log("cleanup: %r" % e)
        if self.ev:
            self.ev.close()
        for s in self.sipps.values():
            s.stop()
        for l in self.listeners.values():
            l.close()
        self.fs.stop()
        self.after_stop()
        log("FreeSWITCH stopped; raw files in %s; node dir %s" % (self.args.out, self.fs.dir))
        self.fs.remove(self.args.keep)

    def before_start(self):
        pass

    def after_stop(self):
        pass

    def scenario(self):
        raise NotImplementedError

    # ---- the transcript

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
            write("[%8.3f]   %s" % (e.t, " ".join(parts)))

    def api(self, cmd, quiet=False):
        """The reply of `api <cmd>`, written to the transcript line by line unless quiet."""
        self.flush_events()
        t = now()
        seq = self.ev.last_seq()
        reply = self.a.raw(cmd)
        if not quiet:
            write("[%8.3f] api %s   (last Event-Sequence before: %d; reply after %.0f ms)"
                  % (t, cmd, seq, 1000 * (now() - t)))
            for line in reply.split("\n"):
                write("           | %s" % line)
            if not reply.endswith("\n"):
                write("           (reply has no trailing newline)")
        return reply

    def sleep(self, s, why=""):
        """Waits s seconds, writing the events as they come."""
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
        """The room's `json_list`, one line for the room and one a member."""
        reply = self.api("conference %s json_list" % room, quiet=True)
        t = now()
        try:
            data = json.loads(reply)[0]
        except (ValueError, IndexError):
            write("[%8.3f] json_list %s %s -> %s" % (t, room, note, reply.strip()))
            return None
        conf_keys = ["member_count", "wait_mod", "locked", "recording", "max_members", "running"]
        head = " ".join("%s=%s" % (k, json.dumps(data.get(k))) for k in conf_keys if k in data)
        write("[%8.3f] json_list %s %s: %s" % (t, room, note, head))
        for m in data.get("members", []):
            if m.get("type") != "caller":
                write("           %s" % json.dumps(m, sort_keys=True))
                continue
            f = m["flags"]
            write("           id=%s %-8s %s energy=%s last_talking=%s" % (
                m["id"], self.short(m["uuid"]),
                " ".join("%s=%s" % (k, "T" if f.get(k) else "f") for k in MEMBER_FLAGS),
                m.get("energy"), m.get("last_talking")))
        return data

    def hear(self, label, t_from, t_to, what=""):
        s = self.listeners[label].analyze(t_from, t_to)
        write("[%8.3f] AUDIO %s received %.2f..%.2f (%s; one char per 250 ms: T=1250 Hz tone of A, "
              "4=440 Hz, o=other sound, .=silence, _=no RTP): %s" % (now(), label, t_from, t_to, what, s))
        return s

    # ---- rooms, calls, joins

    def originate_control(self, room, profile=PROFILE, flags="mute|deaf", extra_vars=""):
        """Opens a room as Switchyard does: a null/ control leg into it."""
        u = str(uuid.uuid4())
        label = "ctl:" + room
        self.labels[u] = label
        self.uuids[label] = u
        n = self.ev.count()
        self.api("originate " + control_leg(u, room, flags, profile, extra_vars))
        e = self.ev.wait_for(lambda e: e.get("Action") == "add-member" and e.get("Unique-ID") == u, 10, n)
        if e:
            self.members[label] = e.get("Member-ID")
        self.flush_events()
        return u

    def sound_file(self, kind):
        """The headerless u-law file a caller of this kind loops."""
        name, make = {
            "tone": ("tone-bursts-%d.ulaw" % TALK_HZ, lambda: audio.tone_bursts_ulaw(TALK_HZ, 1500, 1500)),
            "silent": ("silence.ulaw", audio.silence_ulaw),
            "speech": ("g711a-speech.ulaw",
                       lambda: audio.speech_ulaw_from_pcap(SIPP_PCAPS + "/g711a.pcap")),
        }[kind]
        path = os.path.join(self.work, name)
        if not os.path.exists(path):
            open(path, "wb").write(make())
        return path

    def next_caller(self):
        number = str(self.next_number)
        self.next_number += 1
        return number

    def dial_in(self, label, number, sdp, media, since):
        """Starts SIPp's call from `number` and waits until the dialplan parks it; its uuid."""
        xml = sipp.uac_xml("participants caller", "switchyard-participants-recorder", sdp,
                           [media, sipp.WAIT_BYE])
        self.sipps[label] = sipp.caller(self.work, label, self.fs.sip_port, DID, number, xml, "pr")
        e = self.ev.wait_for(lambda e: e.name == "CHANNEL_PARK" and
                             e.get("Caller-Caller-ID-Number") == number, 15, since)
        if not e:
            raise RuntimeError("caller %s was not parked" % label)
        u = e.get("Unique-ID")
        self.labels[u] = label
        self.uuids[label] = u
        return u

    def call(self, label, kind, steps=None):
        """A SIPp caller: tone (A's bursts), silent, speech, dtmf (pcap steps) or listener (RTP to
        an RtpEnd of this process)."""
        number = self.next_caller()
        listener = None
        if kind == "dtmf":
            sdp, media = sipp.SDP_DTMF, sipp.media_pcap_steps(steps)
        elif kind == "listener":
            listener = RtpEnd(label)
            self.listeners[label] = listener
            sdp, media = sipp.sdp_to(listener.port), ""
        else:
            sdp, media = sipp.SDP_PCMU, sipp.media_stream(self.sound_file(kind))
        n = self.ev.count()
        log("SIPp caller %s (%s) calls DID %s from %s%s" % (
            label, kind, DID, number,
            (" (RTP to this script's port %d)" % listener.port) if listener else ""))
        u = self.dial_in(label, number, sdp, media, n)
        if listener:
            # Start sending (silence) at once: a parked channel that receives no RTP only acts on
            # a uuid_transfer when its read times out (seen: 5 s).
            ip = self.api("uuid_getvar %s local_media_ip" % u).strip()
            port = int(self.api("uuid_getvar %s local_media_port" % u).strip())
            listener.peer = (ip, port)
        self.flush_events()
        return u

    def join(self, label, room, profile=PROFILE, flags="mute", expect=True):
        """Joins a parked caller as Switchyard does; its member id (None if not expected)."""
        u = self.uuids[label]
        n = self.ev.count()
        self.api("uuid_transfer %s %s" % (u, join_dialplan(room, flags, profile)))
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
