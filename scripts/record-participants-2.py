#!/usr/bin/env python3
"""Record what a real FreeSWITCH (mod_conference) does for announcements with a completion event,
coach/whisper with relate, enter/exit beeps and wait-mod music (fixtures/esl/08_announce_coach_beep.md).

What it does
------------
Reuses record-participants.py (imported with importlib: the node set-up, the Event Socket
connections, SIPp callers, the control leg and the joins are the same; see that file's docstring)
and walks through:

* TTS with and without a completion event: `conference <room> say`, `play 'say:...'`,
  `play 'tts://flite|<voice>|<text>'` to the room and to one member, error and quoting cases;
  per-member playback (WAV and TTS) with and without `nomux` while a talker is on; http:// URLs
  served by a python http.server running in this process;
* relate for a coach: `relate C 0 ...`, a `speak` action, a comma list of every other member,
  a member who joins later, a member who leaves and comes back, `relate C 0 clear`;
* enter / exit sounds: the `enter_sound` / `exit_sound` api commands, the
  `conference_enter_sound` / `conference_exit_sound` channel variables, the control leg, a join
  while a room `play` is running;
* wait-mod with `conference_moh_sound=local_stream://moh`: the first caller, a room `play`, an
  enter sound and a `+flags{mute|moderator}` moderator.

Listeners are SIP callers whose RTP goes to a UDP socket of this script. Each character of an
"AUDIO" line covers 250 ms of what FreeSWITCH sent to that caller:

    .  silence            T  1250 Hz (the talker T)        4  440 Hz (sounds/test.wav)
    C  700 Hz (coach C)   8  800 Hz (tone_stream beep)      M  1250 Hz + 440 Hz together
    X  1250 Hz + 700 Hz   t  1250 Hz + another sound (speech, music)
    c  700 Hz + another   f  440 Hz + another               e  800 Hz + another
    +  two other known tones together                       o  another sound (speech, music)
    _  no RTP packet

Usage
-----
    python3 scripts/record-participants-2.py [--out DIR] [--transcript FILE] [--freeswitch BIN]
                                             [--conf DIR] [--keep]

--out (default: a new temporary directory) receives 08_announce_coach_beep.{recv,sent}.raw, the
bytes of the `event plain ALL` connection. Needs what record-participants.py needs. Takes about
3 minutes. Starts one FreeSWITCH and stops it (SIGTERM to its pid); every SIPp it started is
stopped by pid; the http server is a thread of this process.
"""

import argparse
import http.server
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("record_participants",
                                               os.path.join(HERE, "record-participants.py"))
RP = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(RP)

REPO = RP.REPO
now = RP.now


def log(msg):
    RP.log(msg)


def tr(line=""):
    RP.TR.write(line)


# ----------------------------------------------------------------------------------------------
# events that keep their raw (url-encoded) header values

class RawEvent(RP.Event):
    def __init__(self, t, offset, body):
        super().__init__(t, offset, body)
        head = body.partition(b"\n\n")[0]
        self.raw_headers = RP.parse_headers(head)


RP.Event = RawEvent  # EventConn.run builds its events through the module global

SKIP_PREFIX = ("Channel-", "Caller-", "variable_", "Event-Date-", "Core-UUID", "FreeSWITCH-",
               "Event-Calling-")


def dump_event(e, note=""):
    """All headers in order, raw (as on the wire), except the channel/caller blocks, which are
    summarised as counts."""
    tr("[%8.3f]   FULL seq=%d %s %s" % (e.t, e.seq, e.get("Action") or e.name, note))
    skipped = {}
    for k, v in e.raw_headers:
        p = next((p for p in SKIP_PREFIX if k.startswith(p)), None)
        if p:
            skipped[p] = skipped.get(p, 0) + 1
            if skipped[p] == 1:
                tr("             %s ... (channel/caller block)" % (p + "*"))
            continue
        tr("             %s: %s" % (k, v))
    tr("             (skipped: %s)" % ", ".join("%s*=%d" % kv for kv in skipped.items()))


# ----------------------------------------------------------------------------------------------
# audio

FREQS = [(1250.0, "T"), (440.0, "4"), (700.0, "C"), (800.0, "8")]
MIX = {frozenset("T4"): "M", frozenset("TC"): "X"}
WITH_OTHER = {"T": "t", "C": "c", "4": "f", "8": "e"}


