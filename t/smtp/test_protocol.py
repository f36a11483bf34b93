#!/usr/bin/python3
"""t/smtp/test_protocol.py - the smtp front-end, command by command.

A real daemon ($SUBMILTER) in front of the capture backend (backend.py), driven
by raw sockets and smtplib: every command, extension and reply code, plugin
verdicts (the core's testplug, the example plugin), backend replies relayed
verbatim, backend faults, BDAT, pipelining, modifications, XCLIENT, PROXY.
"""
import os
import smtplib
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check, tp_block

R = T.Runner("protocol")
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-proto-")

RULES = [
    "mail@tempfail455@example.com:tempfail:455:4.5.4:cannot accommodate",
    "mail@reject@example.com:reject:550:5.7.1:sender refused by policy",
    "rcpt@temp450@example.com:tempfail:450:4.7.1:try later",
    "rcpt@moved@example.com:reject:551:5.1.6:user has moved",
    "rcpt@discard@example.com:discard",
    "vrfy@relay:accept",
    "vrfy@forward:accept:251:2.1.5:will forward",
    "vrfy@nope:reject",
    "expn@list:accept",
    "help@status:accept:211:2.0.0:system ok",
    "noop@deny:reject:550:5.7.1:no noop for you",
    "unknown@ETRN example.com:accept",
    "unknown@ATRN example.com:accept",
    "header@X-Bad:reject:554:5.7.1:bad header seen",
]


EXAMPLE = 'plugin example { reject_rcpt = { "bad@example.com" } }\n'

BE = T.Backend(P, WORK)
D = T.Daemon(P, WORK, BE.port, plugins=EXAMPLE + tp_block("tp", RULES),
             smtp_extra="max_recipients = 100")


def msgs_to(addr):
    return [m for m in BE.messages() if addr in m["rcpts"]]


def send_msg(c, frm, rcpts, body, mail_params=""):
    eq(c.cmd("MAIL FROM:<%s>%s" % (frm, mail_params))[0], 250, "MAIL")
    for r in rcpts:
        eq(c.cmd("RCPT TO:<%s>" % r)[0], 250, "RCPT " + r)
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send(body)
    return c.reply()


def t_ehlo():
    c, lines = T.greet(D.port)
    kws = [l[4:].split(" ")[0] for l in lines[1:]]
    for k in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN",
              "SMTPUTF8"):
        check(k in kws, "EHLO lacks %s: %r" % (k, lines))
    for k in ("X-EXPS", "X-LINK2STATE", "XEXCH50", "STARTTLS", "AUTH", "XCLIENT", "TURN",
              "ETRN", "ATRN"):
        check(k not in kws, "EHLO offers %s" % k)
    eq(lines[0], "250-mx.test", "first line")
    eq(c.cmd("QUIT")[0], 221, "QUIT")
    check(c.closed(), "closed after QUIT")


def t_helo():
    c = T.Client(D.port)
    eq(c.reply()[0], 220, "banner")
    code, lines = c.cmd("HELO client.test")
    eq((code, lines), (250, ["250 mx.test"]), "HELO")
    # RFC 1869/1870/3030: no ESMTP parameters and no BDAT after a plain HELO
    for param in ("SIZE=100", "BODY=8BITMIME", "AUTH=<>"):
        eq(c.cmd("MAIL FROM:<a@example.com> " + param)[1][0][:9], "555 5.5.4", "HELO: MAIL " + param)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "HELO: MAIL")
    eq(c.cmd("RCPT TO:<helo-bdat@example.com>")[0], 250, "HELO: RCPT")
    c.send("BDAT 4 LAST\r\n")
    time.sleep(0.2)                     # no pipelining after HELO
    c.send("abcd")
    eq(c.reply()[1][0][:9], "503 5.5.1", "HELO: BDAT")
    eq(c.cmd("NOOP")[0], 250, "the chunk was skipped, not read as commands")
    eq(msgs_to("helo-bdat@example.com"), [], "nothing delivered")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(c.cmd("EHLO bad\x01name")[0], 501, "control char in EHLO")
    eq(c.cmd("EHLO " + "a" * 300)[0], 501, "huge EHLO name")
    eq(c.cmd("EHLO")[0], 501, "EHLO without name")
    c.close()


def t_sequence():
    c = T.Client(D.port)
    c.reply()
    code, l = c.cmd("MAIL FROM:<a@example.com>")
    eq((code, l[0][4:9]), (503, "5.5.1"), "MAIL before EHLO")
    c.cmd("EHLO client.test")
    eq(c.cmd("RCPT TO:<b@example.com>")[0], 503, "RCPT before MAIL")
    eq(c.cmd("DATA")[0], 503, "DATA before MAIL")
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 503, "nested MAIL")
    code, l = c.cmd("DATA")
    eq((code, l[0][4:9]), (554, "5.5.1"), "DATA without recipients")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(c.cmd("RCPT TO:<b@example.com>")[0], 503, "RCPT after RSET")
    eq(c.cmd("RSET extra")[0], 501, "RSET with argument")
    c.close()


