# t/milter/lib.sh - shell helpers for the milter front-end's script tests:
# results (ok/not ok, final "N passed, M failed"), a private temp folder,
# daemons started in the foreground and stopped by PID on exit.
#
# Needs from `make check`: $SUBMILTER, $top_srcdir, $top_builddir.
# KEEP=1 keeps the temp folder for a look after a failure.

T_PASS=0
T_FAIL=0
T_PIDS=""
T_STOPS=""
PY=/usr/bin/python3

: "${top_srcdir:?run from make check (top_srcdir)}"
: "${top_builddir:?run from make check (top_builddir)}"
: "${SUBMILTER:=$top_builddir/filter/submilter}"
MDIR="$top_srcdir/t/milter"
PROBE_SO="$top_builddir/t/milter/.libs/probe.so"
PROBE_EOM_SO="$top_builddir/t/milter/.libs/probe_eom.so"
EXAMPLE_SO="$top_builddir/plugins/example/.libs/example.so"

# ok LABEL / not_ok LABEL [DETAIL]
ok() { T_PASS=$((T_PASS + 1)); echo "ok - $1"; }
not_ok() {
    T_FAIL=$((T_FAIL + 1)); echo "not ok - $1"
    [ -n "$2" ] && printf '%s\n' "$2" | sed 's/^/#   /'
    return 0
}
# check LABEL COMMAND... - ok if the command succeeds.
check() { label=$1; shift; if "$@"; then ok "$label"; else not_ok "$label"; fi; }
# skip LABEL REASON - counted as passed, said loudly.
skip() { echo "ok - $1 # SKIP $2"; T_PASS=$((T_PASS + 1)); }

# t_tmp - make $T a private folder (removed at exit unless KEEP=1).
t_tmp() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/subm-milter.XXXXXX")
    chmod 755 "$T"
}

