"""nstest.py - shared by the SPF/DKIM DNS test scripts: run the test in a
private network and mount namespace (its own loopback; a private
/etc/resolv.conf bind-mounted over the real one, which is never touched),
start dnsserver.py on 127.0.0.1:53 there, and count results (with
t/testlib.py's Counter); and make the DKIM keys the dkim tests publish.

A script calls enter_namespace() first: it re-executes itself under
`unshare -mn` (exit 77, automake's SKIP, if namespaces are not allowed).
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(HERE, "..", "..", "..")), "t"))
import testlib  # noqa: E402


# The "N passed, M failed" counter: check(label, ok, detail), finish().
Tally = testlib.Counter


def enter_namespace(resolv_options="timeout:1 attempts:1"):
    """Re-exec under unshare, then set up loopback and resolv.conf.
    Returns a temporary folder (removed at exit by the caller)."""
    if os.environ.get("SUBM_NETNS") != "1":
        if subprocess.run(["unshare", "-mn", "--propagation", "private", "true"],
                          capture_output=True).returncode != 0:
            print("SKIP: cannot make a private network namespace (unshare -mn)")
            sys.exit(77)
        env = dict(os.environ, SUBM_NETNS="1")
        os.execvpe("unshare", ["unshare", "-mn", "--propagation", "private", "--",
                               sys.executable] + sys.argv, env)
    tmp = tempfile.mkdtemp(prefix="subm-ns.")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = os.path.join(tmp, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\noptions %s\n" % resolv_options)
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    return tmp


class DNS:
    """dnsserver.py on 127.0.0.1:53 serving a zone we can rewrite."""

    def __init__(self, tmp, zone, timeout_mode="drop"):
        self.zone_path = os.path.join(tmp, "zone.json")
        self.log = os.path.join(tmp, "queries.log")
        self.write(zone)
        ready = os.path.join(tmp, "dns.ready")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "dnsserver.py"), "--zone", self.zone_path,
             "--log", self.log, "--ready", ready, "--timeout-mode", timeout_mode])
        for _ in range(100):
            if os.path.exists(ready):
                return
            time.sleep(0.05)
        raise RuntimeError("dnsserver did not start")

    def write(self, zone):
        tmp = self.zone_path + ".new"
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            json.dump(zone, f)
        os.replace(tmp, self.zone_path)
        # The server notices changes by mtime; make sure this one differs.
        t = time.time_ns()
        os.utime(self.zone_path, ns=(t, t))

    def queries(self):
        try:
            with open(self.log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def spfrun(conf_text, cases, tmp):
    """Run (ip, helo, sender) cases through t/spfrun with conf_text; returns
    a list of dicts: verdict, code, ecode, result, ms, text."""
    conf = os.path.join(tmp, "spfrun.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    spfrun_bin = os.environ.get("SPFRUN") or sys.exit("SPFRUN not set (run from make check)")
    lines = "".join("%s\t%s\t%s\n" % c for c in cases)
    r = subprocess.run([spfrun_bin, conf], input=lines.encode("utf-8", "surrogateescape"),
                       capture_output=True, timeout=600)
    out = []
    for line in r.stdout.decode(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 4:
            continue
        v, code, ecode = parts[0].split(" ")
        out.append({"verdict": int(v), "code": int(code), "ecode": ecode,
                    "result": parts[1], "ms": int(parts[2]), "text": parts[3]})
    if len(out) != len(cases):
        raise RuntimeError("spfrun gave %d results for %d cases: %s" %
                           (len(out), len(cases), r.stdout.decode(errors="replace")[-800:]
                            + r.stderr.decode(errors="replace")[-800:]))
    return out


def openssl(*args, data=None):
    """openssl's stdout; raises CalledProcessError if it fails."""
    return subprocess.run(["openssl"] + list(args), input=data, capture_output=True,
                          check=True).stdout


def dkim_key(d, name, kind):
    """A private PEM d/name (mode 600, kind rsa or ed25519) and the p= value
    of its public key."""
    path = os.path.join(d, name)
    if kind == "rsa":
        openssl("genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    else:
        openssl("genpkey", "-algorithm", "ed25519", "-out", path)
    os.chmod(path, 0o600)
    der = openssl("pkey", "-in", path, "-pubout", "-outform", "DER")
    # RFC 8463: an ed25519 p= is the raw 32-octet key, not SubjectPublicKeyInfo.
    return path, base64.b64encode(der if kind == "rsa" else der[-32:]).decode()


def dkim_message(frm, subject, extra=b""):
    """A small message (bytes, CRLF) from frm with subject, a unique
    Message-ID and the subject in the body; extra goes before From:."""
    return (extra + b"From: <%s>\r\nTo: rcpt@example.net\r\nSubject: %s\r\n"
            b"Date: Tue, 01 Dec 2026 13:00:00 +0000\r\nMessage-ID: <%d@example.com>\r\n"
            b"\r\nBody of %s.\r\n" % (frm.encode(), subject.encode(), time.time_ns(),
                                       subject.encode()))


def mail_rcpt_data(s, sender, msg, rcpt="rcpt@example.net"):
    """MAIL, RCPT and DATA on an open smtplib session: (code, text) of the
    first refusal, or of the reply to the final dot."""
    code, text = s.mail(sender)
    if code != 250:
        return code, text.decode(errors="replace")
    code, text = s.rcpt(rcpt)
    if code != 250:
        return code, text.decode(errors="replace")
    code, text = s.data(msg)
    return code, text.decode(errors="replace")


def sunk_crlf(sink, needle, seconds):
    """The message of testlib.Sink sink holding needle (str), with CRLF
    line ends, waiting up to seconds; None if none came."""
    data = sink.find(needle.encode(), seconds)
    if data is None:
        return None
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def key_dnsfunc(keys):
    """A dnsfunc for dkimpy answering from keys (name -> TXT text), so
    dkimpy verifies without DNS."""
    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        rec = keys.get(name.rstrip("."))
        return rec.encode() if rec else None
    return dnsfunc


def wrap_up(T, tmp, log_name="submilter.conf.log"):
    """End of a daemon run in tmp: check the daemon's log (tmp/log_name)
    holds no sanitizer report about the spf/dkim plugins, then remove tmp
    (kept with KEEP=1)."""
    log = os.path.join(tmp, log_name)
    if os.path.exists(log):
        with open(log, errors="replace") as f:
            text = f.read()
        # Memory errors anywhere; leaks only where our plugins allocated
        # (others' leaks are theirs to report).
        bad = "ERROR: AddressSanitizer" in text or any(
            "/plugins/spf/" in block or "/plugins/dkim/" in block
            for block in text.split("Direct leak")[1:] + text.split("Indirect leak")[1:])
        T.check("no sanitizer report about the spf/dkim plugins", not bad,
                text[text.find("Sanitizer") - 200:][:1500])
    if os.environ.get("KEEP"):
        print("# kept %s" % tmp)
    else:
        cleanup(tmp)


def cleanup(tmp):
    shutil.rmtree(tmp, ignore_errors=True)
