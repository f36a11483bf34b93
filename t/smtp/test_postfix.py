#!/usr/bin/python3
"""t/smtp/test_postfix.py - swaks through submilter to a real Postfix.

A private Postfix (postfix -c DIR, smtpd on a loopback port of ours, no DNS,
no chroot, XCLIENT allowed from 127.0.0.0/8) relays to Postfix's smtp-sink,
which dumps each message to a file. swaks submits through submilter (with the
example plugin); the message must reach the sink with the plugin's header,
and the daemon's log must hold one summary line for it. Through a PROXY
header (swaks --proxy-*) the client address 192.0.2.9 reaches Postfix by
XCLIENT: Postfix logs it and applies its relay policy to it, and that
refusal comes back verbatim.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check

R = T.Runner("postfix")
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-postfix-")
os.chmod(WORK, 0o755)
PF = os.path.join(WORK, "pf")
SINKDIR = os.path.join(WORK, "sink")
PF_PORT = T.free_port()
SINK_PORT = T.free_port()

PFX = T.testlib.Postfix(PF, PF_PORT, SINK_PORT, tls_cn="backend.test", params={
    "myhostname": "backend.test",
    "mydomain": "test",
    "relay_domains": "example.com",
    "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "smtputf8_enable": "yes",
    "smtpd_tls_loglevel": "1"})
maillog = PFX.maillog


def sunk(pattern, timeout=20):
    def find():
        m = SINK.find(pattern.encode("latin-1"))
        if m is None:
            return None
        return m.decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    return T.wait_for(find, timeout, "a message with %r at the sink (maillog: %s)" %
                      (pattern, maillog()[-1500:]))


def swaks(*args, port=None):
    return subprocess.run(["swaks", "--server", "127.0.0.1:%d" % (port or D.port), "--helo", "swaks.test"]
                          + list(args), capture_output=True, text=True, timeout=60)


def t_swaks():
    r = swaks("--from", "sender@example.com", "--to", "rcpt@example.com",
              "--header", "Subject: swaks through submilter", "--body", "hello from swaks")
    eq(r.returncode, 0, "swaks exit (output: %s)" % r.stdout[-800:])
    check("250 2.0.0 Ok: queued as" in r.stdout, "Postfix's own reply relayed")
    msg = sunk("swaks through submilter")
    check("X-Submilter-Example: yes" in msg, "plugin's header in the delivered message")
    check("hello from swaks" in msg, "body delivered")
    lines = [l for l in D.log().splitlines() if "from=<sender@example.com>" in l]
    eq(len(lines), 1, "one summary line: %r" % lines)
    for part in ("to=<rcpt@example.com>", "verdict=accept", "backend=250", "queued as"):
        check(part in lines[0], "summary has %s: %s" % (part, lines[0]))


def t_pipelining():
    r = swaks("--pipeline", "--from", "pipe@example.com", "--to", "p1@example.com,p2@example.com",
              "--header", "Subject: swaks pipelined")
    eq(r.returncode, 0, "swaks --pipeline (%s)" % r.stdout[-800:])
    msg = sunk("swaks pipelined")
    check("p1@example.com" in msg and "p2@example.com" in msg, "both recipients")


def t_proxy_xclient():
    r = swaks("--proxy-version", "1", "--proxy-family", "TCP4", "--proxy-source", "192.0.2.9",
              "--proxy-source-port", "4321", "--proxy-dest", "127.0.0.1",
              "--proxy-dest-port", str(PROXY_PORT),
              "--from", "px@example.com", "--to", "px@example.com",
              "--header", "Subject: swaks via proxy", port=PROXY_PORT)
    eq(r.returncode, 0, "swaks with a PROXY header (%s)" % r.stdout[-800:])
    msg = sunk("swaks via proxy")
    check("192.0.2.9" in msg, "Postfix's Received line names the client from XCLIENT")
    check("192.0.2.9" in maillog(), "Postfix logged the XCLIENT address")
    # Postfix's relay policy sees 192.0.2.9 (not in mynetworks): its refusal comes back
    r = swaks("--proxy-version", "2", "--proxy-family", "AF_INET", "--proxy-source", "192.0.2.10",
              "--proxy-source-port", "4322", "--proxy-dest", "127.0.0.1",
              "--proxy-dest-port", str(PROXY_PORT), "--from", "px@example.com",
              "--to", "someone@elsewhere.test", "--quit-after", "RCPT", port=PROXY_PORT)
    check("554 5.7.1 <someone@elsewhere.test>: Relay access denied" in r.stdout,
          "Postfix's refusal verbatim: %s %s" % (r.stdout[-600:], r.stderr[-300:]))


def t_backend_tls():
    d = T.Daemon(P, WORK, PF_PORT, smtp_extra="backend_tls = yes\nxclient = yes")
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % d.port, "--helo", "swaks.test",
                        "--from", "btls@example.com", "--to", "btls@example.com",
                        "--header", "Subject: to the backend over TLS"],
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, "swaks (%s)" % r.stdout[-600:])
    msg = sunk("to the backend over TLS")
    check("with ESMTPS" in msg, "Postfix received it over TLS: %s" % msg[:600])
    check("TLS connection established from" in maillog(), "Postfix logged the TLS session")
    P.stop(d.proc)
    # backend_tls_ca: the certificate must chain to it and carry the name
    ca = os.path.join(PF, "cert.pem")
    d = T.Daemon(P, WORK, PF_PORT, smtp_extra='backend_tls = yes\nbackend_tls_ca = "%s"\n'
                 'backend_tls_name = "backend.test"' % ca)
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % d.port, "--helo", "swaks.test",
                        "--from", "btls@example.com", "--to", "btls@example.com",
                        "--header", "Subject: to a verified backend"],
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, "verified backend: swaks (%s)" % r.stdout[-600:])
    check("with ESMTPS" in sunk("to a verified backend"), "verified backend: received over TLS")
    P.stop(d.proc)
    other = tempfile.mkdtemp(prefix="otherca-", dir=WORK)
    other_ca, _ = T.testlib.self_signed(other, "backend.test")
    for label, extra in (("the name is not the certificate's (default: 127.0.0.1)",
                          'backend_tls_ca = "%s"' % ca),
                         ("a certificate from another CA",
                          'backend_tls_ca = "%s"\nbackend_tls_name = "backend.test"' % other_ca)):
        d = T.Daemon(P, WORK, PF_PORT, smtp_extra="backend_tls = yes\n" + extra)
        c, _ = T.greet(d.port)
        code, l = c.cmd("MAIL FROM:<a@example.com>")
        eq(l[0][:9], "451 4.7.5", "%s: 451, the backend not used" % label)
        c.close()
        check("certificate not verified" in d.log(), "%s: logged" % label)
        P.stop(d.proc)
    # a backend that offers no STARTTLS is not used in clear
    be = T.Backend(P, WORK)
    d = T.Daemon(P, WORK, be.port, smtp_extra="backend_tls = yes")
    c, _ = T.greet(d.port)
    code, l = c.cmd("MAIL FROM:<a@example.com>")
    eq(l[0][:9], "451 4.7.5", "no TLS at the backend: 451")
    c.close()
    P.stop(d.proc)
    P.stop(be.proc)


try:
    SINK = T.testlib.Sink(P, SINKDIR, SINK_PORT, 50)
    PFX.start()
    PROXY_PORT = T.free_port()
    D = T.Daemon(P, WORK, PF_PORT, smtp_extra="xclient = yes", proxy_port=PROXY_PORT,
                 plugins="plugin example { }")
    os.chmod(D.dir, 0o755)
except Exception as e:
    print("FAIL setup: %s" % e)
    PFX.stop()
    P.stop_all()
    print("0 passed, 1 failed")
    sys.exit(1)

for name, fn in [("swaks to Postfix", t_swaks), ("swaks --pipeline", t_pipelining),
                 ("PROXY + XCLIENT to Postfix", t_proxy_xclient),
                 ("STARTTLS to the Postfix backend", t_backend_tls)]:
    R.case(name, fn)
PFX.stop()
P.stop_all()
R.finish()
