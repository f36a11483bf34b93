#!/usr/bin/python3
"""interop.py - the dkim plugin against independent DKIM implementations.

  1. messages signed by submilter (rsa-sha256, ed25519-sha256, both) verify
     with dkimpy (Debian python3-dkim, keys given by a dnsfunc), and fail
     after the body is changed;
  2. messages signed by dkimpy verify in submilter (pass), and fail after
     the body is changed;
  3. messages signed by OpenDKIM (the real opendkim milter on loopback,
     driven by miltertest) verify in submilter, rsa and ed25519;
  4. messages signed by submilter verify in OpenDKIM (verify mode with
     TestPublicKeys), which writes its own Authentication-Results.

Keys are generated here with openssl. Needs $DKIMRUN (built by make check).
Uses loopback ports 23100-23119 for opendkim. Prints "N passed, M failed".
"""
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import dkim

TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "..", ".."))
sys.path[:0] = [os.path.join(TOP, "t"), os.path.join(TOP, "plugins", "spf", "t")]
import testlib  # noqa: E402
from nstest import dkim_key as make_key, openssl  # noqa: E402  (no namespace: keys only)

DKIMRUN = os.environ.get("DKIMRUN") or sys.exit("DKIMRUN not set (run from make check)")
PORT_BASE = 23100
COUNT = testlib.Counter()
check = COUNT.check


def message(frm, body="Hello.\r\nSecond line.\r\n"):
    return ("From: Sender <%s>\r\nTo: rcpt@example.net\r\nSubject: interop test\r\n"
            "Date: Tue, 01 Dec 2026 13:00:00 +0000\r\nMessage-ID: <%d@example.com>\r\n"
            "\r\n%s" % (frm, time.time_ns(), body)).encode()


def change_body(msg):
    return msg.replace(b"Second line.", b"Second line!")


