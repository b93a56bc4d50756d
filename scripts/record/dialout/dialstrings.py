"""Dial-string parsing (scenario G of the dial-out recording): what FreeSWITCH makes of `,` `|`
`:_:` `^` `;fs_path=` `;transport=tcp`, a space, `#` `%XX`, `${...}`, quotes and `<>` in a
caller-id name, a uuid in use, an unknown profile or gateway; the legs go to sinks (they never
answer) and rejecting UASes."""

import time
import uuid

from ..transcript import write
from .session import SOFIA
from .uas import Uas


class DialStrings:
    """Scenario G, for a DialoutSession."""

    def dialstring_tests(self):
        write("\n==== G dial-string parsing, against sinks (they never answer) and rejecting UASes")

        def run(name, dial, sinks, app="&park()", kill_others_after=None):
            """dial: the whole originate argument (variable blocks included); <u> is replaced by
            a fresh uuid."""
            u = str(uuid.uuid4())
            since = self.ev.count()
            write("\n---- %s" % name)
            job, t0 = self.bgapi("originate %s %s" % (dial.replace("<u>", u), app))
            if kill_others_after:
                time.sleep(kill_others_after)
                for e in self.ev.since(since):
                    if e.name == "CHANNEL_CREATE" and e.get("Unique-ID") != u:
                        self.api("uuid_kill %s" % e.get("Unique-ID"))
            self.job_done(job, t0, since, 40)
            time.sleep(1)
            for e in self.ev.since(since):
                if e.name in ("CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE"):
                    write("             seq=%d +%.3f %s Unique-ID=%s (the origination_uuid: %s) "
                          "Channel-Name=%s Caller-Destination-Number=%s "
                          "Caller-Caller-ID-Name=%s Caller-Caller-ID-Number=%s variable_sip_req_uri=%s "
                          "variable_sip_destination_url=%s variable_originate_timeout=%s "
                          "Hangup-Cause=%s"
                          % (e.seq, e.t - t0, e.name, e.get("Unique-ID"), e.get("Unique-ID") == u,
                             e.get("Channel-Name"), e.get("Caller-Destination-Number"),
                             e.get("Caller-Caller-ID-Name"), e.get("Caller-Caller-ID-Number"),
                             e.get("variable_sip_req_uri"),
                             e.get("variable_sip_destination_url"),
                             e.get("variable_originate_timeout"), e.get("Hangup-Cause")))
            for x in sinks:
                if isinstance(x, Uas):
                    x.wait(3)
                self.show_sip(x, t0)
            return u

        d = self.dest
        s1, s2 = self.sink("G-1"), self.sink("G-2")
        run("G1 `,` : two legs at once; origination_uuid only on the first ([...] block)",
            "{originate_timeout=2}[origination_uuid=<u>]%s,%s" % (d("3001", s1.port), d("3002", s2.port)),
            [s1, s2])
        s1, s2 = self.sink("G-3"), self.sink("G-4")
        run("G1b `,` typed into the destination of Switchyard's command shape "
            "({origination_uuid=<u>,...}sofia/inbound/sip:<dest>): a second leg with the same uuid",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_number=15550001111}%s,%s"
            % (d("3003", s1.port), d("3004", s2.port)), [s1, s2])
        x, s2 = self.uas("G-5", "reject:486:Busy Here"), self.sink("G-6")
        run("G2 `|` : the second leg after the first failed (first leg: 486)",
            "{originate_timeout=2}[origination_uuid=<u>]%s|%s" % (d("3005", x.port), d("3006", s2.port)),
            [x, s2])
        x, s2 = self.uas("G-7", "reject:486:Busy Here"), self.sink("G-8")
        run("G2b `|` in Switchyard's command shape (global origination_uuid)",
            "{origination_uuid=<u>,originate_timeout=2}%s|%s" % (d("3007", x.port), d("3008", s2.port)),
            [x, s2])
        s1, s2 = self.sink("G-9"), self.sink("G-10")
        run("G3 `:_:` : enterprise originate; the part after :_: gets none of the {...} variables "
            "(its leg is killed after 4 s)",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_number=15550001111}%s:_:%s"
            % (d("3009", s1.port), d("3010", s2.port)), [s1, s2], kill_others_after=4)
        s1 = self.sink("G-11")
        run("G4 `^` in the user part: sofia/inbound/sip:3011^9999@127.0.0.1:p",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:3011^9999@127.0.0.1:%d"
            % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-12")
        run("G4b `^` after the host: sofia/inbound/sip:3012@127.0.0.1:p^9999@evil.example",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:3012@127.0.0.1:%d^9999@evil.example"
            % (SOFIA, s1.port), [s1])
        s1, s2 = self.sink("G-13"), self.sink("G-14")
        run("G5 `;fs_path=` parameter: the INVITE goes to p2 although the URI says p1",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:3013@127.0.0.1:%d;fs_path=<sip:127.0.0.1:%d>"
            % (SOFIA, s1.port, s2.port), [s1, s2])
        s1 = self.sink("G-15")
        run("G6 `;transport=tcp` parameter: sent over TCP (nothing listens there)",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:3015@127.0.0.1:%d;transport=tcp"
            % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-16")
        run("G7 a space in the user part (originate's arguments are split on spaces)",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:30 16@127.0.0.1:%d"
            % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-17")
        run("G8 `#` and `%41` in the user part",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/sip:30#17%%41@127.0.0.1:%d"
            % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-18")
        run("G9 `${uuid}` as a variable value",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_number=${uuid}}"
            "sofia/%s/sip:3018@127.0.0.1:%d" % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-19")
        run("G10 a caller-id name with `\"` `<` `>` `;`",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_name=A\"B<sip:evil@x>;c}"
            "sofia/%s/sip:3019@127.0.0.1:%d" % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-20")
        run("G11 a caller-id name with `,` inside single quotes and a variable after it",
            "{origination_uuid=<u>,originate_timeout=2,origination_caller_id_name='Doe, John'}"
            "sofia/%s/sip:3020@127.0.0.1:%d" % (SOFIA, s1.port), [s1])
        s1 = self.sink("G-21")
        run("G12 origination_uuid already in use (the room's control leg)",
            "{origination_uuid=%s,originate_timeout=2}sofia/%s/sip:3021@127.0.0.1:%d"
            % (self.ctl, SOFIA, s1.port), [s1])
        s1 = self.sink("G-22")
        run("G13 an unknown sofia profile",
            "{origination_uuid=<u>,originate_timeout=2}sofia/nosuchprofile/sip:3022@127.0.0.1:%d"
            % s1.port, [s1])
        run("G14 an unknown gateway",
            "{origination_uuid=<u>,originate_timeout=2}sofia/gateway/nosuchgw/3023", [])
        run("G15 no user part and no host dots: sofia/inbound/3024 (a registered-user lookup)",
            "{origination_uuid=<u>,originate_timeout=2}sofia/%s/3024" % SOFIA, [])
