"""Event Socket client side: frames, events, the recorded event connection, the api connection.

`EventConn` is the recorder: every byte it receives and sends goes to its .raw files as it is,
before anything is parsed (the fixtures are these files). `ApiConn` carries `api` and `bgapi`
commands and is not recorded byte for byte; the scenarios write its commands and replies to the
transcript.
"""

import socket
import threading
import time
import urllib.parse

from .transcript import now


def parse_headers(block):
    out = []
    for line in block.split(b"\n"):
        if not line:
            continue
        k, _, v = line.partition(b":")
        out.append((k.decode("latin-1"), v.lstrip(b" ").decode("latin-1")))
    return out


class Frames:
    """Splits an Event Socket byte stream into (headers, body) frames."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            i = self.buf.find(b"\n\n")
            if i < 0:
                break
            hdrs = parse_headers(self.buf[:i])
            clen = 0
            for k, v in hdrs:
                if k.lower() == "content-length":
                    clen = int(v)
            if len(self.buf) < i + 2 + clen:
                break
            body = self.buf[i + 2:i + 2 + clen]
            self.buf = self.buf[i + 2 + clen:]
            out.append((hdrs, body))
        return out


class Event:
    """A text/event-plain body: `headers` url-decoded, `raw_headers` as on the wire."""

    def __init__(self, t, body):
        self.t = t
        head, sep, inner = body.partition(b"\n\n")
        self.raw_headers = parse_headers(head)
        self.headers = [(k, urllib.parse.unquote(v, encoding="latin-1")) for k, v in self.raw_headers]
        self.body = inner if sep else b""
        self.h = {}
        for k, v in self.headers:
            self.h.setdefault(k.lower(), v)

    def get(self, k, default=None):
        return self.h.get(k.lower(), default)

    @property
    def name(self):
        return self.get("Event-Name")

    @property
    def seq(self):
        return int(self.get("Event-Sequence", "0"))


class EventConn(threading.Thread):
    """An event connection: auth, then `subscription` (`event plain ALL` unless told). With
    recv_path and sent_path, every byte received and sent is written there as it is. `closed_at`
    is when the node closed it (a SIGKILL shows here)."""

    def __init__(self, port, password, recv_path=None, sent_path=None,
                 subscription="event plain ALL"):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.recv_f = open(recv_path, "wb") if recv_path else None
        self.sent_f = open(sent_path, "wb") if sent_path else None
        self.frames = Frames()
        self.events = []
        self.cond = threading.Condition()
        self.replies = []
        self.closed_at = None
        self.start()
        self._wait_reply()  # auth/request
        self.send("auth %s\n\n" % password)
        r = self._wait_reply()
        assert "+OK" in dict(r).get("Reply-Text", ""), r
        self.send("%s\n\n" % subscription)
        r = self._wait_reply()
        self.sub_reply = dict(r).get("Reply-Text", "")
        assert "+OK" in self.sub_reply, r

    def send(self, text):
        data = text.encode()
        if self.sent_f:
            self.sent_f.write(data)
            self.sent_f.flush()
        self.sock.sendall(data)

    def _wait_reply(self, timeout=10):
        end = time.monotonic() + timeout
        with self.cond:
            while not self.replies:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no reply on event connection")
                self.cond.wait(left)
            return self.replies.pop(0)

    def run(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    self.closed_at = now()
                    self.cond.notify_all()
                return
            t = now()
            if self.recv_f:
                self.recv_f.write(data)
                self.recv_f.flush()
            for hdrs, body in self.frames.feed(data):
                ct = dict(hdrs).get("Content-Type", "")
                with self.cond:
                    if ct == "text/event-plain":
                        self.events.append(Event(t, body))
                    else:
                        self.replies.append(hdrs)
                    self.cond.notify_all()

    def last_seq(self):
        with self.cond:
            return self.events[-1].seq if self.events else 0

    def wait_for(self, pred, timeout, since=0):
        """First event (index >= since) matching pred, or None after timeout."""
        end = time.monotonic() + timeout
        with self.cond:
            i = since
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def since(self, n, until=None):
        """A copy of the events from index n (to index until)."""
        with self.cond:
            return list(self.events[n:until])

    def count(self):
        with self.cond:
            return len(self.events)

    def close(self):
        try:
            self.send("exit\n\n")
            time.sleep(0.5)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.join(3)
        for f in (self.recv_f, self.sent_f):
            if f:
                f.close()


class ApiConn:
    """`api` and `bgapi` commands, one at a time."""

    def __init__(self, port, password):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.frames = Frames()
        self.pending = []
        self._next()
        self.sock.sendall(("auth %s\n\n" % password).encode())
        h, _ = self._next()
        assert "+OK" in dict(h).get("Reply-Text", ""), h

    def _next(self, timeout=60):
        self.sock.settimeout(timeout)
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("api connection closed")
            self.pending.extend(self.frames.feed(data))
        return self.pending.pop(0)

    def raw(self, cmd, timeout=60):
        """The reply body of `api <cmd>`."""
        self.sock.sendall(("api %s\n\n" % cmd).encode())
        _, body = self._next(timeout)
        return body.decode("utf-8", "replace")

    def bgapi(self, cmd, job_uuid):
        """(Reply-Text, Job-UUID header) of `bgapi <cmd>` sent with a Job-UUID header."""
        self.sock.sendall(("bgapi %s\nJob-UUID: %s\n\n" % (cmd, job_uuid)).encode())
        hdrs, _ = self._next(10)
        d = dict(hdrs)
        return d.get("Reply-Text", ""), d.get("Job-UUID")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
