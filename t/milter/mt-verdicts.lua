-- t/milter/mt-verdicts.lua - every verdict gives the right milter answer.
-- The probe plugin's rules (miltertest.sh) key verdicts on the names used
-- here. REJECT/TEMPFAIL carry a reply, so the MTA gets SMFIR_REPLYCODE
-- ('y'); the reply text is checked where miltertest can see it (EOM) and
-- through the real MTAs in the integration tests.
dofile(LIB)
clearlog()

-- c_helo() - a connection past HELO.
local function c_helo(ip)
    local c = open()
    mt.conninfo(c, "client.example", ip or "192.0.2.7")
    mt.helo(c, "client.example")
    return c
end

-- CONNECT
local c = open()
mt.conninfo(c, "client.example", "192.0.2.66")
check(reply(c) == R_REPLYCODE, "connect reject: reply code")
mt.disconnect(c)
c = open()
mt.conninfo(c, "client.example", "192.0.2.67")
check(reply(c) == R_REPLYCODE, "connect tempfail: reply code")
mt.disconnect(c)
c = open()
mt.conninfo(c, "client.example", "192.0.2.68")
check(reply(c) == R_CONTINUE, "connect accept: continue, not SMFIR_ACCEPT")
mt.helo(c, "client.example")
mt.mailfrom(c, "<after-accept@example.com>")
check(reply(c) == R_CONTINUE and logged("mail\tfrom=after-accept@example.com"),
      "connect accept: later stages still reach the chain")
mt.disconnect(c)

-- HELO: a refusal holds for the session, a good HELO lifts it
c = open()
mt.conninfo(c, "client.example", "192.0.2.7")
mt.helo(c, "bad.helo.example")
check(reply(c) == R_REPLYCODE, "helo reject: reply code")
mt.mailfrom(c, "<refused-after-helo@example.com>")
check(reply(c) == R_REPLYCODE and not logged("from=refused-after-helo@"),
      "helo reject: MAIL refused too, without running MAIL")
mt.helo(c, "good.helo.example")
check(reply(c) == R_CONTINUE, "helo again: continue")
mt.mailfrom(c, "<after-good-helo@example.com>")
check(reply(c) == R_CONTINUE and logged("from=after-good-helo@"), "helo again: MAIL runs")
mt.disconnect(c)

-- TLS and AUTH stages refuse at MAIL
c = c_helo()
mt.macro(c, SMFIC_MAIL, "{tls_version}", "TLSv1.0", "{cipher}", "RC4")
mt.mailfrom(c, "<old-tls@example.com>")
check(reply(c) == R_REPLYCODE and logged("tls\ttext=TLSv1.0") and not logged("from=old-tls@"),
      "tls reject: MAIL refused with the TLS stage's reply")
mt.disconnect(c)
c = c_helo()
mt.macro(c, SMFIC_MAIL, "{auth_authen}", "mallory", "{auth_type}", "LOGIN")
mt.mailfrom(c, "<mallory@example.com>")
check(reply(c) == R_REPLYCODE and logged("auth\ttext=mallory") and not logged("from=mallory@"),
      "auth tempfail: MAIL refused with the AUTH stage's reply")
mt.macro(c, SMFIC_MAIL, "{auth_authen}", "mallory", "{auth_type}", "LOGIN")
mt.mailfrom(c, "<mallory2@example.com>")
check(reply(c) == R_REPLYCODE and count("auth\ttext=mallory") == 1,
      "auth tempfail: still refused at the next MAIL, AUTH not rerun")
mt.disconnect(c)

-- MAIL
c = c_helo()
mt.mailfrom(c, "<reject-sender@example.com>")
check(reply(c) == R_REPLYCODE, "mail reject: reply code")
mt.mailfrom(c, "<temp-sender@example.com>")
check(reply(c) == R_REPLYCODE, "mail tempfail: reply code")
mt.mailfrom(c, "<discard-sender@example.com>")
check(reply(c) == R_DISCARD, "mail discard: SMFIR_DISCARD")
mt.disconnect(c)

-- RCPT: verdicts for one recipient; ACCEPT is not SMFIR_ACCEPT
clearlog()
c = c_helo()
mt.mailfrom(c, "<sender@example.com>")
mt.rcptto(c, "<reject-rcpt@example.net>")
check(reply(c) == R_REPLYCODE, "rcpt reject: reply code")
mt.rcptto(c, "<temp-rcpt@example.net>")
check(reply(c) == R_REPLYCODE, "rcpt tempfail: reply code")
mt.rcptto(c, "<accept-rcpt@example.net>")
check(reply(c) == R_CONTINUE, "rcpt accept: continue, not SMFIR_ACCEPT")
mt.rcptto(c, "<plain@example.net>")
check(reply(c) == R_CONTINUE and logged("rcpt\tto=plain@example.net\tparams=\tindex=1"),
      "rcpt after accept: still runs through the chain")