# t_on_exit CMD - a command to run at exit (stop commands of MTAs).
t_on_exit() { T_STOPS="$T_STOPS
$1"; }

# t_cleanup - stop what we started, by PID, and remove the temp folder.
t_cleanup() {
    printf '%s\n' "$T_STOPS" | while IFS= read -r cmd; do
        [ -n "$cmd" ] && eval "$cmd" >/dev/null 2>&1
    done
    for p in $T_PIDS; do stop_pid "$p"; done
    if [ -n "$T" ] && [ -z "$KEEP" ]; then rm -rf "$T"; fi
    [ -n "$KEEP" ] && [ -n "$T" ] && echo "# kept $T"
}
trap t_cleanup EXIT
trap 'exit 130' INT TERM

# running PID - the process runs (an exited child not yet reaped is a
# zombie: kill -0 would still succeed on it).
running() {
    [ -r "/proc/$1/stat" ] || return 1
    ! sed 's/^.*) //' "/proc/$1/stat" | grep -q '^[ZX]'
}

# stop_pid PID - TERM, wait up to 10 s, then KILL.
stop_pid() {
    kill "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
}

# wait_port PORT - until something listens on 127.0.0.1:PORT (10 s).
wait_port() {
    $PY - "$1" <<'EOF'
import socket, sys, time
end = time.time() + 10
while time.time() < end:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
    finally:
        s.close()
sys.exit(1)
EOF
}

# start_submilter CONF PORT - run the daemon in the foreground (debug log in
# CONF.log); sets SUB_PID. Returns non-zero if it does not listen.
start_submilter() {
    "$SUBMILTER" -c "$1" -f -d >"$1.log" 2>&1 &
    SUB_PID=$!
    T_PIDS="$T_PIDS $SUB_PID"
    # our process must be the one listening (not a leftover on that port)
    for _ in $(seq 100); do
        if ! kill -0 $SUB_PID 2>/dev/null; then break; fi
        if grep -q "milter: listening on" "$1.log" 2>/dev/null && wait_port "$2"; then return 0; fi
        sleep 0.1
    done
    not_ok "submilter listens on $2" "$(cat "$1.log")"
    return 1
}

# run_lua SCRIPT VAR=VALUE... - a miltertest script; its "ok"/"not ok" lines
# count, and a script that dies counts as one failure.
run_lua() {
    script=$1; shift
    defs=""
    for d in "$@"; do defs="$defs -D $d"; done
    # shellcheck disable=SC2086
    out=$(miltertest $defs -D "LIB=$MDIR/mt-lib.lua" -s "$MDIR/$script" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -E '^(ok|not ok) ' || true
    p=$(printf '%s\n' "$out" | grep -c '^ok ')
    f=$(printf '%s\n' "$out" | grep -c '^not ok ')
    T_PASS=$((T_PASS + p))
    T_FAIL=$((T_FAIL + f))
    if [ $rc -ne 0 ] || [ "$p" -eq 0 ]; then
        not_ok "$script ran to the end (rc=$rc)" "$(printf '%s\n' "$out" | grep -vE '^(ok|not ok) ' | tail -20)"
    fi
    printf '%s\n' "$out" | grep -E '^not ok ' >/dev/null && \
        printf '%s\n' "$out" | grep -vE '^(ok|not ok) ' | sed 's/^/#   /' | tail -20
    return 0
}

# t_done - the final line and the exit status.
t_done() {
    echo "$T_PASS passed, $T_FAIL failed"
    [ "$T_FAIL" -eq 0 ]
    exit $?
}

# ---- for the integration tests (postfix.sh, sendmail.sh) ----------------------

# need_postfix TOOL... - end the test (not ok) if a TOOL is missing, or
# (skipped) unless root, which `postfix -c DIR start` needs.
need_postfix() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || command -v "/usr/sbin/$tool" >/dev/null || {
            not_ok "$tool installed"; t_done; }
    done
    if [ "$(id -u)" != 0 ]; then
        skip "postfix integration" "postfix start needs root"; t_done
    fi
}

# chain_conf FILE PORT - submilter listening on inet:PORT@127.0.0.1 with the
# chain both MTA tests use: example (refuses blocked@example.net, adds
# X-Submilter-Example, and X-Submilter-Login for authenticated sessions),
# then probe (logs to $T/probe.log; replies and modifications keyed on the
# sender's local part).
chain_conf() {
    cat >"$1" <<CONF
pid_file = ""
spool_dir = "$T"
milter { listen = "inet:$2@127.0.0.1" }
plugin example { path = "$EXAMPLE_SO"  reject_rcpt = { "blocked@example.net" } }
plugin probe {
    path = "$PROBE_SO"
    log = "$T/probe.log"
    macros = { "j", "{daemon_name}", "i" }
    rules = {
        "helo:rude.client reject 550 5.7.1 Rude HELO name",
        "mail:temp-sender@ tempfail 451 4.7.1 Try later, sender",
        "eom:multi@ reject 550 5.7.1 first line of the refusal\\\\nsecond line",
        "eom:discard@ discard",
        "eom:mods@ chgfrom changed-sender@example.org",
        "eom:mods@ addrcpt added@example.org NOTIFY=NEVER",
        "eom:mods@ delrcpt drop@example.net",
        "eom:mods@ chgheader Subject 1 changed subject",
        "eom:mods@ delheader X-Remove 1",
        "eom:mods@ insheader 0 X-Inserted at the top",
        "eom:mods@ addheader X-Folded first\\\\r\\\\n\\\\tsecond",
        "eom:mods@ replbody replaced body\\\\r\\\\n"
    }
}
CONF
}

# start_sink PORT - Postfix's smtp-sink on 127.0.0.1:PORT, one file per
# message (envelope as X-Mail-Args/X-Rcpt-Args, then the message) in $T/sink.
start_sink() {
    mkdir -p "$T/sink"
    chown postfix "$T/sink" 2>/dev/null
    smtp-sink -u postfix -d "$T/sink/%M%S." 127.0.0.1:$1 50 >"$T/sink.log" 2>&1 &
    T_PIDS="$T_PIDS $!"
    wait_port "$1" || { not_ok "smtp-sink listens on $1" "$(cat "$T/sink.log")"; return 1; }
}

# sunk PATTERN - wait (30 s: test machines get busy) for a dumped message
# holding PATTERN; its file in $DUMP.
sunk() {
    for _ in $(seq 300); do
        DUMP=$(grep -lF -- "$1" "$T/sink"/* 2>/dev/null | head -1)
        [ -n "$DUMP" ] && return 0
        sleep 0.1
    done
    return 1
}
in_dump() { grep -qF -- "$1" "$DUMP"; }
in_log() { grep -qF -- "$1" "$T/probe.log"; }

# postfix_start DIR SMTPD_PORT SINK_PORT MILTER_PORT [EXTRA_MAIN_CF] - a
# private Postfix: config, queue and data folders in DIR, smtpd on
# 127.0.0.1:SMTPD_PORT, relaying everything to [127.0.0.1]:SINK_PORT, no
# DNS, no peer name lookups, no chroot, STARTTLS with a throw-away
# certificate, and the milter settings of conf/postfix-main.cf pointing at
# MILTER_PORT. Stopped at exit (postfix stop, then the master by PID).
postfix_start() {
    PF=$1
    # main.cf (no DNS, no peer name lookups), master.cf, queue, data folder
    # and certificate: t/testlib.py's, shared with the Python tests
    "$PY" "$top_srcdir/t/testlib.py" postfix-conf "$PF" "$2" "$3" mx.test.example \
        "relay_domains=example.net example.org example.com" \
        "smtpd_relay_restrictions=permit_mynetworks, permit_sasl_authenticated, reject" || {
        not_ok "postfix configured"; return 1; }
    # the milter settings are the shipped snippet's, on our port
    sed "s/8890/$4/" "$top_srcdir/conf/postfix-main.cf" >>"$PF/main.cf"
    [ -n "$5" ] && cat "$5" >>"$PF/main.cf"
    if ! postfix -c "$PF" start >/dev/null 2>&1; then
        # postfix reports to stderr only on a terminal
        not_ok "postfix starts" "$(script -qc "postfix -c '$PF' check" /dev/null 2>&1 | tail -5)"
        return 1
    fi
    t_on_exit "p=\$(sed -n 's/ //gp' '$PF/queue/pid/master.pid'); postfix -c '$PF' stop; for i in \$(seq 50); do kill -0 \$p || break; sleep 0.1; done; kill -0 \$p && kill -9 \$p"
    wait_port "$2" || { not_ok "postfix smtpd listens" "$(tail "$PF/maillog" 2>/dev/null)"; return 1; }
}

# dovecot_start DIR USER PASSWORD - a private Dovecot doing only SASL for
# Postfix (passwd-file with one user, its own base_dir under DIR, no
# listeners but the auth socket); sets DOVECOT_AUTH to the socket for
# smtpd_sasl_path. Stopped at exit by PID. Returns 1 (with a note) if
# Dovecot is missing or does not start.
dovecot_start() {
    command -v dovecot >/dev/null || { echo "# dovecot not installed"; return 1; }
    # dovecot.conf and passwd: t/testlib.py's, shared with the Python tests
    "$PY" "$top_srcdir/t/testlib.py" dovecot-conf "$1" "$2" "$3" || return 1
    dovecot -F -c "$1/dovecot.conf" >"$1/stdout" 2>&1 &
    T_PIDS="$T_PIDS $!"
    DOVECOT_AUTH=$1/run/auth-client
    for _ in $(seq 50); do [ -S "$DOVECOT_AUTH" ] && return 0; sleep 0.1; done
    echo "# dovecot did not start: $(cat "$1/log" "$1/stdout" 2>/dev/null | tail -3)"
    return 1
}

# dovecot_sasl_cf - the main.cf lines giving Postfix's smtpd SASL through
# the Dovecot of dovecot_start (AUTH offered without TLS too).
dovecot_sasl_cf() {
    cat <<CONF
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $DOVECOT_AUTH
smtpd_tls_auth_only = no
CONF
}
