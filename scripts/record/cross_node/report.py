"""How the cross-node recording shows what happened: a table of the events of the legs it knows
and of the room, per node, in arrival order (every header of some of them in
<out>/10_cross_node.dumps.txt), the SIP and RTP between the nodes (sniffer.py), and the timings
listed again at the end of the transcript. A mixin of the Session (session.py)."""

import time

from ..transcript import log, write

SKIP_EVENTS = {"CHANNEL_STATE", "RE_SCHEDULE", "HEARTBEAT", "API", "BACKGROUND_JOB", "MESSAGE_QUERY",
               "PRESENCE_IN", "RECV_RTCP_MESSAGE", "SEND_MESSAGE", "MODULE_LOAD", "CODEC",
               "CHANNEL_HOLD", "CHANNEL_UNHOLD"}
SKIP_APPS = {"set", "export"}
TAG_VAR = "variable_sip_h_X-Switchyard-Session"
HANGUP_KEYS = ["Hangup-Cause", "variable_sip_hangup_disposition", "variable_sip_term_status",
               "variable_sip_term_cause", "variable_bridge_hangup_cause",
               "variable_last_bridge_hangup_cause", "variable_originate_disposition",
               "variable_endpoint_disposition", "variable_sip_hangup_phrase"]


class Report:
    def lab(self, u):
        return self.labels.get(u, (u or "-")[:8])

    def dump(self, node, e, why):
        self.dumps.write("\n==== %s %s #%d t=%.3f (%s)\n" % (node.name, e.name, e.seq, e.t, why))
        for k, v in e.headers:
            self.dumps.write("%s: %s\n" % (k, v))
        if e.body:
            self.dumps.write("\n[body]\n%s\n" % e.body.decode("utf-8", "replace"))
        self.dumps.flush()

    def details(self, e):
        n = e.name
        keys = []
        if n == "CUSTOM":
            keys = ["Action", "Member-ID", "Speak", "Hear", "Conference-Size"]
        elif n in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"):
            keys = ["Application", "Application-Data", "Application-Response"]
        elif n in ("CHANNEL_CREATE", "CHANNEL_OUTGOING"):
            keys = ["Call-Direction", "Channel-Name", "Caller-Caller-ID-Name", "Caller-Caller-ID-Number",
                    "Caller-Destination-Number", "Caller-Context", "variable_sip_call_id",
                    "variable_sip_from_uri"]
        elif n == "CHANNEL_CALLSTATE":
            keys = ["Channel-Call-State"]
        elif n in ("CHANNEL_ANSWER", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA"):
            keys = ["Answer-State"]
        elif n in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
            keys = HANGUP_KEYS
        elif n == "CALL_UPDATE":
            keys = ["Caller-Caller-ID-Number", "Caller-Callee-ID-Number", "Bridged-To"]
        parts = []
        for k in keys:
            v = e.get(k)
            if v is not None and v != "":
                if len(v) > 140:
                    v = v[:140] + "..."
                parts.append("%s=%s" % (k, v))
        if n in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE"):
            parts.append("Bridge-A=%s Bridge-B=%s" % (self.lab(e.get("Bridge-A-Unique-ID")),
                                                      self.lab(e.get("Bridge-B-Unique-ID"))))
            if e.get("Hangup-Cause"):
                parts.append("Hangup-Cause=%s" % e.get("Hangup-Cause"))
        if n == "CUSTOM" and e.get("Event-Subclass", "").startswith("sofia::"):
            parts += ["%s=%s" % (k, e.get(k))
                      for k in ("Gateway", "State", "Ping-Status", "Status", "Phrase") if e.get(k)]
        nvars = sum(1 for k, _ in e.headers if k.startswith("variable_"))
        if nvars:
            parts.append("[%d variable_*; %s=%s]" % (nvars, TAG_VAR[9:], e.get(TAG_VAR)))
        return " ".join(parts)

    def table(self, node, since, t0, title, uuids=None, dump_as=None, until=None):
        """The events of the legs we know (or of `uuids`) and of the room, on `node`, since index
        `since`, in arrival order; t relative to t0."""
        evs = node.ev.since(since, until)
        write("           %s events on %s (t = seconds after %s):" % (title, node.name, "the command"))
        rows = []
        for e in evs:
            n = e.name
            if n in SKIP_EVENTS:
                continue
            u = e.get("Unique-ID")
            sub = e.get("Event-Subclass") or ""
            if n == "CUSTOM":
                if sub == "conference::maintenance":
                    if e.get("Conference-Name") != self.room and u not in self.labels:
                        continue
                    if e.get("Action") in ("start-talking", "stop-talking") and not self.args.talking:
                        continue
                elif not sub.startswith("sofia::gateway"):
                    continue
            else:
                if u is None or u not in self.labels:
                    continue
                if uuids is not None and u not in uuids:
                    continue
            if n in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE") and e.get("Application") in SKIP_APPS:
                continue
            name = n + (("/" + sub) if sub else "")
            write("             %s #%d +%.3f %-9s %s %s"
                  % (node.name, e.seq, e.t - t0, self.lab(u), name, self.details(e)))
            rows.append(e)
            if dump_as and n in ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE",
                                 "CHANNEL_HANGUP_COMPLETE", "CHANNEL_PARK", "CUSTOM", "CHANNEL_ORIGINATE",
                                 "CHANNEL_OUTGOING"):
                self.dump(node, e, dump_as)
        return rows

    def timing(self, what, seconds):
        self.timings.append((what, seconds))
        log("TIMING %s: %s" % (what, ("%.3f s" % seconds) if seconds is not None else "never"))

    def show_join(self, label, t0, nA, nB, dump=True):
        self.table(self.B, nB, t0, "join %s:" % label, dump_as=("J-" + label) if dump else None)
        self.table(self.A, nA, t0, "join %s:" % label, dump_as=("J-" + label) if dump else None)
        self.sip(t0, "join %s:" % label)

    def after(self, label, nA, nB, t0, wait=1.5):
        time.sleep(wait)
        self.table(self.A, nA, t0, label)
        self.table(self.B, nB, t0, label)
        self.sip(t0, label)

    def port_name(self, p):
        for node in (self.A, self.B):
            if node.rtp[0] <= p <= node.rtp[1]:
                return "%s.rtp:%d" % (node.name, p)
        for c in self.callers:
            if c.rtp.port == p:
                return "caller %s:%d" % (c.label, p)
        return str(p)

    def rtp(self, t0, title):
        if not self.sniff.ok:
            return
        write("           %s RTP datagrams on loopback since then:" % title)
        for line in self.sniff.rtp_report(t0, self.port_name):
            write(line)

    def sip(self, t0, title, t_to=None):
        if not self.sniff.ok:
            return
        lines = self.sniff.since(t0 - 0.005, t0, self.names, t_to)
        write("           %s SIP between the nodes (loopback capture):" % title)
        for line in lines:
            write(line)
