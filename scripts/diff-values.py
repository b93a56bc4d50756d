#!/usr/bin/env python3
"""Every header value the simulator gets wrong, not only those the differential rule compares.

The differential tests (tests/live/differential/mod.rs) compare the values of the headers the
controller reads (tests/common/diff.rs, READ). This lists the others: run the differential
tests with SWITCHYARD_DIFF_DUMP=<dir>, then

    scripts/diff-values.py <dir> [scenario ...]

Events are paired as the rule pairs them (the n-th event of a name, subclass and action on one
channel, or in the global stream), and each header both carry with another value is counted,
with one example. Times, sequence numbers, ids, ports and durations are left out; what is left
still holds harness artifacts (the SIP caller's user agent and SDP, its port).
"""
import collections
import os
import re
import sys

VOLATILE = re.compile(
    r"^(Event-Date|Event-Sequence|Core-UUID|FreeSWITCH-|Event-Calling|Caller-.*Time|"
    r"variable_.*(time|epoch|stamp|sec|usec|msec|_uuid|cseq|tag|call_id|port|rtp_|sdp|"
    r"sip_via|sip_contact|sip_from_host|sip_req|sip_to_host|network|sip_received|sip_full|"
    r"sip_destination|duration)|.*[Ss]tamp|.*Time|seconds|milliseconds|samples|talking-|"
    r"Job-UUID|Conference-Unique-ID|Channel-Read-Codec-Bit-Rate|.*-Addr|Caller-Unique-ID|"
    r"variable_uuid|Other-Leg-Unique-ID)"
)
CHANNEL_EVENTS = ("CHANNEL", "CODEC", "CALL_UPDATE", "DTMF", "RECV_")


def events(path):
    out = []
    for block in open(path).read().split("\n\n"):
        lines = [l for l in block.split("\n") if l]
        if not lines or not lines[0].startswith("Event-Name: "):
            continue
        headers = {}
        for line in lines:
            if ": " in line:
                name, value = line.split(": ", 1)
                headers.setdefault(name, value)
        out.append(headers)
    return out


def key(h):
    name = h.get("Event-Name", "")
    channel = h.get("Unique-ID", "") if name.startswith(CHANNEL_EVENTS) else ""
    return (name, h.get("Event-Subclass", ""), h.get("Action", ""), channel)


def differences(real, sim):
    paired = collections.defaultdict(lambda: ([], []))
    for h in events(real):
        paired[key(h)][0].append(h)
    for h in events(sim):
        paired[key(h)][1].append(h)
    found = collections.Counter()
    example = {}
    for k, (rs, ss) in paired.items():
        for r, s in zip(rs, ss):
            for name, value in r.items():
                if name in s and s[name] != value and not VOLATILE.match(name):
                    d = (k[0], k[3], name)
                    found[d] += 1
                    example.setdefault(d, (value, s[name]))
    return found, example


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    names = sys.argv[2:] or sorted(
        f[: -len(".real.txt")] for f in os.listdir(folder) if f.endswith(".real.txt")
    )
    for name in names:
        found, example = differences(
            os.path.join(folder, f"{name}.real.txt"), os.path.join(folder, f"{name}.sim.txt")
        )
        for (event, channel, header), n in sorted(found.items()):
            real, sim = example[(event, channel, header)]
            print(f"{name}: {event} {channel} {header} x{n}: FreeSWITCH {real!r}, simulator {sim!r}")


if __name__ == "__main__":
    main()
