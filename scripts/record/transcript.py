"""The run's clock and its transcript.

`now()` is seconds since the tool started; every time in a transcript is on this clock. The
transcript is one text file per run, each line also printed; one is open at a time (`begin`).
"""

import threading
import time

T0 = time.monotonic()


def now():
    return time.monotonic() - T0


class Transcript:
    def __init__(self, path):
        self.f = open(path, "w", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, line=""):
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()
        print(line, flush=True)


_current = None


def begin(path):
    """Opens the run's transcript; `write` and `log` go there from now on."""
    global _current
    _current = Transcript(path)


def write(line=""):
    _current.write(line)


def log(msg):
    """A line stamped with the time it is written."""
    write("[%8.3f] %s" % (now(), msg))
