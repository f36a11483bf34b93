"""t/milter/smtp-dialogue.py - play an SMTP client dialogue, one command at
a time, waiting for each reply, against a command that speaks SMTP on its
standard input and output (sendmail -bs) or a TCP port.

    smtp-dialogue.py [--timeout S] -- COMMAND ARGS...   < script
    smtp-dialogue.py [--timeout S] --connect HOST:PORT  < script

The script is SMTP commands, one a line. After a line "DATA" that gets 354,
the lines up to a line "." are the message (dot-stuffed here). The
transcript goes to standard output: "-> " for what was sent, "<- " for each
reply line. Exit status 0 unless the peer went away or timed out.
"""
import socket
import subprocess
import sys


class Peer:
    def __init__(self, argv, connect, timeout):
        self.timeout = timeout
        self.buf = b""
        if connect:
            host, port = connect.rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
            self.proc = None
        else:
            self.sock = None
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, bufsize=0)

    def send(self, data):
        if self.sock:
            self.sock.sendall(data)
        else:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def _more(self):
        if self.sock:
            chunk = self.sock.recv(4096)
        else:
            import select
            r, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
            if not r:
                raise TimeoutError("no reply within %ss" % self.timeout)
            chunk = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") \
                else self.proc.stdout.read(1)
        if not chunk:
            raise EOFError("peer closed")
        self.buf += chunk

    def reply(self):
        """One whole (possibly multi-line) reply; prints its lines."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                self._more()
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("utf-8", "replace")
            print("<- " + line, flush=True)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    def close(self):
        if self.sock:
            self.sock.close()
        else:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(self.timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def main():
    args = sys.argv[1:]
    timeout, connect = 30.0, None
    while args and args[0] != "--":
        if args[0] == "--timeout":
            timeout = float(args[1])
            args = args[2:]
        elif args[0] == "--connect":
            connect = args[1]
            args = args[2:]
        else:
            sys.exit("usage: smtp-dialogue.py [--timeout S] (--connect H:P | -- CMD...)")
    if args:
        args = args[1:]
    peer = Peer(args, connect, timeout)
    script = sys.stdin.read().split("\n")
    try:
        peer.reply()                      # greeting
        i = 0
        while i < len(script):
            cmd = script[i]
            i += 1
            if cmd == "":
                continue
            print("-> " + cmd, flush=True)
            peer.send(cmd.encode() + b"\r\n")
            r = peer.reply()
            if cmd.upper() == "DATA":
                body = []
                while i < len(script) and script[i] != ".":
                    line = script[i]
                    body.append(("." + line) if line.startswith(".") else line)
                    i += 1
                i += 1                    # the "."
                if r[-1].startswith("354"):
                    peer.send(("\r\n".join(body) + "\r\n.\r\n").encode())
                    print("-> (message, %d lines)" % len(body), flush=True)
                    peer.reply()
            if cmd.upper() == "QUIT":
                break
    except (EOFError, TimeoutError, OSError) as e:
        print("!! " + str(e), flush=True)
        peer.close()
        return 1
    peer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
