"""t/milter/milter-fuzz.py - hostile MTA: random milter-protocol sessions
against a running daemon, then a proof that it still serves.

    milter-fuzz.py HOST:PORT SESSIONS SEED

Each session negotiates (with random offered steps and actions), then sends
a random sequence of commands in any order: well-formed ones with odd
values (empty, very long, binary, CR/LF, many parameters), malformed ones
(missing NULs, truncated, empty packets, unknown commands, wrong macro
stages), and sometimes cuts the connection in the middle of a packet.
Whatever comes back is read and ignored. Finally one clean transaction must
get the replies a healthy milter gives. Prints "ok - ..." / "not ok - ..."
lines; exit status 1 on failure.
"""
import random
import socket
import struct
import sys
import time


def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def optneg(rnd):
    steps = rnd.choice([0x1fffff, 0, rnd.getrandbits(21), 0x1ff])
    actions = rnd.choice([0x1ff, 0, rnd.getrandbits(9)])
    return packet(b"O", struct.pack(">III", 6, actions, steps))


def junk(rnd, n):
    return bytes(rnd.getrandbits(8) for _ in range(n))


def text(rnd):
    kind = rnd.randrange(8)
    if kind == 0:
        return b""
    if kind == 1:
        return b"x" * rnd.choice([300, 5000, 60000])
    if kind == 2:
        return junk(rnd, rnd.randrange(1, 40)).replace(b"\0", b"\1")
    if kind == 3:
        return b"a\r\nb\n\tc%s%%d%n"
    if kind == 4:
        return b"<" + b"u" * rnd.randrange(0, 600) + b"@example.com>"
    if kind == 5:
        return b"<>"
    if kind == 6:
        return b"\xff\xfe\xc3\x28 utf8? \xe2\x82"
    return b"<user@example.com>"


def command(rnd):
    c = rnd.randrange(22)
    if c == 0:
        fam = rnd.choice([b"4", b"6", b"U", b"L", b"Z"])
        addr = rnd.choice([b"192.0.2.1", b"2001:db8::1", b"not-an-ip", b"", b"999.1.1.1"])
        return packet(b"C", text(rnd) + b"\0" + fam + struct.pack(">H", rnd.randrange(65536)) + addr + b"\0")
    if c == 1:
        return packet(b"H", text(rnd) + b"\0")
    if c == 2:
        args = [text(rnd)] + [b"P%d=%s" % (i, text(rnd)[:50]) for i in range(rnd.choice([0, 1, 40, 200]))]
        return packet(b"M", b"\0".join(args) + b"\0")
    if c == 3:
        return packet(b"R", text(rnd) + b"\0" + rnd.choice([b"", b"NOTIFY=NEVER\0", b"=\0", b"ORCPT\0"]))
    if c == 4:
        return packet(b"T")
    if c == 5:
        return packet(b"L", rnd.choice([b"Subject", b"", b"Bad Name", b"X" * 300, b"\x01"]) + b"\0" + text(rnd) + b"\0")
    if c == 6:
        return packet(b"N")
    if c == 7:
        return packet(b"B", junk(rnd, rnd.choice([0, 1, 100, 65535])))
    if c == 8:
        return packet(b"E")
    if c == 9:
        return packet(b"A")
    if c == 10:
        return packet(b"U", text(rnd) + b"\0")
    if c == 11:
        stage = rnd.choice([b"C", b"H", b"M", b"R", b"T", b"E", b"N", b"Q", b"x"])
        names = [b"{auth_authen}", b"{tls_version}", b"i", b"j", b"{auth_author}", b"{client_addr}"]
        pairs = b"".join(rnd.choice(names) + b"\0" + text(rnd)[:200] + b"\0" for _ in range(rnd.randrange(4)))
        return packet(b"D", stage + pairs)
    if c == 12:
        return packet(bytes([rnd.randrange(256)]), junk(rnd, rnd.randrange(30)))
    if c == 13:
        return packet(b"M", text(rnd))            # no NUL at the end
    if c == 14:
        return packet(b"L", b"Subject")           # header without value
    if c == 15:
        return struct.pack(">I", 0)               # empty packet
    if c == 16:
        return packet(b"R", b"")
    if c == 17:
        return optneg(rnd)                        # negotiation again
    if c == 18:
        return packet(b"Q")
    if c == 19:
        return packet(b"K")                       # QUIT_NC: another session follows
    if c == 20:
        return packet(b"D", b"M{auth_authen}\0mallory\0") + packet(b"M", b"<m@example.com>\0")
    return packet(b"L", b"X-Tag\0" + b"v\r\n\tw" * rnd.randrange(1, 300) + b"\0")


def drain(sock):
    sock.settimeout(0.004)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def session(host, port, rnd):
    s = socket.create_connection((host, port), timeout=5)
    try:
        s.sendall(optneg(rnd))
        drain(s)
        for _ in range(rnd.randrange(1, 30)):
            p = command(rnd)
            if rnd.randrange(40) == 0:
                s.sendall(p[:rnd.randrange(len(p))])   # cut mid-packet
                return
            s.sendall(p)
            drain(s)
    except OSError:
        pass                                      # the daemon may hang up on garbage
    finally:
        s.close()


def read_reply(s):
    hdr = b""
    while len(hdr) < 4:
        chunk = s.recv(4 - len(hdr))
        if not chunk:
            raise EOFError("closed")
        hdr += chunk
    n = struct.unpack(">I", hdr)[0]
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise EOFError("closed")
        body += chunk
    return body[:1], body[1:]


def clean(host, port):
    """One proper transaction; the replies a healthy milter gives."""
    s = socket.create_connection((host, port), timeout=10)
    got = []
    s.sendall(packet(b"O", struct.pack(">III", 6, 0x1ff, 0x1fffff)))
    got.append(read_reply(s)[0])
    steps = [packet(b"C", b"client.example\x004" + struct.pack(">H", 25) + b"192.0.2.7\0"),
             packet(b"H", b"client.example\0"),
             packet(b"M", b"<sender@example.com>\0"),
             packet(b"R", b"<r@example.net>\0"),
             packet(b"T"),
             packet(b"L", b"Subject\0 after the storm\0"),
             packet(b"N"),
             packet(b"B", b"body\r\n")]
    for p in steps:
        s.sendall(p)
        got.append(read_reply(s)[0])
    s.sendall(packet(b"E"))
    while True:
        cmd, _ = read_reply(s)
        got.append(cmd)
        if cmd in (b"c", b"a", b"r", b"t", b"y", b"d"):
            break
    s.sendall(packet(b"Q"))
    s.close()
    return got


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    port = int(port)
    sessions, seed = int(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(seed)
    t0 = time.time()
    for _ in range(sessions):
        try:
            session(host, port, rnd)
        except OSError as e:
            print("not ok - could not connect during the run (seed %d): %s" % (seed, e))
            return 1
    print("ok - %d hostile sessions sent (seed %d, %.1f s)" % (sessions, seed, time.time() - t0))
    time.sleep(0.5)
    try:
        got = clean(host, port)
    except (OSError, EOFError) as e:
        print("not ok - a clean transaction after the run: %s" % e)
        return 1
    want_prefix = [b"O"] + [b"c"] * 8
    ok = got[:9] == want_prefix and got[-1] == b"c"
    print("%s - a clean transaction after the run gets the normal replies (%s)"
          % ("ok" if ok else "not ok", b"".join(got).decode()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
