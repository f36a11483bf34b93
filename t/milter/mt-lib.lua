-- t/milter/mt-lib.lua - helpers for the miltertest scripts of the milter
-- front-end: TAP-like results, the probe plugin's log, connections.
-- Globals from miltertest -D: PORT (the daemon), LOG (probe log file).

function check(cond, label, detail)
    if cond then
        print("ok - " .. label)
    else
        print("not ok - " .. label)
        if detail ~= nil then print("#   " .. tostring(detail)) end
    end
    return cond
end

function readlog()
    local f = io.open(LOG, "r")
    if f == nil then return "" end
    local s = f:read("a")
    f:close()
    return s
end

function clearlog()
    local f = io.open(LOG, "w")
    if f ~= nil then f:close() end
end

-- logged(s) - whether the probe log holds s (plain text).
function logged(s)
    return string.find(readlog(), s, 1, true) ~= nil
end

-- count(s) - how many times s is in the probe log.
function count(s)
    local log, n, i = readlog(), 0, 1
    while true do
        local a, b = string.find(log, s, i, true)
        if a == nil then return n end
        n = n + 1
        i = b + 1
    end
end

-- wait_logged(s) - for lines written after we stopped talking (close).
function wait_logged(s)
    for _ = 1, 40 do
        if logged(s) then return true end
        mt.sleep(0.05)
    end
    return false
end

-- open() - a new connection to the daemon (SOCK if given, else
-- inet:PORT@127.0.0.1), negotiated with miltertest's defaults.
function sockname()
    if SOCK ~= nil then return SOCK end
    return "inet:" .. PORT .. "@127.0.0.1"
end

function open()
    local c = mt.connect(sockname(), 50, 0.1)
    if c == nil then error("cannot connect to the daemon on " .. sockname()) end
    return c
end

-- reply(c) - the last reply as its letter.
function reply(c)
    local r = mt.getreply(c)
    if r == nil then return "?" end
    return string.char(math.floor(r))
end

R_CONTINUE = string.char(math.floor(SMFIR_CONTINUE))
R_REPLYCODE = string.char(math.floor(SMFIR_REPLYCODE))
R_DISCARD = string.char(math.floor(SMFIR_DISCARD))
R_SKIP = "s"
R_REJECT = string.char(math.floor(SMFIR_REJECT))
R_TEMPFAIL = string.char(math.floor(SMFIR_TEMPFAIL))
R_ACCEPT = string.char(math.floor(SMFIR_ACCEPT))

-- msg(c, from, rcpts, headers, body) - a whole message up to EOM.
function msg(c, from, rcpts, headers, body)
    mt.mailfrom(c, from)
    for _, r in ipairs(rcpts) do mt.rcptto(c, r) end
    mt.data(c)
    for _, h in ipairs(headers) do mt.header(c, h[1], h[2]) end
    mt.eoh(c)
    mt.bodystring(c, body)
    return mt.eom(c)
end
