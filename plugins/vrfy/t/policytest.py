"""policytest.py - what the daemon tests of the vrfy, size and regex plugins
share: Postfix's smtp-sink as the backend (dumping what it accepts), the
submilter daemon with an smtp {} block in front of it, both on loopback
ports of a range given by the caller, stopped by PID at exit; and a case
tally whose last line is "N passed, M failed".

The ports, processes, smtp-sink, daemon and tally are t/testlib.py's; this
file adds the configuration these tests share. Nothing here talks to
anything but 127.0.0.1.
"""
import atexit
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")), "t"))
import testlib  # noqa: E402
from testlib import Procs, wait_port  # noqa: E402,F401

SUBMILTER = testlib.SUBMILTER
PLUGIN_DIR = testlib.PLUGIN_DIR
SINK = testlib.SINK
Tally = testlib.Counter


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
        return testlib.free_port(self.lo, self.hi)


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


class Sink(testlib.Sink):
    """smtp-sink dumping each accepted message into its own folder."""

    def __init__(self, env, *flags):
        super().__init__(env.procs, tempfile.mkdtemp(prefix="sink-", dir=env.dir),
                         env.ports.free(), 20, flags)


def conf_head(spool, root_extra):
    """The root settings every daemon of these tests gets."""
    return ('pid_file = ""\nhostname = "mx.test"\nspool_dir = "%s"\n'
            'plugin_dir = "%s"\n%s\n' % (spool, PLUGIN_DIR, root_extra))


class Daemon(testlib.Daemon):
    """submilter -f -c CONF with an smtp {} block in front of port backend."""

    def __init__(self, env, backend, plugins, smtp_extra="", root_extra=""):
        port = env.ports.free()
        spool = tempfile.mkdtemp(prefix="spool-", dir=env.dir)
        text = conf_head(spool, root_extra)
        text += ('smtp {\n  listen = { "127.0.0.1:%d" }\n  backend = "127.0.0.1:%d"\n%s\n}\n'
                 % (port, backend, smtp_extra))
        super().__init__(env.procs, spool, text + plugins + "\n", port=port)


def reply(r):
    """(code, text) of an smtplib reply, text as str."""
    return r[0], r[1].decode("latin-1") if isinstance(r[1], bytes) else r[1]


def transaction(port, msg, sender="a@example.org", rcpt="b@example.net", mail_opts=()):
    """One smtplib transaction (EHLO client.example): (code, text) of the
    first refusal, or of the reply to the final dot."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        s.ehlo("client.example")
        code, text = reply(s.mail(sender, list(mail_opts)))
        if code != 250:
            return code, text
        code, text = reply(s.rcpt(rcpt))
        if code != 250:
            return code, text
        return reply(s.data(msg))
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode("latin-1")
    finally:
        try:
            s.quit()
        except Exception:
            pass


class MilterDaemon(testlib.Daemon):
    """submilter -f -c CONF with only a milter {} block (inet on loopback)."""

    def __init__(self, env, plugins, root_extra=""):
        port = env.ports.free()
        spool = tempfile.mkdtemp(prefix="spool-", dir=env.dir)
        text = conf_head(spool, root_extra)
        text += 'milter {\n  listen = "inet:%d@127.0.0.1"\n}\n' % port
        super().__init__(env.procs, spool, text + plugins + "\n", port=port)


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


def milter_suite(name, lo, hi, plugins, lua, wants):
    """A plugin's whole milter test: the daemon with a milter {} block and
    plugins (text, or a function of the Env giving it), the MTA played by
    miltertest with the Lua script lua, then each (label, text) of wants
    must be in the daemon's log. Prints the log if anything failed; exits
    with the summary."""
    env = Env(name, lo, hi)
    T = Tally()
    d = None
    try:
        d = MilterDaemon(env, plugins(env) if callable(plugins) else plugins)
        miltertest(T, lua, d.port)
        log = d.log()
        for label, text in wants:
            T.check(label, text in log)
    except Exception:
        T.crashed(name)
    if d is not None and T.failed:
        print(d.log())
    env.procs.stop_all()
    T.summary()
