#!/usr/bin/python3
"""dnsserver.py - a small authoritative DNS server for the SPF/DKIM tests.

    dnsserver.py --addr 127.0.0.1 --port 53 --zone ZONE.json [--log FILE]
                 [--timeout-mode drop|servfail] [--ready FILE]

ZONE.json maps names to a list of entries, in order:
    ["TXT", "text" | ["piece", "piece"]], ["SPF", ...], ["A", "192.0.2.1"],
    ["AAAA", "2001:db8::1"], ["MX", [10, "mx.example"]], ["PTR", "name"],
    ["CNAME", "name"], "TIMEOUT", "SERVFAIL"
A query for a name that is absent gets NXDOMAIN, for a type the name lacks
an empty answer. "TIMEOUT" (as in the RFC 7208 test suite driver): if no
record of the asked type came before it, the query is dropped (or answered
SERVFAIL with --timeout-mode servfail); "SERVFAIL" answers SERVFAIL. A name
"error.*" that is absent is a TIMEOUT. The zone file is read again whenever
it changes, so one server serves many scenarios. Each query is logged
("NAME TYPE") to --log. UDP and TCP (for answers over 512 octets).
Listens on loopback only. Uses dnslib (Debian python3-dnslib).
"""
import argparse
import json
import os
import socketserver
import struct
import sys
import threading

from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSRecord

ZONE = {"path": None, "mtime": None, "data": {}}
LOCK = threading.Lock()
ARGS = None


def zone():
    """The zone, read again if the file changed."""
    with LOCK:
        st = os.stat(ZONE["path"])
        if st.st_mtime_ns != ZONE["mtime"]:
            with open(ZONE["path"], encoding="utf-8", errors="surrogateescape") as f:
                data = json.load(f)
            ZONE["data"] = {k.lower().rstrip("."): v for k, v in data.items()}
            ZONE["mtime"] = st.st_mtime_ns
        return ZONE["data"]


def rdata(rtype, value):
    if rtype in ("TXT", "SPF"):
        parts = value if isinstance(value, list) else [value]
        return TXT([p.encode("utf-8", "surrogateescape") for p in parts])
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "MX":
        return MX(value[1], value[0])
    if rtype == "PTR":
        return PTR(value)
    if rtype == "CNAME":
        return CNAME(value)
    raise ValueError(rtype)


def lookup(name, qtype, depth=0):
    """(action, [(name, type, value)]): action is ok, nx, drop or servfail."""
    entries = zone().get(name.lower().rstrip("."))
    if entries is None:
        return ("drop" if name.lower().startswith("error.") else "nx"), []
    answers, seen = [], False
    for e in entries:
        if e == "TIMEOUT":
            if not seen:
                return "drop", []
            break
        if e == "SERVFAIL":
            return "servfail", []
        rtype, value = e
        if rtype == qtype or (qtype == "TXT" and rtype == "TXT"):
            seen = True
            answers.append((name, rtype, value))
        elif rtype == "CNAME" and qtype != "CNAME" and depth < 8:
            action, more = lookup(value, qtype, depth + 1)
            return action if action != "nx" else "ok", [(name, "CNAME", value)] + more
    return "ok", answers


def answer(data):
    """The reply packet for a query, or None to stay silent."""
    try:
        req = DNSRecord.parse(data)
    except Exception:
        return None
    q = req.q
    qname = str(q.qname).rstrip(".")
    qtype = QTYPE.get(q.qtype, str(q.qtype))
    if ARGS.log:
        with LOCK, open(ARGS.log, "a") as f:
            f.write("%s %s\n" % (qname, qtype))
    action, records = lookup(qname, qtype)
    if action == "drop" and ARGS.timeout_mode == "servfail":
        action = "servfail"
    if action == "drop":
        return None
    reply = req.reply()
    reply.header.aa = 1
    if action == "nx":
        reply.header.rcode = RCODE.NXDOMAIN
    elif action == "servfail":
        reply.header.rcode = RCODE.SERVFAIL
    for name, rtype, value in records:
        try:
            rr_type = getattr(QTYPE, rtype) if rtype != "SPF" else 99
            reply.add_answer(RR(name, rr_type, rdata=rdata(rtype, value), ttl=60))
        except Exception as e:  # a record the test made unparsable on purpose
            print("dnsserver: skipping %s %s: %s" % (name, rtype, e), file=sys.stderr)
    return reply.pack()


class UDPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        out = answer(data)
        if out is None:
            return
        if len(out) > 512:
            # Truncated: the resolver will ask again over TCP.
            req = DNSRecord.parse(data)
            tc = req.reply()
            tc.header.tc = 1
            out = tc.pack()
        sock.sendto(out, self.client_address)


class TCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        head = self.request.recv(2)
        if len(head) < 2:
            return
        need = struct.unpack("!H", head)[0]
        data = b""
        while len(data) < need:
            chunk = self.request.recv(need - len(data))
            if not chunk:
                return
            data += chunk
        out = answer(data)
        if out is not None:
            self.request.sendall(struct.pack("!H", len(out)) + out)


class UDPServer(socketserver.ThreadingUDPServer):
    allow_reuse_address = True
    daemon_threads = True


class TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--zone", required=True)
    p.add_argument("--log")
    p.add_argument("--ready")
    p.add_argument("--timeout-mode", choices=("drop", "servfail"), default="drop")
    ARGS = p.parse_args()
    if ARGS.addr not in ("127.0.0.1", "::1"):
        sys.exit("dnsserver: loopback addresses only")
    ZONE["path"] = ARGS.zone
    zone()
    udp = UDPServer((ARGS.addr, ARGS.port), UDPHandler)
    tcp = TCPServer((ARGS.addr, ARGS.port), TCPHandler)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    if ARGS.ready:
        with open(ARGS.ready, "w") as f:
            f.write("%d\n" % os.getpid())
    udp.serve_forever()


if __name__ == "__main__":
    main()
