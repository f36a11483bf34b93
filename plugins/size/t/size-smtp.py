#!/usr/bin/python3
"""size-smtp.py - the size plugin through the daemon's smtp front-end.

smtp-sink is the backend and dumps every message it accepts; the daemon runs
the size plugin with limit = 10K and a map lowering @small.example to 1K.
Python's smtplib then checks, end to end:
  - EHLO advertises SIZE 10240 (the plugin's limit, below max_message_size);
  - MAIL SIZE= over the limit, absurdly large, or over a domain's limit gets
    552 5.3.4; a malformed SIZE= 501;
  - a client whose SIZE= lies (or who gives none) and sends more than its
    limit gets 552 5.3.4 after the final dot, and smtp-sink never gets the
    message; the domain case (3 KB under a 1 KB limit, below the global
    10 KB the front-end knows) can only be caught by the plugin; the same
    over BDAT chunks;
  - honest messages under the limit arrive.
Ports 22300-22399.
"""
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")), "plugins", "vrfy", "t"))
import policytest as pt  # noqa: E402

env = pt.Env("size-smtp", 22300, 22399)
T = pt.Tally()


def message(marker, octets):
    """A message of about `octets` octets carrying marker."""
    head = "From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: %s\r\n\r\n" % marker
    line = "x" * 76 + "\r\n"
    body = line * max(0, (octets - len(head)) // len(line))
    return (head + body + marker + "\r\n").encode()


def send(port, sender, size_param, msg):
    """One transaction; (code, text) of the first refusal or of the final reply."""
    opts = ["SIZE=%s" % size_param] if size_param is not None else []
    return pt.transaction(port, msg, sender, "b@example.net", opts)


def raw_mail(port, params):
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.ehlo("client.example")
    r = pt.reply(s.docmd("MAIL", "FROM:<a@example.org> %s" % params))
    s.quit()
    return r


d = None
try:
    sink = pt.Sink(env)
    mapfile = env.write("size.map", "# test map\n@small.example 1K\n")
    d = pt.Daemon(env, sink.port, 'plugin size { limit = 10K map = "%s" }' % mapfile)

    s = smtplib.SMTP("127.0.0.1", d.port, timeout=30)
    s.ehlo("client.example")
    T.eq("EHLO advertises SIZE 10240", s.esmtp_features.get("size"), "10240")
    s.quit()

    for label, params, want in [
            ("SIZE= over", "SIZE=20000", 552),
            ("SIZE= at the limit", "SIZE=10240", 250),
            ("SIZE= 2^64", "SIZE=18446744073709551616", 552),
            ("SIZE= 30 digits", "SIZE=" + "9" * 30, 552),
            ("SIZE= malformed", "SIZE=12ab", 501)]:
        code, text = raw_mail(d.port, params)
        T.eq("MAIL %s: %d" % (label, want), code, want)
        if want == 552:
            T.check("MAIL %s: 5.3.4" % label, text.startswith("5.3.4"), text)

    code, text = send(d.port, "c@small.example", 2000, message("domain-over", 500))
    T.check("MAIL SIZE= over the domain's 1K: 552 5.3.4",
            code == 552 and text.startswith("5.3.4"), "%d %s" % (code, text))

    cases = [
        ("honest, small", "a@example.org", 3000, 3000, 250),
        ("no SIZE=, small", "a@example.org", None, 3000, 250),
        ("SIZE= lies, 40 KB", "a@example.org", 100, 40000, 552),
        ("no SIZE=, 40 KB", "a@example.org", None, 40000, 552),
        ("SIZE= lies, 1 MB", "a@example.org", 10, 1 << 20, 552),
        ("domain 1K, SIZE= lies, 3 KB", "c@small.example", 100, 3000, 552),
        ("domain 1K, no SIZE=, 3 KB", "c@small.example", None, 3000, 552),
        ("domain 1K, honest, 600 octets", "c@small.example", 600, 600, 250),
    ]
    for i, (label, sender, size, octets, want) in enumerate(cases):
        marker = "size-case-%d-%d" % (i, time.time_ns())
        code, text = send(d.port, sender, size, message(marker, octets))
        T.eq("%s: reply %d" % (label, want), code, want)
        if want == 552:
            T.check("%s: 5.3.4" % label, text.startswith("5.3.4"), text)
            T.check("%s: backend never got it" % label, not sink.holds(marker.encode(), 0.3))
        else:
            T.check("%s: backend got it" % label, sink.holds(marker.encode(), 5))
    # BDAT (CHUNKING): the same count over chunks
    for label, chunks, want in [("BDAT, 2 chunks of 1500 from @small.example", [1500, 1500], 552),
                                ("BDAT, one 700-octet chunk from @small.example", [700], 250)]:
        marker = "bdat-%d" % time.time_ns()
        msg = message(marker, sum(chunks))
        s = smtplib.SMTP("127.0.0.1", d.port, timeout=30)
        s.ehlo("client.example")
        s.mail("c@small.example", ["SIZE=100"])
        s.rcpt("b@example.net")
        pos, code, text = 0, 0, ""
        for i, n in enumerate(chunks):
            part = msg[pos:pos + n] if i < len(chunks) - 1 else msg[pos:]
            pos += len(part)
            last = " LAST" if i == len(chunks) - 1 else ""
            s.send(b"BDAT %d%s\r\n" % (len(part), last.encode()) + part)
            code, text = pt.reply(s.getreply())
            if code != 250:
                break
        try:
            s.quit()
        except Exception:
            pass
        T.eq("%s: %d" % (label, want), code, want)
        if want == 552:
            T.check("%s: 5.3.4" % label, text.startswith("5.3.4"), text)
            T.check("%s: backend never got it" % label, not sink.holds(marker.encode(), 0.3))
        else:
            T.check("%s: backend got it" % label, sink.holds(marker.encode(), 5))

    log = d.log()
    T.check("the plugin logged the domain lie",
            "over the domain limit 1024 (SIZE=100)" in log, "")
except Exception:
    T.crashed("size-smtp")
    if d is not None:
        print(d.log())
env.procs.stop_all()
T.summary()
