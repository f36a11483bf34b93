#!/usr/bin/python3
"""regex-smtp.py - the regex plugin through the daemon's smtp front-end.

smtp-sink is the backend and dumps what it accepts; the daemon runs the
regex plugin on a rules file written here. Python's smtplib checks each
stage and action end to end: HELO, MAIL and RCPT refusals with captures in
the reply, a discarded message (250 to the client, nothing at the backend),
headers added from captures (and from a connect rule) in what the backend
gets, a body rule on plain and on base64-decoded text refused after the
final dot, and a runaway pattern on a long body line stopped by the match
limit with 451 4.3.0 instead of a hang; SIGHUP with a broken rules file
keeps the old rules (error naming file:line), with a good one swaps them.
`submilter -t` accepts the sample
conf/regex.rules and refuses a bad rules file naming file:line.
Ports 22600-22899.
"""
import base64
import os
import signal
import smtplib
import subprocess
import sys
import time

TOP = os.environ.get("top_srcdir", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
sys.path.insert(0, os.path.join(TOP, "plugins", "vrfy", "t"))
import policytest as pt  # noqa: E402

env = pt.Env("regex-smtp", 22600, 22899)
T = pt.Tally()

RULES = r"""# regex-smtp.py
connect /\[127\.0\.0\.1\]$/      add-header X-Regex-Client: loopback
helo    /^evil\.(?<rest>.+)$/i   reject 550 5.7.1 HELO evil.${rest} refused
mail    /@spam\.example$/        reject 550 5.7.1 sender $0 refused
rcpt    /^(?<who>blocked)@/      reject 550 5.7.1 no mail for ${who}
header  /^Subject:.*\bviagra\b/i discard
header  /^X-Mailer: (?<m>.+)$/   add-header "X-Regex-Mailer: ${m}"
body    /^click here$/i          reject 550 5.7.1 body refused
body    /^(a+)+$/                reject 550 5.7.1 never reached
"""


def session(port, helo="client.example"):
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.ehlo(helo)
    return s


def send(port, msg, sender="a@example.org", rcpt="b@example.net"):
    """(code, text) of the first refusal, or of the reply to the final dot."""
    return pt.transaction(port, msg, sender, rcpt)


def message(marker, headers="", body="hello\r\n"):
    return ("From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: %s\r\n%s\r\n%s"
            % (marker, headers, body)).encode()


def got(sink, marker, wait):
    """The dumped message carrying marker, or None."""
    end = time.time() + wait
    while True:
        for m in sink.messages():
            if marker.encode() in m:
                return m
        if time.time() >= end:
            return None
        time.sleep(0.05)


d = None
try:
    sink = pt.Sink(env)
    rules = env.write("regex.rules", RULES)
    d = pt.Daemon(env, sink.port, 'plugin regex { rules = "%s" body_decode = yes '
                  'match_limit = 10000 }' % rules)

    s = smtplib.SMTP("127.0.0.1", d.port, timeout=30)
    code, text = pt.reply(s.ehlo("EVIL.example.net"))
    T.check("helo: 550 with the capture",
            code == 550 and "HELO evil.example.net refused" in text, "%d %s" % (code, text))
    s.close()

    code, text = send(d.port, message("m1"), sender="x@spam.example")
    T.check("mail: 550 with $0", code == 550 and "sender @spam.example refused" in text,
            "%d %s" % (code, text))

    s = session(d.port)
    s.mail("a@example.org")
    code, text = pt.reply(s.rcpt("blocked@example.net"))
    T.check("rcpt: 550 with ${who}", code == 550 and "no mail for blocked" in text,
            "%d %s" % (code, text))
    code, text = pt.reply(s.rcpt("ok@example.net"))
    T.eq("rcpt: another recipient of the same message", code, 250)
    s.rset()
    s.quit()

    mk = "discard-%d" % time.time_ns()
    code, text = send(d.port, message(mk + " cheap VIAGRA"))
    T.eq("header discard: the client is told 250", code, 250)
    T.check("header discard: the backend never got it", got(sink, mk, 0.5) is None)

    mk = "mailer-%d" % time.time_ns()
    code, text = send(d.port, message(mk, "X-Mailer: Foo Mail 2.1\r\n"))
    T.eq("add-header: accepted", code, 250)
    m = got(sink, mk, 5) or b""
    T.check("add-header: capture in the header", b"X-Regex-Mailer: Foo Mail 2.1" in m, repr(m[:400]))
    T.check("add-header: from the connect rule", b"X-Regex-Client: loopback" in m, repr(m[:400]))

    mk = "body-%d" % time.time_ns()
    code, text = send(d.port, message(mk, body="hi\r\nClick Here\r\nbye\r\n"))
    T.check("body: 550 after the dot", code == 550 and "body refused" in text,
            "%d %s" % (code, text))
    T.check("body: the backend never got it", got(sink, mk, 0.5) is None)

    mk = "b64-%d" % time.time_ns()
    b64 = base64.encodebytes(b"first\nclick here\nlast\n").decode().replace("\n", "\r\n")
    code, text = send(d.port, message(mk, "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
                                          "Content-Transfer-Encoding: base64\r\n", b64))
    T.check("body: base64 text decoded and refused", code == 550 and "body refused" in text,
            "%d %s" % (code, text))

    mk = "runaway-%d" % time.time_ns()
    t0 = time.time()
    code, text = send(d.port, message(mk, body="a" * 990 + "!\r\n"))
    took = time.time() - t0
    T.check("runaway: 451 4.3.0", code == 451 and text.startswith("4.3.0"), "%d %s" % (code, text))
    T.check("runaway: answered quickly (%.2f s)" % took, took < 5)
    T.check("runaway: the backend never got it", got(sink, mk, 0.3) is None)
    T.check("runaway: match limit logged", "match limit exceeded" in d.log(), "")

    mk = "plain-%d" % time.time_ns()
    code, text = send(d.port, message(mk, body="nothing to see\r\n"))
    T.eq("plain message: 250", code, 250)
    T.check("plain message: delivered", got(sink, mk, 5) is not None)

    # reload: a broken rules file is refused naming file:line, the old rules
    # stay; a good one replaces them for new sessions
    def reload_and_wait(needle):
        os.kill(d.proc.pid, signal.SIGHUP)
        end = time.time() + 10
        while time.time() < end and d.log().count(needle) < 1:
            time.sleep(0.05)
        return needle in d.log()

    with open(rules, "w") as f:
        f.write(RULES + "body /(unclosed/ reject\n")
    T.check("reload with a bad pattern refused, naming file:line",
            reload_and_wait("reload of %s refused" % d.conf)
            and "%s:%d: bad pattern" % (rules, RULES.count("\n") + 1) in d.log(),
            d.log()[-600:])
    code, text = send(d.port, message("after-bad-%d" % time.time_ns(), body="click here\r\n"))
    T.check("the old rules still run", code == 550 and "body refused" in text,
            "%d %s" % (code, text))
    with open(rules, "w") as f:
        f.write("body /^new rule$/ reject 550 5.7.1 the new rules\n")
    T.check("reload with good rules", reload_and_wait("reloaded %s" % d.conf), d.log()[-600:])
    code, text = send(d.port, message("after-good-%d" % time.time_ns(), body="new rule\r\n"))
    T.check("the new rules run", code == 550 and "the new rules" in text, "%d %s" % (code, text))
    mk = "old-gone-%d" % time.time_ns()
    code, text = send(d.port, message(mk, body="click here\r\n"))
    T.eq("the old rules are gone", code, 250)
except Exception:
    T.crashed("regex-smtp")
    if d is not None:
        print(d.log())
env.procs.stop_all()


def check_conf(rules_path):
    conf = env.write("t.conf", 'plugin_dir = "%s"\nplugin regex { rules = "%s" }\n'
                     % (pt.PLUGIN_DIR, rules_path))
    r = subprocess.run([pt.SUBMILTER, "-t", "-c", conf], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout + r.stderr


try:
    rc, out = check_conf(os.path.abspath(os.path.join(TOP, "conf", "regex.rules")))
    T.check("submilter -t accepts conf/regex.rules", rc == 0, out)
    bad = env.write("bad.rules", "mail /ok/ log fine\n\nheader /(unclosed/ reject\n")
    rc, out = check_conf(bad)
    T.check("submilter -t refuses a bad pattern with file:line",
            rc == 1 and bad + ":3: bad pattern" in out, "%d %s" % (rc, out))
except Exception:
    T.crashed("submilter -t")
T.summary()
