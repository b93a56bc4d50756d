"""One isolated FreeSWITCH: the installed binary, a temporary copy of freeswitch-conf/, SIP, RTP and
the Event Socket on 127.0.0.1 on free ports, a random Event Socket password.

It owns the node's directory, its ports and its process (started, stopped by SIGTERM to its pid,
or SIGKILLed). What the copy of the configuration changes is the caller's (`edit`); the Event
Socket connections are the caller's too (esl.py).
"""

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

from .esl import ApiConn
from .transcript import now

SUBDIRS = ["log", "db", "run", "rec", "storage", "cache", "sounds"]


# ---- ports

def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def free_udp_tcp_port():
    """A port free for both UDP and TCP (SIP listens on both)."""
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        p = u.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", p))
            return p
        except OSError:
            pass
        finally:
            t.close()
            u.close()


def udp_free(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_rtp_range(n=200):
    while True:
        start = 10000 + 2 * random.randrange(0, (20000 - n) // 2)
        if all(udp_free(p) for p in range(start, start + n, 10)):
            return start, start + n - 1


# ---- readiness

def inbound_running(status):
    """`sofia status` once the profile is up."""
    return "RUNNING" in status


def profiles_running(*names):
    """`sofia status` once every named profile is up."""
    def ready(status):
        return all(re.search(r"\b%s\s+profile\s.*RUNNING" % n, status) for n in names)
    return ready


# ---- the node

class FreeSwitch:
    def __init__(self, binary, conf, prefix, name=""):
        self.binary = binary
        self.conf_src = conf
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.password = uuid.uuid4().hex
        self.esl_port = free_tcp_port()
        self.sip_port = free_udp_tcp_port()
        self.rtp = free_rtp_range(200)
        self.proc = None

    def d(self, sub):
        return os.path.join(self.dir, sub)

    @property
    def sounds(self):
        """The installed sounds/ (test.wav), next to the binary's bin/."""
        return os.path.join(os.path.dirname(os.path.dirname(self.binary)), "sounds")

    def copy_conf(self, edit=None):
        """Copies the configuration into the node's directory; `edit(conf_dir)` changes the copy."""
        shutil.copytree(self.conf_src, self.d("conf"))
        for sub in SUBDIRS:
            os.makedirs(self.d(sub), exist_ok=True)
        if edit:
            edit(self.d("conf"))

    def start(self, console="console.txt", env=None, ready=inbound_running):
        """Starts the node and waits (40 s at most) until `ready(sofia status)`. Returns the
        seconds it took. RuntimeError if the node exits or is not ready."""
        env = dict(os.environ, FS_ESL_PASSWORD=self.password, FS_ESL_LISTEN_IP="127.0.0.1",
                   FS_ESL_LISTEN_PORT=str(self.esl_port), FS_SIP_IP="127.0.0.1",
                   FS_EXTERNAL_IP="127.0.0.1", FS_SIP_PORT=str(self.sip_port),
                   FS_RTP_START_PORT=str(self.rtp[0]), FS_RTP_END_PORT=str(self.rtp[1]),
                   **(env or {}))
        moddir = os.path.join(os.path.dirname(os.path.dirname(self.binary)), "mod")
        d = self.d
        with open(d(console), "w") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-nf", "-nc", "-nonat", "-conf", d("conf"), "-log", d("log"),
                 "-db", d("db"), "-run", d("run"), "-recordings", d("rec"),
                 "-storage", d("storage"), "-cache", d("cache"), "-sounds", d("sounds"),
                 "-mod", moddir],
                cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        who = "FreeSWITCH" + (" " + self.name if self.name else "")
        t0 = now()
        deadline = time.monotonic() + 40
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited at start-up; see %s" % (who, d(console)))
            try:
                a = ApiConn(self.esl_port, self.password)
                status = a.raw("sofia status")
                a.sock.close()
                if ready(status):
                    return now() - t0
            except (OSError, AssertionError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("%s not ready" % who)
            time.sleep(0.2)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM to its pid, SIGKILL after 30 s."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def sigkill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def remove(self, keep):
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
