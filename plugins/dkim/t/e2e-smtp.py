#!/usr/bin/python3
"""e2e-smtp.py - spf and dkim through the daemon's smtp front-end.

In a private network namespace (nstest.py: own loopback, private
resolv.conf) run our DNS server on 127.0.0.1:53, smtp-sink as the backend
MTA (dumping each message), and submilter with the smtp front-end
(proxy_protocol = yes, so a PROXY v1 header presents the client as
192.0.2.x / 198.51.100.x) and the chain spf, dkim. Then, with Python's
smtplib:
  - an internal client's (192.0.2.0/24) message arrives signed (rsa and
    ed25519), and dkimpy accepts the signature; SPF says pass;
  - an outside client with MAIL FROM a domain publishing "-all" gets
    550 5.7.23; softfail is tagged; a DNS server that never answers gives
    451 4.4.3 at plugin_timeout;
  - an outside message signed by dkimpy gets dkim=pass through the real
    resolver; a missing key permerror, a SERVFAIL temperror;
  - a forged Authentication-Results with our authserv-id is gone.
Ports 23010-23019. Prints "N passed, M failed"; exit 77 without namespaces
or smtp-sink.
"""
import os
import shutil
import smtplib
import socket
import sys
import threading
import time

SPF_T = os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", "..", "..")), "plugins", "spf", "t")
sys.path.insert(0, SPF_T)
import nstest  # noqa: E402
import testlib  # noqa: E402  (nstest put t/ on the path)

import dkim  # noqa: E402

P_SMTP, P_SINK = 23010, 23011
SUBMILTER = os.environ.get("SUBMILTER") or sys.exit("SUBMILTER not set (run from make check)")
PLUGIN_DIR = os.environ.get("SUBM_TEST_PLUGIN_DIR") or sys.exit("SUBM_TEST_PLUGIN_DIR not set")
if not shutil.which("smtp-sink") and not os.path.exists("/usr/sbin/smtp-sink"):
    print("SKIP: smtp-sink (Postfix) not installed")
    sys.exit(77)
if not os.path.exists(SUBMILTER):
    print("SKIP: %s not built" % SUBMILTER)
    sys.exit(77)

tmp = nstest.enter_namespace("timeout:5 attempts:2")
T = nstest.Tally()
P = testlib.Procs()
procs = P.procs
SINK = None


def make_key(name, kind):
    return nstest.dkim_key(tmp, name, kind)


def wait_port(port, seconds=10):
    return testlib.listening(port, None, seconds)


class ProxySMTP(smtplib.SMTP):
    """smtplib with a PROXY v1 header before the greeting."""

    def __init__(self, client_ip, *a, **kw):
        self.client_ip = client_ip
        super().__init__(*a, **kw)

    def _get_socket(self, host, port, timeout):
        s = socket.create_connection((host, port), timeout)
        s.sendall(("PROXY TCP4 %s 127.0.0.1 40000 %d\r\n" % (self.client_ip, port)).encode())
        return s


def send(client_ip, sender, msg):
    """One session; returns (code, text) of the first refusal, or (250, qid)."""
    s = ProxySMTP(client_ip, "127.0.0.1", P_SMTP, timeout=30)
    try:
        s.ehlo("client.example")
        return nstest.mail_rcpt_data(s, sender, msg)
    finally:
        try:
            s.quit()
        except Exception:
            pass


message = nstest.dkim_message


def sunk(needle, seconds=10):
    """The dumped message holding needle (CRLF line ends), or None."""
    return nstest.sunk_crlf(SINK, needle, seconds)


def header_values(msg, name):
    """Unfolded values of every field called name."""
    head = msg.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    out, mine = [], False
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t"):
            if mine:
                out[-1] += " " + line.strip()
            continue
        n, _, v = line.partition(":")
        mine = n.lower() == name.lower()
        if mine:
            out.append(v.strip())
    return out


