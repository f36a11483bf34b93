#!/usr/bin/python3
"""nullmilter.py - the cheapest possible milter, as a floor for milter cost.

nullmilter.py unix:PATH

Speaks the milter protocol (version 6) itself: at negotiation it asks the
MTA to skip every stage it may skip but connect (helo, mail, rcpt, data,
headers, end of headers, body, unknown) and requests no actions, and it
answers connect with "accept", after which the MTA sends nothing more for
that connection (not even macros). So the MTA only opens the connection,
negotiates and reports the client. The bench runs it behind the same
Postfix as the real milters: what Postfix loses with it is what any milter
costs Postfix, whatever the milter does. It does not filter, log or modify
anything.
"""
import os
import socket
import struct
import sys
import threading

SMFIP_SKIP_BUT_CONNECT = 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x100 | 0x200
NO_REPLY = b'DAK'           # macros, abort, quit-and-new-connection


def read_exact(conn, n):
    buf = b''
    while len(buf) < n:
        data = conn.recv(n - len(buf))
        if not data:
            return None
        buf += data
    return buf


def packet(cmd, data=b''):
    return struct.pack('!I', len(data) + 1) + cmd + data


def serve(conn):
    """serve - one MTA connection until it quits or closes."""
    with conn:
        while True:
            head = read_exact(conn, 4)
            if head is None:
                return
            (length,) = struct.unpack('!I', head)
            if length < 1 or length > 1 << 20:
                return
            body = read_exact(conn, length)
            if body is None:
                return
            cmd, data = body[:1], body[1:]
            if cmd == b'O':
                _, actions, proto = struct.unpack('!III', data[:12])
                conn.sendall(packet(b'O', struct.pack('!III', 6, 0,
                                                      proto & SMFIP_SKIP_BUT_CONNECT)))
            elif cmd == b'C':
                conn.sendall(packet(b'a'))      # accept: nothing more for this connection
            elif cmd == b'Q':
                return
            elif cmd in NO_REPLY:
                continue
            else:
                conn.sendall(packet(b'c'))      # continue, for any stage sent anyway


def main():
    if len(sys.argv) != 2 or not sys.argv[1].startswith('unix:'):
        sys.exit('usage: nullmilter.py unix:PATH')
    path = sys.argv[1][5:]
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0)
    srv.bind(path)
    os.umask(old)
    srv.listen(256)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == '__main__':
    main()
