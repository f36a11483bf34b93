#!/usr/bin/python3
"""t/smtp/test_txn.py - a transaction stays whole when the backend misbehaves.

The daemon in front of the capture backend (backend.py) with fault
injection: a backend connection lost inside a transaction is never replaced
by one that knows nothing of it (VRFY/ETRN in between answer 451, the final
dot replays the envelope); XCLIENT never goes into an open backend
transaction; a backend 3xx to MAIL, RCPT or the final dot is never relayed;
a recipient the client holds a 250 for and the backend refuses on an
envelope replay fails the message (4xx), and the replay is not pipelined to
a backend without PIPELINING; the summary line tells a backend refusal; an
idle session holds no backend connection.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtptest as T
from smtptest import eq, check, tp_block

R = T.Runner("txn")
P = T.Procs()
WORK = tempfile.mkdtemp(prefix="smtp-txn-")


RULES = ["vrfy@relay:accept", "unknown@ETRN example.com:accept"]
BX = T.Backend(P, WORK, "--xclient")
DX = T.Daemon(P, WORK, BX.port, smtp_extra="xclient = yes", plugins=tp_block("tp", RULES))
# a backend without PIPELINING, and a plugin that adds a recipient (an envelope replay)
BN = T.Backend(P, WORK, "--caps", "8BITMIME ENHANCEDSTATUSCODES SIZE=104857600")
DN = T.Daemon(P, WORK, BN.port, plugins=tp_block("tp", mods=["addrcpt:added@example.com"]))


# a daemon whose capability cache is still empty
BC = T.Backend(P, WORK)
DC = T.Daemon(P, WORK, BC.port)
# no plugin: DATA goes to the backend at the client's DATA
BE = T.Backend(P, WORK)
DE = T.Daemon(P, WORK, BE.port, smtp_extra="max_message_size = 2000")


def msgs_to(be, addr):
    return [m for m in be.messages() if addr in m["rcpts"]]


def t_lost_then_vrfy():
    """MAIL, RCPT, the backend drops, VRFY (accepted by a plugin) twice, RCPT,
    DATA: no new connection serves VRFY or RCPT inside the transaction, and
    the message reaches the backend over a replayed envelope (never a 5xx)."""
    c, _ = T.greet(DX.port)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<fault-once-drop-after-rcpt@example.com>")[0], 250, "RCPT, then the drop")
    time.sleep(0.1)
    for i in range(2):
        eq(c.cmd("VRFY relay")[1][0][:9], "451 4.4.2", "VRFY %d in the broken transaction" % i)
    eq(c.cmd("ETRN example.com")[1][0][:9], "451 4.4.2", "ETRN in the broken transaction")
    eq(c.cmd("RCPT TO:<late-v@example.com>")[1][0][:9], "451 4.4.2", "RCPT after the loss")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: lost then vrfy\r\n\r\nbody\r\n.\r\n")
    code, l = c.reply()
    eq(code, 250, "delivered over a replayed envelope: %r" % l)
    got = msgs_to(BX, "fault-once-drop-after-rcpt@example.com")
    eq(len(got), 1, "once")
    eq(got[0]["rcpts"], ["fault-once-drop-after-rcpt@example.com"], "envelope")
    eq(c.cmd("VRFY relay")[0], 250, "VRFY after the transaction goes to the backend again")
    c.close()


def t_xclient_after_rset():
    """MAIL, RCPT, RSET, EHLO with a new name, MAIL: the backend transaction
    left open by the lazy RSET is ended before XCLIENT (Postfix: 503)."""
    c, _ = T.greet(DX.port, "first.test")
    eq(c.cmd("MAIL FROM:<x1@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<xr1@example.com>")[0], 250, "RCPT")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(c.cmd("EHLO second.test")[0], 250, "EHLO again")
    eq(c.cmd("MAIL FROM:<x2@example.com>")[1][0][:3], "250", "MAIL after the new identity")
    eq(c.cmd("RCPT TO:<xr2@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: xclient\r\n\r\nbody\r\n.\r\n")
    eq(c.reply()[0], 250, "delivered")
    c.close()
    conn = msgs_to(BX, "xr2@example.com")[-1]["conn"]
    lines = [x["line"].rstrip("\r\n") for x in BX.commands() if x["conn"] == conn]
    i = max(k for k, l in enumerate(lines) if l.startswith("XCLIENT") and "second.test" in l)
    check(lines[i - 1] == "RSET", "RSET right before XCLIENT: %r" % lines[:i + 1])


def t_backend_3xx():
    """A backend 3xx to MAIL, RCPT or the final dot reaches the client as 451 4.3.0."""
    c, _ = T.greet(DX.port)
    eq(c.cmd("MAIL FROM:<fault-mail-354@example.com>")[0], 250, "MAIL (deferred)")
    eq(c.cmd("RCPT TO:<r@example.com>")[1][0][:9], "451 4.3.0", "3xx to MAIL, at RCPT")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL again")
    eq(c.cmd("RCPT TO:<fault-rcpt-334@example.com>")[1][0][:9], "451 4.3.0", "3xx to RCPT")
    c.close()
    c, _ = T.greet(DX.port)
    eq(c.cmd("MAIL FROM:<a@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<fault-dot-354@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: 3xx\r\n\r\nbody\r\n.\r\n")
    eq(c.reply()[1][0][:9], "451 4.3.0", "3xx to the final dot")
    eq(c.cmd("NOOP")[0], 250, "session goes on")
    c.close()


def t_summary_verdict():
    """The per-message line says what the backend did with the message."""
    c, _ = T.greet(DX.port)
    eq(c.cmd("MAIL FROM:<sum@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<fault-dot-550@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: refused\r\n\r\nbody\r\n.\r\n")
    eq(c.reply()[0], 550, "backend refused the message")
    c.close()
    line = T.wait_for(lambda: [l for l in DX.log().splitlines()
                               if "from=<sum@example.com>" in l], what="summary line")[0]
    check("verdict=reject backend=550" in line, "summary: %s" % line)


def t_replay_refuses_original():
    """A plugin adds a recipient, so the envelope is replayed at the end of
    message; the backend now refuses a recipient the client holds a 250 for:
    the message fails with a 4xx and nothing is delivered without it."""
    c, _ = T.greet(DN.port)
    eq(c.cmd("MAIL FROM:<r@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<fault-again-451-r@example.com>")[0], 250, "RCPT (accepted the first time)")
    eq(c.cmd("RCPT TO:<keep-r@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: replay\r\n\r\nbody\r\n.\r\n")
    code, l = c.reply()
    eq(l[0][:5], "451 4", "a refused original recipient fails the message: %r" % l)
    eq(msgs_to(BN, "keep-r@example.com"), [], "nothing delivered without it")
    c.close()


def t_replay_not_pipelined():
    """Without backend PIPELINING the replay waits for each reply."""
    c, _ = T.greet(DN.port)
    eq(c.cmd("MAIL FROM:<p@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<np1@example.com>")[0], 250, "RCPT")
    eq(c.cmd("RCPT TO:<np2@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: nopipe\r\n\r\nbody\r\n.\r\n")
    eq(c.reply()[0], 250, "delivered")
    c.close()
    m = msgs_to(BN, "np1@example.com")[-1]
    eq(m["rcpts"], ["np1@example.com", "np2@example.com", "added@example.com"], "replayed envelope")
    ahead = [x["line"] for x in BN.commands() if x["conn"] == m["conn"] and x.get("ahead")]
    eq(ahead, [], "commands sent before the last reply came")


def t_ehlo_no_held_relay():
    """The first EHLO opens a backend connection to learn its capabilities;
    that connection goes to the pool, not to the idle session: the next
    session's message travels over it."""
    a, _ = T.greet(DC.port, "idle.test")
    T.wait_for(lambda: BC.commands(), what="the EHLO's backend connection")
    first = BC.commands()[0]["conn"]
    b, _ = T.greet(DC.port, "busy.test")
    eq(b.cmd("MAIL FROM:<e@example.com>")[0], 250, "MAIL")
    eq(b.cmd("RCPT TO:<ehlo-pool@example.com>")[0], 250, "RCPT")
    eq(b.cmd("DATA")[0], 354, "DATA")
    b.send("Subject: pool\r\n\r\nbody\r\n.\r\n")
    eq(b.reply()[0], 250, "delivered")
    eq(msgs_to(BC, "ehlo-pool@example.com")[-1]["conn"], first,
       "message over the connection the first EHLO opened")
    eq(a.cmd("NOOP")[0], 250, "the idle session is still fine")
    a.close()
    b.close()


