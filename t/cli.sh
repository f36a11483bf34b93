#!/bin/sh
# t/cli.sh - the daemon's command line: -V, -t on good and bad files (exit
# code and FILE:LINE), a plugin of another ABI refused with file and both
# versions, -f start with the shipped defaults' shape, reload on SIGHUP and
# SIGUSR1 (a bad new file keeps the old chain), SIGTERM stop. Loopback only;
# the daemon is stopped by its PID.
set -u
: "${SUBMILTER:?run from make check}" "${SUBM_TEST_PLUGIN_DIR:?}" "${T_PLUGINS:?}" "${top_srcdir:?}"
tmp=$(mktemp -d /tmp/subm-cli.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# -V
out=$("$SUBMILTER" -V)
check "-V names the version and ABI" 'echo "$out" | grep -q "^submilter [0-9]" && echo "$out" | grep -q "^plugin ABI 1$"'
for lib in libmilter libspf2 libopendkim PCRE2 libconfuse OpenSSL; do
    check "-V names $lib" 'echo "$out" | grep -q "^$lib [0-9]"'
done

# -t on the shipped configuration
out=$(SUBMILTER_PLUGIN_DIR=$SUBM_TEST_PLUGIN_DIR "$SUBMILTER" -t -c "$top_srcdir/conf/submilter.conf" 2>&1)
check "-t accepts conf/submilter.conf" '[ $? -eq 0 ] && echo "$out" | grep -q ": ok;"'

out=$(SUBMILTER_PLUGIN_DIR=$SUBM_TEST_PLUGIN_DIR "$SUBMILTER" -t -d -c "$top_srcdir/conf/submilter.conf" 2>&1)
check "-t -d lists every block's options with defaults" \
    'echo "$out" | grep -q "^smtp {}:" && echo "$out" | grep -Eq "^  max_sessions +int +1000 " && echo "$out" | grep -q "^plugin vrfy {} (vrfy"'

# -t on a file with an unknown key
printf 'plugin_dir = "%s"\nsmtp {\n  listen = { "127.0.0.1:1" }\n  lisen = x\n}\n' "$SUBM_TEST_PLUGIN_DIR" > "$tmp/bad.conf"
out=$("$SUBMILTER" -t -c "$tmp/bad.conf" 2>&1); rc=$?
check "-t exits 1 on an unknown key" '[ $rc -eq 1 ]'
check "-t names FILE:LINE of the unknown key" 'echo "$out" | grep -q "^$tmp/bad.conf:4: no such option .lisen."'

# -t with a plugin option error and a plugin of another ABI: both listed
printf 'plugin_dir = "%s"\nplugin example {\n  tag_login = sometimes\n}\n' "$SUBM_TEST_PLUGIN_DIR" > "$tmp/opt.conf"
out=$("$SUBMILTER" -t -c "$tmp/opt.conf" 2>&1); rc=$?
check "-t refuses a bad plugin option with FILE:LINE" '[ $rc -eq 1 ] && echo "$out" | grep -q "opt.conf:3: option .tag_login."'
printf 'plugin badabi { path = "%s/badabi.so" }\n' "$T_PLUGINS" > "$tmp/abi.conf"
out=$("$SUBMILTER" -t -c "$tmp/abi.conf" 2>&1); rc=$?
check "a plugin of another ABI is refused naming file and versions" \
    '[ $rc -eq 1 ] && echo "$out" | grep -q "badabi.so: plugin built for ABI version 999, this submilter has ABI version 1"'
# -t also makes the front-ends' checks that need no socket
printf 'smtp {\n  listen = { "127.0.0.1:1" }\n  backend_tls = yes\n  backend_tls_ca = "%s/no-such-ca.pem"\n}\n' "$tmp" > "$tmp/ca.conf"
out=$("$SUBMILTER" -t -c "$tmp/ca.conf" 2>&1); rc=$?
check "-t refuses an unreadable backend_tls_ca, naming it" \
    '[ $rc -eq 1 ] && echo "$out" | grep -q "backend_tls_ca $tmp/no-such-ca.pem"'
printf 'milter {\n  listen = "inet:1@127.0.0.1"\n  macros = { "{bad name}" }\n}\n' > "$tmp/mac.conf"
out=$("$SUBMILTER" -t -c "$tmp/mac.conf" 2>&1); rc=$?
check "-t refuses a bad milter macro name" \
    '[ $rc -eq 1 ] && echo "$out" | grep -q "is not a macro name"'
out=$("$SUBMILTER" -t -c "$tmp/missing.conf" 2>&1); rc=$?
check "-t on a missing file exits 1" '[ $rc -eq 1 ] && echo "$out" | grep -q "cannot read"'
out=$("$SUBMILTER" -x 2>&1); rc=$?
check "an unknown flag prints usage, exit 2" '[ $rc -eq 2 ] && echo "$out" | grep -q "^usage: submilter"'

# start (-f), reload, stop
port=$((24500 + $$ % 400))
conf="$tmp/run.conf"
write_conf() {
    cat > "$conf" <<CONF
plugin_dir = "$SUBM_TEST_PLUGIN_DIR"
shutdown_grace = 2s
smtp {
    listen  = { "127.0.0.1:$port" }
    backend = "127.0.0.1:9"
}
plugin example { header = "X-Generation: $1" }
CONF
}
write_conf one
"$SUBMILTER" -f -c "$conf" > "$tmp/log" 2>&1 &
pid=$!
i=0; while [ $i -lt 50 ] && ! grep -q "started" "$tmp/log"; do sleep 0.1; i=$((i + 1)); done
check "-f starts and logs to stderr" 'grep -q "started: front-ends smtp, 1 plugins" "$tmp/log"'
write_conf two
kill -HUP "$pid"
i=0; while [ $i -lt 50 ] && ! grep -q "reloaded" "$tmp/log"; do sleep 0.1; i=$((i + 1)); done
check "SIGHUP reloads" 'grep -q "reloaded $conf (1 plugins)" "$tmp/log"'
echo "bogus = 1" >> "$conf"
kill -USR1 "$pid"
i=0; while [ $i -lt 50 ] && ! grep -q "refused" "$tmp/log"; do sleep 0.1; i=$((i + 1)); done
check "a bad new file is refused and the old chain stays" \
    'grep -q "reload of $conf refused" "$tmp/log" && kill -0 "$pid"'
kill -TERM "$pid"
i=0; while [ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
check "SIGTERM stops it" '! kill -0 "$pid" 2>/dev/null && grep -q "stopped" "$tmp/log"'
wait "$pid" 2>/dev/null; rc=$?
check "exit status 0 after SIGTERM" '[ $rc -eq 0 ]'
pid=""

# the pid file: a second daemon on it is refused before it binds anything
# (libmilter would otherwise replace the first one's unix socket)
cat > "$tmp/pid.conf" <<CONF
plugin_dir = "$SUBM_TEST_PLUGIN_DIR"
pid_file = "$tmp/a.pid"
milter { listen = "unix:$tmp/m.sock"  no_reply_steps = true }
CONF
"$SUBMILTER" -t -c "$tmp/pid.conf" >/dev/null 2>&1
check "no_reply_steps takes the boolean spellings it had before (true)" '[ $? -eq 0 ]'
"$SUBMILTER" -f -c "$tmp/pid.conf" > "$tmp/alog" 2>&1 &
pid=$!
i=0; while [ $i -lt 50 ] && ! grep -q "started" "$tmp/alog"; do sleep 0.1; i=$((i + 1)); done
ino=$(stat -c %i "$tmp/m.sock" 2>/dev/null)
out=$("$SUBMILTER" -f -c "$tmp/pid.conf" 2>&1); rc=$?
check "a second daemon on a locked pid file exits 1, naming the first" \
    '[ $rc -eq 1 ] && echo "$out" | grep -q "submilter already runs (pid $pid)"'
check "the first daemon's milter socket is left alone" \
    '[ "$(stat -c %i "$tmp/m.sock" 2>/dev/null)" = "$ino" ] && /usr/bin/python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" "$tmp/m.sock"'
kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=""
check "pid file removed at exit" '[ ! -e "$tmp/a.pid" ]'

# privileges are dropped after binding (only as root: CI runs as root)
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
    cat > "$tmp/user.conf" <<CONF
plugin_dir = "$SUBM_TEST_PLUGIN_DIR"
user = nobody
pid_file = "$tmp/submilter.pid"
smtp { listen = { "127.0.0.1:$port" }  backend = "127.0.0.1:9" }
CONF
    chmod 755 "$tmp"
    "$SUBMILTER" -f -c "$tmp/user.conf" > "$tmp/ulog" 2>&1 &
    pid=$!
    i=0; while [ $i -lt 50 ] && ! grep -q "started" "$tmp/ulog"; do sleep 0.1; i=$((i + 1)); done
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    check "user = nobody: running as nobody after binding" '[ "$uid" = "$(id -u nobody)" ]'
    check "pid_file written" '[ "$(cat "$tmp/submilter.pid" 2>/dev/null)" = "$pid" ]'
    kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=""
    # the folder is root's: nobody cannot remove the file, so it is emptied
    check "pid file emptied at exit (no right to remove it)" '[ ! -s "$tmp/submilter.pid" ]'
else
    echo "ok - privilege drop # SKIP not root"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
