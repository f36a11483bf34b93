#!/bin/sh
# t/milter/miltertest.sh - the milter front-end against miltertest (the MTA
# side of the protocol, scripted in Lua): every stage reaches the chain with
# its data (mt-stages.lua), every verdict gives the right milter answer
# (mt-verdicts.lua), every modification is applied (mt-mods.lua), and the
# negotiation follows the chain, also across a reload (mt-negotiate.lua),
# random and malformed protocol sessions do no harm (milter-fuzz.py), a
# unix socket works the same, and SIGTERM stops it promptly (mt-stop.lua).
# Ports 21010-21019.
. "$top_srcdir/t/milter/lib.sh"
command -v miltertest >/dev/null || { echo "miltertest not installed (apt-get install miltertest)"; echo "0 passed, 1 failed"; exit 1; }
t_tmp

# probe.conf - the probe plugin with rules keyed on names the scripts use.
cat >"$T/probe.conf" <<CONF
pid_file = ""
spool_dir = "$T"
milter { listen = "inet:21010@127.0.0.1"  macros = { "{daemon_name}" } }
plugin probe {
    path = "$PROBE_SO"
    log = "$T/probe.log"
    macros = { "j", "{daemon_name}", "_" }
    rules = {
        "connect:192.0.2.66 reject 554 5.7.1 Go away",
        "connect:192.0.2.67 tempfail 421 4.7.0 Busy here",
        "connect:192.0.2.68 accept",
        "helo:bad.helo reject 550 5.7.1 Bad HELO",
        "tls:TLSv1.0 reject 550 5.7.0 TLS too old",
        "auth:mallory tempfail 454 4.7.0 Not now",
        "mail:reject-sender@ reject 553 5.7.1 Sender refused",
        "mail:temp-sender@ tempfail 451 4.7.1 Try later",
        "mail:discard-sender@ discard",
        "rcpt:reject-rcpt@ reject 550 5.1.1 No such user",
        "rcpt:temp-rcpt@ tempfail 450 4.2.0 Mailbox busy",
        "rcpt:accept-rcpt@ accept",
        "rcpt:discard-rcpt@ discard",
        "data:data-reject@ reject 554 5.7.1 No data for you",
        "header:X-Reject: reject 550 5.7.1 Header refused",
        "eoh:eoh-temp@ tempfail 451 4.7.1 EOH deferred",
        "body:REJECT-BODY reject 554 5.6.0 Body refused",
        "body:ACCEPT-BODY accept",
        "eom:eom-reject@ reject 550 5.7.1 first line\\\\nsecond line",
        "eom:eom-temp@ tempfail 451 4.3.0 Try again 100%",
        "eom:eom-discard@ discard",
        "eom:eom-default@ reject",
        "unknown:BADCMD reject 500 5.5.1 Nope",
        "expn:list reject 502 5.5.1 EXPN refused",
        "eom:mods@ addheader X-Added one",
        "eom:mods@ addheader X-Folded first\\\\r\\\\n\\\\tsecond",
        "eom:mods@ insheader 0 X-Inserted top",
        "eom:mods@ chgheader Subject 1 changed subject",
        "eom:mods@ delheader X-Remove 1",
        "eom:mods@ chgfrom new-sender@example.org",
        "eom:mods@ addrcpt added@example.org",
        "eom:mods@ addrcpt added-par@example.org NOTIFY=NEVER",
        "eom:mods@ delrcpt old@example.net",
        "eom:mods@ replbody new body\\\\r\\\\n"
    }
}
CONF
if start_submilter "$T/probe.conf" 21010; then
    run_lua mt-stages.lua PORT=21010 "LOG=$T/probe.log"
    run_lua mt-verdicts.lua PORT=21010 "LOG=$T/probe.log"
    run_lua mt-mods.lua PORT=21010 "LOG=$T/probe.log"
fi

