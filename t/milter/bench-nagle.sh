#!/bin/sh
# t/milter/bench-nagle.sh - what TCP_NODELAY on the milter socket is worth.
# Not part of `make check`; run by hand from the build folder:
#     top_srcdir=SRC top_builddir=BUILD sh SRC/t/milter/bench-nagle.sh [N]
# A private Postfix (postfix_start) relays to smtp-sink; submilter runs the
# example plugin (a header added at end of message, so libmilter writes
# two replies back to back there). smtp-source sends N messages (default
# 300) one at a time in one session, and the script prints messages per
# second without a milter, for tcp_nodelay = no, tcp_nodelay = yes, and a
# unix socket.
# Ports 21040-21049.
. "$top_srcdir/t/milter/lib.sh"
N=${1:-300}
t_tmp
P_SMTPD=21040 P_SINK=21041 P_MILTER=21042
start_sink $P_SINK || t_done

# run LABEL LISTEN SMTPD_MILTERS NODELAY
run() {
    cat >"$T/sub.conf" <<CONF
pid_file = ""
spool_dir = "$T"
milter { listen = "$2"  tcp_nodelay = $4 }
plugin example { path = "$EXAMPLE_SO" }
CONF
    "$SUBMILTER" -c "$T/sub.conf" -f >"$T/sub.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do grep -q "listening on" "$T/sub.log" 2>/dev/null && break; sleep 0.1; done
    # smtpd runs as postfix: let it connect to a unix socket made by root
    [ -S "$T/milter.sock" ] && chmod 666 "$T/milter.sock"
    rm -rf "$T/pf"; mkdir -p "$T/pf"
    echo "smtpd_milters = $3" >"$T/extra.cf"
    echo "non_smtpd_milters =" >>"$T/extra.cf"
    postfix_start "$T/pf" $P_SMTPD $P_SINK $P_MILTER "$T/extra.cf" || return 1
    start=$(date +%s.%N)
    smtp-source -s 1 -m "$N" -c -f a@example.com -t b@example.net 127.0.0.1:$P_SMTPD >/dev/null ||
        echo "# smtp-source failed: the numbers below are not valid"
    sunk_n=$(ls "$T/sink" | wc -l)
    end=$(date +%s.%N)
    postfix -c "$T/pf" stop >/dev/null 2>&1
    stop_pid $pid
    sleep 1
    rm -f "$T/sink"/*
    [ "$sunk_n" -ge "$N" ] || echo "# only $sunk_n of $N messages reached the sink"
    printf '%-32s %5d msgs %6.2f s  %7.1f msg/s  %6.1f ms/msg\n' "$1" "$N" \
        "$(echo "$end - $start" | bc)" "$(echo "$N / ($end - $start)" | bc -l)" \
        "$(echo "1000 * ($end - $start) / $N" | bc -l)"
}
run "no milter (Postfix alone)"    "inet:$P_MILTER@127.0.0.1" "" yes
run "inet, tcp_nodelay = no"  "inet:$P_MILTER@127.0.0.1" "inet:127.0.0.1:$P_MILTER" no
run "inet, tcp_nodelay = yes" "inet:$P_MILTER@127.0.0.1" "inet:127.0.0.1:$P_MILTER" yes
run "unix socket"             "unix:$T/milter.sock"     "unix:$T/milter.sock" yes