def t_paths():
    c, _ = T.greet(D.port)
    cases = [
        ("MAIL FROM:a@example.com", 501), ("MAIL FROM:<a>", 553), ("MAIL FROM:<a@>", 553),
        ("MAIL FROM:<@a>", 553), ("MAIL FROM:<%s@example.com>" % ("x" * 65), 553),
        ("MAIL FROM:<a@example.com", 553), ("MAIL TO:<a@example.com>", 501),
        ("MAIL FROM:<a$HOME`id`|x&y@example.com>", 250),
    ]
    for cmd, want in cases:
        code, l = c.cmd(cmd)
        eq(code, want, cmd)
        if code == 250:
            c.cmd("RCPT TO:<b@example.com>")    # MAIL goes to the backend with it
            c.cmd("RSET")
    eq(c.cmd("MAIL FROM:<>")[0], 250, "null sender")
    for cmd, want in [("RCPT TO:<>", 553), ("RCPT TO:<b>", 553), ("RCPT TO:b@example.com", 501),
                      ("RCPT TO:<Postmaster>", 250), ("RCPT TO:<@r1,@r2:c@example.com>", 250),
                      ("RCPT TO:<\"q uoted\"@example.com>", 250)]:
        eq(c.cmd(cmd)[0], want, cmd)
    c.close()
    time.sleep(0.1)
    cmds = [x["line"] for x in BE.commands()]
    check(any("a$HOME`id`|x&y@example.com" in x for x in cmds), "shell characters passed as data")
    check("RCPT TO:<c@example.com>\r\n" in cmds, "source route dropped")


def t_params():
    c, _ = T.greet(D.port)
    for cmd, want in [("MAIL FROM:<a@example.com> FOO=1", 555),
                      ("MAIL FROM:<a@example.com> SIZE=999999999", 552),
                      ("MAIL FROM:<a@example.com> SIZE=99999999999999999999999999999", 552),
                      ("MAIL FROM:<a@example.com> SIZE=abc", 501),
                      ("MAIL FROM:<a@example.com> BODY=BINARYMIME", 504),
                      ("MAIL FROM:<a@example.com> RET=NONE", 501),
                      ("MAIL FROM:<a@example.com> ENVID=a+0Db", 501),
                      ("MAIL FROM:<a@example.com> SIZE=1 SIZE=2", 501),
                      ("MAIL FROM:<ü@example.com>", 553)]:
        code, l = c.cmd(cmd)
        eq(code, want, cmd)
    code, l = c.cmd("MAIL FROM:<a@example.com> SIZE=999999999")
    eq(l[0][:9], "552 5.3.4", "SIZE reply")
    code, l = c.cmd("MAIL FROM:<ü@example.com>")
    eq(l[0][:9], "553 5.6.7", "UTF-8 without SMTPUTF8")
    code, l = c.cmd("MAIL FROM:<a@example.com> FOO=1")
    eq(l[0][:9], "555 5.5.4", "unknown parameter")
    for bad in ("AUTH", "AUTH=a+0Db", "AUTH=a+zz", "AUTH=" + "x" * 600):
        eq(c.cmd("MAIL FROM:<a@example.com> " + bad)[1][0][:9], "501 5.5.4", "MAIL " + bad[:20])
    eq(c.cmd("MAIL FROM:<a@example.com> AUTH=who+40example.com")[0], 250, "MAIL AUTH=xtext")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(c.cmd("MAIL FROM:<a@example.com> RET=HDRS ENVID=QQ+2Bx BODY=8BITMIME SIZE=100 "
             "AUTH=<>")[0], 250, "DSN MAIL")
    eq(c.cmd("RCPT TO:<dsn@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;dsn+40example.com")[0],
       250, "DSN RCPT")
    eq(c.cmd("RCPT TO:<x@example.com> NOTIFY=NEVER,SUCCESS")[0], 501, "NOTIFY NEVER+")
    eq(c.cmd("RCPT TO:<x@example.com> ORCPT=rfc822;a+0Ab")[0], 501, "ORCPT with LF")
    eq(c.cmd("RCPT TO:<x@example.com> BAR")[0], 555, "RCPT unknown param")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: dsn\r\n\r\n\xe9t\xe9\r\n.\r\n")
    eq(c.reply()[0], 250, "message")
    m = msgs_to("dsn@example.com")[-1]
    eq(m["mail_params"], "RET=HDRS ENVID=QQ+2Bx BODY=8BITMIME SIZE=100", "MAIL params relayed")
    eq(m["rcpt_params"][0], "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;dsn+40example.com", "RCPT params")
    check("\xe9t\xe9" in m["data"], "8-bit body kept")
    eq(c.cmd("MAIL FROM:<ü@example.com> SMTPUTF8".encode())[0], 250, "SMTPUTF8 MAIL")
    eq(c.cmd("RCPT TO:<dsn@exämple.com>".encode())[0], 250, "SMTPUTF8 RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: utf8\r\n\r\nx\r\n.\r\n")
    eq(c.reply()[0], 250, "utf8 message")
    m = BE.messages()[-1]
    eq(m["from"], "ü@example.com", "UTF-8 sender relayed")
    eq(m["mail_params"], "SMTPUTF8", "SMTPUTF8 param relayed")
    c.close()