def data_lines(be):
    """(conn, index) of every DATA the backend read."""
    return [(x["conn"], i) for i, x in enumerate(be.commands()) if x["line"] == "DATA\r\n"]


def t_early_data():
    """No plugin past DATA: the backend has DATA before the client sends a
    line of the message, and gets the message once, whole."""
    before = len(data_lines(BE))
    c, _ = T.greet(DE.port)
    eq(c.cmd("MAIL FROM:<e@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<early@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    T.wait_for(lambda: len(data_lines(BE)) > before, what="DATA at the backend, early")
    c.send("Subject: early\r\n\r\nbody\r\n.\r\n")
    eq(c.reply()[0], 250, "delivered")
    got = msgs_to(BE, "early@example.com")
    eq(len(got), 1, "once")
    eq(got[0]["data"], "Subject: early\r\n\r\nbody\r\n", "whole")
    c.close()


def t_late_data_with_plugin():
    """A plugin hooks the end of message (it adds a recipient there): DATA
    goes to the backend only once the message is in."""
    before = len(data_lines(BN))
    c, _ = T.greet(DN.port)
    eq(c.cmd("MAIL FROM:<l@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<late@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    time.sleep(0.3)
    eq(len(data_lines(BN)), before, "no DATA at the backend while the message comes")
    c.send("Subject: late\r\n\r\nbody\r\n.\r\n")
    eq(c.reply()[0], 250, "delivered")
    eq(len(data_lines(BN)), before + 1, "one DATA")
    c.close()


def t_early_data_client_vanishes():
    """The client goes away in the middle of its message after an early
    DATA: the backend never gets a message (no dot), and that backend
    connection is not used again."""
    c, _ = T.greet(DE.port)
    eq(c.cmd("MAIL FROM:<v@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<vanish@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    T.wait_for(lambda: [1 for x in BE.commands() if "vanish@" in x["line"]] and
               data_lines(BE), what="the early DATA")
    vconn = [x["conn"] for x in BE.commands() if "vanish@" in x["line"]][-1]
    c.send("Subject: vanish\r\n\r\nhalf a mess")
    time.sleep(0.1)
    c.close()
    time.sleep(0.3)
    eq(msgs_to(BE, "vanish@example.com"), [], "nothing delivered")
    c, _ = T.greet(DE.port)
    eq(send_one(c, "after-vanish@example.com"), 250, "the next message")
    c.close()
    check(msgs_to(BE, "after-vanish@example.com")[0]["conn"] != vconn,
          "the connection left in data mode was not reused")


def send_one(c, rcpt, body="Subject: x\r\n\r\nbody\r\n"):
    eq(c.cmd("MAIL FROM:<s@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<%s>" % rcpt)[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send(body + ".\r\n")
    return c.reply()[0]


def t_early_data_message_refused():
    """After an early DATA, a message refused by the front-end itself (over
    max_message_size) or by the backend's answer to DATA: the client gets
    the refusal at the end, the backend no message, and the next message of
    the same session goes through."""
    c, _ = T.greet(DE.port)
    eq(send_one(c, "too-big@example.com", "Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 40),
       552, "over max_message_size")
    eq(send_one(c, "fault-data-554@example.com"), 554, "backend refuses DATA")
    eq(send_one(c, "after-big@example.com"), 250, "the next message")
    c.close()
    eq(msgs_to(BE, "too-big@example.com"), [], "the big one never reached the backend")
    eq(msgs_to(BE, "fault-data-554@example.com"), [], "nor the refused one")
    eq(len(msgs_to(BE, "after-big@example.com")), 1, "the next one did")


def t_early_data_backend_timeout():
    """The backend answers the early DATA with 354 but gives up (421, close)
    while the client is slow: the message goes over a new connection with
    the envelope given again, once."""
    c, _ = T.greet(DE.port)
    eq(c.cmd("MAIL FROM:<t@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<fault-data-timeout-once@example.com>")[0], 250, "RCPT")
    eq(c.cmd("DATA")[0], 354, "DATA")
    time.sleep(0.5)
    c.send("Subject: slow\r\n\r\nbody\r\n.\r\n")
    eq(c.reply()[0], 250, "delivered after all")
    got = msgs_to(BE, "fault-data-timeout-once@example.com")
    eq(len(got), 1, "once")
    c.close()
    check(any("reconnecting" in l for l in DE.log().splitlines()), "the reconnection is logged")


def mail_lines(be, sender):
    return [x for x in be.commands() if x["line"].startswith("MAIL FROM:<%s>" % sender)]


def t_deferred_mail():
    """To a PIPELINING backend, MAIL goes with the first RCPT, in one write;
    a transaction that ends before any RCPT never reaches the backend."""
    c, _ = T.greet(DE.port)
    eq(c.cmd("MAIL FROM:<never@example.com>")[1][0][:9], "250 2.1.0", "MAIL, answered by us")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(c.cmd("MAIL FROM:<deferred@example.com>")[0], 250, "MAIL")
    time.sleep(0.2)
    eq(mail_lines(BE, "deferred@example.com"), [], "no MAIL at the backend before a RCPT")
    eq(c.cmd("RCPT TO:<d1@example.com>")[0], 250, "RCPT")
    m = mail_lines(BE, "deferred@example.com")
    eq(len(m), 1, "MAIL with the RCPT")
    check(m[0]["ahead"], "MAIL and RCPT in one write")
    eq(c.cmd("RCPT TO:<d2@example.com>")[0], 250, "second RCPT")
    eq(len(mail_lines(BE, "deferred@example.com")), 1, "MAIL once")
    eq(c.cmd("DATA")[0], 354, "DATA")
    c.send("Subject: deferred\r\n\r\nbody\r\n.\r\n")
    eq(c.reply()[0], 250, "delivered")
    c.close()
    eq(mail_lines(BE, "never@example.com"), [], "the abandoned MAIL never reached the backend")
    eq(msgs_to(BE, "d2@example.com")[0]["rcpts"], ["d1@example.com", "d2@example.com"], "envelope")


def t_deferred_mail_refused():
    """The backend refuses the deferred MAIL: every RCPT gets its refusal
    (MAIL is tried again with each), DATA has no recipient; a backend
    without PIPELINING is asked at MAIL and answers MAIL."""
    c, _ = T.greet(DE.port)
    eq(c.cmd("MAIL FROM:<fault-mail-550@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<x1@example.com>")[1], ["550 5.7.1 backend mail 550"], "first RCPT")
    eq(c.cmd("RCPT TO:<x2@example.com>")[1], ["550 5.7.1 backend mail 550"], "second RCPT")
    eq(len(mail_lines(BE, "fault-mail-550@example.com")), 2, "MAIL tried with each RCPT")
    code, l = c.cmd("DATA")
    eq((code, l[0][:9]), (554, "554 5.5.1"), "DATA without a recipient")
    eq(c.cmd("RSET")[0], 250, "RSET")
    eq(send_one(c, "after-refused@example.com"), 250, "the next transaction")
    c.close()
    c, _ = T.greet(DN.port)
    eq(c.cmd("MAIL FROM:<fault-mail-553@example.com>")[1], ["553 5.7.1 backend mail 553"],
       "no PIPELINING: refused at MAIL")
    c.close()


def t_bdat_commands_between_chunks():
    """BDAT with no plugin: DATA is not sent early (commands may come between
    chunks, and none may reach a backend in data mode); RCPT after BDAT gets
    503 (RFC 3030); NOOP between chunks is fine; one whole message arrives."""
    c, _ = T.greet(DE.port)
    eq(c.cmd("MAIL FROM:<b@example.com>")[0], 250, "MAIL")
    eq(c.cmd("RCPT TO:<bdat-mid@example.com>")[0], 250, "RCPT")
    c.send(b"BDAT 7\r\nhello\r\n")
    eq(c.reply()[0], 250, "first chunk")
    eq(c.cmd("RCPT TO:<late-bdat@example.com>")[1][0][:9], "503 5.5.1", "RCPT after BDAT")
    eq(c.cmd("NOOP")[0], 250, "NOOP between chunks")
    c.send(b"BDAT 7 LAST\r\nworld\r\n")
    eq(c.reply()[0], 250, "last chunk")
    c.close()
    got = msgs_to(BE, "bdat-mid@example.com")
    eq(len(got), 1, "one message")
    eq((got[0]["rcpts"], got[0]["data"]), (["bdat-mid@example.com"], "hello\r\nworld\r\n"),
       "envelope and data")
    check(not [x for x in BE.commands() if "late-bdat@" in x["line"]],
          "the late RCPT never reached the backend")
    check("data mode" not in DE.log(), "no command meant for a backend in data mode")


for name, fn in [("EHLO holds no backend connection", t_ehlo_no_held_relay),
                 ("BDAT, commands between chunks", t_bdat_commands_between_chunks),
                 ("deferred MAIL", t_deferred_mail),
                 ("deferred MAIL refused", t_deferred_mail_refused),
                 ("early DATA", t_early_data),
                 ("DATA after the message when a plugin looks at it", t_late_data_with_plugin),
                 ("early DATA, client vanishes", t_early_data_client_vanishes),
                 ("early DATA, message refused", t_early_data_message_refused),
                 ("early DATA, backend times out", t_early_data_backend_timeout),
                 ("backend lost, then VRFY/ETRN/RCPT", t_lost_then_vrfy),
                 ("RSET before XCLIENT", t_xclient_after_rset),
                 ("backend 3xx", t_backend_3xx),
                 ("summary verdict", t_summary_verdict),
                 ("replay refuses an original recipient", t_replay_refuses_original),
                 ("replay without PIPELINING", t_replay_not_pipelined)]:
    R.case(name, fn)
R.finish()
