"""t/smtp/smtptest.py - shared helpers of the smtp front-end test scripts.

Starts the capture backend (backend.py), smtp-sink or a private Postfix and
the submilter daemon on loopback ports of this suite's range, stops each by
its PID, and gives raw-socket clients and a tiny case runner whose last line
is "N passed, M failed". Ports, processes, the daemon start and the counter
are t/testlib.py's; this file adds this suite's port range, configuration,
backend and client. Nothing here talks to anything but 127.0.0.1.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(HERE, "..", "..")), "t"))
import testlib  # noqa: E402
from testlib import Procs  # noqa: E402,F401

SUBMILTER = testlib.SUBMILTER
PORT_LO, PORT_HI = 20000, 20999
PY = testlib.PY


def free_port():
    """A loopback port of our range that is free right now."""
    return testlib.free_port(PORT_LO, PORT_HI)


def wait_port(port, proc=None, timeout=10.0):
    testlib.wait_port(port, proc, timeout)


class Backend:
    """backend.py on a port of ours; messages() reads what it accepted."""

    def __init__(self, procs, workdir, *extra):
        self.dir = tempfile.mkdtemp(prefix="be-", dir=workdir)
        self.port = free_port()
        self.proc = procs.start([PY, os.path.join(HERE, "backend.py"), "--port", str(self.port),
                                 "--dir", self.dir] + list(extra), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def messages(self):
        path = os.path.join(self.dir, "messages.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def commands(self):
        path = os.path.join(self.dir, "commands.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]


class Daemon(testlib.Daemon):
    """submilter -f with a configuration of ours; log() is its stderr."""

    def __init__(self, procs, workdir, backend_port, smtp_extra="", plugins="",
                 root_extra="", port=None, proxy_port=None, extra_listen=()):
        dir = tempfile.mkdtemp(prefix="sm-", dir=workdir)
        port = port or free_port()
        self.spool = os.path.join(dir, "spool")
        os.mkdir(self.spool)
        text = 'hostname = "mx.test"\nspool_dir = "%s"\n' % self.spool
        text += 'plugin_dir = "%s"\n' % testlib.PLUGIN_DIR
        text += root_extra + "\n"
        extra = ', "127.0.0.1:%d proxy"' % proxy_port if proxy_port else ""
        extra += "".join(', "%s"' % l for l in extra_listen)
        text += ('smtp {\n  listen = { "127.0.0.1:%d"%s }\n  backend = "127.0.0.1:%d"\n%s\n}\n'
                 % (port, extra, backend_port, smtp_extra))
        text += plugins + "\n"
        # ready when it says so: a probe connection would be a session of its
        # own and count against max_sessions for a moment
        super().__init__(procs, dir, text, port=port,
                         ready="listening on 127.0.0.1:%d" % port)   # smtp_server.c's line


def tp_path():
    """The core's scriptable test plugin (t/plugins/testplug.so)."""
    top = os.environ.get("top_builddir", "")
    for cand in ("t/plugins/.libs/testplug.so", "t/.libs/testplug.so"):
        p = os.path.join(top, cand)
        if os.path.exists(p):
            return p
    raise RuntimeError("testplug.so not built")


def tp_block(name, rules=(), mods=()):
    """A plugin block loading testplug.so as name with rules and mods."""
    r = ", ".join('"%s"' % x for x in rules)
    m = ", ".join('"%s"' % x for x in mods)
    return 'plugin %s { path = "%s" mark = "%s" %s %s }\n' % (
        name, tp_path(), name, "rules = { %s }" % r if rules else "",
        "mods = { %s }" % m if mods else "")


class Client:
    """A raw SMTP client: exact bytes out, replies parsed in."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.s.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        return l + b"\n"

    def reply(self):
        """(code, [lines as str]) of one reply."""
        lines = []
        while True:
            l = self.line()
            lines.append(l.decode("latin-1").rstrip("\r\n"))
            if len(l) < 4 or l[3:4] != b"-":
                return int(l[:3]), lines

    def cmd(self, text):
        """text: str sent as latin-1, or bytes (UTF-8 tests)."""
        self.send(text + (b"\r\n" if isinstance(text, bytes) else "\r\n"))
        return self.reply()

    def closed(self, timeout=5):
        """True if the server closes the connection (after any data)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except socket.timeout:
            return False
        except ConnectionError:
            return True

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def greet(port, name="client.test"):
    c = Client(port)
    code, _ = c.reply()
    assert code == 220, code
    code, lines = c.cmd("EHLO " + name)
    assert code == 250, lines
    return c, lines


class Runner(testlib.Counter):
    """Cases run as functions: an exception (AssertionError included) is a
    failure; finish() prints "N passed, M failed" and exits."""

    def __init__(self, name):
        super().__init__()
        self.name = name

    def case(self, label, fn, *args):
        t0 = time.time()
        try:
            fn(*args)
        except Exception as e:
            self.check(label + ":", False, str(e))
            traceback.print_exc(limit=3, file=sys.stdout)
        else:
            self.check("%s (%.2fs)" % (label, time.time() - t0), True)

    def finish(self):
        sys.exit(testlib.Counter.finish(self))


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_for(fn, timeout=5.0, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)