def t_data_dots():
    c, _ = T.greet(D.port)
    body = "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n"
    stuffed = body.replace("\r\n.", "\r\n..")
    code, l = send_msg(c, "a@example.com", ["dots@example.com"], stuffed + ".\r\n")
    eq(code, 250, "dot message")
    m = msgs_to("dots@example.com")[-1]
    eq(m["data"], "Subject: dots\r\nX-Submilter-Example: yes\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n",
       "unstuffed at us, restuffed to the backend")
    code, l = send_msg(c, "a@example.com", ["empty@example.com"], ".\r\n")
    eq(code, 250, "empty message")
    code, l = send_msg(c, "a@example.com", ["nohdr@example.com"], "just a body line\r\nmore\r\n.\r\n")
    eq(code, 250, "no header")
    m = msgs_to("nohdr@example.com")[-1]
    check(m["data"].endswith("just a body line\r\nmore\r\n"), "body without header kept: %r" % m["data"])
    c.close()


def t_nul_octets():
    """NUL in a header field and in the body: data, relayed intact."""
    c, _ = T.greet(D.port)
    body = "Subject: nul\r\nX-Nul: a\x00b\r\n\tfolded\x00\r\n\r\nbody\x00line\r\n"
    code, l = send_msg(c, "a@example.com", ["nul@example.com"], body + ".\r\n")
    eq(code, 250, "accepted")
    m = msgs_to("nul@example.com")[-1]
    check("X-Nul: a\x00b\r\n\tfolded\x00\r\n" in m["data"] and "body\x00line" in m["data"],
          "NULs kept: %r" % m["data"])
    c.close()


