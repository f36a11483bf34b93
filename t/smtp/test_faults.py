#!/usr/bin/python3
"""t/smtp/test_faults.py - no loss under backend faults.

200 messages through the daemon to a capture backend that injects random
faults at MAIL, RCPT, DATA and the final dot (4xx, 5xx, 421 and close, a
dropped connection, a stall past the backend deadline). The set of messages
the clients saw 250 for must equal the set the backend accepted, and every
accepted message must arrive intact.
"""
import os
import smtplib
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check

N = 200
THREADS = 4
R = T.Runner("faults")
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-faults-")
BE = T.Backend(P, WORK, "--random", "0.07", "--seed", "4242", "--slow", "0.7")
D = T.Daemon(P, WORK, BE.port, smtp_extra="backend_timeout = 300ms\nbackend_data_timeout = 300ms")

ok = set()
outcomes = {}
lock = threading.Lock()


def body(i):
    return ("Subject: fault run %d\r\nX-Id: %d\r\n\r\n" % (i, i) +
            "".join("line %d of message %d\r\n" % (k, i) for k in range(i % 7 + 1)) +
            ".dot line\r\n").encode()


def worker(ids):
    s = None
    for n, i in enumerate(ids):
        try:
            if s is None:
                s = smtplib.SMTP("127.0.0.1", D.port, local_hostname="faults.test", timeout=10)
            refused = s.sendmail("f%d@example.com" % i, ["id%d@example.com" % i], body(i))
            with lock:
                if not refused:
                    ok.add(i)
                outcomes[i] = 250
            if n % 3 == 2:                       # some sessions carry several messages
                s.quit()
                s = None
        except smtplib.SMTPResponseException as e:
            with lock:
                outcomes[i] = e.smtp_code
            try:
                s.rset()
            except Exception:
                s = None
        except (smtplib.SMTPException, OSError) as e:
            with lock:
                outcomes[i] = str(type(e).__name__)
            s = None
    if s is not None:
        try:
            s.quit()
        except Exception:
            pass


def t_fault_run():
    ids = list(range(N))
    threads = [threading.Thread(target=worker, args=(ids[k::THREADS],)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = {}
    for m in BE.messages():
        i = int(m["rcpts"][0][2:].split("@")[0])
        check(i not in got, "message %d received twice" % i)
        got[i] = m
    failed = [i for i in ids if i not in ok]
    print("   %d accepted, %d failed (codes: %s)" % (len(ok), len(failed),
          sorted(set(str(outcomes.get(i)) for i in failed))))
    check(len(failed) >= 20, "the fault injection did inject faults (%d failed)" % len(failed))
    check(len(ok) >= 50, "most messages got through (%d)" % len(ok))
    eq(sorted(got.keys()), sorted(ok), "250-set equals the received set")
    for i, m in got.items():
        eq(m["data"].encode("latin-1"), body(i), "message %d intact" % i)
    bad = [c for c in outcomes.values() if c == 250 or isinstance(c, int)]
    check(all(isinstance(c, str) or c in (250, 421, 451, 550, 554, 503) for c in outcomes.values()),
          "only expected reply codes: %r" % sorted(set(map(str, outcomes.values()))))
    check("verdict=accept backend=250" in D.log(), "summary lines logged")


R.case("200 messages, random backend faults", t_fault_run)
P.stop_all()
R.finish()
