-- t/milter/mt-stop.lua - SIGTERM: the listener closes, and the daemon
-- exits promptly even with an MTA connection open. Debian's libmilter
-- (worker pool) stops serving open connections at stop, so the MTA sees
-- its connection end and applies milter_default_action (tempfail: nothing
-- is lost); a libmilter that keeps serving lets the message finish. Either
-- way the daemon must not hang on the dead connection for shutdown_grace.
-- Globals: SOCK or PORT, LOG (probe log), PID (the daemon).
dofile(LIB)
clearlog()

-- alive() - the daemon still runs (an exited one may linger as a zombie
-- until the shell that started it reaps it: that counts as gone)
local function alive()
    local f = io.open("/proc/" .. PID .. "/stat", "r")
    if f == nil then return false end
    local stat = f:read("a")
    f:close()
    local state = string.match(stat, "%) (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
end

local c = open()
mt.conninfo(c, "client.example", "192.0.2.7")
mt.mailfrom(c, "<in-flight@example.com>")
mt.rcptto(c, "<a@example.net>")
check(reply(c) == R_CONTINUE, "message under way")
os.execute("kill -TERM " .. PID)
local t0 = os.time()
local refused = false
for _ = 1, 100 do                       -- libmilter looks every few seconds
    mt.sleep(0.1)
    local ok, c2 = pcall(mt.connect, sockname(), 1, 0)
    if not ok or c2 == nil then refused = true break end
    mt.disconnect(c2, false)
end
check(refused, "after SIGTERM: new connections refused")
local ok = pcall(mt.header, c, "Subject", "in flight at SIGTERM")
local served = ok and reply(c) == R_CONTINUE
local gone = false
for _ = 1, 150 do
    if not alive() then gone = true break end
    mt.sleep(0.1)
end
check(gone, "the daemon exited within 15 s of the stop, connection open or not ("
      .. (served and "libmilter still served it" or "libmilter dropped it") .. ")")
check(os.time() - t0 < 28, "no wait for the whole shutdown_grace (30 s) on a dead connection")
pcall(mt.disconnect, c, false)
