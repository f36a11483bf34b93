#!/usr/bin/python3
"""idle.py - hold N idle SMTP sessions open and report a server's RSS per session.

idle.py -n 1000 -p PORT --pid SERVER_PID [--hold SECONDS]

Opens N connections to 127.0.0.1:PORT, reads each banner, says EHLO, reads
the reply, then holds them all open for a moment and reads the server's
VmRSS: per session = (VmRSS with N sessions - VmRSS before) / N. It counts
sessions the server refused or dropped. It does not send mail. Prints one
line of key=value pairs; exits 1 when not every session stayed open.
"""
import argparse
import resource
import socket
import sys
import time


def status(pid, field):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def read_reply(sock, buf=b''):
    """the bytes up to the end of one (multi-line) reply; raises on EOF."""
    while True:
        lines = buf.split(b'\r\n')
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b' ':
                return line[:3]
        data = sock.recv(4096)
        if not data:
            raise ConnectionError('closed')
        buf += data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-n', type=int, default=1000)
    ap.add_argument('-p', type=int, required=True)
    ap.add_argument('--pid', type=int, required=True)
    ap.add_argument('--hold', type=float, default=2.0)
    o = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < o.n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, o.n + 256), hard))
    time.sleep(0.5)
    before = status(o.pid, 'VmRSS')
    threads0 = status(o.pid, 'Threads')
    socks, refused = [], 0
    t0 = time.monotonic()
    for _ in range(o.n):
        s = socket.create_connection(('127.0.0.1', o.p), 10)
        try:
            if read_reply(s) != b'220':
                raise ConnectionError('banner')
            s.sendall(b'EHLO idle.example.com\r\n')
            if read_reply(s) != b'250':
                raise ConnectionError('ehlo')
            socks.append(s)
        except (OSError, ConnectionError):
            refused += 1
            s.close()
    opened = time.monotonic() - t0
    time.sleep(o.hold)
    after = status(o.pid, 'VmRSS')
    threads = status(o.pid, 'Threads')
    # every session must still be there: a NOOP answered on each
    alive = 0
    for s in socks:
        try:
            s.sendall(b'NOOP\r\n')
            if read_reply(s) == b'250':
                alive += 1
        except (OSError, ConnectionError):
            pass
    for s in socks:
        try:
            s.sendall(b'QUIT\r\n')
        except OSError:
            pass
        s.close()
    per = (after - before) / float(o.n)
    print('sessions=%d open=%d alive_after=%d refused=%d rss_before_kib=%d rss_with_sessions_kib=%d '
          'threads=%d->%d open_secs=%.1f per_session_kib=%.1f'
          % (o.n, len(socks), alive, refused, before, after, threads0, threads, opened, per))
    return 0 if alive == o.n else 1


if __name__ == '__main__':
    sys.exit(main())