try:
    rsa, rsa_p = make_key("rsa.pem", "rsa")
    ed, ed_p = make_key("ed.pem", "ed25519")
    keys = {"rsa1._domainkey.example.com": "v=DKIM1; k=rsa; p=" + rsa_p,
            "ed1._domainkey.ed.example": "v=DKIM1; k=ed25519; p=" + ed_p}
    zone = {
        "example.com": [["TXT", "v=spf1 ip4:192.0.2.0/24 -all"]],
        "ed.example": [["TXT", "v=spf1 ip4:192.0.2.0/24 -all"]],
        "fail.example": [["TXT", "v=spf1 -all"]],
        "soft.example": [["TXT", "v=spf1 ~all"]],
        "slow.example": ["TIMEOUT"],
        "outside.example": [["TXT", "v=spf1 ip4:198.51.100.0/24 -all"]],
        "broken._domainkey.example.com": ["SERVFAIL"],
        "silent._domainkey.example.com": ["TIMEOUT"],
    }
    for name, rec in keys.items():
        zone[name] = [["TXT", [rec[i:i + 200] for i in range(0, len(rec), 200)]]]
    dns = nstest.DNS(tmp, zone)
    procs.append(dns.proc)

    os.chmod(tmp, 0o755)
    SINK = testlib.Sink(P, os.path.join(tmp, "sink"), P_SINK, 50)
    with open(os.path.join(tmp, "sign.table"), "w") as f:
        f.write("*@example.com example.com rsa1 %s\n*@ed.example ed.example ed1 %s\n" % (rsa, ed))
    D = testlib.Daemon(P, tmp, """pid_file = ""
spool_dir = "%(t)s"
plugin_dir = "%(pd)s"
plugin_timeout = 2s
smtp {
    listen = { "127.0.0.1:%(ps)d" }
    hostname = "mx.test.example"
    backend = "127.0.0.1:%(pk)d"
    proxy_protocol = yes
}
plugin spf { authserv_id = "mx.test.example" }
plugin dkim {
    sign_table = "%(t)s/sign.table"
    internal_networks = { "192.0.2.0/24" }
    verify = yes
    authserv_id = "mx.test.example"
    strip_forged = no
}
""" % {"t": tmp, "pd": PLUGIN_DIR, "ps": P_SMTP, "pk": P_SINK}, args=["-d"])
    sub, conf = D.proc, D.conf
    if not (wait_port(P_SINK) and wait_port(P_SMTP)):
        with open(conf + ".log") as f:
            T.check("submilter and smtp-sink listen", False, f.read()[-2000:])
        raise SystemExit
    dnsfunc = nstest.key_dnsfunc(keys)

    # 1. Internal clients: signed, and dkimpy agrees.
    for label, frm in (("rsa", "u@example.com"), ("ed25519", "u@ed.example")):
        code, text = send("192.0.2.10", frm, message(frm, "internal %s" % label))
        T.check("internal %s: accepted" % label, code == 250, "%d %s" % (code, text))
        got = sunk("internal %s" % label)
        T.check("internal %s: reached the backend" % label, got is not None)
        if got:
            sigs = header_values(got, "DKIM-Signature")
            T.check("internal %s: one DKIM-Signature" % label, len(sigs) == 1, sigs)
            try:
                ok = dkim.DKIM(got).verify(dnsfunc=dnsfunc)
            except dkim.DKIMException as e:
                ok = False
                print("  dkimpy: %s" % e)
            T.check("internal %s: dkimpy verifies the signature" % label, ok)
            rs = header_values(got, "Received-SPF")
            T.check("internal %s: Received-SPF pass" % label, rs and rs[0].startswith("pass"), rs)

    # 2. Outside clients and SPF.
    code, text = send("198.51.100.7", "u@fail.example", message("u@fail.example", "spf fail"))
    T.check("outside, MAIL FROM a -all domain: 550 5.7.23",
            code == 550 and text.startswith("5.7.23"), "%d %s" % (code, text))
    code, text = send("198.51.100.7", "u@soft.example", message("u@soft.example", "spf soft"))
    T.check("outside softfail: accepted", code == 250, "%d %s" % (code, text))
    got = sunk("spf soft")
    ars = header_values(got, "Authentication-Results") if got else []
    T.check("outside softfail: tagged", any("spf=softfail" in a for a in ars), ars)
    T.check("outside, unsigned: dkim=none", any("dkim=none" in a for a in ars), ars)
    t0 = time.time()
    code, text = send("198.51.100.7", "u@slow.example", message("u@slow.example", "spf slow"))
    took = time.time() - t0
    T.check("DNS that never answers: 451 4.4.3", code == 451 and text.startswith("4.4.3"),
            "%d %s" % (code, text))
    T.check("DNS that never answers: answered at plugin_timeout (2 s), not the resolver's 10 s",
            took < 4.5, "%.1f s" % took)

    # 2b. Parallel sessions: one waits on a silent DNS, twenty others (SPF
    # cache misses, signing with both keys) are not held up by it.
    results = {}

    def worker(i):
        if i == 0:
            t0 = time.time()
            results[i] = send("198.51.100.9", "v@slow.example", message("v@slow.example", "par slow")) \
                + (time.time() - t0,)
            return
        frm = "p%d@example.com" % i if i % 2 else "p%d@ed.example" % i
        t0 = time.time()
        results[i] = send("192.0.2.%d" % (100 + i), frm, message(frm, "parallel %d" % i)) \
            + (time.time() - t0,)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(21)]
    for th in threads:
        th.start()
        if th is threads[0]:
            time.sleep(0.2)
    for th in threads:
        th.join(30)
    fast = [results.get(i) for i in range(1, 21)]
    T.check("parallel: twenty sessions accepted", all(r and r[0] == 250 for r in fast), fast)
    T.check("parallel: none waited for the silent DNS (each < 1.5 s)",
            all(r and r[2] < 1.5 for r in fast), [round(r[2], 2) for r in fast if r])
    T.check("parallel: the silent one got 451 4.4.3", results.get(0) and results[0][0] == 451,
            results.get(0))
    verified = 0
    for i in range(1, 21):
        got = sunk("parallel %d" % i)
        try:
            verified += bool(got and dkim.DKIM(got).verify(dnsfunc=dnsfunc))
        except dkim.DKIMException:
            pass
    T.check("parallel: all twenty signatures verify in dkimpy", verified == 20, "%d" % verified)

    # 3. Outside signed mail, verified through the real resolver.
    with open(rsa, "rb") as f:
        pem = f.read()
    for label, sel, want in (("good key", b"rsa1", "dkim=pass"),
                             ("missing key", b"gone", "dkim=permerror"),
                             ("key lookup SERVFAIL", b"broken", "dkim=temperror")):
        msg = message("x@outside.example", "signed %s" % label)
        sig = dkim.sign(msg, sel, b"example.com", pem,
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        code, text = send("198.51.100.7", "x@outside.example", sig + msg)
        got = sunk("signed %s" % label)
        ars = header_values(got, "Authentication-Results") if got else []
        T.check("outside, %s: %s" % (label, want), code == 250 and any(want in a for a in ars),
                "%d %s %s" % (code, text, ars))

    # A key lookup the DNS never answers: 451 4.4.3 at plugin_timeout.
    msg = message("x@outside.example", "signed silent key")
    sig = dkim.sign(msg, b"silent", b"example.com", pem,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    t0 = time.time()
    code, text = send("198.51.100.7", "x@outside.example", sig + msg)
    took = time.time() - t0
    T.check("outside, key lookup never answered: 451 4.4.3 within plugin_timeout",
            code == 451 and text.startswith("4.4.3") and took < 4.5,
            "%d %s after %.1f s" % (code, text, took))

    # 4. A forged result with our authserv-id goes; another id's stays.
    forged = (b"Authentication-Results: mx.test.example; spf=pass smtp.mailfrom=forged\r\n"
              b"Authentication-Results: elsewhere.example; dkim=pass header.d=other\r\n")
    code, text = send("198.51.100.8", "x@outside.example",
                      message("x@outside.example", "forged ar", forged))
    got = sunk("forged ar")
    ars = header_values(got, "Authentication-Results") if got else []
    T.check("forged Authentication-Results removed", code == 250 and ars
            and not any("forged" in a for a in ars), ars)
    T.check("other authserv-id kept, ours added (spf and dkim)",
            sum(a.startswith("elsewhere.example;") for a in ars) == 1
            and sum(a.startswith("mx.test.example;") for a in ars) == 2, ars)
    T.check("submilter still running after all that", sub.poll() is None)
finally:
    P.stop_all()
    nstest.wrap_up(T, tmp)
sys.exit(T.finish())
