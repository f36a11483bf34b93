#!/bin/sh
# plugins/size/t/size-postfix.sh - the size and regex plugins as a milter of
# a real Postfix.
#
# A private Postfix (t/milter/lib.sh's postfix_start: own queue, no DNS, no
# peer name lookups, smtpd on 127.0.0.1:22400, message_size_limit 10M) with
# Dovecot SASL (passwd-file, user alice) relays to smtp-sink (22401), and
# has submilter on inet:127.0.0.1:22402 with the chain
#     size  { limit = 10K  map: alice 100K, @small.example 1K }
#     regex { a header rule adding a header, a body rule refusing }
# Python's smtplib is the client (it can send SIZE= and AUTH). What Postfix
# answers its client must be what the plugins decided:
#   - SIZE= over 10K: 552 5.3.4 at MAIL; SIZE= that lies: 552 5.3.4 after
#     the dot, nothing relayed; alice (AUTH) may send 50 KB, anonymous not;
#     a @small.example sender is held to 1K;
#   - regex: header added from a capture arrives at smtp-sink, a body line
#     refused with the rule's reply.
# Ports 22400-22409.
. "$top_srcdir/t/milter/lib.sh"
need_postfix postfix smtp-sink openssl
t_tmp
P_SMTPD=22400 P_SINK=22401 P_MILTER=22402
PF=$T/postfix
mkdir -p "$PF"

# ---- submilter: size, then regex -------------------------------------------
printf 'alice 100K\n@small.example 1K\n' >"$T/size.map"
cat >"$T/regex.rules" <<'RULES'
header /^X-Mailer: (?<m>.+)$/  add-header "X-Regex-Mailer: ${m}"
body   /^forbidden words$/     reject 550 5.7.1 Forbidden words here
RULES
cat >"$T/sub.conf" <<CONF
pid_file = ""
spool_dir = "$T"
plugin_dir = "$SUBM_TEST_PLUGIN_DIR"
milter { listen = "inet:$P_MILTER@127.0.0.1" }
plugin size { limit = 10K  map = "$T/size.map" }
plugin regex { rules = "$T/regex.rules" }
CONF
start_submilter "$T/sub.conf" $P_MILTER || t_done
start_sink $P_SINK || t_done

# ---- Dovecot for SASL ----------------------------------------------------------
SASL=no
dovecot_start "$T/dovecot" alice wonderland && SASL=yes

# ---- Postfix -------------------------------------------------------------------
echo "message_size_limit = 10485760" >"$T/extra.cf"
if [ $SASL = yes ]; then dovecot_sasl_cf >>"$T/extra.cf"; fi
postfix_start "$PF" $P_SMTPD $P_SINK $P_MILTER "$T/extra.cf" || t_done
ok "private postfix started"

# send SENDER SIZE OCTETS MARKER [LOGIN] [HEADERS] [BODYLINE] - one session
# through Postfix; prints the reply code and text of the first refusal or of
# the final dot. SIZE "-" sends no SIZE=.
send() {
    $PY - "$P_SMTPD" "$@" <<'EOF'
import smtplib, sys
port, sender, size, octets, marker = sys.argv[1:6]
login = sys.argv[6] if len(sys.argv) > 6 else ""
headers = sys.argv[7] if len(sys.argv) > 7 else ""
line = sys.argv[8] if len(sys.argv) > 8 else ""
head = "From: <%s>\r\nTo: <b@example.net>\r\nSubject: %s\r\n%s\r\n" % (sender, marker, headers)
body = ("x" * 76 + "\r\n") * max(0, (int(octets) - len(head)) // 78)
msg = (head + body + (line + "\r\n" if line else "") + marker + "\r\n").encode()
s = smtplib.SMTP("127.0.0.1", int(port), timeout=30)
try:
    s.ehlo("client.test.example")
    if login:
        s.login(login, "wonderland")
    code, text = s.mail(sender, [] if size == "-" else ["SIZE=" + size])
    if code == 250:
        code, text = s.rcpt("b@example.net")
    if code == 250:
        try:
            code, text = s.data(msg)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
    print(code, text.decode(errors="replace"))
finally:
    try:
        s.quit()
    except Exception:
        pass
EOF
}
# expect LABEL WANT_PREFIX ARGS... - send, and the reply must start with WANT_PREFIX.
expect() {
    label=$1 want=$2; shift 2
    got=$(send "$@" 2>&1)
    case "$got" in
    "$want"*) ok "$label" ;;
    *) not_ok "$label" "got: $got" ;;
    esac
}
gone() { sleep 0.5; ! grep -lqF -- "$1" "$T/sink"/* 2>/dev/null; }

N=$$
expect "SIZE= over 10K: 552 5.3.4 at MAIL" "552 5.3.4" a@example.org 20000 2000 "m1-$N"
expect "SIZE= lies: 552 5.3.4 after the dot" "552 5.3.4" a@example.org 100 30000 "m2-$N"
check "SIZE= lies: nothing relayed" gone "m2-$N"
expect "no SIZE=, 30 KB: 552 5.3.4" "552 5.3.4" a@example.org - 30000 "m3-$N"
expect "honest 3 KB: accepted" "250" a@example.org 3000 3000 "m4-$N"
check "honest 3 KB: relayed" sunk "m4-$N"
expect "@small.example SIZE= lies, 3 KB: 552 5.3.4" "552 5.3.4" c@small.example 100 3000 "m5-$N"
check "@small.example: nothing relayed" gone "m5-$N"
if [ $SASL = yes ]; then
    expect "alice (AUTH) may send 50 KB" "250" alice@example.org 60000 50000 "m6-$N" alice
    check "alice's 50 KB relayed" sunk "m6-$N"
    expect "alice (AUTH): SIZE= over her 100K" "552 5.3.4" alice@example.org 200000 2000 "m7-$N" alice
    expect "alice (AUTH): 150 KB lying" "552 5.3.4" alice@example.org 100 150000 "m8-$N" alice
else
    skip "per-user limit through Postfix AUTH" "dovecot did not start"
fi
expect "regex: header added, accepted" "250" a@example.org - 1000 "m9-$N" "" "X-Mailer: Foo 2.0
"
if sunk "m9-$N"; then
    check "regex: header from the capture arrived" in_dump "X-Regex-Mailer: Foo 2.0"
else
    not_ok "regex: message relayed" "$(tail -5 "$PF/maillog")"
fi
expect "regex: body line refused with the rule's reply" "550 5.7.1 Forbidden words here" \
    a@example.org - 1000 "m10-$N" "" "" "forbidden words"
check "regex: refused message not relayed" gone "m10-$N"
check "daemon log: the lie caught by the plugin" grep -qF "(SIZE=100)" "$T/sub.conf.log"
t_done
