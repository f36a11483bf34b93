"""t/testlib.py - what the Python script tests share.

For /usr/bin/python3 test scripts of t/ and plugins/*/t. A script finds it with
    sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "t"))
(make check puts top_srcdir in every test's environment).

It does:
  - free_port(lo, hi): a loopback port of the caller's range, free right now;
    listening()/wait_port(): wait until 127.0.0.1:PORT accepts (or a given
    process died);
  - Procs: every process a test starts, stopped by PID (TERM, then KILL)
    at exit;
  - Daemon: the built submilter (-f -c CONF) with a configuration text,
    its log to a file, ready when its port listens or a log line shows;
  - Sink: Postfix's smtp-sink on a port of ours, dumping each message it
    accepts into a folder of its own (messages(), holds(), find());
  - Postfix: a private Postfix instance (`postfix -c DIR start/stop`, its
    queue and data folders under DIR, DNS and peer name lookups off,
    smtpd on one loopback port, relaying to another), stopped by the PID
    of its master; a private Dovecot giving it SASL (start_dovecot);
  - self_signed(): a throw-away certificate and key for a TLS server;
  - Counter: named checks, whose summary is the line "N passed, M failed"
    and the exit status (1 if any failed).

Run as a program (`testlib.py postfix-conf|dovecot-conf ...`), it writes
the private Postfix's or Dovecot's configuration for the shell tests, so
there is one copy of each.

It does not: write test-specific configuration (submilter plugins, Postfix
restrictions and milters are the caller's text), talk to anything but
127.0.0.1, or decide what a test asserts.
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
PY = "/usr/bin/python3"


# ---- ports ----------------------------------------------------------------

def free_port(lo, hi):
    """free_port - a loopback port of [lo, hi] that is free right now."""
    for _ in range(200):
        p = random.randint(lo, hi)
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port in %d-%d" % (lo, hi))


def listening(port, proc=None, timeout=10.0):
    """listening - True once 127.0.0.1:port accepts; False at timeout or
    when proc (if given) has exited."""
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def wait_port(port, proc=None, timeout=10.0):
    """wait_port - like listening(), but raise RuntimeError on failure."""
    if listening(port, proc, timeout):
        return
    if proc is not None and proc.poll() is not None:
        raise RuntimeError("%s exited with %s" % (proc.args[0], proc.returncode))
    raise RuntimeError("port %d not listening" % port)


# ---- processes ------------------------------------------------------------

class Procs:
    """Every process started, stopped by PID (TERM, then KILL) at exit."""

    def __init__(self):
        self.procs = []
        atexit.register(self.stop_all)

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is not None:
            return
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)
        self.procs = []


class Daemon:
    """submilter -f -c DIR/submilter.conf with the given configuration text.

    Ready when `ready` (a log line) shows, or else when port listens.
    log() is its stdout and stderr."""

    def __init__(self, procs, dir, conf_text, port=None, ready=None, args=(), timeout=10.0):
        self.procs = procs
        self.dir = dir
        self.port = port
        self.conf = os.path.join(dir, "submilter.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        self.logpath = self.conf + ".log"
        self.logf = open(self.logpath, "w")
        self.proc = procs.start([SUBMILTER, "-f", "-c", self.conf] + list(args),
                                stdout=self.logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        if ready is not None:
            end = time.time() + timeout
            while ready not in self.log():
                if self.proc.poll() is not None or time.time() > end:
                    raise RuntimeError("daemon not started; log:\n%s" % self.log())
                time.sleep(0.02)
        elif port is not None:
            wait_port(port, self.proc, timeout)

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def stop(self):
        self.procs.stop(self.proc)


def self_signed(dir, cn):
    """A throw-away self-signed P-256 certificate for CN=cn, valid 2 days:
    (dir/cert.pem, dir/key.pem)."""
    cert, key = os.path.join(dir, "cert.pem"), os.path.join(dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=" + cn,
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


# ---- Postfix --------------------------------------------------------------

class Sink:
    """smtp-sink -u postfix dumping each accepted message into self.dir."""

    def __init__(self, procs, dir, port, backlog=20, flags=()):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        os.chmod(dir, 0o777)
        self.port = port
        argv = [SINK, "-u", "postfix", "-d", os.path.join(dir, "%M%S.")] + list(flags)
        self.proc = procs.start(argv + ["127.0.0.1:%d" % port, str(backlog)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        wait_port(port, self.proc)

    def messages(self):
        """Every dumped message (bytes), oldest name first."""
        out = []
        for f in sorted(glob.glob(os.path.join(self.dir, "*"))):
            try:
                with open(f, "rb") as fp:
                    out.append(fp.read())
            except FileNotFoundError:
                pass            # smtp-sink drops the file of an aborted transaction
        return out

    def find(self, needle, wait=0.0):
        """The first dumped message containing needle (bytes), or None."""
        end = time.time() + wait
        while True:
            for m in self.messages():
                if needle in m:
                    return m
            if time.time() >= end:
                return None
            time.sleep(0.05)

    def holds(self, needle, wait=0.0):
        """True if a dumped message contains needle (bytes)."""
        return self.find(needle, wait) is not None


MAIN_CF = [
    ("compatibility_level", "3.6"),
    ("queue_directory", "{dir}/queue"),
    ("data_directory", "{dir}/data"),
    ("mail_owner", "postfix"),
    ("setgid_group", "postdrop"),
    ("myhostname", "mx.test.example"),
    ("mydomain", "test.example"),
    ("mydestination", ""),
    ("inet_interfaces", "127.0.0.1"),
    ("inet_protocols", "ipv4"),
    ("mynetworks", "127.0.0.0/8"),
    ("relay_domains", "example.net"),
    ("relayhost", "[127.0.0.1]:{relay}"),
    ("smtp_dns_support_level", "disabled"),
    ("disable_dns_lookups", "yes"),
    ("smtpd_peername_lookup", "no"),
    ("smtpd_relay_restrictions", "permit_mynetworks, reject"),
    ("alias_maps", ""),
    ("alias_database", ""),
    ("local_recipient_maps", ""),
    ("biff", "no"),
    ("maillog_file", "{dir}/maillog"),
    ("maillog_file_prefixes", "{dir}"),
]

MASTER_CF = """127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix in dir: smtpd on 127.0.0.1:port, everything relayed
    to 127.0.0.1:relay, no DNS, no peer name lookups, no chroot.

    params override or add main.cf settings (a value of None drops one);
    tls_cn makes a self-signed P-256 certificate for smtpd (STARTTLS may).
    start() raises RuntimeError if Postfix does not start or listen; stop()
    is safe to call more than once. Needs root."""

    def __init__(self, dir, port, relay, params=None, tls_cn=None):
        self.dir, self.port, self.relay = dir, port, relay
        settings = dict((k, v.format(dir=dir, relay=relay)) for k, v in MAIN_CF)
        if tls_cn:
            settings.update(smtpd_tls_cert_file=dir + "/cert.pem",
                            smtpd_tls_key_file=dir + "/key.pem",
                            smtpd_tls_security_level="may")
        settings.update(params or {})
        self.tls_cn = tls_cn
        self.main_cf = "".join(("%s = %s" % (k, v)).rstrip() + "\n"
                               for k, v in settings.items() if v is not None)

    def write_conf(self):
        """main.cf, master.cf, the queue and data folders (and the
        certificate) in dir."""
        os.makedirs(os.path.join(self.dir, "queue"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(self.main_cf)
        with open(os.path.join(self.dir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        if self.tls_cn:
            self_signed(self.dir, self.tls_cn)

    def start(self):
        self.write_conf()
        r = subprocess.run(["postfix", "-c", self.dir, "start"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("postfix start: %s %s" % (r.stdout, r.stderr))
        if not listening(self.port, None, 15):
            raise RuntimeError("postfix smtpd not listening: %s" % self.maillog()[-1500:])

    def stop(self):
        """postfix stop, then wait for the master by PID (KILL after 5 s)."""
        pidfile = os.path.join(self.dir, "queue", "pid", "master.pid")
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return
        subprocess.run(["postfix", "-c", self.dir, "stop"], capture_output=True)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def maillog(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


DOVECOT_CONF = """base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log
protocols =
ssl = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
"""


def dovecot_conf(d, user, password):
    """A private Dovecot doing only SASL for Postfix in folder d: one user
    (passwd-file), its own base_dir, no listener but the auth socket.
    Returns (d/dovecot.conf, the auth socket's path for smtpd_sasl_path)."""
    os.makedirs(os.path.join(d, "run"), exist_ok=True)
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    with open(os.path.join(d, "passwd"), "w") as f:
        f.write("%s:{PLAIN}%s\n" % (user, password))
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(DOVECOT_CONF.format(d=d))
    return conf, os.path.join(d, "run", "auth-client")


def start_dovecot(procs, d, user, password, timeout=10.0):
    """dovecot_conf(), then dovecot -F started by procs: the auth socket's
    path once it exists, or None."""
    conf, sock = dovecot_conf(d, user, password)
    procs.start(["dovecot", "-F", "-c", conf], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(sock):
            return sock
        time.sleep(0.1)
    return None


# ---- results --------------------------------------------------------------

class Counter:
    """Named checks; summary() prints "N passed, M failed" and exits,
    finish() prints it and returns the exit status."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, label, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok   %s" % label)
        else:
            self.failed += 1
            print("FAIL %s %s" % (label, detail))
        sys.stdout.flush()
        return ok

    def eq(self, label, got, want):
        return self.check(label, got == want, "got %r, want %r" % (got, want))

    def crashed(self, where):
        """An exception ended a part of the test: one failure, traceback shown."""
        self.failed += 1
        print("FAIL %s: exception" % where)
        traceback.print_exc(file=sys.stdout)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.stdout.flush()
        return 1 if self.failed else 0

    def summary(self):
        sys.exit(self.finish())


def workdir(prefix):
    """A temporary folder others (postfix, nobody) can enter."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


def main(argv):
    """For shell tests (t/milter/lib.sh):
        testlib.py postfix-conf DIR PORT RELAY TLS_CN|- [name=value ...]
    writes the private Postfix's configuration into DIR (see Postfix);
        testlib.py dovecot-conf DIR USER PASSWORD
    the private Dovecot's (see dovecot_conf)."""
    if len(argv) == 4 and argv[0] == "dovecot-conf":
        dovecot_conf(*argv[1:])
        return
    if len(argv) < 5 or argv[0] != "postfix-conf":
        sys.exit("usage: testlib.py postfix-conf DIR PORT RELAY TLS_CN|- [name=value ...]\n"
                 "       testlib.py dovecot-conf DIR USER PASSWORD")
    params = dict(a.split("=", 1) for a in argv[5:])
    Postfix(argv[1], int(argv[2]), int(argv[3]), params,
            None if argv[4] == "-" else argv[4]).write_conf()


if __name__ == "__main__":
    main(sys.argv[1:])
