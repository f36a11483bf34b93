#!/usr/bin/python3
"""vrfy-smtp.py - the vrfy plugin through the daemon's smtp front-end.

VRFY and EXPN reach only the smtp front-end (Postfix and Sendmail never pass
them to a milter), so that is where this suite drives them: smtp-sink is the
backend (it answers VRFY with "250 2.0.0 Ok" and does not know EXPN, so a
relayed command is recognisable by its reply), the daemon runs the vrfy
plugin with one configuration after another, and Python's smtplib checks
each option: reject with 502 or 550, ambiguous 252, allow (the backend's own
reply comes back), allow_authenticated (530 without AUTH), the rate limit
shared by the sessions of one client (also 10 at once), HELP refused or answered with our
text. Ports 22000-22299.
"""
import os
import smtplib
import sys
import threading

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")), "plugins", "vrfy", "t"))
import policytest as pt  # noqa: E402

env = pt.Env("vrfy-smtp", 22000, 22299)
T = pt.Tally()
sink = pt.Sink(env)


def session(port):
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    s.ehlo("client.example")
    return s


def cmd(s, verb, arg=""):
    code, text = pt.reply(s.docmd(verb, arg))
    return code, text


def with_daemon(name, plugin, body):
    d = None
    try:
        d = pt.Daemon(env, sink.port, plugin)
        body(d)
    except Exception:
        T.crashed(name)
        if d is not None:
            print(d.log())
    finally:
        if d is not None:
            d.stop()


def defaults(d):
    s = session(d.port)
    code, text = cmd(s, "VRFY", "alice")
    T.eq("default: VRFY is 252", code, 252)
    T.check("default: VRFY text", text.startswith("2.5.0 Cannot VRFY user"), text)
    code, text = cmd(s, "EXPN", "staff")
    T.eq("default: EXPN is 502", code, 502)
    T.check("default: EXPN 5.5.1", text.startswith("5.5.1 "), text)
    code, text = cmd(s, "HELP")
    T.eq("default: HELP answered by the front-end", code, 214)
    code, text = cmd(s, "VRFY")
    T.eq("default: VRFY without argument", code, 501)
    s.quit()


def reject_550_allow_expn(d):
    s = session(d.port)
    code, text = cmd(s, "VRFY", "alice")
    T.eq("reject_code 550: VRFY code", code, 550)
    T.check("reject_code 550: VRFY 5.7.1", text.startswith("5.7.1 "), text)
    code, text = cmd(s, "EXPN", "staff")
    # smtp-sink knows no EXPN: its own "unknown command" proves the relay
    T.check("expn allow: the backend's reply", code == 500 and "unknown command" in text,
            "%d %s" % (code, text))
    code, text = cmd(s, "HELP")
    T.eq("help reject: 502", code, 502)
    code, text = cmd(s, "NOOP")
    T.eq("session still usable", code, 250)
    s.quit()


def allow_with_rate(d):
    codes = []
    for _ in range(2):          # two sessions of the same client share the budget
        s = session(d.port)
        for _ in range(2):
            codes.append(cmd(s, "VRFY", "alice"))
        s.quit()
    T.check("allow: relayed to the backend", codes[0] == (250, "2.0.0 Ok"), repr(codes[0]))
    T.eq("rate: 3 lookups pass, the 4th across sessions does not",
         [c for c, _ in codes], [250, 250, 250, 450])
    T.check("rate: 450 4.7.1", codes[3][1].startswith("4.7.1 "), codes[3][1])
    T.check("rate: logged", "rate limit (3 per 60 s) reached for 127.0.0.1" in d.log(), "")


def allow_authenticated(d):
    s = session(d.port)
    code, text = cmd(s, "VRFY", "alice")
    T.eq("allow_authenticated, anonymous: 530", code, 530)
    T.check("allow_authenticated: 5.7.0", text.startswith("5.7.0 "), text)
    code, text = cmd(s, "EXPN", "staff")
    T.eq("expn ambiguous: 252", code, 252)
    code, text = cmd(s, "HELP")
    T.check("help_text: our text", code == 214 and "see https://example.org/help" in text,
            "%d %s" % (code, text))
    s.quit()


def parallel_rate(d):
    """10 sessions at once, 5 lookups each: the shared counter lets exactly
    rate_limit through, whatever the interleaving."""
    codes, lock = [], threading.Lock()

    def client():
        s = session(d.port)
        got = [cmd(s, "VRFY", "alice")[0] for _ in range(5)]
        s.quit()
        with lock:
            codes.extend(got)

    threads = [threading.Thread(target=client) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    T.eq("parallel: 50 answers", len(codes), 50)
    T.eq("parallel: exactly 20 relayed", codes.count(250), 20)
    T.eq("parallel: the other 30 ambiguous", codes.count(252), 30)


with_daemon("defaults", "plugin vrfy {}", defaults)
with_daemon("reject_550", 'plugin vrfy { vrfy = reject reject_code = 550 expn = allow '
            'help = reject }', reject_550_allow_expn)
with_daemon("rate", "plugin vrfy { vrfy = allow rate_limit = 3 over_rate = tempfail }",
            allow_with_rate)
with_daemon("allow_authenticated", 'plugin vrfy { vrfy = allow_authenticated '
            'expn = ambiguous help_text = "see https://example.org/help" }',
            allow_authenticated)
with_daemon("parallel", "plugin vrfy { vrfy = allow rate_limit = 20 }", parallel_rate)
env.procs.stop_all()
T.summary()