def t_bdat():
    c, _ = T.greet(D.port)
    c.send("BDAT 5\r\nHELLO")
    eq(c.reply()[0], 503, "BDAT without MAIL consumes its chunk")
    eq(c.cmd("NOOP")[0], 250, "chunk not taken as a command")
    eq(c.cmd("MAIL FROM:<a@example.com> BODY=8BITMIME")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<bdat@example.com>")[0], 250, "RCPT")
    p1 = b"Subject: chunked\r\n\r\nfirst part "
    p2 = b"second part\r\n.not an end\r\n"
    p3 = b"last"
    c.send(b"BDAT %d\r\n" % len(p1) + p1 + b"BDAT %d\r\n" % len(p2) + p2)
    code, l = c.reply()
    eq(code, 250, "chunk 1")
    check("%d octets" % len(p1) in l[0], "chunk size echoed")
    eq(c.reply()[0], 250, "chunk 2")
    eq(c.cmd("DATA")[0], 503, "DATA after BDAT")
    c.send(b"BDAT %d LAST\r\n" % len(p3) + p3)
    code, l = c.reply()
    eq(code, 250, "BDAT LAST")
    check("queued as CAP" in l[0], "backend reply to BDAT LAST: %r" % l)
    m = msgs_to("bdat@example.com")[-1]
    eq(m["data"], "Subject: chunked\r\nX-Submilter-Example: yes\r\n\r\nfirst part second part\r\n"
       ".not an end\r\nlast\r\n", "reassembled")
    eq(c.cmd("BDAT 99999999999999999999999")[0], 501, "absurd BDAT size")
    check(c.closed(), "closed after absurd BDAT")


def t_bdat_smtplib():
    # a real client's CHUNKING: smtplib has none, so use a one-chunk BDAT LAST of 0
    c, _ = T.greet(D.port)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<bdat0@example.com>")[0], 250, "RCPT")
    c.send(b"BDAT 20\r\nSubject: x\r\n\r\nbody\r\nBDAT 0 LAST\r\n")
    eq(c.reply()[0], 250, "chunk")
    eq(c.reply()[0], 250, "empty LAST chunk")
    eq(msgs_to("bdat0@example.com")[-1]["data"],
       "Subject: x\r\nX-Submilter-Example: yes\r\n\r\nbody\r\n", "data")
    c.close()


def t_smtplib():
    s = smtplib.SMTP("127.0.0.1", D.port, local_hostname="lib.test", timeout=10)
    s.ehlo()
    check(s.has_extn("pipelining") and s.has_extn("size") and s.has_extn("chunking"), "extns")
    refused = s.sendmail("a@example.com", ["lib1@example.com", "bad@example.com", "lib2@example.com"],
                         b"Subject: smtplib\r\n\r\nhello\r\n")
    eq(list(refused.keys()), ["bad@example.com"], "one recipient refused")
    eq(refused["bad@example.com"][0], 550, "example plugin's 550")
    s.quit()
    m = msgs_to("lib1@example.com")[-1]
    eq(m["rcpts"], ["lib1@example.com", "lib2@example.com"], "RCPT verdict applies to one")


def t_verbs():
    c, _ = T.greet(D.port)
    code, l = c.cmd("VRFY someone")
    eq((code, l[0][:9]), (252, "252 2.5.0"), "VRFY default")
    code, l = c.cmd("VRFY relay")
    eq(l, ["250 2.1.5 backend vrfy <relay>"], "VRFY relayed verbatim")
    eq(c.cmd("VRFY forward")[1], ["251 2.1.5 will forward"], "plugin 251")
    eq(c.cmd("VRFY nope")[1], ["502 5.5.1 Command not allowed"], "plugin reject at VRFY: default")
    eq(c.cmd("VRFY")[0], 501, "VRFY without argument")
    eq(c.cmd("EXPN list")[1], ["250 2.1.5 backend expn <list>"], "EXPN relayed")
    eq(c.cmd("EXPN other")[0], 252, "EXPN default")
    code, l = c.cmd("HELP")
    eq(code, 214, "HELP")
    check(len(l) > 1, "multi-line HELP")
    eq(c.cmd("HELP status")[1], ["211 2.0.0 system ok"], "plugin 211")
    eq(c.cmd("NOOP")[1], ["250 2.0.0 Ok"], "NOOP")
    eq(c.cmd("NOOP deny")[1], ["550 5.7.1 no noop for you"], "plugin reject at NOOP")
    eq(c.cmd("TURN")[1][0][:9], "502 5.5.1", "TURN")
    eq(c.cmd("ETRN other.example")[0], 502, "ETRN without a plugin's consent")
    eq(c.cmd("ETRN example.com")[1], ["250 2.0.0 backend queuing started"], "ETRN allowed")
    eq(c.cmd("ATRN example.com")[0], 502, "ATRN cannot be bridged")
    for v in ("X-EXPS GSSAPI", "X-LINK2STATE LAST CHUNK=x", "XEXCH50 10 2", "XCLIENT ADDR=1.2.3.4",
              "XFORWARD NAME=x", "STARTTLS", "AUTH PLAIN AGFAAGI="):
        eq(c.cmd(v)[0], 502, v)
    eq(c.cmd("FROB")[1][0][:9], "500 5.5.1", "unknown command")
    eq(c.cmd("NOOP\rx")[0], 500, "bare CR in command")
    c.send("NOOP\n")
    eq(c.reply()[0], 500, "bare LF command")
    c.close()
    time.sleep(0.1)
    lines = " ".join(x["line"] for x in BE.commands())
    for v in ("X-EXPS", "X-LINK2STATE", "XEXCH50", "XCLIENT ADDR=1.2.3.4", "XFORWARD", "TURN",
              "ATRN", "VRFY someone", "FROB", "ETRN other"):
        check(v not in lines, "%s reached the backend" % v)


def t_foreign():
    for w in ("USER bob", "PASS x", "GET / HTTP/1.0", "POST /x HTTP/1.1", "CONNECT a:25 HTTP/1.1"):
        c = T.Client(D.port)
        c.reply()
        code, l = c.cmd(w)
        eq(code, 554, w)
        check(c.closed(), "closed after " + w)


def t_plugin_verdicts():
    c, _ = T.greet(D.port)
    eq(c.cmd("MAIL FROM:<tempfail455@example.com>")[1], ["455 4.5.4 cannot accommodate"], "455")
    eq(c.cmd("MAIL FROM:<reject@example.com>")[1], ["550 5.7.1 sender refused by policy"], "550")
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL after a refused one")
    eq(c.cmd("RCPT TO:<temp450@example.com>")[1], ["450 4.7.1 try later"], "450")
    eq(c.cmd("RCPT TO:<moved@example.com>")[1], ["551 5.1.6 user has moved"], "551")
    eq(c.cmd("RCPT TO:<bad@example.com>")[0], 550, "example reject_rcpt")
    eq(c.cmd("RCPT TO:<kept@example.com>")[0], 250, "other recipient")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: x\r\nX-Bad: yes\r\n\r\nbody\r\n.\r\n")
    eq(c.reply()[1], ["554 5.7.1 bad header seen"], "HEADER reject reaches the client")
    check(not msgs_to("kept@example.com"), "rejected message not relayed")
    code, l = send_msg(c, "a@example.com", ["discard@example.com", "d2@example.com"],
                       "Subject: x\r\n\r\nb\r\n.\r\n")
    eq(code, 250, "discarded message gets 250")
    check(not msgs_to("d2@example.com"), "discarded message not relayed")
    c.close()


def t_stage_rejects():
    """DATA/EOH/BODY/EOM/CONNECT/HELO verdicts, one daemon each."""
    cases = [("data:tempfail:451:4.7.0:data later", "DATA", "451 4.7.0 data later"),
             ("eoh:reject:550:5.7.1:eoh no", "END", "550 5.7.1 eoh no"),
             ("body:reject:552:5.3.4:body too odd", "END", "552 5.3.4 body too odd"),
             ("eom:reject:550:5.7.0:eom no", "END", "550 5.7.0 eom no"),
             ("eom:tempfail", "END", None)]
    for rule, where, want in cases:
        d = T.Daemon(P, WORK, BE.port, plugins=tp_block("tp", [rule]))
        c, _ = T.greet(d.port)
        eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, rule)
        eq(c.cmd("RCPT TO:<stage@example.com>")[0], 250, rule)
        n0 = len(msgs_to("stage@example.com"))
        code, l = c.cmd("DATA")
        if where == "END":
            eq(code, 354, rule)
            c.send("Subject: s\r\n\r\nbody\r\n.\r\n")
            code, l = c.reply()
        if want:
            eq(l, [want], rule)
        else:
            eq(code // 100, 4, rule + " default is 4xx")
        eq(len(msgs_to("stage@example.com")), n0, rule + ": nothing relayed")
        eq(c.cmd("QUIT")[0], 221, "QUIT")
        P.stop(d.proc)
    d = T.Daemon(P, WORK, BE.port, plugins=tp_block("tp", ["connect:reject:554:5.7.1:go away"]))
    c = T.Client(d.port)
    eq(c.reply()[1], ["554 5.7.1 go away"], "CONNECT reject as greeting")
    eq(c.cmd("EHLO x.test")[0], 503, "only QUIT after a refused greeting")
    eq(c.cmd("QUIT")[0], 221, "QUIT")
    P.stop(d.proc)
    d = T.Daemon(P, WORK, BE.port, plugins=tp_block("tp", ["helo@evil.test:reject:550:5.7.1:bad helo"]))
    c = T.Client(d.port)
    c.reply()
    eq(c.cmd("EHLO evil.test")[1], ["550 5.7.1 bad helo"], "HELO reject")
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 503, "no MAIL after a refused HELO")
    eq(c.cmd("EHLO good.test")[0], 250, "another HELO")
    c.close()
    P.stop(d.proc)


