"""Announcements with a completion event, coach/whisper with relate, enter/exit beeps and wait-mod
music on one node (fixtures/esl/08_announce_coach_beep.md):

* TTS with and without a completion event: `conference <room> say`, `play 'say:...'`,
  `play 'tts://flite|<voice>|<text>'` to the room and to one member, error and quoting cases;
  per-member playback (WAV and TTS) with and without `nomux` while a talker is on; http:// URLs
  served by an http server in this process;
* relate for a coach: `relate C 0 ...`, a `speak` action, a comma list of every other member,
  a member who joins later, a member who leaves and comes back, `relate C 0 clear`;
* enter / exit sounds: the `enter_sound` / `exit_sound` api commands, the
  `conference_enter_sound` / `conference_exit_sound` channel variables, the control leg, a join
  while a room `play` is running;
* wait-mod with `conference_moh_sound=local_stream://moh`: the first caller, a room `play`, an
  enter sound and a `+flags{mute|moderator}` moderator.

Listeners are SIP callers whose RTP comes to this process. Each character of an "AUDIO" line
covers 250 ms of what FreeSWITCH sent to that caller:

    .  silence            T  1250 Hz (the talker T)        4  440 Hz (sounds/test.wav)
    C  700 Hz (coach C)   8  800 Hz (tone_stream beep)      M  1250 Hz + 440 Hz together
    X  1250 Hz + 700 Hz   t  1250 Hz + another sound (speech, music)
    c  700 Hz + another   f  440 Hz + another               e  800 Hz + another
    +  two other known tones together                       o  another sound (speech, music)
    _  no RTP packet

Writes <out>/08_announce_coach_beep.{recv,sent}.raw (--out defaults to a new temporary directory)
and the transcript (default $TMPDIR/08_announce_coach_beep.transcript.txt). About 3 minutes.
"""

from ..transcript import log, now, write
from .announce_session import AnnounceSession, conference_event, dump_event, play_file_event

NAME = "08_announce_coach_beep"
RT, RC, RE, RE2, RW = "ac-tts", "ac-coach", "ac-beep", "ac-beep2", "ac-waitmod"
BEEP = "tone_stream://%(200,0,800)"


