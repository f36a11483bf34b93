-- regex-milter.lua - the regex plugin behind the milter front-end, played
-- by miltertest as the MTA would (regex-milter.py writes the rules, starts
-- the daemon and gives PORT). Prints "ok - " / "not ok - ".

function check(cond, label)
    print((cond and "ok - " or "not ok - ") .. label)
end

function open(name, addr)
    local c = mt.connect("inet:" .. PORT .. "@127.0.0.1", 50, 0.1)
    if c == nil then error("cannot connect to the daemon on " .. PORT) end
    mt.conninfo(c, name, addr)
    return c, mt.getreply(c)
end

function start(c, from, login)
    if login ~= nil then mt.macro(c, SMFIC_MAIL, "{auth_authen}", login, "{auth_type}", "PLAIN") end
    mt.mailfrom(c, from)
    return mt.getreply(c)
end

local c, r = open("unknown", "192.0.2.66")
check(r == SMFIR_REPLYCODE, "connect: unknown[192.0.2.66] refused")
mt.disconnect(c)

c, r = open("client.example", "192.0.2.1")
check(r == SMFIR_CONTINUE, "connect: client.example[192.0.2.1] continues")
mt.helo(c, "evil.example.net")
check(mt.getreply(c) == SMFIR_REPLYCODE, "helo: evil.example.net refused")
mt.disconnect(c)

c = open("client.example", "192.0.2.1")
mt.helo(c, "client.example")
check(mt.getreply(c) == SMFIR_CONTINUE, "helo: client.example continues")
check(start(c, "<x@spam.example>") == SMFIR_REPLYCODE, "mail: x@spam.example refused")
mt.abort(c)
mt.disconnect(c)

-- a login is the session's: Postfix sends the same {auth_authen} at each MAIL
c = open("client.example", "192.0.2.1")
mt.helo(c, "client.example")
mt.getreply(c)
check(start(c, "<a@example.org>", "guest") == SMFIR_REPLYCODE, "auth: guest refused (at MAIL)")
mt.disconnect(c)

c = open("client.example", "192.0.2.1")
mt.helo(c, "client.example")
mt.getreply(c)
check(start(c, "<a@example.org>", "alice") == SMFIR_CONTINUE, "auth: alice continues")
mt.rcptto(c, "<blocked@example.net>")
check(mt.getreply(c) == SMFIR_REPLYCODE, "rcpt: blocked@ refused")
mt.rcptto(c, "<ok@example.net>")
check(mt.getreply(c) == SMFIR_CONTINUE, "rcpt: ok@ continues")
pcall(mt.data, c)
mt.header(c, "Subject", "cheap VIAGRA")
check(mt.getreply(c) == SMFIR_DISCARD, "header: discard")
mt.abort(c)

-- headers added from captures and from the connect rule
check(start(c, "<a@example.org>") == SMFIR_CONTINUE, "mail: a@example.org continues")
mt.rcptto(c, "<b@example.net>")
mt.getreply(c)
pcall(mt.data, c)
mt.header(c, "Subject", "hello")
mt.header(c, "X-Mailer", "Foo Mail 2.1")
pcall(mt.eoh, c)   -- negotiated away: no plugin reads EOH
mt.bodystring(c, "nothing to see\r\n")
check(mt.getreply(c) == SMFIR_CONTINUE, "body: plain line continues")
mt.eom(c)
r = mt.getreply(c)
check(r == SMFIR_CONTINUE or r == SMFIR_ACCEPT, "eom: accepted")
-- added(name) - the value of the header added at EOM, leading blanks
-- dropped (the front-end may send " value" for Sendmail's sake)
function added(name)
    local v = mt.getheader(c, name, 0)
    if v == nil then return nil end
    return (string.gsub(v, "^%s+", ""))
end
check(added("X-Regex-Mailer") == "Foo Mail 2.1", "add-header: capture")
check(added("X-Regex-Client") == "client.example", "add-header: connect rule")

-- body rule, line split across two chunks
check(start(c, "<a@example.org>") == SMFIR_CONTINUE, "mail again")
mt.rcptto(c, "<b@example.net>")
mt.getreply(c)
pcall(mt.data, c)
mt.header(c, "Subject", "body")
pcall(mt.eoh, c)   -- negotiated away: no plugin reads EOH
mt.bodystring(c, "hi\r\nClick ")
check(mt.getreply(c) == SMFIR_CONTINUE, "body: first half continues")
mt.bodystring(c, "Here\r\nbye\r\n")
check(mt.getreply(c) == SMFIR_REPLYCODE, "body: 'Click Here' across chunks refused")
mt.abort(c)

-- runaway pattern: the match limit answers, quickly
check(start(c, "<a@example.org>") == SMFIR_CONTINUE, "mail for the runaway")
mt.rcptto(c, "<b@example.net>")
mt.getreply(c)
pcall(mt.data, c)
mt.header(c, "Subject", "runaway")
pcall(mt.eoh, c)   -- negotiated away: no plugin reads EOH
mt.bodystring(c, string.rep("a", 60000) .. "!\r\n")
check(mt.getreply(c) == SMFIR_REPLYCODE, "body: runaway pattern answered (451)")
mt.disconnect(c)