def t_backend_verbatim():
    c, _ = T.greet(D.port)
    # a refusal of the sender answers the RCPT that went with the deferred MAIL
    eq(c.cmd("MAIL FROM:<fault-mail-multi-452@example.com>")[0], 250, "MAIL (deferred)")
    code, l = c.cmd("RCPT TO:<r1@example.com>")
    eq(l, ["452-4.3.0 backend mail line one", "452-4.3.0 backend mail line two",
           "452 4.3.0 backend mail line three"], "multi-line backend reply verbatim")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(c.cmd("MAIL FROM:<fault-mail-553@example.com>")[0], 250, "MAIL (deferred)")
    eq(c.cmd("RCPT TO:<r1@example.com>")[1], ["553 5.7.1 backend mail 553"], "553")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<fault-rcpt-450@example.com>")[1], ["450 4.3.0 backend rcpt 450"], "450")
    eq(c.cmd("RCPT TO:<fault-rcpt-550@example.com>")[1], ["550 5.7.1 backend rcpt 550"], "550")
    eq(c.cmd("RCPT TO:<fault-data-554@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "354 from us")
    c.send("Subject: x\r\n\r\nb\r\n.\r\n")
    eq(c.reply()[1], ["554 5.7.1 backend data 554"], "backend DATA refusal as final reply")
    code, l = send_msg(c, "a@example.com", ["fault-dot-552@example.com"], "S: x\r\n\r\nb\r\n.\r\n")
    eq(l, ["552 5.7.1 backend dot 552"], "backend final-dot reply verbatim")
    code, l = send_msg(c, "a@example.com", ["fault-dot-451@example.com"], "S: x\r\n\r\nb\r\n.\r\n")
    eq(l, ["451 4.3.0 backend dot 451"], "backend 451")
    code, l = send_msg(c, "a@example.com", ["ok@example.com"], "S: x\r\n\r\nb\r\n.\r\n")
    eq(code, 250, "next message fine")
    c.close()


def t_backend_faults():
    c, _ = T.greet(D.port)
    for rcpt, want in [("fault-dot-drop@example.com", "451 4.4.2"),
                       ("fault-dot-bad@example.com", "451 4.3.0"),
                       ("fault-data-drop@example.com", "451 4.4.2")]:
        code, l = send_msg(c, "a@example.com", [rcpt], "S: x\r\n\r\nb\r\n.\r\n")
        eq(l[0][:9], want, rcpt)
        check(not msgs_to(rcpt), rcpt + " not received")
    eq(c.cmd("MAIL FROM:<fault-mail-drop@example.com>")[0], 250, "MAIL (deferred)")
    eq(c.cmd("RCPT TO:<b@example.com>")[1][0][:9], "451 4.4.2", "dropped at MAIL")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "reconnects")
    code, l = c.cmd("RCPT TO:<fault-rcpt-drop@example.com>")
    eq(l[0][:9], "451 4.4.2", "dropped at RCPT")
    c.close()
    # backend down, backend greeting 554, backend slow past the deadline
    dead = T.free_port()
    d = T.Daemon(P, WORK, dead)
    c, _ = T.greet(d.port)
    code, l = c.cmd("MAIL FROM:<a@example.com>")
    eq(l[0][:9], "451 4.4.1", "backend down")
    c.close()
    P.stop(d.proc)
    be554 = T.Backend(P, WORK, "--greet", "554")
    d = T.Daemon(P, WORK, be554.port)
    c, _ = T.greet(d.port)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 451, "backend refuses connections")
    c.close()
    P.stop(d.proc)
    P.stop(be554.proc)
    slow = T.Backend(P, WORK, "--slow", "3")
    d = T.Daemon(P, WORK, slow.port, smtp_extra="backend_data_timeout = 500ms")
    c, _ = T.greet(d.port)
    t0 = time.time()
    code, l = send_msg(c, "a@example.com", ["fault-dot-slow@example.com"], "S: x\r\n\r\nb\r\n.\r\n")
    eq(l[0][:9], "451 4.4.2", "backend slow past the deadline")
    check(time.time() - t0 < 2.5, "answered within the deadline")
    c.close()
    P.stop(d.proc)
    P.stop(slow.proc)


