#!/usr/bin/python3
"""t/smtp/test_limits.py - limits, timeouts and load of the smtp front-end.

max_sessions and max_sessions_per_ip (421 4.7.0; per IP as given by the PROXY
header), command and data timeouts (421 4.4.2), over-long command and text
lines with bounded memory (a megabyte without a line end), the message size
limit on DATA and BDAT, a 50 MB message spooled to an unlinked file (peak RSS
checked, the spool folder empty afterwards), and 1,000 concurrent sessions
each relaying a message to the capture backend.
"""
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check

R = T.Runner("limits")
SANITIZED = b"libasan" in subprocess.run(["ldd", T.SUBMILTER], capture_output=True).stdout
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-limits-")
BE = T.Backend(P, WORK)


def status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith(key + ":"):
                return int(l.split()[1])
    return 0


def sink():
    port = T.free_port()
    p = P.start(["smtp-sink", "-u", "nobody", "127.0.0.1:%d" % port, "1024"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    T.wait_port(port, p)
    return p, port


def t_max_sessions():
    d = T.Daemon(P, WORK, BE.port, smtp_extra="max_sessions = 3")
    cs = [T.greet(d.port)[0] for _ in range(3)]
    c = T.Client(d.port)
    code, l = c.reply()
    eq(l[0][:9], "421 4.7.0", "4th session refused")
    check(c.closed(), "closed")
    cs[0].cmd("QUIT")
    cs[0].close()
    time.sleep(0.2)
    c, _ = T.greet(d.port)
    c.close()
    P.stop(d.proc)


def t_per_ip():
    d = T.Daemon(P, WORK, BE.port, smtp_extra="max_sessions_per_ip = 2\nproxy_protocol = yes")

    def via(addr):
        c = T.Client(d.port)
        c.send("PROXY TCP4 %s 127.0.0.1 1234 25\r\n" % addr)
        return c, c.reply()
    a1, r1 = via("192.0.2.1")
    a2, r2 = via("192.0.2.1")
    a3, r3 = via("192.0.2.1")
    b1, r4 = via("192.0.2.2")
    eq([r1[0], r2[0], r3[0], r4[0]], [220, 220, 421, 220], "per-IP limit on the PROXY address")
    eq(r3[1][0][:9], "421 4.7.0", "enhanced code")
    P.stop(d.proc)


def t_timeouts():
    d = T.Daemon(P, WORK, BE.port, smtp_extra="timeout = 1s\ndata_timeout = 1s")
    c, _ = T.greet(d.port)
    t0 = time.time()
    code, l = c.reply()
    eq(l[0][:9], "421 4.4.2", "idle client")
    check(0.8 < time.time() - t0 < 3, "after about 1s")
    check(c.closed(), "closed")
    c, _ = T.greet(d.port)                     # one octet every 0.3 s: no way round
    t0 = time.time()
    try:
        for ch in "NOOP and more and more\r\n":
            c.send(ch)
            time.sleep(0.3)
    except OSError:
        pass
    code, l = c.reply()
    eq(l[0][:9], "421 4.4.2", "trickling client")
    check(time.time() - t0 < 3, "dropped at the command timeout")
    c, _ = T.greet(d.port)
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<slowdata@example.com>")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: slow\r\n\r\nhalf")
    code, l = c.reply()
    eq(l[0][:9], "421 4.4.2", "silent in DATA")
    check(c.closed(), "closed")
    time.sleep(0.2)
    check(not [m for m in BE.messages() if "slowdata@example.com" in m["rcpts"]], "nothing relayed")
    P.stop(d.proc)


def t_min_data_rate():
    """A client trickling its message (one octet every 0.3 s, each within
    data_timeout) is cut once it falls below min_data_rate after the grace of
    data_timeout; with min_data_rate = 0 the same trickle is accepted."""
    def trickle(port, rcpt, n):
        c, _ = T.greet(port)
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<%s>" % rcpt)
        eq(c.cmd("DATA")[0], 354, "DATA")
        c.send("Subject: trickle\r\n\r\n")
        t0 = time.time()
        try:
            for _ in range(n):
                c.send("x")
                time.sleep(0.3)
            c.send("\r\n.\r\n")
        except OSError:
            pass
        code, l = c.reply()
        c.close()
        return l[0][:9], time.time() - t0
    d = T.Daemon(P, WORK, BE.port, smtp_extra="data_timeout = 1s\nmin_data_rate = 500")
    got, secs = trickle(d.port, "trickle-rated@example.com", 20)
    eq(got, "421 4.4.2", "trickling message under min_data_rate")
    check(secs < 3, "cut after about data_timeout, not after %.1f s" % secs)
    time.sleep(0.2)
    check(not [m for m in BE.messages() if "trickle-rated@example.com" in m["rcpts"]],
          "nothing relayed")
    P.stop(d.proc)
    d = T.Daemon(P, WORK, BE.port, smtp_extra="data_timeout = 1s\nmin_data_rate = 0")
    got, secs = trickle(d.port, "trickle-free@example.com", 8)
    eq(got[:3], "250", "min_data_rate = 0: the same trickle is accepted after %.1f s" % secs)
    P.stop(d.proc)


def t_long_lines():
    d = T.Daemon(P, WORK, BE.port)
    c, _ = T.greet(d.port)
    rss0 = status(d.proc.pid, "VmRSS")
    code, l = c.cmd("NOOP " + "x" * 600)
    eq(l[0][:9], "500 5.5.2", "command over 512")
    c.send("NOOP ")
    chunk = "y" * 65536
    for _ in range(16):
        c.send(chunk)
    code, l = c.cmd("")
    eq(l[0][:9], "500 5.5.2", "a megabyte without CRLF")
    eq(c.cmd("NOOP")[0], 250, "session goes on")
    rss1 = status(d.proc.pid, "VmRSS")
    check(rss1 - rss0 < (65536 if SANITIZED else 4096), "memory bounded (%d KiB -> %d KiB)" % (rss0, rss1))
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<longline@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: long\r\n\r\n" + "z" * 1500 + "\r\nok\r\n.\r\n")
    code, l = c.reply()
    eq(l[0][:9], "500 5.5.2", "text line over 1000 (HOSTILE-INPUT; RFC 4954 keeps X.5.6 for AUTH lines)")
    eq(c.cmd("NOOP")[0], 250, "session goes on")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<longline@example.com>")
    c.cmd("DATA")
    c.send("Subject: long\r\n\r\n" + "z" * 998 + "\r\n.\r\n")
    eq(c.reply()[0], 250, "998 octets is fine")
    eq(len([m for m in BE.messages() if "longline@example.com" in m["rcpts"]]), 1, "one relayed")
    P.stop(d.proc)


def t_size():
    d = T.Daemon(P, WORK, BE.port, smtp_extra="max_message_size = 10K")
    c, lines = T.greet(d.port)
    check("250-SIZE 10240" in lines, "SIZE advertised: %r" % lines)
    eq(c.cmd("MAIL FROM:<a@example.com> SIZE=20000")[0], 552, "declared too big")
    eq(c.cmd("MAIL FROM:<a@example.com> SIZE=100")[0], 250, "declared small (a lie)")
    eq(c.cmd("RCPT TO:<big@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 300 + ".\r\n")
    eq(c.reply()[1][0][:9], "552 5.3.4", "caught on the bytes received")
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<big@example.com>")[0], 250, "RCPT")
    chunk = ("x" * 70 + "\r\n") * 100
    c.send("BDAT %d\r\n%s" % (len(chunk), chunk))
    eq(c.reply()[0], 250, "chunk 1")
    c.send("BDAT %d\r\n%s" % (len(chunk), chunk))
    eq(c.reply()[1][0][:9], "552 5.3.4", "chunk 2 over the limit")
    c.send("BDAT %d LAST\r\n%s" % (len(chunk), chunk))
    eq(c.reply()[0], 503, "later chunks refused, their bytes consumed")
    eq(c.cmd("NOOP")[0], 250, "in sync")
    check(not [m for m in BE.messages() if "big@example.com" in m["rcpts"]], "nothing relayed")
    P.stop(d.proc)


def t_header_bounds():
    d = T.Daemon(P, WORK, BE.port)
    c, _ = T.greet(d.port)
    for label, hdr, want in [
            ("folded field over 64 KiB", "X-Long: start\r\n" + " fold line\r\n" * 7000, "552 5.3.4"),
            ("header section over 1 MiB", "".join("X-H%d: %s\r\n" % (i, "v" * 900) for i in range(1300)),
             "552 5.3.4")]:
        eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, label)
        eq(c.cmd("RCPT TO:<hdr@example.com>")[0], 250, label)
        eq(c.cmd("DATA")[0], 354, label)
        c.send(hdr + "\r\nbody\r\n.\r\n")
        eq(c.reply()[1][0][:9], want, label)
    eq(c.cmd("NOOP")[0], 250, "in sync")
    check(not [m for m in BE.messages() if "hdr@example.com" in m["rcpts"]], "nothing relayed")
    P.stop(d.proc)


def t_spool_50mb():
    sp, sport = sink()
    d = T.Daemon(P, WORK, sport, smtp_extra="max_message_size = 60M",
                 root_extra="spool_memory = 256K")
    c, _ = T.greet(d.port)
    eq(c.cmd("MAIL FROM:<a@example.com> SIZE=52428800")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<huge@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    line = ("0123456789" * 7 + "\r\n").encode()
    block = b"Subject: huge\r\n\r\n" + line * (65536 // len(line))
    sent = 0
    deleted_seen = False
    while sent < 50 * 1024 * 1024:
        c.send(block)
        sent += len(block)
        block = line * (65536 // len(line))
        if not deleted_seen and sent > 8 * 1024 * 1024:
            fds = os.listdir("/proc/%d/fd" % d.proc.pid)
            for fd in fds:
                try:
                    t = os.readlink("/proc/%d/fd/%s" % (d.proc.pid, fd))
                except OSError:
                    continue
                if t.startswith(d.spool) and t.endswith("(deleted)"):
                    deleted_seen = True
    c.send(".\r\n")
    code, l = c.reply()
    eq(code, 250, "50 MB message relayed")
    check(deleted_seen, "spooled to an unlinked file in spool_dir")
    hwm = status(d.proc.pid, "VmHWM")
    print("   50 MB message: peak RSS of the daemon %d KiB" % hwm)
    check(hwm < (200 if SANITIZED else 30) * 1024,
          "peak RSS %d KiB stays far below the message size" % hwm)
    c.cmd("QUIT")
    eq(os.listdir(d.spool), [], "spool folder empty")
    P.stop(d.proc)
    P.stop(sp)


def t_thousand():
    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    # smtp-sink serves 256 connections at a time; the capture backend has no limit
    be = T.Backend(P, WORK)
    d = T.Daemon(P, WORK, be.port, smtp_extra="max_sessions = 1100\nmax_sessions_per_ip = 1100")
    t0 = time.time()
    cs = []
    for _ in range(n):
        c = T.Client(d.port, timeout=60)
        cs.append(c)
    for c in cs:
        eq(c.reply()[0], 220, "banner")
    for c in cs:
        c.send("EHLO load.test\r\n")
    for c in cs:
        eq(c.reply()[0], 250, "EHLO")
    threads = status(d.proc.pid, "Threads")
    rss = status(d.proc.pid, "VmRSS")
    for i, c in enumerate(cs):
        c.send("MAIL FROM:<load@example.com>\r\nRCPT TO:<r%d@example.com>\r\nDATA\r\n" % i)
    for c in cs:
        eq([c.reply()[0] for _ in range(3)], [250, 250, 354], "envelope")
    for i, c in enumerate(cs):
        c.send("Subject: load %d\r\n\r\nbody\r\n.\r\n" % i)
    codes = [c.reply()[0] for c in cs]
    eq(codes.count(250), n, "every message accepted")
    for c in cs:
        c.send("QUIT\r\n")
    for c in cs:
        c.reply()
        c.close()
    print("   %d concurrent sessions: %d threads, RSS %d KiB (%.1f KiB/session), %.1fs" %
          (n, threads, rss, rss / n, time.time() - t0))
    check(threads >= n, "one thread per session (%d)" % threads)
    if not SANITIZED:                           # ASan's shadow memory is not ours
        check(rss < 200 * 1024, "RSS bounded (%d KiB)" % rss)
    eq(len(be.messages()), n, "backend received every message")
    P.stop(d.proc)
    P.stop(be.proc)


for name, fn in [("max_sessions", t_max_sessions), ("max_sessions_per_ip", t_per_ip),
                 ("timeouts", t_timeouts), ("min_data_rate", t_min_data_rate),
                 ("over-long lines", t_long_lines),
                 ("size limit", t_size), ("header bounds", t_header_bounds),
                 ("50 MB spool", t_spool_50mb),
                 ("1000 concurrent sessions", t_thousand)]:
    R.case(name, fn)
P.stop_all()
R.finish()
