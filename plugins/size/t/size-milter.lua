-- size-milter.lua - the size plugin behind the milter front-end, played by
-- miltertest as the MTA would (size-milter.py starts the daemon with
-- plugin size { limit = 10K } and gives PORT). Prints "ok - " / "not ok - ".

function check(cond, label)
    print((cond and "ok - " or "not ok - ") .. label)
end

function open()
    local c = mt.connect("inet:" .. PORT .. "@127.0.0.1", 50, 0.1)
    if c == nil then error("cannot connect to the daemon on " .. PORT) end
    check(mt.conninfo(c, "client.example", "192.0.2.1") == nil, "conninfo")
    check(mt.getreply(c) == SMFIR_CONTINUE, "connect continues")
    mt.helo(c, "client.example")
    return c
end

-- start(c, from, size) - MAIL (with SIZE= if given) and one RCPT.
function start(c, from, size)
    if size ~= nil then mt.mailfrom(c, from, "SIZE=" .. size) else mt.mailfrom(c, from) end
    return mt.getreply(c)
end

-- skip(f, ...) - a step the daemon may have negotiated away (SMFIP_NO*):
-- no plugin of this chain reads DATA or header fields.
function skip(f, ...)
    pcall(f, ...)
end

-- body(n) - n octets of CRLF lines
function body(n)
    local line = string.rep("x", 78) .. "\r\n"
    return string.rep(line, math.floor(n / 80))
end

local c = open()
check(start(c, "<a@example.org>", 20000) == SMFIR_REPLYCODE, "MAIL SIZE=20000 over 10K refused")
check(start(c, "<a@example.org>", "184467440737095516160") == SMFIR_REPLYCODE,
      "MAIL SIZE= of 21 digits refused")
mt.abort(c)

-- SIZE= lies: the body passes the limit, refused before the end
check(start(c, "<a@example.org>", 100) == SMFIR_CONTINUE, "MAIL SIZE=100 passes")
mt.rcptto(c, "<b@example.net>")
check(mt.getreply(c) == SMFIR_CONTINUE, "RCPT passes")
skip(mt.data, c)
skip(mt.header, c, "Subject", "lie")
mt.eoh(c)
mt.bodystring(c, body(8000))
check(mt.getreply(c) == SMFIR_CONTINUE, "8 KB of body under 10K continues")
mt.bodystring(c, body(8000))
check(mt.getreply(c) == SMFIR_REPLYCODE, "16 KB of body over 10K refused (SIZE=100 lied)")
mt.abort(c)

-- no SIZE=, refused at end of message at the latest
check(start(c, "<a@example.org>", nil) == SMFIR_CONTINUE, "MAIL without SIZE= passes")
mt.rcptto(c, "<b@example.net>")
mt.getreply(c)
skip(mt.data, c)
skip(mt.header, c, "Subject", "no size")
mt.eoh(c)
mt.bodystring(c, body(12000))
local r = mt.getreply(c)
if r == SMFIR_CONTINUE then
    mt.eom(c)
    r = mt.getreply(c)
end
check(r == SMFIR_REPLYCODE, "12 KB without SIZE= refused")
mt.abort(c)

-- honest and small
check(start(c, "<a@example.org>", 700) == SMFIR_CONTINUE, "MAIL SIZE=700 passes")
mt.rcptto(c, "<b@example.net>")
mt.getreply(c)
skip(mt.data, c)
skip(mt.header, c, "Subject", "small")
mt.eoh(c)
mt.bodystring(c, body(600))
check(mt.getreply(c) == SMFIR_CONTINUE, "small body continues")
mt.eom(c)
r = mt.getreply(c)
check(r == SMFIR_CONTINUE or r == SMFIR_ACCEPT, "small message accepted at EOM")
mt.disconnect(c)
