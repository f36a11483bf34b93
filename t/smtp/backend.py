#!/usr/bin/python3
"""t/smtp/backend.py - a capture SMTP server for the smtp front-end tests,
playing the backend MTA, with fault injection.

It listens on 127.0.0.1:PORT, records every command line it reads
(DIR/commands.jsonl; "ahead": more input was already waiting, i.e. the
client pipelined) and every message it accepted with 250 (DIR/messages.jsonl:
envelope, parameters, data as latin-1 text). A message is "received" only when
the server's 250 to the final dot was written.

Faults are chosen by the envelope (so one server serves every test case):
  MAIL FROM:<fault-mail-CODE@x>    reply CODE to MAIL (fault-mail-multi-CODE: 3 lines)
  MAIL FROM:<fault-mail-drop@x>    close the connection instead of answering
  RCPT TO:<fault-rcpt-CODE@x>      reply CODE to that RCPT
  RCPT TO:<fault-rcpt-drop@x>      close at that RCPT
  RCPT TO:<fault-data-CODE@x>      reply CODE to DATA;  fault-data-drop: close
  RCPT TO:<fault-data-timeout-once@x>  354, then 421 and close 0.2 s later, as at
                                   a backend's timeout (the first time only)
  RCPT TO:<fault-dot-CODE@x>       reply CODE to the final dot (nothing kept)
  RCPT TO:<fault-dot-drop@x>       close after the dot, no reply (nothing kept)
  RCPT TO:<fault-dot-slow@x>       sleep --slow seconds after the dot, then close
  RCPT TO:<fault-dot-bad@x>        a malformed reply to the dot (nothing kept)
  RCPT TO:<fault-once-drop-after-rcpt@x>  accept it, then close (the first time only)
  RCPT TO:<fault-again-CODE-x@x>   accept it the first time, reply CODE after
  VRFY fault-vrfy-CODE             reply CODE to VRFY
XCLIENT inside a transaction gets 503, as from Postfix.
or at random with --random RATE (--seed S): any command may get 421+close,
451, 550, a drop or a stall, and the final dot any of those too.
Options: --caps "PIPELINING 8BITMIME ..." (EHLO keywords), --xclient (offer
XCLIENT), --greet CODE (greeting code), --portfile FILE (written when ready).
"""
import argparse
import json
import os
import random
import socket
import socketserver
import sys
import threading
import time

DEFAULT_CAPS = ["PIPELINING", "SIZE 104857600", "8BITMIME", "DSN", "SMTPUTF8",
                "ENHANCEDSTATUSCODES", "ETRN"]


class Drop(Exception):
    pass


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.conn_no = 0
        self.msg_no = 0
        self.rng = random.Random(args.seed)
        self.dropped = set()
        self.cmdlog = open(os.path.join(args.dir, "commands.jsonl"), "a")
        self.msglog = open(os.path.join(args.dir, "messages.jsonl"), "a")

    def log_cmd(self, conn, line, ahead=False):
        with self.lock:
            self.cmdlog.write(json.dumps({"conn": conn, "line": line.decode("latin-1"),
                                          "ahead": ahead}) + "\n")
            self.cmdlog.flush()

    def log_msg(self, rec):
        with self.lock:
            self.msg_no += 1
            rec["n"] = self.msg_no
            self.msglog.write(json.dumps(rec) + "\n")
            self.msglog.flush()
            return self.msg_no

    def chance(self):
        with self.lock:
            return self.rng.random()

    def pick(self, seq):
        with self.lock:
            return self.rng.choice(seq)


def local(addr):
    return addr.split("@", 1)[0].lower()


