"""The joins of the cross-node recording (part J): a caller on B bridged into the room on A,
then the leg ended each way there is: A's leg killed (D0..D4; D1 also checks the mute state and
the audio both ways, then joins the same caller again), the caller moved out on B (T1, T2), a
kick on A (K1..K3, with a forged X-Switchyard-Session from the caller in K2 and K3), the caller's
BYE (E1, E2), the caller killed on B (EK). A mixin of the Session."""

import math
import os
import struct
import time
import wave

from .. import audio
from ..transcript import log, now, write


class Joins:
    def joins(self):
        # D: uuid_kill of A's leg, three forms
        for i, form, extra in [(0, "main", ",rtp_timer_name=none"), (1, "main", ""), (2, "pab", ""),
                               (3, "tail", ""), (4, "main", "")]:
            lab = "D%d" % i
            write("\n==== %s join (form %s%s), then uuid_kill of A's leg (leave by hanging up on A)"
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
                write("\n==== D1b the same caller joined again after it was parked again")
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
            write("\n==== %s join, then `uuid_transfer <caller> park inline` on B (leave by moving the "
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
            write("\n==== %s join (form %s%s), then `conference <room> kick <id>` on A"
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
            write("\n==== %s join, then the caller sends BYE to B (SIPp, 5 s after its ACK)" % lab)
            c = self.call(lab, bye_after_ms=5000)
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
        write("\n==== EK join, then uuid_kill of the caller on B")
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
        write("\n==== M mute state, audio both ways (caller -> room: conference record on A; room -> "
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
            chars.append(audio.classify_talker(seg))
        log("WAV %s: %d Hz, %d ch, %d bit, %.2f s, RMS %.0f; per 250 ms: %s"
            % (os.path.basename(path), rate, ch, 8 * width, n / float(rate), rms, "".join(chars)))