class AnnounceCoachBeep(AnnounceSession):
    name = NAME

    def scenario(self):
        write("\n==== setup: room %s with a control leg; T (1250 Hz bursts) and LA (listener) "
              "joined muted" % RT)
        self.originate_control(RT)
        self.call("T", "tone")
        self.call_rtp("LA")
        self.join("T", RT)
        self.join("LA", RT)

        self.tts()
        self.coach()
        self.beeps()
        self.wait_mod()

    def tts(self):
        """1. TTS, http:// URLs, tagged files, member playback while T talks."""
        wav = self.test_wav
        write("\n==== 1. TTS (T muted: LA hears only what is played)")
        write("---- 1a. conference say")
        n = self.ev.count()
        self.api("conference %s say hello from the say command" % RT)
        self.listen(["LA"], 4, "say")
        self.dump_since(n, conference_event)

        write("---- 1b. play 'say:...' to the room")
        n = self.ev.count()
        self.api("conference %s play 'say:hello from play say'" % RT)
        self.listen(["LA"], 3.5, "play say:")
        self.dump_since(n, conference_event)

        write("---- 1c. play 'tts://flite|slt|...' to the room")
        self.timed_play("conference %s play 'tts://flite|slt|this is the tts file interface "
                        "speaking to the whole room'" % RT, "play-file-done", "LA", 8,
                        "room play tts://")
        write("---- 1d. play 'tts://flite|slt|...' <LA>")
        self.timed_play("conference %s play 'tts://flite|slt|and this is spoken to one member "
                        "only' %s" % (RT, self.m("LA")), "play-file-member-done", "LA", 8,
                        "member play tts://", member=self.m("LA"))
        write("---- 1e. other voice, long text: reply time")
        self.timed_play("conference %s play 'tts://flite|rms|a longer sentence in another voice, "
                        "to see how long the api reply takes when flite has more text to "
                        "synthesise before the command returns' %s" % (RT, self.m("LA")),
                        "play-file-member-done", "LA", 12, "member play tts:// rms long",
                        member=self.m("LA"), dump=False)
        write("---- 1f. tts:// errors and quoting")
        n = self.ev.count()
        self.api("conference %s play 'tts://flite|slt'" % RT)
        self.api("conference %s play 'tts://nosuchengine|slt|hello'" % RT)
        self.api("conference %s play 'tts://flite|nosuchvoice|hello'" % RT)
        self.api("conference %s play tts://flite|slt|hello world" % RT)
        self.api("conference %s play 'tts://flite|slt|don\\'t worry' %s" % (RT, self.m("LA")))
        self.api("conference %s play 'tts://flite|slt|hello' 999" % RT)
        self.sleep(3)
        self.dump_since(n, lambda x: x.get("Action") in ("play-file", "play-file-member", "play-file-done",
                                                         "play-file-member-done"))
        write("---- 1g. play 'say:...' <LA>, and play 'say:...' async")
        n = self.ev.count()
        self.api("conference %s play 'say:hello member via play say' %s" % (RT, self.m("LA")))
        self.listen(["LA"], 3, "member play say:")
        self.api("conference %s play 'say:hello async' async" % RT)
        self.listen(["LA"], 2, "room play say: async")
        self.dump_since(n, conference_event)

        write("\n==== 1h. http:// URLs (python http.server in this script)")
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
        self.dump_since(n, play_file_event)

        write("\n==== 1j. {params} in front of the file name: a tag in the events")
        n = self.ev.count()
        self.api("conference %s play {sy_tag=room-1}%s" % (RT, wav))
        self.api("conference %s play '{sy_tag=member-1}tts://flite|slt|tagged' %s"
                 % (RT, self.m("LA")))
        self.sleep(2.8)
        self.dump_since(n, play_file_event)

        write("\n==== 1i. member playback while T talks: mux versus nomux")
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

    def coach(self):
        """2. coach / whisper."""
        write("\n==== 2. coach / whisper (room %s)" % RC)
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
        write("---- a member joins later")
        self.call_rtp("LD")
        self.join("LD", RC)
        D = self.m("LD")
        self.listen(["LD"], 2.5, "LD joined, no relationship to it yet")
        self.api("conference %s relate %s %s nospeak" % (RC, C, D))
        self.listen(["LD", "LA"], 2.5, "relate C LD nospeak")
        write("---- LB leaves and comes back (same member id)")
        self.leave("LB")
        self.api("conference %s relate %s" % (RC, C))
        self.api("conference %s relate %s %s nospeak" % (RC, C, B))
        self.join("LB", RC)
        self.listen(["LB"], 2.5, "LB back in the room")
        self.api("conference %s relate %s" % (RC, C))
        write("---- comma lists with a member that is not there; sendvideo")
        self.api("conference %s relate %s %s,999 nospeak" % (RC, C, B))
        self.api("conference %s relate %s %s sendvideo" % (RC, C, A))
        self.api("conference %s relate %s" % (RC, C))
        self.api("conference %s relate %s %s clear" % (RC, C, A))
        write("---- relate C 0 clear")
        self.api("conference %s relate %s 0 clear" % (RC, C))
        self.api("conference %s relate %s" % (RC, C))
        self.api("conference %s relate" % RC)
        self.listen(["LB", "LD"], 2.5, "after relate C 0 clear")
        self.api("conference %s relate %s %s nohear" % (RC, C, T))
        self.listen(["C"], 3, "relate C T nohear: what C hears")
        self.api("conference %s relate %s 0 clear" % (RC, C))

    def beeps(self):
        """3. enter / exit sounds."""
        wav, beep = self.test_wav, BEEP
        write("\n==== 3. enter / exit sounds (room %s)" % RE)
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
        write("---- LA joins (first caller after the control leg)")
        n = self.ev.count()
        self.join("LA", RE)
        e = self.wait_action("play-file-done", n, 3)
        if e:
            dump_event(e, "(enter sound)")
        self.listen(["LA"], 1.5, "after LA's join")
        write("---- a room play, and LB joins while it plays")
        n = self.ev.count()
        self.api("conference %s play %s" % (RE, wav))
        self.sleep(0.3)
        self.join("LB", RE)
        self.sleep(3.5)
        self.hear("LA", now() - 3.8, now(), "room play of test.wav, LB joins during it")
        self.dump_since(n, play_file_event)
        write("---- LB leaves (exit sound)")
        n = self.ev.count()
        self.leave("LB")
        e = self.wait_action("play-file-done", n, 3)
        if e:
            dump_event(e, "(exit sound)")
        self.hear("LA", now() - 2, now(), "LB left")
        write("---- enter_sound off; LB joins again")
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
        write("---- channel variables conference_enter_sound / conference_exit_sound on LD")
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
        self.dump_since(n, play_file_event, "(LD leaves)")
        write("---- the control leg with conference_enter_sound (room %s)" % RE2)
        n = self.ev.count()
        self.originate_control(RE2, extra_vars=",conference_enter_sound='%s'" % beep)
        self.sleep(2)
        pf = [x for x in self.ev.since(n) if play_file_event(x)]
        log("play-file events after the control leg of %s joined: %d" % (RE2, len(pf)))
        self.api("uuid_kill %s" % self.uuids["ctl:" + RE2])

    def wait_mod(self):
        """4/5. wait-mod music next to room plays, an enter sound, a muted moderator."""
        wav, beep = self.test_wav, BEEP
        write("\n==== 4/5. wait-mod with conference_moh_sound=local_stream://moh (room %s)" % RW)
        n = self.ev.count()
        self.originate_control(RW, flags="mute|deaf|wait-mod",
                               extra_vars=",conference_moh_sound=local_stream://moh")
        self.sleep(1.5)
        write("---- LA joins (first caller)")
        self.join("LA", RW)
        self.listen(["LA"], 3, "LA waiting")
        write("---- room play while the music plays")
        n = self.ev.count()
        self.api("conference %s play %s" % (RW, wav))
        self.listen(["LA"], 3, "room play test.wav during wait-mod music")
        self.dump_since(n, play_file_event)
        write("---- room play async (tts://) while the music plays")
        n = self.ev.count()
        self.api("conference %s play '{sy_tag=async-1}tts://flite|slt|async hello' async" % RW)
        self.listen(["LA"], 3.5, "room play tts:// async during wait-mod music")
        self.dump_since(n, play_file_event)
        write("---- enter sound on (with a tag), LB joins")
        self.api("conference %s enter_sound file {sy_tag=enter}%s" % (RW, beep))
        n = self.ev.count()
        self.join("LB", RW)
        self.listen(["LA"], 2.5, "LB joined (enter sound)")
        self.dump_since(n, play_file_event)
        self.api("conference %s enter_sound off" % RW)
        write("---- a moderator joins muted: +flags{mute|moderator}")
        self.call_rtp("Mod")
        n = self.ev.count()
        self.join("Mod", RW, flags="mute|moderator")
        self.listen(["LA", "Mod"], 2.5, "moderator (muted) joined")
        self.dump_since(n, lambda x: x.get("Action") in ("add-member", "play-file-done"))
        self.api("conference %s get wait_mod" % RW)
        self.json_list(RW, "moderator in")
        self.api("conference %s json_list" % RW)


def run(args):
    AnnounceCoachBeep(args).run()