def code_reply(code, what, multi=False):
    cls = code[0]
    ec = {"2": "2.0.0", "4": "4.3.0", "5": "5.7.1"}.get(cls, "2.0.0")
    if multi:
        return ("%s-%s backend %s line one\r\n%s-%s backend %s line two\r\n"
                "%s %s backend %s line three\r\n" % (code, ec, what, code, ec, what,
                                                     code, ec, what)).encode()
    return ("%s %s backend %s %s\r\n" % (code, ec, what, code)).encode()


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        st = self.server.state
        with st.lock:
            st.conn_no += 1
            self.conn = st.conn_no
        self.buf = b""
        self.sock = self.request
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def readline(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise Drop()
            self.buf += d
            if len(self.buf) > 1 << 20:
                raise Drop()
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def send(self, data):
        self.sock.sendall(data)

    def random_fault(self, where):
        """None, or an action for a random fault at this point."""
        st = self.server.state
        if st.args.random <= 0 or st.chance() >= st.args.random:
            return None
        return st.pick(["421", "451", "550", "drop", "stall"])

    def apply_random(self, act):
        if act in ("421",):
            self.send(b"421 4.3.2 backend random shutdown\r\n")
            raise Drop()
        if act == "drop":
            raise Drop()
        if act == "stall":
            time.sleep(self.server.state.args.slow)
            raise Drop()
        self.send(code_reply(act, "random"))

    def handle(self):
        try:
            self.session()
        except (Drop, ConnectionError, OSError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def session(self):
        st = self.server.state
        a = st.args
        self.send(("%d backend.test ESMTP capture\r\n" % a.greet).encode())
        if a.greet != 220:
            return
        self.reset()
        while True:
            line = self.readline()
            st.log_cmd(self.conn, line, ahead=bool(self.buf))
            if not line.endswith(b"\r\n"):
                self.send(b"500 5.5.2 bare LF in command\r\n")
                continue
            cmd = line[:-2].decode("utf-8", "replace")
            verb = cmd.split(" ", 1)[0].upper()
            arg = cmd[len(verb):].strip()
            if verb in ("MAIL", "RCPT", "DATA"):
                act = self.random_fault(verb)
                if act:
                    if verb == "MAIL" and act in ("451", "550"):
                        self.send(code_reply(act, "random"))
                        continue
                    if verb == "RCPT" and act in ("451", "550"):
                        self.send(code_reply(act, "random"))
                        continue
                    if verb == "DATA" and act in ("451", "550"):
                        self.send(code_reply(act, "random"))
                        continue
                    self.apply_random(act)
            if verb == "EHLO":
                self.reset()
                caps = list(a.caps)
                if a.xclient:
                    caps.append("XCLIENT NAME ADDR PROTO HELO LOGIN PORT")
                lines = ["backend.test"] + caps
                out = "".join("250-%s\r\n" % l for l in lines[:-1]) + "250 %s\r\n" % lines[-1]
                self.send(out.encode())
            elif verb == "HELO":
                self.reset()
                self.send(b"250 backend.test\r\n")
            elif verb == "XCLIENT" and a.xclient and self.mail is not None:
                self.send(b"503 5.5.1 Error: MAIL transaction in progress\r\n")
            elif verb == "XCLIENT" and a.xclient:
                self.reset()
                self.send(b"220 backend.test ESMTP capture after XCLIENT\r\n")
            elif verb == "MAIL":
                self.cmd_mail(arg)
            elif verb == "RCPT":
                self.cmd_rcpt(arg)
            elif verb == "DATA":
                self.cmd_data()
            elif verb == "RSET":
                self.reset()
                self.send(b"250 2.0.0 Ok\r\n")
            elif verb == "NOOP":
                self.send(b"250 2.0.0 Ok\r\n")
            elif verb in ("VRFY", "EXPN"):
                if arg.startswith("fault-vrfy-"):
                    self.send(code_reply(arg[11:14], "vrfy"))
                else:
                    self.send(("250 2.1.5 backend %s <%s>\r\n" % (verb.lower(), arg)).encode())
            elif verb == "ETRN":
                self.send(b"250 2.0.0 backend queuing started\r\n")
            elif verb == "QUIT":
                self.send(b"221 2.0.0 Bye\r\n")
                return
            else:
                self.send(b"502 5.5.2 backend: command not recognized\r\n")

    def reset(self):
        self.mail = None
        self.rcpts = []
        self.faults = set()

    def cmd_mail(self, arg):
        if self.mail is not None:
            self.send(b"503 5.5.1 nested MAIL\r\n")
            return
        addr, params = split_path(arg[5:])
        lp = local(addr)
        if lp.startswith("fault-mail-"):
            what = lp[11:]
            if what == "drop":
                raise Drop()
            if what.startswith("multi-"):
                self.send(code_reply(what[6:9], "mail", multi=True))
            else:
                self.send(code_reply(what[:3], "mail"))
            return
        self.mail = (addr, params)
        self.send(b"250 2.1.0 Ok\r\n")

    def cmd_rcpt(self, arg):
        if self.mail is None:
            self.send(b"503 5.5.1 need MAIL\r\n")
            return
        addr, params = split_path(arg[3:])
        lp = local(addr)
        if lp.startswith("fault-rcpt-"):
            what = lp[11:]
            if what == "drop":
                raise Drop()
            self.send(code_reply(what[:3], "rcpt"))
            return
        if lp.startswith("fault-again-"):       # accepted once, CODE later
            st = self.server.state
            with st.lock:
                again = addr in st.dropped
                st.dropped.add(addr)
            if again:
                self.send(code_reply(lp[12:15], "rcpt"))
                return
        elif lp.startswith("fault-"):
            self.faults.add(lp[6:])
        self.rcpts.append((addr, params))
        self.send(b"250 2.1.5 Ok\r\n")
        if lp == "fault-once-drop-after-rcpt":
            st = self.server.state
            with st.lock:
                first = addr not in st.dropped
                st.dropped.add(addr)
            if first:
                raise Drop()

    def cmd_data(self):
        if not self.rcpts:
            self.send(b"554 5.5.1 no valid recipients\r\n")
            return
        if "data-timeout-once" in self.faults:
            st = self.server.state
            with st.lock:
                first = "data-timeout-once" not in st.dropped
                st.dropped.add("data-timeout-once")
            if first:
                self.send(b"354 go ahead\r\n")
                time.sleep(0.2)
                self.send(b"421 4.4.2 backend.test Error: timeout exceeded\r\n")
                raise Drop()
        for f in self.faults:
            if f.startswith("data-") and f != "data-timeout-once":
                if f == "data-drop":
                    raise Drop()
                self.send(code_reply(f[5:8], "data"))
                return
        self.send(b"354 go ahead\r\n")
        data = bytearray()
        bare = False
        while True:
            line = self.readline()
            if line == b".\r\n":
                break
            if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                bare = True
            if line.startswith(b"."):
                line = line[1:]
            data += line
        act = self.random_fault("DOT")
        for f in self.faults:
            if f.startswith("dot-"):
                act = f[4:]
        if act:
            if act == "drop":
                raise Drop()
            if act in ("slow", "stall"):
                time.sleep(self.server.state.args.slow)
                raise Drop()
            if act == "bad":
                self.send(b"2x0 what\r\n")
                raise Drop()
            if act == "421":
                self.send(b"421 4.3.2 backend closing\r\n")
                raise Drop()
            self.send(code_reply(act[:3], "dot"))
            self.reset()
            return
        rec = {"conn": self.conn, "from": self.mail[0], "mail_params": self.mail[1],
               "rcpts": [r[0] for r in self.rcpts], "rcpt_params": [r[1] for r in self.rcpts],
               "bare": bare, "data": data.decode("latin-1")}
        n = self.server.state.log_msg(rec)
        self.send(("250 2.0.0 Ok: queued as CAP%05d\r\n" % n).encode())
        self.reset()


def split_path(s):
    s = s.strip()
    if s.startswith("<"):
        end = s.find(">")
        return s[1:end], s[end + 1:].strip()
    parts = s.split(" ", 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--portfile")
    ap.add_argument("--caps", default=" ".join(DEFAULT_CAPS).replace("SIZE 104857600", "SIZE=104857600"))
    ap.add_argument("--xclient", action="store_true")
    ap.add_argument("--greet", type=int, default=220)
    ap.add_argument("--random", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--slow", type=float, default=2.0)
    a = ap.parse_args()
    a.caps = [c.replace("=", " ") for c in a.caps.split()] if a.caps else []
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.state = State(a)
    if a.portfile:
        tmp = a.portfile + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(tmp, a.portfile)
    srv.serve_forever()


if __name__ == "__main__":
    main()
