"""The called party of a dial-out: a SIPp UAS (one call, a scenario XML written here) that
answers, rings, rejects..., or a `Sink`, a UDP socket of this process that keeps the datagrams and
never answers. Both on a free 127.0.0.1 UDP port.
"""

import os
import re
import socket
import threading
import time

from .. import sipp
from ..node import free_udp_tcp_port, udp_free
from ..transcript import now

UAS_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="dialout uas %(kind)s">
  <recv request="INVITE" crlf="true">
    <action>
%(ereg)s    </action>
  </recv>
"""

EREG_FROM_TO_CONTACT = """      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" assign_to="contact"/>
"""
EREG_CSEQ = """      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseqnum"/>
"""
EREG_NONE = """      <log message="INVITE received"/>
"""

TAG = "[pid]SY[call_number]"

RESP_100 = """  <send>
    <![CDATA[
      SIP/2.0 100 Trying
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""

SDP = """
      v=0
      o=uas 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv"""


def resp(code, reason, sdp=False, retrans=False):
    body = SDP if sdp else ""
    ctype = "      Content-Type: application/sdp\n" if sdp else ""
    return """  <send%s>
    <![CDATA[
      SIP/2.0 %d %s
      [last_Via:]
      [last_From:]
      [last_To:];tag=%s
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
%s      Content-Length: [len]
%s
    ]]>
  </send>
""" % (' retrans="500"' if retrans else "", code, reason, TAG, ctype, body)


def pause(ms):
    return '  <pause milliseconds="%d"/>\n' % ms


RECV_ACK = '  <recv request="ACK" crlf="true"/>\n'

RTP = '  <nop><action><exec rtp_stream="%s,-1,0"/></action></nop>\n'

WAIT_BYE = """  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""

SEND_BYE = """  <send retrans="500">
    <![CDATA[
      BYE [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$to];tag=%s
      To: [$from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
""" % TAG

WAIT_CANCEL = """  <recv request="CANCEL"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=%s
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=%s
      [last_Call-ID:]
      CSeq: [$cseqnum] INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
""" % (TAG, TAG)


def uas_xml(kind, silence_path, ring_ms=1000, hold_ms=0):
    """kind: answer | answer_norpt | answer_bye (the UAS hangs up hold_ms after the ACK) |
    reject:<code>:<reason> | ring (100, 180, then waits for CANCEL) | ring183 (183 with SDP) |
    early:<provisional> (a provisional, ring_ms, then 200: 183sdp, 183, 180sdp)."""
    parts = []
    if kind == "answer_bye":
        ereg = EREG_FROM_TO_CONTACT
    elif kind in ("ring", "ring183"):
        ereg = EREG_CSEQ
    else:
        ereg = EREG_NONE
    parts.append(UAS_HEAD % {"kind": kind, "ereg": ereg})
    parts.append(RESP_100)
    if kind in ("answer", "answer_norpt", "answer_bye"):
        parts.append(resp(180, "Ringing"))
        parts.append(pause(ring_ms))
        parts.append(resp(200, "OK", sdp=True, retrans=True))
        parts.append(RECV_ACK)
        if kind != "answer_norpt":
            parts.append(RTP % silence_path)
        if kind == "answer_bye":
            parts.append(pause(hold_ms))
            parts.append(SEND_BYE)
        else:
            parts.append(WAIT_BYE)
    elif kind.startswith("reject:"):
        _, code, reason = kind.split(":", 2)
        parts.append(resp(int(code), reason, retrans=True))
        parts.append(RECV_ACK)
    elif kind == "ring":
        parts.append(resp(180, "Ringing"))
        parts.append(WAIT_CANCEL)
    elif kind == "ring183":
        parts.append(resp(183, "Session Progress", sdp=True))
        parts.append(RTP % silence_path)
        parts.append(WAIT_CANCEL)
    elif kind.startswith("early:") or kind.startswith("earlyrtp:"):
        prov = kind.split(":", 1)[1]
        if prov == "183sdp":
            parts.append(resp(183, "Session Progress", sdp=True))
        elif prov == "183":
            parts.append(resp(183, "Session Progress"))
        elif prov == "180sdp":
            parts.append(resp(180, "Ringing", sdp=True))
        else:
            raise ValueError(prov)
        if kind.startswith("earlyrtp:"):
            parts.append(RTP % silence_path)
        parts.append(pause(ring_ms))
        parts.append(resp(200, "OK", sdp=True, retrans=True))
        parts.append(RECV_ACK)
        if not kind.startswith("earlyrtp:"):
            parts.append(RTP % silence_path)
        parts.append(WAIT_BYE)
    else:
        raise ValueError(kind)
    parts.append("</scenario>\n")
    return "".join(parts)


class Uas:
    """A SIPp UAS on a free 127.0.0.1 UDP port, one call (-m 1)."""

    def __init__(self, workdir, label, kind, silence_path, **kw):
        self.label = label
        self.kind = kind
        self.port = free_udp_tcp_port()
        path = sipp.write_scenario(workdir, "uas-%s.xml" % label, uas_xml(kind, silence_path, **kw))
        self.msg_path = os.path.join(workdir, "uas-%s.messages.txt" % label)
        self.err_path = os.path.join(workdir, "uas-%s.errors.txt" % label)
        self.sipp = sipp.Sipp(workdir, "uas-%s.log" % label, [
            "sipp", "-sf", path, "-i", "127.0.0.1", "-p", str(self.port), "-m", "1",
            "-mi", "127.0.0.1", "-mp", str(sipp.media_port()), "-nostdin",
            "-trace_msg", "-message_file", self.msg_path,
            "-trace_err", "-error_file", self.err_path])
        # SIPp binds its port at start; give it a moment
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and udp_free(self.port):
            time.sleep(0.05)

    def wait(self, timeout):
        return self.sipp.wait(timeout)

    def stop(self):
        self.sipp.stop()

    def messages(self):
        """The SIP messages the UAS received and sent, as (seconds after the first message,
        "recv"/"sent", first line, [(header, value)]), from SIPp's -trace_msg file."""
        try:
            text = open(self.msg_path, encoding="latin-1").read()
        except OSError:
            return []
        out = []
        t_first = None
        for m in re.finditer(r"-{10,} (\d{4}-\d\d-\d\d) (\d\d):(\d\d):(\d\d\.\d+)\n"
                             r"UDP message (received|sent)[^\n]*\n\n?(.*?)(?=\n-{10,} |\Z)",
                             text, re.S):
            t = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            if t_first is None:
                t_first = t
            first, hdrs = parse_sip(m.group(6))
            out.append((t - t_first, "recv" if m.group(5) == "received" else "sent", first, hdrs))
        return out


def parse_sip(text):
    lines = text.replace("\r\n", "\n").split("\n")
    first = lines[0].strip()
    hdrs = []
    for line in lines[1:]:
        if not line.strip():
            break
        k, _, v = line.partition(":")
        hdrs.append((k.strip(), v.strip()))
    return first, hdrs


class Sink(threading.Thread):
    """Receives SIP over UDP on a free port and never answers."""

    def __init__(self, label):
        super().__init__(daemon=True)
        self.label = label
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.msgs = []  # (t, first line, headers)
        self.stop_flag = False
        self.start()

    def run(self):
        self.sock.settimeout(0.3)
        while not self.stop_flag:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            first, hdrs = parse_sip(data.decode("latin-1"))
            self.msgs.append((now(), first, hdrs))

    def stop(self):
        self.stop_flag = True
        try:
            self.sock.close()
        except OSError:
            pass