mt.header(c, "Subject", "verdicts")
mt.eoh(c)
mt.bodystring(c, "x\r\n")
mt.eom(c)
check(logged("rcpts=accept-rcpt@example.net,plain@example.net\t"),
      "rcpt: refused recipients are not in the transaction", readlog())
mt.mailfrom(c, "<sender@example.com>")
mt.rcptto(c, "<discard-rcpt@example.net>")
check(reply(c) == R_DISCARD, "rcpt discard: SMFIR_DISCARD")
mt.disconnect(c)

-- DATA, HEADER, EOH, BODY
c = c_helo()
mt.mailfrom(c, "<data-reject@example.com>")
mt.rcptto(c, "<a@example.net>")
mt.data(c)
check(reply(c) == R_REPLYCODE, "data reject: reply code")
mt.mailfrom(c, "<sender@example.com>")
mt.rcptto(c, "<a@example.net>")
mt.header(c, "X-Reject", "please")
check(reply(c) == R_REPLYCODE, "header reject: reply code")
mt.mailfrom(c, "<eoh-temp@example.com>")
mt.rcptto(c, "<a@example.net>")
mt.header(c, "Subject", "x")
mt.eoh(c)
check(reply(c) == R_REPLYCODE, "eoh tempfail: reply code")
mt.mailfrom(c, "<sender@example.com>")
mt.rcptto(c, "<a@example.net>")
mt.header(c, "Subject", "x")
mt.eoh(c)
mt.bodystring(c, "this has REJECT-BODY in it\r\n")
check(reply(c) == R_REPLYCODE, "body reject: reply code")
mt.disconnect(c)

clearlog()
c = c_helo()
mt.mailfrom(c, "<sender@example.com>")
mt.rcptto(c, "<a@example.net>")
mt.header(c, "Subject", "x")
mt.eoh(c)
mt.bodystring(c, "ACCEPT-BODY\r\n")
if mt.test_option(c, SMFIP_SKIP) then
    check(reply(c) == R_SKIP, "body accept: SMFIR_SKIP (the rest of the body is not needed)")
else
    check(reply(c) == R_CONTINUE, "body accept: continue (MTA offers no SKIP)")
end
mt.eom(c)
check(reply(c) == R_CONTINUE and logged("eom\tfrom=sender@example.com"), "body accept: eom still runs")
mt.disconnect(c)

-- EOM
c = c_helo()
msg(c, "<eom-reject@example.com>", { "<a@example.net>" }, { { "Subject", "x" } }, "x\r\n")
check(reply(c) == R_REPLYCODE, "eom reject: reply code")
-- libmilter sends "550-5.7.1 first line\r\n550 5.7.1 second line";
-- miltertest splits that at the first two spaces
check(mt.eom_check(c, MT_SMTPREPLY, "550-5.7.1", "first", "line\r\n550 5.7.1 second line"),
      "eom reject: multi-line reply, both lines")
msg(c, "<eom-temp@example.com>", { "<a@example.net>" }, { { "Subject", "x" } }, "x\r\n")
check(reply(c) == R_REPLYCODE and mt.eom_check(c, MT_SMTPREPLY, "451", "4.3.0", "Try again 100%%"),
      "eom tempfail: 451 4.3.0, '%' doubled for libmilter")
msg(c, "<eom-discard@example.com>", { "<a@example.net>" }, { { "Subject", "x" } }, "x\r\n")
check(reply(c) == R_DISCARD, "eom discard: SMFIR_DISCARD")
msg(c, "<eom-default@example.com>", { "<a@example.net>" }, { { "Subject", "x" } }, "x\r\n")
check(reply(c) == R_REPLYCODE and mt.eom_check(c, MT_SMTPREPLY, "550", "5.7.1", "Message rejected by policy"),
      "eom reject without a reply: the stage's default reply")
msg(c, "<sender@example.com>", { "<a@example.net>" }, { { "Subject", "x" } }, "x\r\n")
check(reply(c) == R_CONTINUE, "eom continue: continue")

-- UNKNOWN and EXPN
mt.unknown(c, "BADCMD now")
check(reply(c) == R_REPLYCODE, "unknown reject: reply code")
mt.unknown(c, "EXPN list-of-all")
check(reply(c) == R_REPLYCODE, "expn reject: reply code")
mt.unknown(c, "HARMLESS")
check(reply(c) == R_CONTINUE, "unknown continue: continue")
mt.disconnect(c)