def classify(samples):
    if not samples:
        return "_"
    level = sum(abs(x) for x in samples) / len(samples)
    if level < 60:
        return "."
    r = {ch: RP.goertzel_ratio(samples, f) for f, ch in FREQS}
    best = max(r, key=r.get)
    if r[best] > 0.8:
        return best
    present = frozenset(ch for ch, v in r.items() if v > 0.12)
    if len(present) >= 2:
        return MIX.get(frozenset(sorted(present, key=r.get)[-2:]), "+")
    if len(present) == 1:
        return WITH_OTHER[next(iter(present))]
    return "o"


def analyze(listener, t_from, t_to, win=0.25):
    out = []
    t = t_from
    while t + win <= t_to + 1e-9:
        pl = b"".join(p for (tt, pt, p) in listener.packets if t <= tt < t + win and pt == 0)
        out.append(classify([RP.ULAW[b] for b in pl]))
        t += win
    return "".join(out)


class ToneListener(RP.RtpListener):
    """A listener that sends a continuous tone instead of silence (so it can talk and listen)."""

    def __init__(self, label, hz):
        self.tone = bytes(RP.ulaw_encode(8000 * RP.math.sin(2 * RP.math.pi * hz * i / 8000.0))
                          for i in range(8000))  # 1 s, an integer number of periods for 700 Hz
        super().__init__(label)

    def _sender(self):
        seq = RP.random.randrange(65536)
        ts = RP.random.randrange(1 << 32)
        ssrc = RP.random.randrange(1 << 32)
        pos = 0
        nxt = time.monotonic()
        while not self.stop:
            nxt += 0.02
            if self.peer:
                payload = self.tone[pos:pos + 160]
                pos = (pos + 160) % len(self.tone)
                hdr = RP.struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                try:
                    self.sock.sendto(hdr + payload, self.peer)
                except OSError:
                    return
                seq += 1
                ts += 160
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)


# ----------------------------------------------------------------------------------------------
# a local http server for the http:// playback

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        log("http server: %s" % (fmt % args))


def start_http(directory):
    handler = lambda *a, **kw: QuietHandler(*a, directory=directory, **kw)  # noqa: E731
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# ----------------------------------------------------------------------------------------------

