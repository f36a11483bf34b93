#!/usr/bin/python3
"""e2e-postfix.py - spf and dkim through the daemon's milter front-end
behind a real Postfix.

In a private network namespace (nstest.py) run our DNS server, smtp-sink
(the next hop, dumping each message), a private Dovecot (passwd-file SASL
for Postfix), a private Postfix (`postfix -c DIR start`, smtpd on
127.0.0.1:23020, no DNS, no peer name lookups, smtpd_milters = submilter,
XCLIENT allowed from loopback) and submilter with the milter front-end and
the chain spf, dkim. With Python's smtplib:
  - a SASL-authenticated session's message arrives signed and dkimpy
    accepts it (signing triggered by {auth_authen}: loopback is not in
    internal_networks here); signatures are simple/simple, so every octet
    must come through Postfix and the milter protocol unchanged;
  - an unauthenticated session from an internal network (XCLIENT
    ADDR=192.0.2.10) is signed too; one from outside is not;
  - an unauthenticated MAIL FROM a domain publishing "-all" from outside
    (XCLIENT ADDR=198.51.100.7) is refused with 550 5.7.23.
Ports 23020-23029. Prints "N passed, M failed"; exit 77 without root,
namespaces, Postfix or Dovecot.
"""
import os
import shutil
import smtplib
import sys

