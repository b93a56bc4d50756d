"""SIPp (Debian's sip-tester 3.6.1) processes: the calling side's scenario, and the process of
any scenario, stopped by pid.

A caller's scenario sends an INVITE with `sdp`, ACKs the 200, then runs the blocks given (media
actions, then how the call ends: `WAIT_BYE` unless told).
"""

import os
import random
import signal
import subprocess
import uuid

from .node import udp_free

UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="@NAME@">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[caller_name]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SY[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:[caller]@[local_ip]:[local_port]
      Max-Forwards: 70
      User-Agent: @UA@
@EXTRA@      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
@SDP@
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[caller_name]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SY[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:[caller]@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
@AFTER@</scenario>
"""

WAIT_BYE = """  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>"""

SDP_PCMU = """      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv"""

SDP_DTMF = """      m=audio [auto_media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv"""


def sdp_to(port):
    """PCMU to an RTP end of this process (rtp.py)."""
    return """      m=audio %d RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=ptime:20
      a=sendrecv""" % port


def uac_xml(name, user_agent, sdp, after_ack, extra_headers=""):
    """after_ack: the blocks after the ACK, one a line (an empty one leaves an empty line)."""
    return (UAC.replace("@NAME@", name).replace("@UA@", user_agent)
            .replace("@EXTRA@", extra_headers).replace("@SDP@", sdp)
            .replace("@AFTER@", "".join(b + "\n" for b in after_ack)))


def media_stream(path):
    """Loops a headerless u-law file as RTP."""
    return '  <nop><action><exec rtp_stream="%s,-1,0"/></action></nop>' % path


def media_pcap_steps(steps):
    """[("pause", ms) or ("play", pcap path)]."""
    out = []
    for kind, val in steps:
        if kind == "pause":
            out.append('  <pause milliseconds="%d"/>' % val)
        else:
            out.append('  <nop><action><exec play_pcap_audio="%s"/></action></nop>' % val)
    return "\n".join(out)


_next_media = [30000 + 4 * random.randrange(0, 300)]


def media_port():
    """SIPp's own media port (-mp): two free UDP ports, taken in turn from 30000-32760."""
    while True:
        p = _next_media[0]
        _next_media[0] += 4
        if _next_media[0] > 32760:
            _next_media[0] = 30000
        if udp_free(p) and udp_free(p + 1):
            return p


class Sipp:
    """One SIPp process, its output in workdir/log_name."""

    def __init__(self, workdir, log_name, argv):
        self.log = open(os.path.join(workdir, log_name), "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=workdir)

    def wait(self, timeout):
        """True if it ended within timeout seconds."""
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self):
        """SIGTERM to its pid, SIGKILL after 3 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()


def write_scenario(workdir, name, xml):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(xml)
    return path


def caller(workdir, label, sip_port, did, number, xml, cid_prefix, message_file=None):
    """One call (-m 1) from `number` to `did` at 127.0.0.1:sip_port; its Call-ID starts with
    <cid_prefix>-<label>-."""
    path = write_scenario(workdir, "uac-%s.xml" % label, xml)
    argv = ["sipp", "127.0.0.1:%d" % sip_port, "-sf", path, "-s", did,
            "-key", "caller", number, "-key", "caller_name", "Caller%s" % label,
            "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(media_port()),
            "-cid_str", "%s-%s-%s" % (cid_prefix, label, uuid.uuid4().hex[:12]),
            "-m", "1", "-nostdin"]
    if message_file:
        argv += ["-trace_msg", "-message_file", message_file]
    return Sipp(workdir, "sipp-%s.log" % label, argv)
