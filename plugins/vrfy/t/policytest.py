"""policytest.py - what the daemon tests of the vrfy, size and regex plugins
share: Postfix's smtp-sink as the backend (dumping what it accepts), the
submilter daemon with an smtp {} block in front of it, both on loopback
ports of a range given by the caller, stopped by PID at exit; and a case
tally whose last line is "N passed, M failed".

Nothing here talks to anything but 127.0.0.1.
"""
import atexit
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SUBMILTER = os.environ.get("SUBMILTER", "")
PLUGIN_DIR = os.environ.get("SUBM_TEST_PLUGIN_DIR", "")
SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


def need_tools():
    """Exit 77 (skip) if the daemon or smtp-sink is missing."""
    if not SUBMILTER or not os.path.exists(SUBMILTER):
        print("SKIP: SUBMILTER not built (run from make check)")
        sys.exit(77)
    if not os.path.exists(SINK):
        print("SKIP: smtp-sink (Postfix) not installed")
        sys.exit(77)


class Ports:
    """Free loopback ports from [lo, hi]."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def free(self):
        for _ in range(200):
            p = random.randint(self.lo, self.hi)
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                continue
            finally:
                s.close()
        raise RuntimeError("no free port in %d-%d" % (self.lo, self.hi))


def wait_port(port, proc, timeout=10.0):
    """Wait until something listens on port; fail if proc died."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (proc.args[0], proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d not listening" % port)


class Procs:
    """Every process started, stopped by PID (TERM, then KILL) at exit."""

    def __init__(self):
        self.procs = []
        atexit.register(self.stop_all)

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)
        self.procs = []


class Env:
    """A work folder, the processes, the ports."""

    def __init__(self, name, lo, hi):
        need_tools()
        self.dir = tempfile.mkdtemp(prefix=name + "-")
        os.chmod(self.dir, 0o755)
        self.procs = Procs()
        self.ports = Ports(lo, hi)
        atexit.register(shutil.rmtree, self.dir, True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)


class Sink:
    """smtp-sink dumping each accepted message into its own folder."""

    def __init__(self, env, *flags):
        self.dir = tempfile.mkdtemp(prefix="sink-", dir=env.dir)
        os.chmod(self.dir, 0o777)
        self.port = env.ports.free()
        argv = [SINK, "-u", "postfix", "-d", os.path.join(self.dir, "%M%S.")] + list(flags)
        self.proc = env.procs.start(argv + ["127.0.0.1:%d" % self.port, "20"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def messages(self):
        out = []
        for f in sorted(glob.glob(os.path.join(self.dir, "*"))):
            try:
                with open(f, "rb") as fp:
                    out.append(fp.read())
            except FileNotFoundError:
                pass            # smtp-sink drops the file of an aborted transaction
        return out

    def holds(self, needle, wait=0.0):
        """True if a dumped message contains needle (bytes)."""
        end = time.time() + wait
        while True:
            if any(needle in m for m in self.messages()):
                return True
            if time.time() >= end:
                return False
            time.sleep(0.05)


class Daemon:
    """submilter -f -c CONF with an smtp {} block in front of port backend."""

    def __init__(self, env, backend, plugins, smtp_extra="", root_extra=""):
        self.env = env
        self.port = env.ports.free()
        spool = tempfile.mkdtemp(prefix="spool-", dir=env.dir)
        self.conf = os.path.join(spool, "submilter.conf")
        with open(self.conf, "w") as f:
            f.write('pid_file = ""\nhostname = "mx.test"\nspool_dir = "%s"\n' % spool)
            f.write('plugin_dir = "%s"\n%s\n' % (PLUGIN_DIR, root_extra))
            f.write('smtp {\n  listen = { "127.0.0.1:%d" }\n  backend = "127.0.0.1:%d"\n%s\n}\n'
                    % (self.port, backend, smtp_extra))
            f.write(plugins + "\n")
        self.logpath = self.conf + ".log"
        self.logf = open(self.logpath, "w")
        self.proc = env.procs.start([SUBMILTER, "-f", "-c", self.conf],
                                    stdout=self.logf, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def stop(self):
        self.env.procs.stop(self.proc)


class Tally:
    """Named checks; summary() prints "N passed, M failed" and exits."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok   %s" % name)
        else:
            self.failed += 1
            print("FAIL %s %s" % (name, detail))
        sys.stdout.flush()
        return ok

    def eq(self, name, got, want):
        return self.check(name, got == want, "got %r, want %r" % (got, want))

    def crashed(self, where):
        self.failed += 1
        print("FAIL %s: exception" % where)
        traceback.print_exc(file=sys.stdout)

    def summary(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


def reply(r):
    """(code, text) of an smtplib reply, text as str."""
    return r[0], r[1].decode("latin-1") if isinstance(r[1], bytes) else r[1]


class MilterDaemon(Daemon):
    """submilter -f -c CONF with only a milter {} block (inet on loopback)."""

    def __init__(self, env, plugins, root_extra=""):
        self.env = env
        self.port = env.ports.free()
        spool = tempfile.mkdtemp(prefix="spool-", dir=env.dir)
        self.conf = os.path.join(spool, "submilter.conf")
        with open(self.conf, "w") as f:
            f.write('pid_file = ""\nhostname = "mx.test"\nspool_dir = "%s"\n' % spool)
            f.write('plugin_dir = "%s"\n%s\n' % (PLUGIN_DIR, root_extra))
            f.write('milter {\n  listen = "inet:%d@127.0.0.1"\n}\n' % self.port)
            f.write(plugins + "\n")
        self.logpath = self.conf + ".log"
        self.logf = open(self.logpath, "w")
        self.proc = env.procs.start([SUBMILTER, "-f", "-c", self.conf],
                                    stdout=self.logf, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)


def miltertest(tally, script, port, timeout=60):
    """Run a miltertest Lua script (globals PORT) and tally its "ok - " /
    "not ok - " lines; a script that dies counts as a failure."""
    mt = shutil.which("miltertest")
    if mt is None:
        tally.check("miltertest installed", False, "apt-get install miltertest")
        return
    r = subprocess.run([mt, "-s", script, "-D", "PORT=%d" % port], capture_output=True,
                       text=True, timeout=timeout)
    seen = 0
    for line in r.stdout.splitlines():
        if line.startswith("ok - "):
            tally.check(line[5:], True)
            seen += 1
        elif line.startswith("not ok - "):
            tally.check(line[9:], False)
            seen += 1
        elif line.startswith("#"):
            print(line)
    tally.check("%s ran to the end" % os.path.basename(script),
                r.returncode == 0 and seen > 0, "rc %d: %s" % (r.returncode, r.stderr))