SPF_T = os.path.join(os.environ.get("top_srcdir", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", "..", "..")), "plugins", "spf", "t")
sys.path.insert(0, SPF_T)
import nstest  # noqa: E402
import testlib  # noqa: E402  (nstest put t/ on the path)

import dkim  # noqa: E402

P_SMTPD, P_SINK, P_MILTER = 23020, 23021, 23022
# simple/simple: every octet of what the client sent must reach the signer
# and the next hop unchanged through Postfix and the milter protocol.
CANON = os.environ.get("E2E_CANON", "simple")
SUBMILTER = os.environ.get("SUBMILTER") or sys.exit("SUBMILTER not set (run from make check)")
PLUGIN_DIR = os.environ.get("SUBM_TEST_PLUGIN_DIR") or sys.exit("SUBM_TEST_PLUGIN_DIR not set")
for tool in ("postfix", "smtp-sink", "dovecot"):
    if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
        print("SKIP: %s not installed" % tool)
        sys.exit(77)
if os.geteuid() != 0:
    print("SKIP: postfix start needs root")
    sys.exit(77)
if not os.path.exists(SUBMILTER):
    print("SKIP: %s not built" % SUBMILTER)
    sys.exit(77)

tmp = nstest.enter_namespace("timeout:2 attempts:1")
os.chmod(tmp, 0o755)
T = nstest.Tally()
P = testlib.Procs()
procs = P.procs
PFX = None
SINK = None
PF = os.path.join(tmp, "postfix")


def make_key(name, kind):
    return nstest.dkim_key(tmp, name, kind)


def wait_port(port, seconds=15):
    return testlib.listening(port, None, seconds)


message = nstest.dkim_message


def send(sender, msg, login=None, xclient=None):
    """One session to Postfix: (code, text) of the first refusal, or 250."""
    s = smtplib.SMTP("127.0.0.1", P_SMTPD, timeout=30)
    try:
        s.ehlo("client.example")
        if xclient:
            code, text = s.docmd("XCLIENT", xclient)
            if code != 220:
                return code, "XCLIENT: " + text.decode(errors="replace")
            s.ehlo("client.example")
        if login:
            s.login(*login)
        return nstest.mail_rcpt_data(s, sender, msg)
    except smtplib.SMTPException as e:
        return -1, str(e)
    finally:
        try:
            s.quit()
        except Exception:
            pass


def sunk(needle, seconds=15):
    return nstest.sunk_crlf(SINK, needle, seconds)


def start_dovecot():
    return testlib.start_dovecot(P, os.path.join(tmp, "dovecot"), "alice", "wonderland")


def start_postfix(auth_sock):
    global PFX
    milter_macros = ("i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
                     "{mail_mailer}")
    PFX = testlib.Postfix(PF, P_SMTPD, P_SINK, params={
        "mynetworks": "127.0.0.0/8 192.0.2.0/24 198.51.100.0/24",
        "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject",
        "smtpd_milters": "inet:127.0.0.1:%d" % P_MILTER,
        "milter_default_action": "tempfail",
        "milter_protocol": "6",
        "milter_mail_macros": milter_macros,
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": auth_sock,
        "smtpd_tls_auth_only": "no"})
    try:
        PFX.start()
    except RuntimeError as e:
        print("  %s" % e)
        return False
    return True


try:
    rsa, rsa_p = make_key("rsa.pem", "rsa")
    ed, ed_p = make_key("ed.pem", "ed25519")
    keys = {"rsa1._domainkey.example.com": "v=DKIM1; k=rsa; p=" + rsa_p,
            "ed1._domainkey.ed.example": "v=DKIM1; k=ed25519; p=" + ed_p}
    zone = {"example.com": [["TXT", "v=spf1 ip4:192.0.2.0/24 -all"]],
            "ed.example": [["TXT", "v=spf1 ip4:192.0.2.0/24 -all"]],
            "fail.example": [["TXT", "v=spf1 -all"]],
            "soft.example": [["TXT", "v=spf1 ~all"]]}
    dns = nstest.DNS(tmp, zone)
    procs.append(dns.proc)
    dnsfunc = nstest.key_dnsfunc(keys)

    SINK = testlib.Sink(P, os.path.join(tmp, "sink"), P_SINK, 50)
    with open(os.path.join(tmp, "sign.table"), "w") as f:
        f.write("*@example.com example.com rsa1 %s\n*@ed.example ed.example ed1 %s\n" % (rsa, ed))
    D = testlib.Daemon(P, tmp, """pid_file = ""
spool_dir = "%(t)s"
plugin_dir = "%(pd)s"
plugin_timeout = 5s
milter { listen = "inet:%(pm)d@127.0.0.1" }
plugin spf { authserv_id = "mx.test.example" }
plugin dkim {
    sign_table = "%(t)s/sign.table"
    internal_networks = { "192.0.2.0/24" }
    header_canon = %(hc)s
    body_canon = %(hc)s
}
""" % {"t": tmp, "pd": PLUGIN_DIR, "pm": P_MILTER, "hc": CANON}, args=["-d"])
    sub, conf = D.proc, D.conf
    auth = start_dovecot()
    ready = wait_port(P_MILTER) and wait_port(P_SINK) and auth and start_postfix(auth)
    if not ready:
        logs = ""
        for p in (conf + ".log", os.path.join(PF, "maillog"), os.path.join(tmp, "dovecot", "log")):
            if os.path.exists(p):
                with open(p) as f:
                    logs += f.read()[-1500:]
        T.check("submilter, smtp-sink, dovecot and postfix started", False, logs)
        raise SystemExit

    def signed_ok(label, subject):
        got = sunk(subject)
        T.check("%s: reached the next hop" % label, got is not None)
        if not got:
            return
        try:
            ok = dkim.DKIM(got).verify(dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            ok = False
            print("  dkimpy: %s" % e)
        T.check("%s: DKIM-Signature verifies in dkimpy" % label,
                b"DKIM-Signature:" in got and ok, got[:1500].decode(errors="replace"))

    # 1. SASL: signed because of {auth_authen}.
    for kind, frm in (("rsa", "u@example.com"), ("ed25519", "u@ed.example")):
        code, text = send(frm, message(frm, "sasl %s" % kind), login=("alice", "wonderland"))
        T.check("SASL session (%s): queued" % kind, code == 250, "%d %s" % (code, text))
        signed_ok("SASL session (%s)" % kind, "sasl %s" % kind)

    # 2. XCLIENT: an internal address is signed, an outside one not.
    code, text = send("u@example.com", message("u@example.com", "xclient internal"),
                      xclient="ADDR=192.0.2.10 NAME=[UNAVAILABLE]")
    T.check("internal network via XCLIENT: queued", code == 250, "%d %s" % (code, text))
    signed_ok("internal network via XCLIENT", "xclient internal")
    code, text = send("u@soft.example", message("u@example.com", "xclient outside"),
                      xclient="ADDR=198.51.100.7 NAME=[UNAVAILABLE]")
    got = sunk("xclient outside")
    T.check("outside, unauthenticated: not signed, SPF softfail tagged",
            code == 250 and got is not None and b"DKIM-Signature:" not in got
            and b"spf=softfail" in got, "%d %s" % (code, text))

    # 3. SPF refusal through Postfix.
    code, text = send("u@fail.example", message("u@fail.example", "spf fail"),
                      xclient="ADDR=198.51.100.7 NAME=[UNAVAILABLE]")
    T.check("outside, MAIL FROM a -all domain: 550 5.7.23",
            code == 550 and text.startswith("5.7.23"), "%d %s" % (code, text))
    code, text = send("u@fail.example", message("u@fail.example", "spf fail auth"),
                      login=("alice", "wonderland"))
    T.check("the same sender authenticated: not checked (skip_authenticated)", code == 250,
            "%d %s" % (code, text))
    T.check("submilter still running after all that", sub.poll() is None)
finally:
    if PFX is not None:
        PFX.stop()      # postfix stop, then its master waited for by PID
    P.stop_all()
    nstest.wrap_up(T, tmp)
sys.exit(T.finish())
