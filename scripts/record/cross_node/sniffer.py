"""The traffic between the nodes, read off the loopback interface (AF_PACKET; needs root, skipped
otherwise): every SIP datagram to or from one of `ports`, written to <out>/10_cross_node.sip.txt,
and a count of the RTP datagrams between ports of `rtp_ranges`."""

import re
import socket
import struct
import threading

from ..transcript import now


class SipSniffer(threading.Thread):
    """The SIP messages between the nodes, read off the loopback interface (AF_PACKET; needs
    root, skipped otherwise): every UDP datagram to or from one of `ports` that looks like SIP."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.ports = set()
        self.rtp_ranges = []
        self.rtp = {}   # (src port, dst port) -> [datagrams, first t, last t]
        self.msgs = []  # (t, src, dst, text)
        self.cond = threading.Condition()
        self.f = open(path, "w", encoding="latin-1")
        self.stop = False
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind(("lo", 0))
            self.sock.settimeout(0.3)
            self.ok = True
        except (OSError, AttributeError) as e:
            self.ok = False
            self.why = repr(e)
        if self.ok:
            self.start()

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == 4:  # PACKET_OUTGOING: loopback shows each datagram twice
                continue
            if len(data) < 14 + 20 + 8 or data[12:14] != b"\x08\x00":
                continue
            ip = data[14:]
            ihl = (ip[0] & 15) * 4
            if ip[9] != 17:
                continue
            udp = ip[ihl:]
            sp, dp = struct.unpack("!HH", udp[:4])
            payload = udp[8:]
            if sp not in self.ports and dp not in self.ports:
                if any(lo <= sp <= hi or lo <= dp <= hi for lo, hi in self.rtp_ranges):
                    k = (sp, dp)
                    with self.cond:
                        c = self.rtp.setdefault(k, [0, None, None])
                        c[0] += 1
                        c[2] = now()
                        if c[1] is None:
                            c[1] = c[2]
                continue
            if not (payload[:8] == b"SIP/2.0 " or re.match(rb"^[A-Z]+ sip:", payload)):
                continue
            src = "%s:%d" % (socket.inet_ntoa(ip[12:16]), sp)
            dst = "%s:%d" % (socket.inet_ntoa(ip[16:20]), dp)
            t = now()
            text = payload.decode("latin-1")
            with self.cond:
                self.msgs.append((t, src, dst, text))
                self.cond.notify_all()
            self.f.write("---- %.3f %s -> %s\n%s\n" % (t, src, dst, text.replace("\r\n", "\n")))
            self.f.flush()

    def count(self):
        with self.cond:
            return len(self.msgs)

    def since(self, t_from, t0, names, t_to=None):
        """One line a message from t_from (to t_to): time, direction, first line, a few headers."""
        with self.cond:
            msgs = [m for m in self.msgs if m[0] >= t_from and (t_to is None or m[0] < t_to)]
        out = []
        for t, src, dst, text in msgs:
            head = text.split("\r\n\r\n", 1)[0].split("\r\n")
            first = head[0]
            extra = []
            for line in head[1:]:
                k = line.split(":", 1)[0].strip().lower()
                if k in ("x-switchyard-session", "reason", "cseq"):
                    extra.append(line.strip())
            out.append("             SIP +%.3f %s -> %s  %s  %s" % (
                t - t0, names.get(src, src), names.get(dst, dst), first, " | ".join(extra)))
        return out

    def rtp_report(self, t_from, names):
        """Datagrams between the RTP ports seen since t_from: (src, dst, count, first, last)."""
        with self.cond:
            items = [(k, list(v)) for k, v in self.rtp.items() if v[2] >= t_from]
        out = []
        for (sp, dp), (n, t1, t2) in sorted(items, key=lambda x: x[1][1]):
            out.append("             RTP %s -> %s: %d datagrams seen, first +%.3f, last +%.3f (since t_from)"
                       % (names(sp), names(dp), n, t1 - t_from, t2 - t_from))
        return out

    def close(self):
        self.stop = True
        if self.ok:
            try:
                self.sock.close()
            except OSError:
                pass
        self.f.close()
