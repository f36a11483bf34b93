"""t/smtp/smtptest.py - shared helpers of the smtp front-end test scripts.

Starts the capture backend (backend.py), smtp-sink or a private Postfix and
the submilter daemon on loopback ports of this suite's range, stops each by
its PID, and gives raw-socket clients and a tiny case runner whose last line
is "N passed, M failed". Nothing here talks to anything but 127.0.0.1.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SUBMILTER = os.environ.get("SUBMILTER", "")
PORT_LO, PORT_HI = 20000, 20999
PY = "/usr/bin/python3"


def free_port():
    """A loopback port of our range that is free right now."""
    for _ in range(200):
        p = random.randint(PORT_LO, PORT_HI)
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port in %d-%d" % (PORT_LO, PORT_HI))


def wait_port(port, proc=None, timeout=10.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d not listening" % port)


class Procs:
    """Every process we start, stopped by PID at exit."""

    def __init__(self):
        self.procs = []
        import atexit
        atexit.register(self.stop_all)

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


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


class Daemon:
    """submilter -f with a configuration of ours; log() is its stderr."""

    def __init__(self, procs, workdir, backend_port, smtp_extra="", plugins="",
                 root_extra="", port=None, proxy_port=None, extra_listen=()):
        self.dir = tempfile.mkdtemp(prefix="sm-", dir=workdir)
        self.port = port or free_port()
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        self.conf = os.path.join(self.dir, "submilter.conf")
        with open(self.conf, "w") as f:
            f.write('hostname = "mx.test"\nspool_dir = "%s"\n' % self.spool)
            f.write('plugin_dir = "%s"\n' % os.environ.get("SUBM_TEST_PLUGIN_DIR", ""))
            f.write(root_extra + "\n")
            extra = ', "127.0.0.1:%d proxy"' % proxy_port if proxy_port else ""
            extra += "".join(', "%s"' % l for l in extra_listen)
            f.write('smtp {\n  listen = { "127.0.0.1:%d"%s }\n  backend = "127.0.0.1:%d"\n%s\n}\n'
                    % (self.port, extra, backend_port, smtp_extra))
            f.write(plugins + "\n")
        self.logpath = os.path.join(self.dir, "log")
        self.logf = open(self.logpath, "w")
        self.proc = procs.start([SUBMILTER, "-f", "-c", self.conf], stdout=self.logf,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # ready when it says so: a probe connection would be a session of its
        # own and count against max_sessions for a moment
        t0 = time.time()
        ready = "listening on 127.0.0.1:%d" % self.port      # smtp_server.c's line
        while ready not in self.log():
            if self.proc.poll() is not None or time.time() - t0 > 10:
                raise RuntimeError("daemon not started; log:\n%s" % self.log())
            time.sleep(0.02)

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()


def tp_path():
    """The core's scriptable test plugin (t/plugins/testplug.so)."""
    top = os.environ.get("top_builddir", "")
    for cand in ("t/plugins/.libs/testplug.so", "t/.libs/testplug.so"):
        p = os.path.join(top, cand)
        if os.path.exists(p):
            return p
    raise RuntimeError("testplug.so not built")


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


class Runner:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def case(self, label, fn, *args):
        t0 = time.time()
        try:
            fn(*args)
        except Exception as e:
            self.failed += 1
            print("FAIL %s: %s" % (label, e))
            traceback.print_exc(limit=3, file=sys.stdout)
        else:
            self.passed += 1
            print("ok   %s (%.2fs)" % (label, time.time() - t0))
        sys.stdout.flush()

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


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
