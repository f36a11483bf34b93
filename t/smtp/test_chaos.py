#!/usr/bin/python3
"""t/smtp/test_chaos.py - clients that vanish at random points.

300 sessions, 8 at a time, each cut at a random point (after connecting,
inside a command line, after MAIL, after RCPT, inside DATA, inside a BDAT
chunk, after the final dot, or never). Afterwards the daemon still serves,
its descriptors and threads are back near where they started, the backend
got only messages whose final dot was sent, and nothing is left in the
spool folder.
"""
import os
import random
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check

R = T.Runner("chaos")
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-chaos-")
BE = T.Backend(P, WORK)
D = T.Daemon(P, WORK, BE.port, root_extra="spool_memory = 4K")
CUTS = ["connect", "midline", "mail", "rcpt", "middata", "midbdat", "afterdot", "none"]
sent_dot = set()
lock = threading.Lock()


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def one(i, cut):
    try:
        s = socket.create_connection(("127.0.0.1", D.port), timeout=10)
        if cut == "connect":
            s.close()
            return
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO chaos.test\r\n")
        while f.readline()[3:4] == b"-":
            pass
        if cut == "midline":
            s.sendall(b"MAIL FROM:<a@exa")
            s.close()
            return
        s.sendall(b"MAIL FROM:<a@example.com>\r\n")
        f.readline()
        if cut == "mail":
            s.close()
            return
        s.sendall(b"RCPT TO:<chaos%d@example.com>\r\n" % i)
        f.readline()
        if cut == "rcpt":
            s.close()
            return
        body = b"Subject: chaos %d\r\n\r\n" % i + (b"x" * 70 + b"\r\n") * 70
        if cut == "midbdat":
            s.sendall(b"BDAT %d LAST\r\n" % (len(body) + 100) + body)
            s.close()
            return
        s.sendall(b"DATA\r\n")
        f.readline()
        if cut == "middata":
            s.sendall(body)
            s.close()
            return
        s.sendall(body + b".\r\n")
        with lock:
            sent_dot.add(i)
        if cut == "afterdot":
            s.close()
            return
        f.readline()
        s.sendall(b"QUIT\r\n")
        f.readline()
        s.close()
    except OSError:
        pass


def t_chaos():
    rng = random.Random(7)
    time.sleep(0.2)
    fd0 = fds(D.proc.pid)
    jobs = [(i, rng.choice(CUTS)) for i in range(300)]
    for k in range(0, len(jobs), 8):
        ts = [threading.Thread(target=one, args=j) for j in jobs[k:k + 8]]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    time.sleep(1.0)
    c, _ = T.greet(D.port)
    eq(c.cmd("NOOP")[0], 250, "still serving")
    c.close()
    T.wait_for(lambda: fds(D.proc.pid) <= fd0 + 40, 10, "descriptors back (%d at start)" % fd0)
    got = set(int(m["rcpts"][0][5:].split("@")[0]) for m in BE.messages())
    check(got <= sent_dot, "only messages whose dot was sent: extra %r" % sorted(got - sent_dot))
    done = [i for i, cut in jobs if cut == "none"]
    check(set(done) <= got, "every complete session delivered")
    eq(os.listdir(D.spool), [], "spool folder empty")
    print("   cuts: %s; delivered %d" % (
        ", ".join("%s %d" % (c, sum(1 for _, x in jobs if x == c)) for c in CUTS), len(got)))


R.case("300 sessions cut at random points", t_chaos)
P.stop_all()
R.finish()
