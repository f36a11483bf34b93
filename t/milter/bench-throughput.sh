#!/bin/sh
# t/milter/bench-throughput.sh - messages per second through a private
# Postfix (10 parallel sessions, 2 KB messages, smtp-source) without a
# milter, with submilter's example plugin, and with example + a regex
# rules file that reads the body. Not part of `make check`; run by hand:
#     top_srcdir=SRC top_builddir=BUILD sh SRC/t/milter/bench-throughput.sh [N]
# Ports 21040-21049 (shared with bench-nagle.sh: run one at a time).
. "$top_srcdir/t/milter/lib.sh"
N=${1:-1000}
t_tmp
P_SMTPD=21040 P_SINK=21041 P_MILTER=21042
start_sink $P_SINK || t_done
REGEX_SO="$top_builddir/plugins/regex/.libs/regex.so"
cat >"$T/regex.rules" <<'RULES'
mail   /^spammer@/                reject 553 5.7.1 Sender $0 is not welcome
header /^Subject:.*viagra/i       reject 550 5.7.1 Spam subject
body   /FORBIDDEN/                reject 554 5.6.0 Forbidden word in the body
RULES
run() {
    cat >"$T/sub.conf" <<CONF
pid_file = ""
spool_dir = "$T"
milter { listen = "inet:$P_MILTER@127.0.0.1" }
$2
CONF
    "$SUBMILTER" -c "$T/sub.conf" -f >"$T/sub.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do grep -q "listening on" "$T/sub.log" 2>/dev/null && break; sleep 0.1; done
    rm -rf "$T/pf"; mkdir -p "$T/pf"
    echo "default_process_limit = 100" > "$T/extra.cf"
    [ -n "$3" ] && echo "smtpd_milters =" >> "$T/extra.cf"
    postfix_start "$T/pf" $P_SMTPD $P_SINK $P_MILTER "$T/extra.cf" || return 1
    start=$(date +%s.%N)
    smtp-source -s 10 -m "$N" -l 2000 -c -f a@example.com -t b@example.net 127.0.0.1:$P_SMTPD >/dev/null || echo "# smtp-source failed"
    end=$(date +%s.%N)
    postfix -c "$T/pf" stop >/dev/null 2>&1
    stop_pid $pid
    sleep 1
    printf '%-44s %6.0f msg/s\n' "$1" "$(echo "$N / ($end - $start)" | bc -l)"
}
run "Postfix alone (10 sessions, 2 KB messages)" "plugin example { path = \"$EXAMPLE_SO\" }" nomilter
run "inet milter: example" "plugin example { path = \"$EXAMPLE_SO\" }"
run "inet milter: example + regex (body rule)" "plugin example { path = \"$EXAMPLE_SO\" }
plugin regex { path = \"$REGEX_SO\" rules = \"$T/regex.rules\" }"
