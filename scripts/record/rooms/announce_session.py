"""What the announcement/coach/beep recording (08) adds to a room session: listeners whose RTP
end sends a tone (a coach who talks and listens), AUDIO strings that tell mixes apart
(audio.classify_mix), plays timed against their done events, events dumped with every header as
on the wire, and an http server (a thread of this process) for http:// playback.
"""

import http.server
import os
import shutil
import threading

from .. import audio, sipp
from ..rtp import SILENCE_FRAME, RtpEnd
from ..transcript import log, now, write
from .session import RoomSession

SKIP_PREFIX = ("Channel-", "Caller-", "variable_", "Event-Date-", "Core-UUID", "FreeSWITCH-",
               "Event-Calling-")
PLAY_ACTIONS = ("play-file", "play-file-member", "speak-text", "speak-text-member")


def dump_event(e, note=""):
    """All headers in order, raw (as on the wire), except the channel/caller blocks, which are
    summarised as counts."""
    write("[%8.3f]   FULL seq=%d %s %s" % (e.t, e.seq, e.get("Action") or e.name, note))
    skipped = {}
    for k, v in e.raw_headers:
        p = next((p for p in SKIP_PREFIX if k.startswith(p)), None)
        if p:
            skipped[p] = skipped.get(p, 0) + 1
            if skipped[p] == 1:
                write("             %s ... (channel/caller block)" % (p + "*"))
            continue
        write("             %s: %s" % (k, v))
    write("             (skipped: %s)" % ", ".join("%s*=%d" % kv for kv in skipped.items()))


def conference_event(e):
    return e.get("Event-Subclass") and "conference" in e.get("Event-Subclass")


def play_file_event(e):
    return e.get("Action", "").startswith("play-file")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        log("http server: %s" % (fmt % args))


def start_http(directory):
    handler = lambda *a, **kw: QuietHandler(*a, directory=directory, **kw)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class AnnounceSession(RoomSession):
    http = None

    def before_start(self):
        """Serves a copy of sounds/test.wav as <http_base>/beep440.wav."""
        webroot = self.fs.d("www")
        os.makedirs(webroot)
        self.test_wav = os.path.join(self.fs.sounds, "test.wav")
        shutil.copy(self.test_wav, os.path.join(webroot, "beep440.wav"))
        self.http = start_http(webroot)
        self.http_base = "http://127.0.0.1:%d" % self.http.server_address[1]

    def after_stop(self):
        if self.http:
            self.http.shutdown()

    def call_rtp(self, label, tone_hz=None):
        """A SIP caller (SIPp for the signalling) whose RTP is this process's socket; it sends
        silence, or a continuous tone_hz tone."""
        number = self.next_caller()
        sound = audio.tone_ulaw(tone_hz, 8000) if tone_hz else SILENCE_FRAME
        listener = RtpEnd(label, sound)
        self.listeners[label] = listener
        n = self.ev.count()
        log("caller %s from %s, RTP to this script's port %d%s" % (
            label, number, listener.port, (", sends %d Hz" % tone_hz) if tone_hz else ""))
        u = self.dial_in(label, number, sipp.sdp_to(listener.port), "", n)
        ip = self.api("uuid_getvar %s local_media_ip" % u, quiet=True).strip()
        port = int(self.api("uuid_getvar %s local_media_port" % u, quiet=True).strip())
        listener.peer = (ip, port)
        self.flush_events()
        return u

    def hear(self, label, t_from, t_to, what=""):
        s = self.listeners[label].analyze(t_from, t_to, audio.classify_mix)
        write("[%8.3f] AUDIO %s heard %.2f..%.2f (%s): %s" % (now(), label, t_from, t_to, what, s))
        return s

    def listen(self, labels, secs, what):
        t = now()
        self.sleep(secs)
        t2 = now()
        for l in labels:
            self.hear(l, t, t2, what)

    def wait_action(self, action, since, timeout, member=None, note=""):
        e = self.ev.wait_for(lambda e: e.get("Action") == action and
                             (member is None or e.get("Member-ID") == member), timeout, since)
        self.flush_events()
        if e:
            log("got %s (seq %d) %s" % (action, e.seq, note))
        else:
            log("no %s within %.1f s %s" % (action, timeout, note))
        return e

    def dump_since(self, n, pred, note=""):
        """Dumps the events from index n that match pred."""
        for x in self.ev.since(n):
            if pred(x):
                dump_event(x, note)

    def leave(self, label):
        self.api("uuid_transfer %s park inline" % self.uuids[label])
        self.sleep(0.5)

    def sync_talker(self, timeout=5):
        n = self.ev.count()
        return self.ev.wait_for(lambda e: e.get("Action") == "start-talking" and
                                e.get("Member-ID") == self.m("T"), timeout, n)

    def timed_play(self, cmd, done_action, label, secs, what, member=None, dump=True):
        """Runs a play command, waits for its done event and reports its time against the sound
        the listener heard."""
        n = self.ev.count()
        t0 = now()
        reply = self.api(cmd)
        t1 = now()
        e = self.wait_action(done_action, n, secs, member)
        t2 = now()
        self.sleep(max(0.0, secs - (t2 - t0)) if not e else 0.8)
        s = self.hear(label, t0, now(), what)
        first = next((i for i, c in enumerate(s) if c not in "._"), None)
        last = max((i for i, c in enumerate(s) if c not in "._"), default=None)
        if first is not None:
            log("sound heard from +%.2f to +%.2f s after the command (250 ms windows); reply "
                "after %.0f ms; %s at +%s s" % (first * 0.25, (last + 1) * 0.25, 1000 * (t1 - t0),
                                                done_action, "%.3f" % (e.t - t0) if e else "never"))
        if dump:
            if e:
                dump_event(e)
            self.dump_since(n, lambda x: x.get("Action") in PLAY_ACTIONS)
        return reply, e
