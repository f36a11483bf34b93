#!/usr/bin/python3
"""t/smtp/test_smuggle.py - SMTP smuggling probes (SEC Consult, Dec 2023).

Each probe ends its data with a fake terminator variant followed by a second
envelope and message, then the real <CRLF>.<CRLF>. With bare_lf = reject the
client must get 550 5.5.2 and the backend nothing; with bare_lf = normalize
the backend must get exactly one message carrying the second envelope as body
text, with no bare CR or LF. In no case may the backend see the smuggled
envelope as commands.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check

R = T.Runner("smuggle")
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-smuggle-")
BE = T.Backend(P, WORK)
STRICT = T.Daemon(P, WORK, BE.port)
NORM = T.Daemon(P, WORK, BE.port, smtp_extra='bare_lf = "normalize"')

BARE = ["\n.\n", "\n.\r\n", "\r.\r", "\r.\n", "\n.\r", "\r.\r\n", "\r\n.\n", "\r\n.\r",
        "\r\n.\r\r\n", "\r\n.\x00\n"]
NUL = ["\r\n.\x00\r\n", "\r\n\x00.\r\n"]
SECOND = ("MAIL FROM:<smuggler@evil.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
          "Subject: smuggled\r\n\r\nsmuggled body\r\n")


def probe(port, variant, tag):
    c, _ = T.greet(port)
    eq(c.cmd("MAIL FROM:<probe@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<%s@example.com>" % tag)[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: probe\r\n\r\nfirst message" + variant + SECOND + "\r\n.\r\n")
    code, lines = c.reply()
    eq(c.cmd("QUIT")[0], 221, "QUIT after the probe (no leftover replies)")
    c.close()
    return code, lines


def no_smuggled_envelope():
    for x in BE.commands():
        check("smuggler@evil.test" not in x["line"] and "victim@" not in x["line"],
              "smuggled envelope reached the backend: %r" % x["line"])


def t_strict(i, variant):
    tag = "strict%d" % i
    code, lines = probe(STRICT.port, variant, tag)
    eq(lines[0][:9], "550 5.5.2", "bare CR/LF refused")
    eq([m for m in BE.messages() if tag + "@example.com" in m["rcpts"]], [], "nothing relayed")
    no_smuggled_envelope()


def t_normalize(i, variant):
    tag = "norm%d" % i
    code, lines = probe(NORM.port, variant, tag)
    eq(code, 250, "normalised message accepted")
    got = [m for m in BE.messages() if tag + "@example.com" in m["rcpts"]]
    eq(len(got), 1, "exactly one message")
    check(not got[0]["bare"], "no bare CR/LF reached the backend")
    check("MAIL FROM:<smuggler@evil.test>" in got[0]["data"], "second envelope is body text")
    no_smuggled_envelope()


def t_nul(i, variant):
    tag = "nul%d" % i
    code, lines = probe(STRICT.port, variant, tag)
    eq(code, 250, "NUL next to the dot is data")
    got = [m for m in BE.messages() if tag + "@example.com" in m["rcpts"]]
    eq(len(got), 1, "exactly one message")
    check("smuggled body" in got[0]["data"], "second message is body text")
    no_smuggled_envelope()


for i, v in enumerate(BARE):
    R.case("reject %r" % v, t_strict, i, v)
    R.case("normalize %r" % v, t_normalize, i, v)
for i, v in enumerate(NUL):
    R.case("nul %r" % v, t_nul, i, v)
P.stop_all()
R.finish()
