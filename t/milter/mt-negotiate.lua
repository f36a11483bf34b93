-- t/milter/mt-negotiate.lua - negotiation follows the chain, per
-- connection, also across a reload.
-- Globals: PORT (daemon running CONF), LOG (probe_eom log), CONF (its
-- configuration file), CONF2 (the configuration a reload switches to: the
-- example plugin alone), CONF3 (then: no plugin at all), PID (the daemon,
-- for SIGUSR1).
dofile(LIB)
clearlog()

local function opt(c, f) return mt.test_option(c, f) end

-- 1. probe_eom: hooks MAIL, RCPT, EOM; reads headers and body at EOM;
-- the configuration has no_reply_steps = yes
local c1 = open()
mt.conninfo(c1, "client.example", "192.0.2.7")
check(opt(c1, SMFIP_NOUNKNOWN) and opt(c1, SMFIP_NOEOH),
      "probe_eom: unknown commands and EOH not sent")
check(not opt(c1, SMFIP_NODATA),
      "DATA always asked for, with a reply (Postfix sends its macros anyway)")
check(not opt(c1, SMFIP_NOHDRS) and not opt(c1, SMFIP_NOBODY),
      "probe_eom: headers and body sent (the plugin reads them at EOM)")
check(opt(c1, SMFIP_NR_CONN) and opt(c1, SMFIP_NR_HELO) and opt(c1, SMFIP_NR_HDR),
      "probe_eom, no_reply_steps: connect, HELO and headers without reply")
check(not opt(c1, SMFIP_NR_MAIL) and not opt(c1, SMFIP_NR_RCPT),
      "probe_eom: MAIL and RCPT replied (the plugin answers them)")
check(not opt(c1, SMFIP_NR_BODY), "never NR_BODY (libmilter would skip xxfi_eom)")
mt.helo(c1, "client.example")
mt.mailfrom(c1, "<first@example.com>")
check(reply(c1) == R_CONTINUE, "probe_eom: mail answered")
mt.rcptto(c1, "<a@example.net>")
mt.data(c1)
mt.header(c1, "Subject", "negotiated")
mt.header(c1, "From", "first@example.com")
mt.bodystring(c1, "body text\r\n")
mt.eom(c1)
check(reply(c1) == R_CONTINUE and
      logged("eom\tfrom=first@example.com\trcpts=a@example.net\tnheaders=2\tsubject=negotiated\tsize=59\tbodysize=11\tbody=body text\\r\\n"),
      "probe_eom: headers (sent without reply) and body reach EOM", readlog())

-- 2. reload to the example plugin alone (rcpt and eom hooks, no flags)
local f = io.open(CONF2, "r")
local text = f:read("a")
f:close()
f = io.open(CONF, "w")
f:write(text)
f:close()
os.execute("kill -USR1 " .. PID)
local c2, switched = nil, false
for _ = 1, 50 do
    c2 = open()
    mt.conninfo(c2, "client.example", "192.0.2.7")
    if opt(c2, SMFIP_NOHDRS) then switched = true break end
    mt.disconnect(c2)
    mt.sleep(0.1)
end
check(switched, "after reload: new connections negotiate for the new chain")
if switched then
    check(opt(c2, SMFIP_NOHDRS) and opt(c2, SMFIP_NOBODY) and opt(c2, SMFIP_NOEOH) and
          opt(c2, SMFIP_NOUNKNOWN),
          "example: no headers, body, EOH or unknown commands sent")
    check(not opt(c2, SMFIP_NR_CONN) and not opt(c2, SMFIP_NR_HELO) and
          not opt(c2, SMFIP_NR_MAIL) and not opt(c2, SMFIP_NR_RCPT),
          "example, default configuration: every step replied (no NR_* flags)")
    mt.helo(c2, "client.example")
    mt.macro(c2, SMFIC_MAIL, "{auth_authen}", "carol", "{auth_type}", "PLAIN")
    mt.mailfrom(c2, "<carol@example.com>")
    mt.rcptto(c2, "<blocked@example.net>")
    check(reply(c2) == R_REPLYCODE, "example: listed recipient refused")
    mt.rcptto(c2, "<ok@example.net>")
    check(reply(c2) == R_CONTINUE, "example: other recipient accepted")
    mt.eom(c2)
    check(mt.eom_check(c2, MT_HDRADD, "X-Submilter-Example"),
          "example: header added without headers or body transferred")
    check(mt.eom_check(c2, MT_HDRADD, "X-Submilter-Login"),
          "example: login header from {auth_authen}")
    mt.disconnect(c2)
end

-- 3. the connection opened before the reload keeps its chain
clearlog()
mt.mailfrom(c1, "<second@example.com>")
mt.rcptto(c1, "<blocked@example.net>")
check(reply(c1) == R_CONTINUE, "old connection: old chain (example not in it)")
mt.header(c1, "Subject", "still old")
mt.bodystring(c1, "x\r\n")
mt.eom(c1)
check(logged("eom\tfrom=second@example.com") and not mt.eom_check(c1, MT_HDRADD),
      "old connection: probe_eom still runs, no example header")
mt.disconnect(c1)

-- 4. reload to an empty chain: CONNECT is answered ACCEPT, so the MTA
-- sends nothing more for the connection
f = io.open(CONF3, "r")
text = f:read("a")
f:close()
f = io.open(CONF, "w")
f:write(text)
f:close()
os.execute("kill -USR1 " .. PID)
local accepted = false
for _ = 1, 50 do
    local c3 = open()
    mt.conninfo(c3, "client.example", "192.0.2.7")
    accepted = reply(c3) == R_ACCEPT
    mt.disconnect(c3)
    if accepted then break end
    mt.sleep(0.1)
end
check(accepted, "after reload to an empty chain: the connection is accepted at CONNECT")