class Session2(RP.Session):

    def run(self):
        out = self.args.out
        os.makedirs(out, exist_ok=True)
        webroot = os.path.join(self.dir, "www")
        os.makedirs(webroot)
        self.test_wav = os.path.join(os.path.dirname(os.path.dirname(self.args.freeswitch)),
                                     "sounds", "test.wav")
        shutil.copy(self.test_wav, os.path.join(webroot, "beep440.wav"))
        self.http = start_http(webroot)
        self.http_base = "http://127.0.0.1:%d" % self.http.server_address[1]
        self.start_node()
        self.ev = RP.EventConn(self.esl_port, self.password,
                               os.path.join(out, "08_announce_coach_beep.recv.raw"),
                               os.path.join(out, "08_announce_coach_beep.sent.raw"))
        log("event connection: auth + `event plain ALL` accepted")
        self.a = RP.ApiConn(self.esl_port, self.password)
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
            self.http.shutdown()
            log("FreeSWITCH stopped; raw files in %s; node dir %s" % (out, self.dir))
            if not self.args.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def start_node(self):
        """record-participants.py's start_node insists on removing exactly one suppress-events
        param; the repository's profile may no longer have it. Give it a copy that has one (an
        empty one if needed), so the node runs with no suppress-events either way."""
        src = os.path.join(self.dir, "conf-src")
        shutil.copytree(self.args.conf, src)
        cpath = os.path.join(src, "autoload_configs", "conference.conf.xml")
        text = open(cpath).read()
        if not re.search(r'<param name="suppress-events" value="[^"]*"/>', text):
            text = text.replace('<profile name="switchyard">', '<profile name="switchyard">\n'
                                '      <param name="suppress-events" value=""/>', 1)
            open(cpath, "w").write(text)
        self.args.conf = src
        super().start_node()

    # ---- helpers

    def call_rtp(self, label, tone_hz=None):
        """A SIP caller (SIPp for the signalling) whose RTP is this script's socket."""
        number = str(self.next_number)
        self.next_number += 1
        listener = ToneListener(label, tone_hz) if tone_hz else RP.RtpListener(label)
        self.listeners[label] = listener
        sdp = RP.SDP_LISTENER.replace("@PORT@", str(listener.port))
        n = self.ev.count()
        log("caller %s from %s, RTP to this script's port %d%s" % (
            label, number, listener.port, (", sends %d Hz" % tone_hz) if tone_hz else ""))
        self.sipps[label] = RP.Sipp(self.work, label, self.sip_port, "15550000100", number, sdp, "")
        e = self.ev.wait_for(lambda e: e.name == "CHANNEL_PARK" and
                             e.get("Caller-Caller-ID-Number") == number, 15, n)
        if not e:
            raise RuntimeError("caller %s was not parked" % label)
        u = e.get("Unique-ID")
        self.labels[u] = label
        self.uuids[label] = u
        ip = self.api("uuid_getvar %s local_media_ip" % u, quiet=True).strip()
        port = int(self.api("uuid_getvar %s local_media_port" % u, quiet=True).strip())
        listener.peer = (ip, port)
        self.flush_events()
        return u

    def hear(self, label, t_from, t_to, what=""):
        s = analyze(self.listeners[label], t_from, t_to)
        tr("[%8.3f] AUDIO %s heard %.2f..%.2f (%s): %s" % (now(), label, t_from, t_to, what, s))
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
        s = analyze(self.listeners[label], t0, now())
        tr("[%8.3f] AUDIO %s heard %.2f..%.2f (%s): %s" % (now(), label, t0, now(), what, s))
        first = next((i for i, c in enumerate(s) if c not in "._"), None)
        last = max((i for i, c in enumerate(s) if c not in "._"), default=None)
        if first is not None:
            log("sound heard from +%.2f to +%.2f s after the command (250 ms windows); reply "
                "after %.0f ms; %s at +%s s" % (first * 0.25, (last + 1) * 0.25, 1000 * (t1 - t0),
                                              done_action, "%.3f" % (e.t - t0) if e else "never"))
        if e and dump:
            dump_event(e)
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action") in ("play-file", "play-file-member", "speak-text",
                                       "speak-text-member") and dump:
                    dump_event(x)
        return reply, e

    # ---- the run

    def scenario(self):
        RT, RC, RE, RE2, RW = "ac-tts", "ac-coach", "ac-beep", "ac-beep2", "ac-waitmod"
        wav = self.test_wav
        beep = "tone_stream://%(200,0,800)"

        tr("\n==== setup: room %s with a control leg; T (1250 Hz bursts) and LA (listener) "
           "joined muted" % RT)
        self.originate_control(RT)
        self.call("T", "tone")
        self.call_rtp("LA")
        self.join("T", RT)
        self.join("LA", RT)

        tr("\n==== 1. TTS (T muted: LA hears only what is played)")
        tr("---- 1a. conference say")
        n = self.ev.count()
        self.api("conference %s say hello from the say command" % RT)
        self.listen(["LA"], 4, "say")
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Event-Subclass") and "conference" in x.get("Event-Subclass"):
                    dump_event(x)

        tr("---- 1b. play 'say:...' to the room")
        n = self.ev.count()
        self.api("conference %s play 'say:hello from play say'" % RT)
        self.listen(["LA"], 3.5, "play say:")
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Event-Subclass") and "conference" in x.get("Event-Subclass"):
                    dump_event(x)

        tr("---- 1c. play 'tts://flite|slt|...' to the room")
        self.timed_play("conference %s play 'tts://flite|slt|this is the tts file interface "
                        "speaking to the whole room'" % RT, "play-file-done", "LA", 8,
                        "room play tts://")
        tr("---- 1d. play 'tts://flite|slt|...' <LA>")
        self.timed_play("conference %s play 'tts://flite|slt|and this is spoken to one member "
                        "only' %s" % (RT, self.m("LA")), "play-file-member-done", "LA", 8,
                        "member play tts://", member=self.m("LA"))
        tr("---- 1e. other voice, long text: reply time")
        self.timed_play("conference %s play 'tts://flite|rms|a longer sentence in another voice, "
                        "to see how long the api reply takes when flite has more text to "
                        "synthesise before the command returns' %s" % (RT, self.m("LA")),
                        "play-file-member-done", "LA", 12, "member play tts:// rms long",
                        member=self.m("LA"), dump=False)
        tr("---- 1f. tts:// errors and quoting")
        n = self.ev.count()
        self.api("conference %s play 'tts://flite|slt'" % RT)
        self.api("conference %s play 'tts://nosuchengine|slt|hello'" % RT)
        self.api("conference %s play 'tts://flite|nosuchvoice|hello'" % RT)
        self.api("conference %s play tts://flite|slt|hello world" % RT)
        self.api("conference %s play 'tts://flite|slt|don\\'t worry' %s" % (RT, self.m("LA")))
        self.api("conference %s play 'tts://flite|slt|hello' 999" % RT)
        self.sleep(3)
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action") in ("play-file", "play-file-member", "play-file-done",
                                       "play-file-member-done"):
                    dump_event(x)
        tr("---- 1g. play 'say:...' <LA>, and play 'say:...' async")
        n = self.ev.count()
        self.api("conference %s play 'say:hello member via play say' %s" % (RT, self.m("LA")))
        self.listen(["LA"], 3, "member play say:")
        self.api("conference %s play 'say:hello async' async" % RT)
        self.listen(["LA"], 2, "room play say: async")
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Event-Subclass") and "conference" in x.get("Event-Subclass"):
                    dump_event(x)

        tr("\n==== 1h. http:// URLs (python http.server in this script)")
        self.timed_play("conference %s play %s/beep440.wav %s" % (RT, self.http_base, self.m("LA")),
                        "play-file-member-done", "LA", 5, "member play http://",
                        member=self.m("LA"))
        self.timed_play("conference %s play %s/beep440.wav" % (RT, self.http_base),
                        "play-file-done", "LA", 5, "room play http:// (cached now)")
        n = self.ev.count()
        self.api("conference %s play %s/missing.wav %s" % (RT, self.http_base, self.m("LA")))
        self.api("conference %s play %s/missing.wav" % (RT, self.http_base))
        self.api("conference %s play http://127.0.0.1:1/nothing-listens.wav" % RT)
        self.sleep(0.5)
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action", "").startswith("play-file"):
                    dump_event(x)

        tr("\n==== 1j. {params} in front of the file name: a tag in the events")
        n = self.ev.count()
        self.api("conference %s play {sy_tag=room-1}%s" % (RT, wav))
        self.api("conference %s play '{sy_tag=member-1}tts://flite|slt|tagged' %s"
                 % (RT, self.m("LA")))
        self.sleep(2.8)
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action", "").startswith("play-file"):
                    dump_event(x)

        tr("\n==== 1i. member playback while T talks: mux versus nomux")
        self.api("conference %s unmute %s" % (RT, self.m("T")))
        self.sleep(1)
        for form, cmd in [
                ("WAV mux", "conference %s play %s %s" % (RT, wav, self.m("LA"))),
                ("WAV nomux", "conference %s play %s %s nomux" % (RT, wav, self.m("LA"))),
                ("tts:// mux", "conference %s play 'tts://flite|slt|one two three four five six' %s"
                 % (RT, self.m("LA"))),
                ("tts:// nomux", "conference %s play 'tts://flite|slt|one two three four five six' "
                 "%s nomux" % (RT, self.m("LA"))),
                ("saymember", "conference %s saymember %s one two three four five six"
                 % (RT, self.m("LA")))]:
            self.sync_talker()
            t = now()
            self.api(cmd)
            self.sleep(2.5)
            self.hear("LA", t, now(), form + " while T's tone is on (1.5 s on / 1.5 s off)")
            self.sleep(1)
        self.hear("LA", now() - 3, now(), "room only, for comparison")

        tr("\n==== 2. coach / whisper (room %s)" % RC)
        self.originate_control(RC)
        self.call_rtp("C", tone_hz=700)
        self.call_rtp("LB")
        for c in ["T", "C", "LA", "LB"]:
            self.join(c, RC)
        self.api("conference %s unmute %s" % (RC, self.m("T")))
        self.api("conference %s unmute %s" % (RC, self.m("C")))
        self.listen(["LA", "LB", "C"], 3, "no relationship")
        ctl, C, A, B, T = (self.m("ctl:" + RC), self.m("C"), self.m("LA"), self.m("LB"), self.m("T"))
        self.api("conference %s relate %s 0 nospeak" % (RC, C))
        self.api("conference %s relate %s 0 nohear" % (RC, C))
        self.api("conference %s relate %s %s speak" % (RC, C, A))
        self.api("conference %s relate %s" % (RC, C))
        self.api("conference %s relate %s %s,%s,%s nospeak" % (RC, C, ctl, T, B))
        self.api("conference %s relate %s" % (RC, C))
        self.listen(["LA", "LB", "C"], 4, "relate C ctl,T,LB nospeak")
        self.json_list(RC, "coach relationships set")
        tr("---- a member joins later")
        self.call_rtp("LD")
        self.join("LD", RC)
        D = self.m("LD")
        self.listen(["LD"], 2.5, "LD joined, no relationship to it yet")
        self.api("conference %s relate %s %s nospeak" % (RC, C, D))
        self.listen(["LD", "LA"], 2.5, "relate C LD nospeak")
        tr("---- LB leaves and comes back (same member id)")
        self.leave("LB")
        self.api("conference %s relate %s" % (RC, C))
        self.api("conference %s relate %s %s nospeak" % (RC, C, B))
        self.join("LB", RC)
        self.listen(["LB"], 2.5, "LB back in the room")
        self.api("conference %s relate %s" % (RC, C))
        tr("---- comma lists with a member that is not there; sendvideo")
        self.api("conference %s relate %s %s,999 nospeak" % (RC, C, B))
        self.api("conference %s relate %s %s sendvideo" % (RC, C, A))
        self.api("conference %s relate %s" % (RC, C))
        self.api("conference %s relate %s %s clear" % (RC, C, A))
        tr("---- relate C 0 clear")
        self.api("conference %s relate %s 0 clear" % (RC, C))
        self.api("conference %s relate %s" % (RC, C))
        self.api("conference %s relate" % RC)
        self.listen(["LB", "LD"], 2.5, "after relate C 0 clear")
        self.api("conference %s relate %s %s nohear" % (RC, C, T))
        self.listen(["C"], 3, "relate C T nohear: what C hears")
        self.api("conference %s relate %s 0 clear" % (RC, C))

        tr("\n==== 3. enter / exit sounds (room %s)" % RE)
        self.originate_control(RE)
        self.json_list(RE, "new room: enter_sound/exit_sound flags")
        self.api("conference %s get enter_sound" % RE)
        self.api("conference %s enter_sound" % RE)
        self.api("conference %s enter_sound bogus" % RE)
        self.api("conference %s enter_sound file" % RE)
        self.api("conference %s enter_sound on" % RE)
        self.api("conference %s enter_sound file %s" % (RE, beep))
        self.api("conference %s exit_sound file %s" % (RE, beep))
        self.api("conference %s exit_sound file %s" % (RE, beep))
        self.api("conference %s enter_sound on" % RE)
        self.api("conference %s exit_sound on" % RE)
        self.api("conference %s json_list" % RE)
        tr("---- LA joins (first caller after the control leg)")
        n = self.ev.count()
        self.join("LA", RE)
        e = self.wait_action("play-file-done", n, 3)
        if e:
            dump_event(e, "(enter sound)")
        self.listen(["LA"], 1.5, "after LA's join")
        tr("---- a room play, and LB joins while it plays")
        n = self.ev.count()
        self.api("conference %s play %s" % (RE, wav))
        self.sleep(0.3)
        self.join("LB", RE)
        self.sleep(3.5)
        self.hear("LA", now() - 3.8, now(), "room play of test.wav, LB joins during it")
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action", "").startswith("play-file"):
                    dump_event(x)
        tr("---- LB leaves (exit sound)")
        n = self.ev.count()
        self.leave("LB")
        e = self.wait_action("play-file-done", n, 3)
        if e:
            dump_event(e, "(exit sound)")
        self.hear("LA", now() - 2, now(), "LB left")
        tr("---- enter_sound off; LB joins again")
        self.api("conference %s enter_sound off" % RE)
        n = self.ev.count()
        self.join("LB", RE)
        self.wait_action("play-file-done", n, 2)
        self.api("conference %s enter_sound on" % RE)
        self.api("conference %s exit_sound off" % RE)
        n = self.ev.count()
        self.leave("LB")
        self.wait_action("play-file-done", n, 2, note="(exit_sound off)")
        self.api("conference %s exit_sound on" % RE)
        tr("---- channel variables conference_enter_sound / conference_exit_sound on LD")
        self.api("uuid_setvar %s conference_enter_sound tone_stream://%%(500,0,800)" % self.uuids["LD"])
        self.api("uuid_setvar %s conference_exit_sound tone_stream://%%(300,0,800)" % self.uuids["LD"])
        n = self.ev.count()
        self.join("LD", RE)
        e = self.wait_action("play-file-done", n, 3)
        if e:
            dump_event(e, "(LD's conference_enter_sound)")
        self.sleep(0.5)
        n = self.ev.count()
        self.leave("LD")
        self.sleep(2)
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action", "").startswith("play-file"):
                    dump_event(x, "(LD leaves)")
        tr("---- the control leg with conference_enter_sound (room %s)" % RE2)
        n = self.ev.count()
        self.originate_control(RE2, extra_vars=",conference_enter_sound='%s'" % beep)
        self.sleep(2)
        with self.ev.cond:
            pf = [x for x in self.ev.events[n:] if x.get("Action", "").startswith("play-file")]
        log("play-file events after the control leg of %s joined: %d" % (RE2, len(pf)))
        self.api("uuid_kill %s" % self.uuids["ctl:" + RE2])

        tr("\n==== 4/5. wait-mod with conference_moh_sound=local_stream://moh (room %s)" % RW)
        n = self.ev.count()
        self.originate_control(RW, flags="mute|deaf|wait-mod",
                               extra_vars=",conference_moh_sound=local_stream://moh")
        self.sleep(1.5)
        tr("---- LA joins (first caller)")
        self.join("LA", RW)
        self.listen(["LA"], 3, "LA waiting")
        tr("---- room play while the music plays")
        n = self.ev.count()
        self.api("conference %s play %s" % (RW, wav))
        self.listen(["LA"], 3, "room play test.wav during wait-mod music")
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action", "").startswith("play-file"):
                    dump_event(x)
        tr("---- room play async (tts://) while the music plays")
        n = self.ev.count()
        self.api("conference %s play '{sy_tag=async-1}tts://flite|slt|async hello' async" % RW)
        self.listen(["LA"], 3.5, "room play tts:// async during wait-mod music")
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action", "").startswith("play-file"):
                    dump_event(x)
        tr("---- enter sound on (with a tag), LB joins")
        self.api("conference %s enter_sound file {sy_tag=enter}%s" % (RW, beep))
        n = self.ev.count()
        self.join("LB", RW)
        self.listen(["LA"], 2.5, "LB joined (enter sound)")
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action", "").startswith("play-file"):
                    dump_event(x)
        self.api("conference %s enter_sound off" % RW)
        tr("---- a moderator joins muted: +flags{mute|moderator}")
        self.call_rtp("Mod")
        n = self.ev.count()
        self.join("Mod", RW, flags="mute|moderator")
        self.listen(["LA", "Mod"], 2.5, "moderator (muted) joined")
        with self.ev.cond:
            for x in self.ev.events[n:]:
                if x.get("Action") in ("add-member", "play-file-done"):
                    dump_event(x)
        self.api("conference %s get wait_mod" % RW)
        self.json_list(RW, "moderator in")
        self.api("conference %s json_list" % RW)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--out", default=None,
                   help="where the two .raw files go (default: a new temporary directory)")
    p.add_argument("--freeswitch", default=os.environ.get("SWITCHYARD_FREESWITCH",
                                                          "/usr/local/freeswitch/bin/freeswitch"))
    p.add_argument("--conf", default=os.path.join(REPO, "freeswitch-conf"))
    p.add_argument("--transcript", default=None,
                   help="transcript path (default $TMPDIR/08_announce_coach_beep.transcript.txt)")
    p.add_argument("--keep", action="store_true", help="keep the node's temporary directory")
    args = p.parse_args()
    if not args.out:
        args.out = tempfile.mkdtemp(prefix="switchyard-08-")
    os.makedirs(args.out, exist_ok=True)
    RP.TR = RP.Transcript(args.transcript or
                          os.path.join(tempfile.gettempdir(), "08_announce_coach_beep.transcript.txt"))
    Session2(args).run()


if __name__ == "__main__":
    main()