def t_backend_gone_during_data():
    """The backend connection dies while the client sends its message: a new
    one gets the envelope again and the message; the client sees 250 once."""
    c, _ = T.greet(D.port)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<again@example.com>")[0], 250, "RCPT")
    eq(c.cmd("RCPT TO:<fault-once-drop-after-rcpt@example.com>")[0], 250, "RCPT, then the drop")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: again\r\n\r\nfirst half\r\n")
    time.sleep(0.3)
    c.send("second half\r\n.\r\n")
    eq(c.reply()[0], 250, "delivered over a new connection")
    got = msgs_to("again@example.com")
    eq(len(got), 1, "once")
    eq(got[0]["rcpts"], ["again@example.com", "fault-once-drop-after-rcpt@example.com"], "envelope")
    check(got[0]["data"].endswith("first half\r\nsecond half\r\n"), "whole message")
    c.close()


def t_pipelining():
    c, _ = T.greet(D.port)
    n0 = len(BE.messages())
    group = ("MAIL FROM:<a@example.com>\r\nRCPT TO:<p1@example.com>\r\nRCPT TO:<bad@example.com>\r\n"
             "RCPT TO:<fault-rcpt-451@example.com>\r\nRCPT TO:<p2@example.com>\r\nDATA\r\n")
    c.send(group)
    codes = [c.reply()[0] for _ in range(6)]
    eq(codes, [250, 250, 550, 451, 250, 354], "replies in order")
    c.send("Subject: pipe\r\n\r\nx\r\n.\r\nMAIL FROM:<b@example.com>\r\nRCPT TO:<p3@example.com>\r\n"
           "DATA\r\n")
    codes = [c.reply()[0] for _ in range(4)]
    eq(codes, [250, 250, 250, 354], "end of data pipelined with the next envelope")
    c.send("Subject: pipe2\r\n\r\ny\r\n.\r\nQUIT\r\n")
    eq(c.reply()[0], 250, "second message")
    eq(c.reply()[0], 221, "QUIT")
    eq(len(BE.messages()), n0 + 2, "two messages")
    eq(msgs_to("p1@example.com")[-1]["rcpts"], ["p1@example.com", "p2@example.com"], "recipients")
    line = T.wait_for(lambda: [l for l in D.log().splitlines() if "to=<p1@example.com>" in l],
                      what="summary")[0]
    check("to=<p1@example.com>,<p2@example.com> nrcpt=2" in line,
          "refused recipients are off the transaction: %s" % line)


def t_pipelined_rcpt_count():
    """Each RCPT's plugins count the recipients accepted before it, pipelined
    or not (the core's probe plugin logs index and count)."""
    probe = os.path.join(os.environ.get("top_builddir", ""), "t/milter/.libs/probe.so")
    check(os.path.exists(probe), "probe plugin built: " + probe)
    plog = os.path.join(WORK, "probe.log")
    d = T.Daemon(P, WORK, BE.port, plugins='plugin probe { path = "%s" log = "%s" }' % (probe, plog))
    c, _ = T.greet(d.port)
    c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<c1@example.com>\r\nRCPT TO:<c2@example.com>\r\n"
           "RCPT TO:<c3@example.com>\r\n")
    eq([c.reply()[0] for _ in range(4)], [250] * 4, "pipelined envelope")
    c.close()
    P.stop(d.proc)
    lines = [l for l in open(plog) if "c1@" in l or "c2@" in l or "c3@" in l]
    eq(len(lines), 3, "three RCPT stages: %r" % lines)
    for i, l in enumerate(lines):
        check("index=%d" % i in l and "count=%d" % i in l, "RCPT %d sees %d before it: %s" % (i, i, l))


def t_pipelining_one_write():
    """A pipelined group's replies leave in one segment."""
    c, _ = T.greet(D.port)
    c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<w1@example.com>\r\nRCPT TO:<w2@example.com>\r\n"
           "NOOP\r\n")
    time.sleep(0.3)
    data = c.s.recv(65536)
    eq(data.count(b"\r\n"), 4, "all four replies in one read: %r" % data)
    c.close()


def t_pipelining_before_ehlo():
    c = T.Client(D.port)
    c.reply()
    c.send("EHLO x.test\r\nMAIL FROM:<a@example.com>\r\n")
    code, l = c.reply()
    eq(l[0][:9], "554 5.5.0", "pipelining before EHLO answer")
    check(c.closed(), "closed")


def t_mods():
    mods = ["add:X-Added:one", "insert:0:X-First:zero", "change:Subject:1:changed",
            "delete:X-Drop:1", "sender:new-sender@example.com", "addrcpt:added@example.com",
            "delrcpt:m2@example.com", "body:replaced body\r\n.dot line\r\n"]
    d = T.Daemon(P, WORK, BE.port, plugins=tp_block("tp", [], mods))
    c, _ = T.greet(d.port)
    code, l = send_msg(c, "orig@example.com", ["m1@example.com", "m2@example.com"],
                       "Subject: orig\r\nX-Drop: gone\r\nX-Keep: kept\r\n\r\noriginal\r\n.\r\n")
    eq(code, 250, "modified message")
    m = msgs_to("m1@example.com")[-1]
    eq(m["from"], "new-sender@example.com", "sender changed")
    eq(m["rcpts"], ["m1@example.com", "added@example.com"], "recipients changed")
    eq(m["data"], "X-First: zero\r\nSubject: changed\r\nX-Keep: kept\r\nX-Added: one\r\n\r\n"
       "replaced body\r\n.dot line\r\n", "headers and body changed")
    conn = [x["line"] for x in BE.commands() if x["conn"] == m["conn"]]
    check("RSET\r\n" in conn, "envelope replayed after RSET")
    c.close()
    P.stop(d.proc)