def dkimrun(conf, mode, ip, msg):
    r = subprocess.run([DKIMRUN, conf, mode, ip], input=msg, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("dkimrun %s: %s" % (mode, r.stderr.decode(errors="replace")[-500:]))
    return r.stdout


def dkimpy_verifies(msg, idx, dnsfunc):
    """dkimpy's answer for signature idx; a ValidationError is a no."""
    try:
        return dkim.DKIM(msg).verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.DKIMException:
        return False


def wait_port(port, proc, seconds=10):
    """Wait until something listens on 127.0.0.1:port (or proc died)."""
    return testlib.listening(port, proc, seconds)


def lua_str(s):
    """s as a Lua string literal, every byte kept (CR LF included)."""
    return '"' + "".join(c if (" " <= c <= "~" and c not in '"\\') else "\\%03d" % ord(c)
                         for c in s) + '"'


def opendkim_run(d, port, conf_lines, msg_bytes, ip="127.0.0.1", want="DKIM-Signature"):
    """Start opendkim on loopback, feed one message with miltertest, return
    the value of the field it added (want) or None."""
    conf = os.path.join(d, "opendkim-%d.conf" % port)
    with open(conf, "w") as f:
        f.write("Socket inet:%d@127.0.0.1\nBackground no\nSyslog no\nLogWhy no\n"
                "UMask 077\nRequireSafeKeys no\nPidFile %s/opendkim-%d.pid\n"
                % (port, d, port))
        f.write("\n".join(conf_lines) + "\n")
    proc = subprocess.Popen(["opendkim", "-f", "-x", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        if not wait_port(port, proc):
            print("  opendkim did not start: %s" % proc.stderr.read().decode(errors="replace"))
            return None
        head, _, body = msg_bytes.decode().partition("\r\n\r\n")
        fields = re.split(r"\r\n(?![ \t])", head)
        lua = ["mt.set_timeout(10)",
               "local conn = mt.connect('inet:%d@127.0.0.1')" % port,
               "if conn == nil then error('no connection') end",
               "mt.conninfo(conn, 'client.example', '%s')" % ip,
               "mt.macro(conn, SMFIC_MAIL, 'i', 'QID%d')" % port,
               "mt.mailfrom(conn, 'sender@example.com')",
               "mt.rcptto(conn, 'rcpt@example.net')"]
        for fld in fields:
            name, _, value = fld.partition(":")
            lua.append("mt.header(conn, %s, %s)" % (lua_str(name), lua_str(value.lstrip(" "))))
        lua += ["mt.eoh(conn)",
                "mt.bodystring(conn, %s)" % lua_str(body),
                "mt.eom(conn)",
                "local v = mt.getheader(conn, %s, 0)" % lua_str(want),
                "if v then print('VALUE:' .. v) end",
                "mt.disconnect(conn)"]
        script = os.path.join(d, "mt-%d.lua" % port)
        with open(script, "w") as f:
            f.write("\n".join(lua) + "\n")
        r = subprocess.run(["miltertest", "-s", script], capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        m = re.search(r"VALUE:(.*)", out, re.S)
        if not m:
            print("  miltertest: %s %s" % (out[-400:], r.stderr.decode(errors="replace")[-400:]))
            return None
        return m.group(1).strip()
    finally:
        # libmilter's own stop waits out its timeouts; this one holds no state.
        proc.kill()
        proc.wait()


def main():
    d = tempfile.mkdtemp(prefix="dkim-interop.")
    try:
        rsa, rsa_p = make_key(d, "rsa.pem", "rsa")
        ed, ed_p = make_key(d, "ed.pem", "ed25519")
        records = {
            "rsa1._domainkey.example.com": "v=DKIM1; k=rsa; p=" + rsa_p,
            "ed1._domainkey.example.com": "v=DKIM1; k=ed25519; p=" + ed_p,
            "rsa1._domainkey.dual.example": "v=DKIM1; k=rsa; p=" + rsa_p,
            "ed1._domainkey.dual.example": "v=DKIM1; k=ed25519; p=" + ed_p,
            "rsa1._domainkey.ed.example": "v=DKIM1; k=rsa; p=" + rsa_p,
            "ed1._domainkey.ed.example": "v=DKIM1; k=ed25519; p=" + ed_p,
        }

        def dnsfunc(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            rec = records.get(name.rstrip("."))
            return rec.encode() if rec else None

        with open(os.path.join(d, "keys.txt"), "w") as f:
            for k, v in records.items():
                f.write("%s %s\n" % (k, v))
        with open(os.path.join(d, "sign.table"), "w") as f:
            f.write("*@example.com example.com rsa1 %s\n" % rsa)
            f.write("*@ed.example ed.example ed1 %s\n" % ed)
            f.write("*@dual.example dual.example rsa1 %s\n" % rsa)
            f.write("*@dual.example dual.example ed1 %s\n" % ed)
        sign_conf = os.path.join(d, "sign.conf")
        with open(sign_conf, "w") as f:
            f.write('plugin dkim { sign_table = "%s/sign.table" '
                    'internal_networks = { "192.0.2.0/24" } }\n' % d)
        verify_conf = os.path.join(d, "verify.conf")
        with open(verify_conf, "w") as f:
            f.write('plugin dkim { verify = yes test_keys = "%s/keys.txt" '
                    'authserv_id = "mx.test" }\n' % d)

        # 1. submilter signs, dkimpy verifies.
        for label, frm, nsig in (("rsa", "u@example.com", 1), ("ed25519", "u@ed.example", 1),
                                 ("rsa+ed25519", "u@dual.example", 2)):
            signed = dkimrun(sign_conf, "sign", "192.0.2.10", message(frm))
            n = signed.count(b"DKIM-Signature:")
            check("submilter %s: %d signature(s)" % (label, nsig), n == nsig, "got %d" % n)
            ok = all(dkimpy_verifies(signed, i, dnsfunc) for i in range(n))
            check("submilter %s signature verifies in dkimpy" % label, n > 0 and ok,
                  signed[:600].decode(errors="replace"))
            bad = change_body(signed)
            ok = any(dkimpy_verifies(bad, i, dnsfunc) for i in range(n))
            check("submilter %s, body changed: dkimpy fails it" % label, not ok)

        # 1b. Canonicalization edge cases, every c= combination, both keys
        # (one signer of ours for both algorithms) against dkimpy.
        bodies = [("empty", ""), ("only empty lines", "\r\n\r\n\r\n"),
                  ("whitespace", "  lead\t and  inner \t\r\ntrail  \t\r\n\r\n \t\r\n"),
                  ("lone CR", "a\rb\r\n"),
                  ("long line", ("word \t " * 900) + "\r\n.dot\r\n")]
        heads = ("From: Sender <%s>\r\nTo: rcpt@example.net\r\nCc: one@example.net\r\n"
                 "Subject:   folded\r\n\t  subject \t\r\nCc: two@example.net\r\n"
                 "Date: Tue, 01 Dec 2026 13:00:00 +0000\r\nMessage-ID: <%d@example.com>\r\n")
        for hc in ("relaxed", "simple"):
            for bc in ("relaxed", "simple"):
                conf = os.path.join(d, "sign-%s-%s.conf" % (hc, bc))
                with open(conf, "w") as f:
                    f.write('plugin dkim { sign_table = "%s/sign.table" header_canon = %s '
                            'body_canon = %s sign_headers = { "From", "To", "Cc", "Subject", '
                            '"Date", "Message-ID" } internal_networks = { "192.0.2.0/24" } }\n'
                            % (d, hc, bc))
                for bl, body in bodies:
                    for kl, frm in (("rsa", "u@example.com"), ("ed25519", "u@ed.example")):
                        msg = (heads % (frm, time.time_ns()) + "\r\n" + body).encode()
                        signed = dkimrun(conf, "sign", "192.0.2.10", msg)
                        ok = dkimpy_verifies(signed, 0, dnsfunc)
                        check("c=%s/%s, %s body, %s: dkimpy verifies" % (hc, bc, bl, kl), ok,
                              signed[:400].decode(errors="replace"))
                # A body without a final CRLF (no front-end sends one: SMTP
                # data ends with CRLF): the signer adds it, as RFC 6376 3.4 says.
                for kl, frm in (("rsa", "u@example.com"), ("ed25519", "u@ed.example")):
                    msg = (heads % (frm, time.time_ns()) + "\r\nlast line").encode()
                    signed = dkimrun(conf, "sign", "192.0.2.10", msg)
                    check("c=%s/%s, body without final CRLF, %s: dkimpy verifies" % (hc, bc, kl),
                          dkimpy_verifies(signed, 0, dnsfunc),
                          signed[:400].decode(errors="replace"))

        # 2. dkimpy signs, submilter verifies.
        for label, sel, key, alg in (("rsa", b"rsa1", rsa, b"rsa-sha256"),
                                     ("ed25519", b"ed1", ed, b"ed25519-sha256")):
            with open(key, "rb") as f:
                pem = f.read()
            if alg == b"ed25519-sha256":
                # dkimpy wants the raw 32-octet Ed25519 private key, base64.
                der = openssl("pkey", "-in", key, "-outform", "DER")
                pem = base64.b64encode(der[-32:])
            msg = message("u@example.com")
            sig = dkim.sign(msg, sel, b"example.com", pem, signature_algorithm=alg,
                            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
            ar = dkimrun(verify_conf, "verify", "198.51.100.20", sig + msg).decode()
            check("dkimpy %s signature: submilter says pass" % label,
                  "dkim=pass" in ar and "header.d=example.com" in ar, ar)
            ar = dkimrun(verify_conf, "verify", "198.51.100.20", change_body(sig + msg)).decode()
            check("dkimpy %s, body changed: submilter says fail" % label, "dkim=fail" in ar, ar)

        # 3. OpenDKIM signs, submilter verifies.
        with open(os.path.join(d, "keytable"), "w") as f:
            f.write("krsa example.com:rsa1:%s\nked ed.example:ed1:%s\n" % (rsa, ed))
        with open(os.path.join(d, "signingtable"), "w") as f:
            f.write("*@example.com krsa\n*@ed.example ked\n")
        for i, (label, frm, alg) in enumerate((("rsa", "u@example.com", "rsa-sha256"),
                                               ("ed25519", "u@ed.example", "ed25519-sha256"))):
            msg = message(frm)
            sig = opendkim_run(d, PORT_BASE + i, [
                "Mode s", "KeyTable file:%s/keytable" % d,
                "SigningTable refile:%s/signingtable" % d,
                "Canonicalization relaxed/relaxed", "SignatureAlgorithm %s" % alg], msg)
            check("opendkim %s signs" % label, sig is not None and ("a=%s" % alg) in sig, sig)
            if sig is None:
                continue
            signed = b"DKIM-Signature: " + sig.replace("\r\n", "\n").replace("\n", "\r\n").encode() \
                     + b"\r\n" + msg
            ar = dkimrun(verify_conf, "verify", "198.51.100.20", signed).decode()
            check("opendkim %s signature: submilter says pass" % label, "dkim=pass" in ar, ar)
            ar = dkimrun(verify_conf, "verify", "198.51.100.20", change_body(signed)).decode()
            check("opendkim %s, body changed: submilter says fail" % label, "dkim=fail" in ar, ar)

        # 4. submilter signs, OpenDKIM verifies (its TestPublicKeys file).
        for i, (label, frm) in enumerate((("rsa", "u@example.com"), ("ed25519", "u@ed.example"))):
            signed = dkimrun(sign_conf, "sign", "192.0.2.10", message(frm))
            ar = opendkim_run(d, PORT_BASE + 10 + i, [
                "Mode v", "TestPublicKeys %s/keys.txt" % d, "AuthservID opendkim.test"],
                signed, ip="198.51.100.20", want="Authentication-Results")
            check("submilter %s signature verifies in opendkim" % label,
                  ar is not None and "dkim=pass" in ar, ar)
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(d, ignore_errors=True)
    return COUNT.finish()


if __name__ == "__main__":
    sys.exit(main())
