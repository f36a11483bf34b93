#!/usr/bin/python3
"""t/smtp/test_ops.py - operation of the smtp front-end: a reload (SIGHUP)
changes only new sessions; SIGTERM stops accepting, answers idle sessions
421 4.3.2 at once and lets a session inside a message finish within
shutdown_grace.
"""
import os
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check

R = T.Runner("ops")
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-ops-")
BE = T.Backend(P, WORK)


def send(c, rcpt, body):
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<%s>" % rcpt)[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send(body)
    return c.reply()


def t_reload():
    d = T.Daemon(P, WORK, BE.port, plugins='plugin example { header = "X-Gen: old" }')
    old, _ = T.greet(d.port)
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace("X-Gen: old", "X-Gen: new"))
    os.kill(d.proc.pid, signal.SIGHUP)
    T.wait_for(lambda: "reload" in d.log().lower(), what="a reload in the log")
    new, _ = T.greet(d.port)
    eq(send(new, "reload-new@example.com", "Subject: n\r\n\r\nx\r\n.\r\n")[0], 250, "new session")
    eq(send(old, "reload-old@example.com", "Subject: o\r\n\r\nx\r\n.\r\n")[0], 250, "old session")
    got = {m["rcpts"][0]: m["data"] for m in BE.messages()}
    check("X-Gen: new" in got["reload-new@example.com"], "new session has the new chain")
    check("X-Gen: old" in got["reload-old@example.com"], "old session keeps its chain")
    P.stop(d.proc)


def t_drain():
    d = T.Daemon(P, WORK, BE.port, root_extra="shutdown_grace = 5s")
    idle, _ = T.greet(d.port)
    busy, _ = T.greet(d.port)
    eq(busy.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(busy.cmd("RCPT TO:<drain@example.com>")[0], 250, "RCPT")
    eq(busy.cmd("DATA")[0], 354, "DATA")
    busy.send("Subject: drain\r\n\r\nfirst half\r\n")
    t0 = time.time()
    os.kill(d.proc.pid, signal.SIGTERM)
    code, l = idle.reply()
    eq(l[0][:9], "421 4.3.2", "idle session told at once")
    check(time.time() - t0 < 2, "at once")
    time.sleep(0.3)
    try:
        c = socket.create_connection(("127.0.0.1", d.port), timeout=2)
        c.close()
        raise AssertionError("still accepting")
    except ConnectionRefusedError:
        pass
    busy.send("second half\r\n.\r\n")
    eq(busy.reply()[0], 250, "the message in flight completes")
    check(any("drain@example.com" in m["rcpts"] for m in BE.messages()), "and is relayed")
    code, l = busy.reply()
    eq(code, 421, "then the session is closed")
    d.proc.wait(10)
    eq(d.proc.returncode, 0, "daemon exit status")


def t_drain_cuts_backend_waits():
    """A session still waiting on its backend (a slow reply to the final dot)
    when the shutdown grace runs out is cut like the client sockets: it ends
    at once, logging its message, and the daemon exits without waiting for
    the backend timeout."""
    slow = T.Backend(P, WORK, "--slow", "20")
    d = T.Daemon(P, WORK, slow.port, root_extra="shutdown_grace = 1s",
                 smtp_extra="backend_data_timeout = 30s")
    c, _ = T.greet(d.port)
    eq(c.cmd("MAIL FROM:<cut@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<fault-dot-slow@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: cut\r\n\r\nbody\r\n.\r\n")
    time.sleep(0.3)
    t0 = time.time()
    os.kill(d.proc.pid, signal.SIGTERM)
    d.proc.wait(15)
    check(time.time() - t0 < 3.5, "exited %.1fs after SIGTERM (grace 1s)" % (time.time() - t0))
    check("from=<cut@example.com>" in d.log(), "the session ended and logged its message")
    c.close()
    P.stop(slow.proc)


for name, fn in [("reload affects new sessions only", t_reload), ("SIGTERM drain", t_drain),
                 ("SIGTERM cuts backend waits after the grace", t_drain_cuts_backend_waits)]:
    R.case(name, fn)
P.stop_all()
R.finish()
