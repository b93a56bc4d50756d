"""Audio the callers send and what is heard of it: G.711, generated u-law, tone detection.

Generated audio is headerless u-law: SIPp 3.6.1's rtp_stream sends a file's bytes as they are, so
a WAV header would go out as 58 bytes of noise at the start of every loop (seen on the wire).
What a caller hears is told one character per 250 ms window (`analyze` with a `classify`).
"""

import math
import struct


def ulaw_encode(sample):
    BIAS = 0x84
    s = int(sample)
    sign = 0
    if s < 0:
        s = -s
        sign = 0x80
    s = min(s, 32635) + BIAS
    exponent = max(0, min(7, s.bit_length() - 1 - 7))
    mantissa = (s >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa)) & 0xFF


def ulaw_decode(b):
    b = ~b & 0xFF
    sign = b & 0x80
    exponent = (b >> 4) & 0x07
    mantissa = b & 0x0F
    s = ((mantissa << 3) + 0x84) << exponent
    s -= 0x84
    return -s if sign else s


ULAW = [ulaw_decode(i) for i in range(256)]


def alaw_decode(a):
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


# ---- generated audio

def silence_ulaw(ms=2000):
    return b"\xff" * (8 * ms)


def tone_ulaw(freq, samples, amp=8000):
    return bytes(ulaw_encode(amp * math.sin(2 * math.pi * freq * i / 8000.0))
                 for i in range(samples))


def tone_bursts_ulaw(freq, on_ms, off_ms, amp=8000):
    return tone_ulaw(freq, 8 * on_ms, amp) + silence_ulaw(off_ms)


def speech_ulaw_from_pcap(path, tail_ms=2000):
    """The speech of SIPp's g711a.pcap (A-law RTP, 7 s) as u-law, then silence: sent with
    rtp_stream it is continuous RTP, so the end of speech is a real silence, not a gap."""
    d = open(path, "rb").read()
    off, out = 24, bytearray()
    while off + 16 <= len(d):
        incl = struct.unpack("<I", d[off + 8:off + 12])[0]
        pkt = d[off + 16:off + 16 + incl]
        off += 16 + incl
        ip = pkt[14:]
        udp = ip[(ip[0] & 15) * 4:]
        payload = udp[8 + 12:]
        out += bytes(ulaw_encode(alaw_decode(b)) for b in payload)
    return bytes(out) + silence_ulaw(tail_ms)


# ---- what is heard

def goertzel_ratio(samples, freq):
    """The share of the window's power at freq (about 1 for a pure tone)."""
    n = len(samples)
    if n == 0:
        return 0.0
    k = 2 * math.cos(2 * math.pi * freq / 8000.0)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + k * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    total = sum(x * x for x in samples)
    if total <= 0:
        return 0.0
    return 2.0 * power / (n * total)


def level(samples):
    return sum(abs(x) for x in samples) / len(samples)


def classify_talker(samples, talk_hz=1250.0, play_hz=440.0):
    """'_' no packet, '.' silence, 'T' the talker's tone, '4' the 440 Hz played file, 'o' another
    sound (music, speech)."""
    if not samples:
        return "_"
    if level(samples) < 60:
        return "."
    if goertzel_ratio(samples, talk_hz) > 0.5:
        return "T"
    if goertzel_ratio(samples, play_hz) > 0.5:
        return "4"
    return "o"


FREQS = [(1250.0, "T"), (440.0, "4"), (700.0, "C"), (800.0, "8")]
MIX = {frozenset("T4"): "M", frozenset("TC"): "X"}
WITH_OTHER = {"T": "t", "C": "c", "4": "f", "8": "e"}


def classify_mix(samples):
    """As classify_talker, with the coach's 700 Hz 'C' and the beep's 800 Hz '8', and mixes:
    'M' 1250+440, 'X' 1250+700, '+' two other known tones, 't' 'c' 'f' 'e' one known tone with
    another sound."""
    if not samples:
        return "_"
    if level(samples) < 60:
        return "."
    r = {ch: goertzel_ratio(samples, f) for f, ch in FREQS}
    best = max(r, key=r.get)
    if r[best] > 0.8:
        return best
    present = frozenset(ch for ch, v in r.items() if v > 0.12)
    if len(present) >= 2:
        return MIX.get(frozenset(sorted(present, key=r.get)[-2:]), "+")
    if len(present) == 1:
        return WITH_OTHER[next(iter(present))]
    return "o"


def analyze(packets, t_from, t_to, classify, win=0.25):
    """One character per window of the u-law packets [(t, payload type, payload)] received from
    t_from to t_to."""
    chars = []
    t = t_from
    while t + win <= t_to + 1e-9:
        pl = b"".join(p for (tt, pt, p) in packets if t <= tt < t + win and pt == 0)
        chars.append(classify([ULAW[b] for b in pl]))
        t += win
    return "".join(chars)