def t_rcpt_limit():
    c, _ = T.greet(D.port)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    c.send("".join("RCPT TO:<r%d@example.com>\r\n" % i for i in range(101)))
    codes = [c.reply()[0] for _ in range(101)]
    eq(codes[:100], [250] * 100, "100 recipients")
    eq(codes[100], 452, "101st")
    c.send("DATA\r\n")
    eq(c.reply()[0], 354, "DATA")
    c.send("Subject: many\r\n\r\nx\r\n.\r\n")
    eq(c.reply()[0], 250, "message to 100")
    eq(len(msgs_to("r0@example.com")[-1]["rcpts"]), 100, "earlier recipients kept")
    c.close()


def t_summary_log():
    s = smtplib.SMTP("127.0.0.1", D.port, local_hostname="lib.test", timeout=10)
    s.sendmail("sum@example.com", ["s1@example.com", "s2@example.com"], b"Subject: s\r\n\r\n1234\r\n")
    s.quit()
    line = T.wait_for(lambda: [l for l in D.log().splitlines() if "from=<sum@example.com>" in l],
                      what="summary line")[0]
    for part in ("to=<s1@example.com>,<s2@example.com>", "size=", "auth=none", "verdict=accept",
                 "backend=250"):
        check(part in line, "summary lacks %s: %s" % (part, line))


def t_xclient_proxy():
    bx = T.Backend(P, WORK, "--xclient")
    d = T.Daemon(P, WORK, bx.port, smtp_extra="xclient = yes\nproxy_protocol = yes")
    # PROXY v1
    c = T.Client(d.port)
    c.send("PROXY TCP4 192.0.2.7 127.0.0.1 40000 %d\r\n" % d.port)
    eq(c.reply()[0], 220, "banner after PROXY v1")
    c.cmd("EHLO v1.test")
    code, l = send_msg(c, "a@example.com", ["x1@example.com"], "S: x\r\n\r\nb\r\n.\r\n")
    eq(code, 250, "message via PROXY v1")
    c.close()
    # PROXY v2, IPv6
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addr6 = socket.inet_pton(socket.AF_INET6, "2001:db8::5")
    v2 = sig + bytes([0x21, 0x21]) + struct.pack("!H", 36) + addr6 + \
        socket.inet_pton(socket.AF_INET6, "::1") + struct.pack("!HH", 40001, d.port)
    c = T.Client(d.port)
    c.send(v2)
    eq(c.reply()[0], 220, "banner after PROXY v2")
    c.cmd("EHLO v2.test")
    code, l = send_msg(c, "a@example.com", ["x2@example.com"], "S: x\r\n\r\nb\r\n.\r\n")
    eq(code, 250, "message via PROXY v2")
    c.close()
    time.sleep(0.1)
    lines = [x["line"] for x in bx.commands()]
    xc = [l for l in lines if l.startswith("XCLIENT")]
    check(any("ADDR=192.0.2.7" in l and "HELO=v1.test" in l and "PORT=40000" in l for l in xc),
          "XCLIENT for v1: %r" % xc)
    check(any("ADDR=IPV6:2001:db8::5" in l and "HELO=v2.test" in l for l in xc), "XCLIENT v2: %r" % xc)
    # a bad header: closed without a banner
    c = T.Client(d.port)
    c.send("EHLO nope.test\r\n")
    check(c.closed() and c.buf == b"", "no banner without a PROXY header")
    P.stop(d.proc)
    P.stop(bx.proc)


def t_backend_caps():
    """EHLO offers only what the backend can honour (or we bridge)."""
    bare = T.Backend(P, WORK, "--caps", "SIZE=20000")
    d = T.Daemon(P, WORK, bare.port, plugins='plugin size { limit = 30K }')
    c, lines = T.greet(d.port)
    kws = [l[4:] for l in lines[1:]]
    for k in ("DSN", "SMTPUTF8", "8BITMIME"):
        check(k not in kws, "%s offered though the backend lacks it: %r" % (k, kws))
    for k in ("PIPELINING", "CHUNKING", "ENHANCEDSTATUSCODES"):
        check(k in kws, "%s (bridged) missing: %r" % (k, kws))
    check("SIZE 20000" in kws, "SIZE is the smallest of ours, the plugin's, the backend's: %r" % kws)
    eq(c.cmd("MAIL FROM:<a@example.com> RET=FULL")[0], 555, "DSN parameter refused")
    eq(c.cmd("MAIL FROM:<a@example.com> BODY=8BITMIME")[0], 504, "8BITMIME refused")
    # no PIPELINING at the backend: a pipelined group still works, in order
    c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<np1@example.com>\r\n"
           "RCPT TO:<fault-rcpt-550@example.com>\r\nRCPT TO:<np2@example.com>\r\nDATA\r\n")
    eq([c.reply()[0] for _ in range(5)], [250, 250, 550, 250, 354], "replies in order")
    c.send("Subject: np\r\n\r\nx\r\n.\r\n")
    eq(c.reply()[0], 250, "message")
    eq(bare.messages()[-1]["rcpts"], ["np1@example.com", "np2@example.com"], "recipients")
    c.close()
    P.stop(d.proc)
    P.stop(bare.proc)
    d = T.Daemon(P, WORK, BE.port, plugins='plugin size { limit = 30K }')
    c, lines = T.greet(d.port)
    check("250-SIZE 30720" in lines, "plugin limit advertised: %r" % lines)
    c.close()
    P.stop(d.proc)


