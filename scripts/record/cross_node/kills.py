"""A node killed with SIGKILL while callers are bridged (parts G1, G2 of the cross-node
recording): what B's legs do when A dies (with and without media timeouts, a session timer), what
the gateway's OPTIONS pings tell, bridges to the dead A; what A's legs do when B dies; each node
restarted afterwards. A mixin of the Session."""

import time
import uuid

from ..transcript import log, now, write


class Kills:
    def kill_a(self, rep):
        lab = "G1.%d" % rep
        write("\n==== %s SIGKILL of A while three callers are bridged into its room: B's outbound legs "
              "with (x) no timeout, (m) media_timeout=5000, (r) rtp_timeout_sec=5, (n) media_timeout=5000 and "
              "rtp_timer_name=none, (s, first time only) sofia_session_timeout=90 (SIP session timer)" % lab)
        legs = {}
        kinds = [("x", ""), ("m", ",media_timeout=5000"), ("r", ",rtp_timeout_sec=5"),
                 ("n", ",media_timeout=5000,rtp_timer_name=none")]
        if rep == 1:
            kinds.append(("s", ",sofia_session_timeout=90"))
        for k, extra in kinds:
            c = self.call("%s%s" % (lab, k))
            bo, al, mid, t0, nA, nB = self.join(c, "%s%s" % (lab, k), extra_vars=extra)
            if rep == 1 and k == "m":
                self.show_join("%s%s" % (lab, k), t0, nA, nB, dump=False)
            legs[k] = (c, bo, al)
        self.B.api("sofia status gateway node_a")
        time.sleep(1)
        nB = self.B.count()
        t0 = self.A.sigkill()
        ev_closed = None
        for _ in range(50):
            if self.A.ev.closed_at is not None:
                ev_closed = self.A.ev.closed_at
                break
            time.sleep(0.02)
        self.timing("%s: SIGKILL A -> EOF on the controller's event connection to A" % lab,
                    ev_closed - t0 if ev_closed else None)
        # a bridge attempt to the dead A, direct and through the gateway
        watch = self.args.watch if rep == 1 else self.args.watch2
        attempts = []
        if rep == 1:
            for k, gw in (("d", False), ("g", True)):
                if gw:
                    # after the gateway's pings have marked it down
                    g = self.B.wait(lambda e: e.get("Event-Subclass") == "sofia::gateway_state" and
                                    e.get("Ping-Status") == "DOWN", 3 * self.args.ping + 5, nB)
                    self.timing("%s: SIGKILL A -> gateway node_a Ping-Status DOWN on B" % lab,
                                g.t - t0 if g else None)
                else:
                    time.sleep(1)
                c = self.call("%s%s" % (lab, k))
                bo = str(uuid.uuid4())
                self.labels[bo] = "B.out%s%s" % (lab, k)
                na = self.B.count()
                tt = now()
                self.B.api(self.transfer_cmd(c, bo, "main", gateway=gw))
                attempts.append((k, c, bo, tt, na))
        end = t0 + watch
        res = {}
        while now() < end:
            for k, (c, bo, al) in legs.items():
                if k not in res:
                    h = self.wait_ev(self.B, "CHANNEL_HANGUP", bo, 0, nB)
                    if h:
                        res[k] = h
            if len(res) == len(legs) and all(self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 0, na)
                                             for _, c, _, _, na in attempts):
                break
            time.sleep(0.2)
        for k, (c, bo, al) in legs.items():
            h = res.get(k)
            self.timing("%s%s: SIGKILL A -> CHANNEL_HANGUP of B's outbound leg (%s)"
                        % (lab, k, h.get("Hangup-Cause") if h else "watched %d s" % watch),
                        h.t - t0 if h else None)
            p = self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 0, nB)
            self.timing("%s%s: SIGKILL A -> CHANNEL_PARK of the caller on B" % (lab, k), p.t - t0 if p else None)
        for k, c, bo, tt, na in attempts:
            p = self.wait_ev(self.B, "CHANNEL_PARK", c.uuid, 0, na)
            h = self.wait_ev(self.B, "CHANNEL_HANGUP_COMPLETE", bo, 0, na)
            self.timing("%s%s: bridge to dead A (%s) -> caller CHANNEL_PARK on B" %
                        (lab, k, "gateway" if k == "g" else "direct"), p.t - tt if p else None)
            if h:
                log("%s%s: outbound leg hangup %s, sip_term_status %s (+%.3f after the transfer)"
                    % (lab, k, h.get("Hangup-Cause"), h.get("variable_sip_term_status"), h.t - tt))
            self.B.api("uuid_getvar %s originate_failed_cause" % c.uuid)
        self.table(self.B, nB, t0, "%s after SIGKILL of A:" % lab)
        self.B.api("sofia status gateway node_a")
        self.B.api("show channels count")
        for k, (c, bo, al) in legs.items():
            self.B.api("uuid_exists %s" % bo)
        # clean up B's side, restart A
        for c in [v[0] for v in legs.values()] + [a[1] for a in attempts]:
            if c.uuid:
                self.B.api("uuid_kill %s" % c.uuid, quiet=True)
        self.A.close_conns()
        nB = self.B.count()
        tr = now()
        self.A.start()
        self.open_room()
        # the gateway comes back?
        g = self.B.wait(lambda e: e.get("Event-Subclass") == "sofia::gateway_state" and e.get("State") == "UP"
                        or (e.get("Event-Subclass") == "sofia::gateway_state" and e.get("Ping-Status") == "UP"),
                        3 * self.args.ping + 5, nB)
        self.timing("%s: A restarted -> gateway node_a state event UP on B" % lab, g.t - tr if g else None)
        self.B.api("sofia status gateway node_a")

    def kill_b(self, rep):
        lab = "G2.%d" % rep
        write("\n==== %s SIGKILL of B while two callers are bridged: A's legs with media_timeout=5000 (m) "
              "and without (x), set by A's nodes context" % lab)
        legs = {}
        for k, mt in (("m", 5000), ("x", 0)):
            self.A.set_media_timeout(mt)
            c = self.call("%s%s" % (lab, k))
            bo, al, mid, t0, nA, nB = self.join(c, "%s%s" % (lab, k))
            self.A.api("uuid_getvar %s media_timeout" % al)
            legs[k] = (c, bo, al, mid)
        self.A.set_media_timeout(10000)
        time.sleep(1)
        nA = self.A.count()
        t0 = self.B.sigkill()
        ev_closed = None
        for _ in range(50):
            if self.B.ev.closed_at is not None:
                ev_closed = self.B.ev.closed_at
                break
            time.sleep(0.02)
        self.timing("%s: SIGKILL B -> EOF on the controller's event connection to B" % lab,
                    ev_closed - t0 if ev_closed else None)
        watch = self.args.watch if rep == 1 else self.args.watch2
        res = {}
        end = t0 + watch
        while now() < end and len(res) < len(legs):
            for k, (c, bo, al, mid) in legs.items():
                if k not in res:
                    d = self.A.wait(lambda e: e.get("Action") == "del-member" and e.get("Unique-ID") == al, 0, nA)
                    if d:
                        res[k] = d
            time.sleep(0.2)
        for k, (c, bo, al, mid) in legs.items():
            d = res.get(k)
            h = self.wait_ev(self.A, "CHANNEL_HANGUP", al, 0, nA)
            self.timing("%s%s: SIGKILL B -> del-member on A (%s)"
                        % (lab, k, h.get("Hangup-Cause") if h else "watched %d s" % watch),
                        d.t - t0 if d else None)
        self.table(self.A, nA, t0, "%s after SIGKILL of B:" % lab)
        self.A.api("conference %s list" % self.room)
        for k, (c, bo, al, mid) in legs.items():
            if self.A.api("uuid_exists %s" % al).strip() == "true":
                self.A.api("uuid_kill %s" % al)
            c.stop()
        self.B.close_conns()
        self.B.start()
