"""A node of the cross-node recording: one FreeSWITCH with the node link (config.py), its own
`event plain ALL` connection per start (kept in <out>/10_cross_node.<name><start>.{recv,sent}.raw),
its api connection, and the transcript lines of its commands, prefixed with its name."""

import os
import uuid

from .. import node
from ..esl import ApiConn, EventConn
from ..node import FreeSwitch, free_udp_tcp_port
from ..transcript import log, now, write
from . import config


class Node:
    def __init__(self, args, name):
        self.args = args
        self.name = name
        self.fs = FreeSwitch(args.freeswitch, args.conf, "switchyard-xnode-%s-" % name, name)
        self.dir = self.fs.dir
        self.esl_port = self.fs.esl_port
        self.sip_port = self.fs.sip_port
        self.rtp = self.fs.rtp
        self.node_port = free_udp_tcp_port()
        while self.node_port == self.sip_port:
            self.node_port = free_udp_tcp_port()
        self.ev = None
        self.a = None
        self.starts = 0
        self.media_timeout = 10000

    def d(self, sub):
        return self.fs.d(sub)

    def prepare(self, gateway_to=None, ping=5):
        def edit(conf):
            config.add_node_link(conf, gateway_to, ping, self.args.inbound_timer)
            config.write_dialplan(conf, self.media_timeout)
        self.fs.copy_conf(edit)

    def set_media_timeout(self, ms):
        """Rewrites the nodes context with another media_timeout and reloads the XML."""
        self.media_timeout = ms
        config.write_dialplan(self.d("conf"), ms)
        self.api("reloadxml")

    def start(self):
        """Starts the node (again), then its event and api connections."""
        self.starts += 1
        took = self.fs.start(
            console="console-%d.txt" % self.starts,
            env=dict(FS_NODE_SIP_IP="127.0.0.1", FS_NODE_SIP_PORT=str(self.node_port),
                     FS_NODE_ALLOWED_CIDR="127.0.0.1/32"),
            ready=node.profiles_running("inbound", "nodes"))
        tag = "%s%d" % (self.name, self.starts)
        self.ev = EventConn(self.esl_port, self.fs.password,
                            os.path.join(self.args.out, "10_cross_node.%s.recv.raw" % tag),
                            os.path.join(self.args.out, "10_cross_node.%s.sent.raw" % tag))
        self.a = ApiConn(self.esl_port, self.fs.password)
        log("node %s (start %d) pid %d ready after %.1f s: ESL 127.0.0.1:%d, SIP inbound "
            "127.0.0.1:%d, SIP nodes 127.0.0.1:%d, RTP %d-%d, dir %s"
            % (self.name, self.starts, self.fs.proc.pid, took, self.esl_port, self.sip_port,
               self.node_port, self.rtp[0], self.rtp[1], self.dir))

    def alive(self):
        return self.fs.alive()

    def returncode(self):
        return self.fs.proc.returncode if self.fs.proc else None

    def sigkill(self):
        """SIGKILL to its pid; the time it was sent."""
        t = now()
        self.fs.sigkill()
        log("node %s: SIGKILL sent to pid %d" % (self.name, self.fs.proc.pid))
        return t

    def close_conns(self):
        if self.ev:
            try:
                self.ev.close()
            except Exception:  # noqa
                pass
        if self.a:
            self.a.close()

    def stop(self):
        if self.alive():
            try:
                self.ev.close()
            except Exception:  # noqa
                pass
            self.fs.stop()

    # ---- commands

    def api(self, cmd, quiet=False, timeout=60):
        t = now()
        seq = self.ev.last_seq()
        reply = self.a.raw(cmd, timeout)
        if not quiet:
            write("[%8.3f] %s: api %s   (last Event-Sequence before: %d; reply after %.0f ms)"
                  % (t, self.name, cmd, seq, 1000 * (now() - t)))
            write("           | %r" % (reply if len(reply) < 600 else reply[:600] + "..."))
        return reply

    def bgapi(self, cmd):
        job = str(uuid.uuid4())
        t = now()
        text, _ = self.a.bgapi(cmd, job)
        write("[%8.3f] %s: bgapi %s   (Job-UUID: %s)" % (t, self.name, cmd, job))
        write("           | Reply-Text: %s" % text)
        return job, t

    def count(self):
        return self.ev.count()

    def wait(self, pred, timeout, since=0):
        return self.ev.wait_for(pred, timeout, since)