def t_pregreet():
    """Talking before the banner (here: right behind the PROXY header)."""
    d = T.Daemon(P, WORK, BE.port, smtp_extra="proxy_protocol = yes")
    c = T.Client(d.port)
    c.send("PROXY TCP4 192.0.2.8 127.0.0.1 1 2\r\nEHLO early.test\r\n")
    code, l = c.reply()
    eq(l[0][:9], "554 5.5.0", "client spoke first")
    check(c.closed(), "closed")
    P.stop(d.proc)


def t_ipv6():
    port = T.free_port()
    d = T.Daemon(P, WORK, BE.port, extra_listen=["[::1]:%d" % port])
    c = T.Client.__new__(T.Client)
    c.s = T.socket.create_connection(("::1", port), timeout=5)
    c.buf = b""
    eq(c.reply()[0], 220, "banner on ::1")
    eq(c.cmd("EHLO v6.test")[0], 250, "EHLO")
    code, l = send_msg(c, "a@example.com", ["v6@example.com"], "S: x\r\n\r\nb\r\n.\r\n")
    eq(code, 250, "message over IPv6")
    c.close()
    P.stop(d.proc)


def t_pool():
    d = T.Daemon(P, WORK, BE.port)
    for i in range(3):
        s = smtplib.SMTP("127.0.0.1", d.port, local_hostname="pool.test", timeout=10)
        s.sendmail("a@example.com", ["pool%d@example.com" % i], b"Subject: p\r\n\r\nx\r\n")
        s.quit()
    conns = set(msgs_to("pool%d@example.com" % i)[-1]["conn"] for i in range(3))
    eq(len(conns), 1, "three sessions over one pooled backend connection")
    P.stop(d.proc)


def t_client_gone_mid_data():
    c, _ = T.greet(D.port)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<gone@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: half\r\n\r\npart of a message\r\n.")
    c.close()
    time.sleep(0.3)
    check(not msgs_to("gone@example.com"), "nothing received")
    # the backend never saw a DATA, let alone a dot, for it
    conn = [x for x in BE.commands() if "gone@example.com" in x["line"]][-1]["conn"]
    later = [x["line"] for x in BE.commands() if x["conn"] == conn]
    check("DATA\r\n" not in later[later.index("RCPT TO:<gone@example.com>\r\n"):], "no DATA sent")


def t_too_many_errors():
    c, _ = T.greet(D.port)
    for i in range(19):
        eq(c.cmd("BOGUS%d" % i)[0], 500, "error %d" % i)
    code, l = c.cmd("BOGUS")
    eq(code, 500, "20th error")
    code, l = c.reply()
    eq(l[0][:9], "421 4.7.0", "closed after too many errors")
    check(c.closed(), "closed")


for name, fn in [("ehlo", t_ehlo), ("helo", t_helo), ("sequence", t_sequence), ("paths", t_paths),
                 ("params/dsn/smtputf8/8bitmime", t_params), ("data dots", t_data_dots),
                 ("NUL octets", t_nul_octets),
                 ("bdat", t_bdat), ("bdat empty last", t_bdat_smtplib), ("smtplib", t_smtplib),
                 ("vrfy/expn/help/noop/unknown", t_verbs), ("pop3/http words", t_foreign),
                 ("plugin verdicts", t_plugin_verdicts), ("stage verdicts", t_stage_rejects),
                 ("backend replies verbatim", t_backend_verbatim),
                 ("backend faults", t_backend_faults),
                 ("backend gone during DATA", t_backend_gone_during_data),
                 ("pipelining", t_pipelining),
                 ("pipelining one write", t_pipelining_one_write),
                 ("pipelined RCPT count", t_pipelined_rcpt_count),
                 ("pipelining before ehlo", t_pipelining_before_ehlo),
                 ("modifications", t_mods), ("recipient limit", t_rcpt_limit),
                 ("summary log", t_summary_log), ("xclient + proxy v1/v2", t_xclient_proxy),
                 ("backend capabilities", t_backend_caps),
                 ("talking before the greeting", t_pregreet), ("ipv6 listener", t_ipv6),
                 ("backend pool", t_pool), ("client gone mid-DATA", t_client_gone_mid_data),
                 ("too many errors", t_too_many_errors)]:
    R.case(name, fn)
P.stop_all()
R.finish()