# negotiation: probe_eom, then a reload to the example plugin alone
cat >"$T/neg.conf" <<CONF
pid_file = ""
spool_dir = "$T"
milter { listen = "inet:21011@127.0.0.1"  no_reply_steps = yes }
plugin probe_eom { path = "$PROBE_EOM_SO"  log = "$T/neg.log" }
CONF
cat >"$T/neg2.conf" <<CONF
pid_file = ""
spool_dir = "$T"
milter { listen = "inet:21011@127.0.0.1" }
plugin example { path = "$EXAMPLE_SO"  reject_rcpt = { "blocked@example.net" } }
CONF
cat >"$T/neg3.conf" <<CONF
pid_file = ""
spool_dir = "$T"
milter { listen = "inet:21011@127.0.0.1" }
CONF
if [ ! -e "$EXAMPLE_SO" ]; then
    not_ok "example plugin built ($EXAMPLE_SO)"
elif start_submilter "$T/neg.conf" 21011; then
    run_lua mt-negotiate.lua PORT=21011 "LOG=$T/neg.log" "CONF=$T/neg.conf" \
        "CONF2=$T/neg2.conf" "CONF3=$T/neg3.conf" "PID=$SUB_PID"
fi

# hostile MTA: random and malformed protocol sessions, then a clean one
# (FUZZ_SEED=N repeats a run; the seed is printed)
cat >"$T/fuzz.conf" <<CONF
pid_file = ""
spool_dir = "$T"
milter { listen = "inet:21012@127.0.0.1" }
plugin example { path = "$EXAMPLE_SO" }
plugin probe {
    path = "$PROBE_SO"
    rules = { "rcpt:bad@ reject 550 5.1.1 No", "eom:mods@ addheader X-A b",
              "body:REJECT reject", "helo:xx.invalid tempfail" }
}
CONF
if start_submilter "$T/fuzz.conf" 21012; then
    out=$(/usr/bin/python3 "$MDIR/milter-fuzz.py" 127.0.0.1:21012 150 "${FUZZ_SEED:-$(date +%s)}" 2>&1)
    printf '%s\n' "$out"
    T_PASS=$((T_PASS + $(printf '%s\n' "$out" | grep -c '^ok ')))
    T_FAIL=$((T_FAIL + $(printf '%s\n' "$out" | grep -c '^not ok ')))
    check "daemon alive after the hostile sessions" running $SUB_PID
    check "no crash or sanitizer report in its log" \
        sh -c "! grep -qE 'AddressSanitizer|runtime error|Segmentation|double free' '$T/fuzz.conf.log'"
fi

# IPv6: a listener on [::1] (TCP_NODELAY set there too), one clean transaction
if /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    sed -e "s|inet:21012@127.0.0.1|inet6:21013@::1|" "$T/fuzz.conf" >"$T/v6.conf"
    "$SUBMILTER" -c "$T/v6.conf" -f -d >"$T/v6.conf.log" 2>&1 &
    T_PIDS="$T_PIDS $!"
    for _ in $(seq 100); do grep -q "listening on" "$T/v6.conf.log" 2>/dev/null && break; sleep 0.1; done
    out=$(/usr/bin/python3 "$MDIR/milter-fuzz.py" "::1:21013" 0 1 2>&1)
    check "inet6 listener on [::1]: a clean transaction" \
        sh -c "printf '%s\n' \"\$0\" | grep -q '^ok - a clean transaction'" "$out"
    check "inet6 listener: TCP_NODELAY set" sh -c "! grep -q 'TCP_NODELAY not set' '$T/v6.conf.log'"
else
    skip "inet6 listener" "no IPv6 loopback here"
fi

# a unix socket: the modifications again, then SIGTERM with a message in flight
sed -e "s|inet:21010@127.0.0.1|unix:$T/milter.sock|" -e "s|$T/probe.log|$T/unix.log|" \
    "$T/probe.conf" >"$T/unix.conf"
"$SUBMILTER" -c "$T/unix.conf" -f -d >"$T/unix.conf.log" 2>&1 &
UNIX_PID=$!
T_PIDS="$T_PIDS $UNIX_PID"
for _ in $(seq 100); do [ -S "$T/milter.sock" ] && break; sleep 0.1; done
if [ -S "$T/milter.sock" ]; then
    run_lua mt-mods.lua "SOCK=unix:$T/milter.sock" "LOG=$T/unix.log"
    run_lua mt-stop.lua "SOCK=unix:$T/milter.sock" "LOG=$T/unix.log" "PID=$UNIX_PID"
else
    not_ok "submilter listens on unix:$T/milter.sock" "$(cat "$T/unix.conf.log")"
fi
t_done
