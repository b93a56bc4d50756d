"""Fixture recorders: what a real FreeSWITCH sends and answers, recorded on nodes started for the
run, for the facts files of fixtures/esl/ and the simulator.

    python3 scripts/record <subcommand> [--out DIR] [--transcript FILE] [--freeswitch BIN]
                                        [--conf DIR] [--keep] [subcommand options]

    participants         07_participants: participant features (--out defaults to fixtures/esl)
    announce-coach-beep  08_announce_coach_beep: announcements, coach, beeps (alias participants-2)
    dialout              09_dialout: outbound calls (--only A1,B,...)
    cross-node           10_cross_node: a room that spans two nodes (--only, --reps, ...)

`python3 scripts/record <subcommand> --help` tells what each records. Every run starts its own
FreeSWITCH (the installed binary, default /usr/local/freeswitch/bin/freeswitch) from a temporary
copy of freeswitch-conf/ on free 127.0.0.1 ports, keeps every byte of an `event plain ALL`
connection in <out>/<name>.{recv,sent}.raw, writes a transcript, and stops every FreeSWITCH and
SIPp it started by pid. Needs python3 (standard library only), sipp (Debian's sip-tester) and
/usr/share/sip-tester/*.pcap.

The shared parts: transcript.py (clock, transcript), node.py (an isolated FreeSWITCH), esl.py
(the recorded event connection, the api connection), sipp.py, rtp.py and audio.py (callers, what
they send and hear), commands.py (how Switchyard opens a room and joins a leg).
"""

import argparse
import os
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))

from record.cross_node import scenarios as cross_node  # noqa: E402
from record.dialout import scenarios as dialout  # noqa: E402
from record.rooms import announce, participants  # noqa: E402
from record import transcript  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
TMP = tempfile.gettempdir()


def tmp_file(name):
    return lambda args: os.path.join(TMP, name)


def out_file(name):
    return lambda args: os.path.join(args.out, name)


def dialout_options(p):
    p.add_argument("--only", default="", help="comma-separated scenario names (A1,B,G...)")


def cross_node_options(p):
    p.add_argument("--only", default="", help="comma-separated: F1,F2,J,N,ACL,S,G0,G1,G2 (a always runs)")
    p.add_argument("--reps", type=int, default=2, help="repetitions of G1 and G2")
    p.add_argument("--watch", type=int, default=75, help="seconds to watch after the first SIGKILL")
    p.add_argument("--watch2", type=int, default=20, help="seconds to watch after later SIGKILLs")
    p.add_argument("--ping", type=int, default=5, help="the gateway's OPTIONS ping interval (s)")
    p.add_argument("--siptrace", action="store_true",
                   help="sofia global siptrace on (SIP messages in each node's log; use with --keep)")
    p.add_argument("--inbound-timer", action="store_true",
                   help="test copy only: rtp-timer-name soft in the inbound profile too")
    p.add_argument("--talking", action="store_true", help="show start/stop-talking events")


# (name, aliases, summary, module, --out default (None: a new temporary directory), the
# transcript's default, more options)
COMMANDS = [
    ("participants", [], "07: deaf, hold, talking, DTMF, max members, moderator, relate...",
     participants, os.path.join(REPO, "fixtures", "esl"),
     tmp_file("07_participants.transcript.txt"), None),
    ("announce-coach-beep", ["participants-2"], "08: announcements, coach/whisper, beeps, wait-mod",
     announce, None, tmp_file("08_announce_coach_beep.transcript.txt"), None),
    ("dialout", [], "09: outbound calls", dialout, os.path.join(TMP, "switchyard-dialout"),
     out_file("09_dialout.transcript.txt"), dialout_options),
    ("cross-node", [], "10: a room that spans two nodes", cross_node,
     os.path.join(TMP, "switchyard-cross-node"), out_file("10_cross_node.transcript.txt"),
     cross_node_options),
]


def parser():
    top = argparse.ArgumentParser(prog="python3 scripts/record", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    subs = top.add_subparsers(dest="command", required=True, metavar="subcommand")
    for name, aliases, summary, module, out, transcript_default, options in COMMANDS:
        p = subs.add_parser(name, aliases=aliases, help=summary, description=module.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--out", default=out, help="where the recorded files go (default: %s)"
                       % (out or "a new temporary directory"))
        p.add_argument("--transcript", default=None, help="the transcript's path")
        p.add_argument("--freeswitch", default=os.environ.get(
            "SWITCHYARD_FREESWITCH", "/usr/local/freeswitch/bin/freeswitch"))
        p.add_argument("--conf", default=os.path.join(REPO, "freeswitch-conf"))
        p.add_argument("--keep", action="store_true", help="keep the nodes' temporary directories")
        if options:
            options(p)
        p.set_defaults(run=module.run, transcript_default=transcript_default)
    return top


def main():
    args = parser().parse_args()
    if not args.out:
        args.out = tempfile.mkdtemp(prefix="switchyard-08-")
    os.makedirs(args.out, exist_ok=True)
    transcript.begin(args.transcript or args.transcript_default(args))
    args.run(args)


if __name__ == "__main__":
    main()
