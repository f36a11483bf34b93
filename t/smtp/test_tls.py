#!/usr/bin/python3
"""t/smtp/test_tls.py - STARTTLS (RFC 3207) and implicit TLS (RFC 8314) on
the smtp front-end, with a throw-away certificate: the STARTTLS offer, state
forgotten after the handshake, what was pipelined behind STARTTLS discarded
(CVE-2011-0411), a second STARTTLS refused, the TLS stage (a plugin's
refusal answers every later command), a failed handshake, swaks --tls.
"""
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check

R = T.Runner("tls")
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-tls-")
CERT, KEY = T.testlib.self_signed(WORK, "mx.test")
BE = T.Backend(P, WORK)
TLS_PORT = T.free_port()
TLSCONF = 'tls_cert = "%s"\ntls_key = "%s"' % (CERT, KEY)
D = T.Daemon(P, WORK, BE.port, smtp_extra=TLSCONF, extra_listen=["127.0.0.1:%d tls" % TLS_PORT],
             plugins='plugin tp { path = "%s" mark = "tp" }' % T.tp_path())


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def wrap(c):
    c.s = ctx().wrap_socket(c.s, server_hostname="mx.test")
    c.buf = b""


def t_starttls():
    c, lines = T.greet(D.port)
    check("250-STARTTLS" in lines, "STARTTLS offered: %r" % lines)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL in clear")
    code, l = c.cmd("STARTTLS")
    eq(l, ["220 2.0.0 Ready to start TLS"], "220")
    wrap(c)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 503, "EHLO and transaction forgotten")
    code, lines = c.cmd("EHLO client.test")
    eq(code, 250, "EHLO inside TLS")
    check(not any("STARTTLS" in l for l in lines), "no second offer")
    eq(c.cmd("STARTTLS")[0], 503, "second STARTTLS")
    code, l = c.cmd("MAIL FROM:<tls@example.com>")
    eq(code, 250, "MAIL")
    eq(c.cmd("RCPT TO:<tls@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: over tls\r\n\r\nsecret\r\n.\r\n")
    eq(c.reply()[0], 250, "message over TLS")
    eq(c.cmd("QUIT")[0], 221, "QUIT")
    check(any(m["from"] == "tls@example.com" for m in BE.messages()), "relayed")
    check("tp tls TLSv1." in D.log(), "TLS stage ran with the protocol")


def t_pipelined_after_starttls():
    c, _ = T.greet(D.port)
    c.send("STARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.com>\r\n")
    eq(c.reply()[0], 220, "220")
    check(c.buf == b"", "nothing more in clear")
    wrap(c)
    code, l = c.cmd("HELP")
    eq(code, 214, "first reply inside TLS is for HELP, not the injected commands")
    eq(c.cmd("RCPT TO:<x@example.com>")[0], 503, "the injected MAIL never happened")
    c.close()


def t_implicit():
    s = smtplib.SMTP_SSL("127.0.0.1", TLS_PORT, local_hostname="imp.test", context=ctx(), timeout=10)
    code, msg = s.ehlo()
    eq(code, 250, "EHLO")
    check(b"STARTTLS" not in msg, "no STARTTLS inside TLS")
    s.sendmail("imp@example.com", ["imp@example.com"], b"Subject: implicit\r\n\r\nx\r\n")
    s.quit()
    check(any(m["from"] == "imp@example.com" for m in BE.messages()), "relayed")


def t_smtplib_starttls():
    s = smtplib.SMTP("127.0.0.1", D.port, local_hostname="lib.test", timeout=10)
    s.starttls(context=ctx())
    s.sendmail("lib@example.com", ["lib@example.com"], b"Subject: starttls\r\n\r\nx\r\n")
    s.quit()
    check(any(m["from"] == "lib@example.com" for m in BE.messages()), "relayed")


def t_bad_handshake():
    c, _ = T.greet(D.port)
    eq(c.cmd("STARTTLS")[0], 220, "220")
    c.send(b"this is not a TLS client hello\r\n" * 4)
    check(c.closed(), "closed after a failed handshake")
    c, _ = T.greet(D.port)                       # the daemon lives on
    c.close()
    s = socket.create_connection(("127.0.0.1", TLS_PORT), timeout=5)
    s.sendall(b"EHLO plain.test\r\n")
    s.settimeout(5)
    try:
        data = s.recv(100)
    except ConnectionError:
        data = b""
    check(not data.startswith(b"220"), "no banner in clear on the TLS port")
    s.close()


def t_tls_stage_reject():
    d = T.Daemon(P, WORK, BE.port, smtp_extra=TLSCONF,
                 plugins='plugin tp { path = "%s" rules = { "tls:reject:554:5.7.0:no TLS for you" } }'
                 % T.tp_path())
    c, _ = T.greet(d.port)
    eq(c.cmd("STARTTLS")[0], 220, "220")
    wrap(c)
    eq(c.cmd("EHLO client.test")[1], ["554 5.7.0 no TLS for you"], "TLS stage refusal")
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 554, "and again")
    eq(c.cmd("QUIT")[0], 221, "QUIT")
    P.stop(d.proc)


def t_swaks():
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % D.port, "--tls", "--from",
                        "swtls@example.com", "--to", "swtls@example.com", "--helo", "sw.test"],
                       capture_output=True, text=True, timeout=30)
    eq(r.returncode, 0, "swaks --tls (%s)" % r.stdout[-600:])
    check(any(m["from"] == "swtls@example.com" for m in BE.messages()), "relayed")


HAVE_SSLEAY = subprocess.run(["perl", "-MNet::SSLeay", "-e", "1"], capture_output=True).returncode == 0
CASES = [("starttls", t_starttls), ("pipelined after STARTTLS", t_pipelined_after_starttls),
         ("implicit TLS", t_implicit), ("smtplib starttls", t_smtplib_starttls),
         ("failed handshake", t_bad_handshake), ("TLS stage reject", t_tls_stage_reject)]
if HAVE_SSLEAY:
    CASES.append(("swaks --tls", t_swaks))
else:
    print("SKIP swaks --tls: swaks needs Net::SSLeay (Debian libnet-ssleay-perl)")
for name, fn in CASES:
    R.case(name, fn)
P.stop_all()
R.finish()
