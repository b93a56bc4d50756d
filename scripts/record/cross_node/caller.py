"""A caller on node B: SIPp for the signalling (calling B's DID, parked there), an RTP end of this
process for its media (sends a 1250 Hz tone while its SIPp runs, keeps what B sends)."""

import os

from .. import audio, sipp
from ..rtp import RtpEnd

DID = "15551230000"
CALLER_HZ = 1250.0

# SIPp has no hook for "hang up now": a caller that hangs up itself pauses @MS@ ms, then sends BYE
END_SEND_BYE = """  <pause milliseconds="@MS@"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[caller_name]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SY[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:[caller]@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>"""


class Caller:
    def __init__(self, work, sip_port, label, number, extra_headers="", bye_after_ms=None):
        self.label = label
        self.number = number
        self.rtp = RtpEnd(label, audio.tone_ulaw(CALLER_HZ, 160))  # 25 periods exactly
        end = sipp.WAIT_BYE if bye_after_ms is None else END_SEND_BYE.replace("@MS@", str(bye_after_ms))
        xml = sipp.uac_xml("cross-node caller", "switchyard-cross-node-recorder",
                           sipp.sdp_to(self.rtp.port), [end], extra_headers)
        self.sipp = sipp.caller(work, label, sip_port, DID, number, xml, "xn",
                                message_file=os.path.join(work, "sipp-%s.messages.txt" % label))
        self.proc = self.sipp.proc
        self.rtp.alive = lambda: self.proc.poll() is None  # no RTP once its call is over
        self.uuid = None

    def stop(self):
        self.sipp.stop()
        self.rtp.close()
