#!/usr/bin/python3
"""t/smtp/test_sink.py - backend faults injected by Postfix's smtp-sink.

For each fault (-q drop, -Q 421 and drop, -r 4xx, -f 5xx, -W delay past the
deadline, -A abort after DATA) at MAIL, RCPT, DATA and the final dot, a
message is sent through the daemon: the client must get the reply class the
fault implies (451 for anything that is not a refusal by the backend, the
backend's own 4xx/5xx otherwise: smtp-sink says 450 and 500) and never 250; with no fault it gets 250
and the sink's dump holds the message.
"""
import glob
import os
import smtplib
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check

R = T.Runner("sink")
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-sink-")
os.chmod(WORK, 0o755)


def sink(*flags):
    port = T.free_port()
    dump = tempfile.mkdtemp(prefix="dump-", dir=WORK)
    os.chmod(dump, 0o777)
    p = P.start(["smtp-sink", "-u", "nobody", "-d", os.path.join(dump, "%M%S.")] + list(flags) +
                ["127.0.0.1:%d" % port, "50"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    T.wait_port(port, p)
    return p, port, dump


def attempt(port):
    """(stage, code) of the first non-2xx/3xx reply, or ("done", 250)."""
    c, _ = T.greet(port)
    for stage, cmd in (("mail", "MAIL FROM:<a@example.com>"), ("rcpt", "RCPT TO:<b@example.com>"),
                       ("data", "DATA")):
        code, _ = c.cmd(cmd)
        if code >= 400:
            c.close()
            return stage, code
    c.send("Subject: sink fault\r\n\r\nbody\r\n.\r\n")
    code, _ = c.reply()
    c.close()
    return ("done" if code == 250 else "dot"), code


CASES = [
    ("no fault", [], ("done", 250)),
    # MAIL goes to a PIPELINING backend with the first RCPT (deferred MAIL):
    # the backend's answer to it is the answer to that RCPT
    ("-q MAIL (drop)", ["-q", "MAIL"], ("rcpt", 451)),
    ("-Q RCPT (421, drop)", ["-Q", "RCPT"], ("rcpt", 451)),
    ("-r RCPT (4xx)", ["-r", "RCPT"], ("rcpt", 450)),
    # smtp-sink -f stops offering PIPELINING: MAIL is answered at MAIL
    ("-f MAIL (5xx)", ["-f", "MAIL"], ("mail", 500)),
    ("-f DATA (5xx)", ["-f", "DATA"], ("dot", 500)),
    ("-q DATA (drop)", ["-q", "DATA"], ("dot", 451)),
    ("-q . (drop after the dot)", ["-q", "."], ("dot", 451)),
    ("-Q . (421 after the dot)", ["-Q", "."], ("dot", 451)),
    ("-r . (4xx to the dot)", ["-r", "."], ("dot", 450)),
    ("-f . (5xx to the dot)", ["-f", "."], ("dot", 500)),
    ("-W .:3 (slow past the deadline)", ["-W", ".:3"], ("dot", 451)),
    ("-A 0 (550 right after 354)", ["-A", "0"], ("dot", 550)),
]


def run(flags, want):
    sp, port, dump = sink(*flags)
    d = T.Daemon(P, WORK, port, smtp_extra="backend_timeout = 1s\nbackend_data_timeout = 1s")
    got = attempt(d.port)
    eq(got, want, "client outcome")
    files = glob.glob(os.path.join(dump, "*"))
    if got[1] == 250:
        check(files and "sink fault" in open(files[0], errors="replace").read(), "dumped")
    P.stop(d.proc)
    P.stop(sp)


for label, flags, want in CASES:
    R.case(label, run, flags, want)
P.stop_all()
R.finish()
