"""A caller's RTP end in this process: it keeps what FreeSWITCH sends and sends u-law back.

The SIP side is SIPp's (its SDP names this end's port); `peer` is FreeSWITCH's RTP address, set
by the scenario (uuid_getvar local_media_ip/port) or taken from the first packet received.
"""

import random
import socket
import struct
import threading
import time

from . import audio
from .transcript import now

SILENCE_FRAME = b"\xff" * 160


class RtpEnd(threading.Thread):
    """Sends `sound` (u-law, a whole number of 20 ms frames, looped) every 20 ms while `sending`
    and `alive()`; keeps every packet received as (t, payload type, payload)."""

    def __init__(self, label, sound=SILENCE_FRAME):
        super().__init__(daemon=True)
        self.label = label
        self.sound = sound
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.packets = []
        self.peer = None
        self.sending = True
        self.alive = lambda: True
        self.stop = False
        self.start()
        threading.Thread(target=self._sender, daemon=True).start()

    def run(self):
        self.sock.settimeout(0.5)
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            if self.peer is None:
                self.peer = addr
            cc = data[0] & 0x0F
            self.packets.append((now(), data[1] & 0x7F, data[12 + 4 * cc:]))

    def _sender(self):
        seq, ts, ssrc = random.randrange(65536), random.randrange(1 << 32), random.randrange(1 << 32)
        pos = 0
        nxt = time.monotonic()
        while not self.stop:
            nxt += 0.02
            if self.peer and self.sending and self.alive():
                payload = self.sound[pos:pos + 160]
                pos = (pos + 160) % len(self.sound)
                hdr = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                try:
                    self.sock.sendto(hdr + payload, self.peer)
                except OSError:
                    pass
                seq += 1
                ts += 160
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)

    def analyze(self, t_from, t_to, classify=audio.classify_talker):
        return audio.analyze(self.packets, t_from, t_to, classify)

    def close(self):
        self.stop = True
        try:
            self.sock.close()
        except OSError:
            pass
