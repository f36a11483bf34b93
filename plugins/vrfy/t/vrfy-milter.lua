-- vrfy-milter.lua - EXPN behind the milter front-end: Postfix passes EXPN to
-- milters as an unknown command, and the MTA refuses it whatever the milter
-- says; the plugin only chooses the reply. (VRFY never reaches a milter.)
-- vrfy-milter.py starts the daemon with expn = reject, reject_code = 550.

function check(cond, label)
    print((cond and "ok - " or "not ok - ") .. label)
end

local c = mt.connect("inet:" .. PORT .. "@127.0.0.1", 50, 0.1)
if c == nil then error("cannot connect to the daemon on " .. PORT) end
mt.conninfo(c, "client.example", "192.0.2.1")
check(mt.getreply(c) == SMFIR_CONTINUE, "connect continues")
mt.helo(c, "client.example")
mt.unknown(c, "EXPN staff")
check(mt.getreply(c) == SMFIR_REPLYCODE, "EXPN staff: refused with the plugin's reply")
mt.unknown(c, "XYZZY plugh")
check(mt.getreply(c) ~= SMFIR_REPLYCODE, "another unknown command: no reply of ours")
mt.disconnect(c)
