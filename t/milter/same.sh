#!/bin/sh
# t/milter/same.sh - one chain (example + regex rules), one process, two
# front-ends: the same transactions through the smtp front-end and through
# a real Postfix with submilter as its milter get the same answers, and
# the accepted messages the same added headers.
#
#   client --> submilter smtp front-end (127.0.0.1:21050) --> smtp-sink 21051
#   client --> Postfix smtpd (21053) + milter (21052) -----> smtp-sink 21051
#
# Ports 21050-21059.
. "$top_srcdir/t/milter/lib.sh"
REGEX_SO="$top_builddir/plugins/regex/.libs/regex.so"
if [ "$(id -u)" != 0 ]; then
    skip "same behaviour through both front-ends" "postfix start needs root"; t_done
fi
[ -e "$REGEX_SO" ] || { not_ok "regex plugin built ($REGEX_SO)"; t_done; }
t_tmp
P_SMTP=21050 P_SINK=21051 P_MILTER=21052 P_SMTPD=21053

cat >"$T/regex.rules" <<'RULES'
mail   /^spammer@/                reject 553 5.7.1 Sender $0 is not welcome
rcpt   /^busy@/                   tempfail 450 4.2.1 Mailbox busy, try later
header /^Subject:.*viagra/i       reject 550 5.7.1 Spam subject
header /^X-Tag: (\w+)/            add-header X-Tagged: tag-$1
body   /FORBIDDEN/                reject 554 5.6.0 Forbidden word in the body
RULES
cat >"$T/sub.conf" <<CONF
pid_file = ""
spool_dir = "$T"
smtp {
    listen = { "127.0.0.1:$P_SMTP" }
    hostname = "submit.test.example"
    backend = "127.0.0.1:$P_SINK"
}
milter { listen = "inet:$P_MILTER@127.0.0.1" }
plugin example { path = "$EXAMPLE_SO"  reject_rcpt = { "blocked@example.net" } }
plugin regex { path = "$REGEX_SO"  rules = "$T/regex.rules" }
CONF
start_submilter "$T/sub.conf" $P_MILTER || t_done
wait_port $P_SMTP || { not_ok "smtp front-end listens" "$(cat "$T/sub.conf.log")"; t_done; }
start_sink $P_SINK || t_done
mkdir -p "$T/postfix"
postfix_start "$T/postfix" $P_SMTPD $P_SINK $P_MILTER || t_done
ok "one submilter with both front-ends; Postfix with it as milter"

# last_reply PORT SWAKS-ARGS... - the last error reply swaks got ("<** ..."),
# or the queued line, as "CODE ECODE TEXT" with our hosts' ids cut off.
last_reply() {
    port=$1; shift
    swaks --server 127.0.0.1:$port --helo client.test.example --timeout 20 \
        --hide-informational "$@" 2>&1 |
        sed -n 's/^<\*\* \([245][0-9][0-9][ -].*\)/\1/p; s/^<.  \(250 2\.0\.0 Ok\).*/\1/p' |
        grep -v '^221' | tail -1
}

# same LABEL SWAKS-ARGS... - both front-ends give the same answer.
same() {
    label=$1; shift
    a=$(last_reply $P_SMTP "$@")
    b=$(last_reply $P_SMTPD "$@")
    if [ -n "$a" ] && [ "$a" = "$b" ]; then
        ok "$label: both say \"$a\""
    else
        not_ok "$label: same answer" "smtp front-end: $a
milter (Postfix): $b"
    fi
}

same "example rcpt refusal" --from s@example.com --to blocked@example.net
same "regex sender refusal with capture" --from spammer@example.com --to r@example.net
same "regex recipient tempfail" --from s@example.com --to busy@example.net
same "regex header refusal" --from s@example.com --to r@example.net \
    --header "Subject: cheap VIAGRA now"
same "regex body refusal" --from s@example.com --to r@example.net \
    --body "line one
this line has FORBIDDEN in it"

# accepted: the same headers added on both paths
for via in smtp milter; do
    port=$P_SMTP; [ $via = milter ] && port=$P_SMTPD
    r=$(last_reply $port --from s@example.com --to r@example.net \
        --header "Subject: accepted via $via" --header "X-Tag: blue")
    check "accepted through the $via front-end" test "$r" = "250 2.0.0 Ok"
    if sunk "Subject: accepted via $via"; then
        check "$via: example header added" in_dump "X-Submilter-Example: yes"
        check "$via: regex add-header with capture" in_dump "X-Tagged: tag-blue"
    else
        not_ok "$via: message reached the capture server"
    fi
done
t_done
