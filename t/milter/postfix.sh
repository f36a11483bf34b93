#!/bin/sh
# t/milter/postfix.sh - submilter as a milter of a real Postfix.
#
# A private Postfix (`postfix -c DIR start`, its own queue and data folders
# under a temp folder, smtpd on 127.0.0.1:21020, no DNS, no peer name
# lookups, no chroot) has the milter settings of conf/postfix-main.cf,
# pointing at submilter (inet:127.0.0.1:21022), and relays everything to smtp-sink on
# 127.0.0.1:21021, which dumps each message to a file. A private Dovecot
# (passwd-file, its own base_dir) gives Postfix SASL, and a throw-away
# certificate gives STARTTLS. Clients are swaks.
#
# The chain: example (refuses blocked@example.net, adds X-Submilter-Example,
# and X-Submilter-Login for authenticated sessions), then probe (logs what
# reached it; rules for replies and modifications).
# Ports 21020-21029.
. "$top_srcdir/t/milter/lib.sh"
need_postfix postfix smtp-sink swaks openssl
t_tmp
P_SMTPD=21020 P_SINK=21021 P_MILTER=21022
PF=$T/postfix
mkdir -p "$PF"

# ---- submilter and the capture server ------------------------------------------
chain_conf "$T/sub.conf" $P_MILTER
start_submilter "$T/sub.conf" $P_MILTER || t_done
start_sink $P_SINK || t_done

# ---- Dovecot for SASL --------------------------------------------------------
SASL=no
dovecot_start "$T/dovecot" alice wonderland && SASL=yes

# ---- Postfix -------------------------------------------------------------------
: >"$T/extra.cf"
if [ $SASL = yes ]; then dovecot_sasl_cf >"$T/extra.cf"; fi
postfix_start "$PF" $P_SMTPD $P_SINK $P_MILTER "$T/extra.cf" || t_done
ok "private postfix started (smtpd 127.0.0.1:$P_SMTPD, milter inet:127.0.0.1:$P_MILTER)"

# ---- helpers -------------------------------------------------------------------
# send ARGS... - one swaks session to our smtpd; transcript in $OUT.
send() {
    OUT=$(swaks --server 127.0.0.1:$P_SMTPD --helo client.test.example \
        --timeout 20 --hide-informational "$@" 2>&1)
    SEND_RC=$?
}
has() { printf '%s\n' "$OUT" | grep -qF -- "$1" || { printf '%s\n' "$OUT" | tail -8 | sed 's/^/#   | /'; return 1; }; }
queued() { printf '%s\n' "$OUT" | grep -qE '^<.  250 2\.0\.0 Ok: queued' || { printf '%s\n' "$OUT" | tail -8 | sed 's/^/#   | /'; return 1; }; }

# ---- 1. a plain message: every stage, header added ------------------------------
send --from sender@example.com --to one@example.net \
    --header "Subject: plain message" --header "X-Remove: keep me" --body "plain body"
check "plain message accepted" queued
QID=$(printf '%s\n' "$OUT" | sed -n 's/.*250 2.0.0 Ok: queued as \([0-9A-F]*\).*/\1/p')
if sunk "plain message"; then
    ok "plain message reached the capture server"
    check "example plugin's header arrived" in_dump "X-Submilter-Example: yes"
    check "no login header without AUTH" sh -c "! grep -q X-Submilter-Login '$DUMP'"
else
    not_ok "plain message reached the capture server" "$(tail -5 "$PF/maillog")"
fi
check "connect reached the chain (client 127.0.0.1, macros j, {daemon_name})" \
    grep -qE "^connect	addr=127\.0\.0\.1	port=[0-9]+	name=unknown	frontend=milter	sa=yes	macroj=mx.test.example	macro\{daemon_name\}=" "$T/probe.log"
check "helo reached the chain" in_log "helo	helo=client.test.example	esmtp=1"
check "mail reached the chain" grep -qE "^mail	from=sender@example.com	params=.*	addr=127.0.0.1	qid=" "$T/probe.log"
check "rcpt reached the chain" in_log "rcpt	to=one@example.net	params=	index=0"
check "headers reached the chain, raw as sent" in_log "header	name=Subject	value=plain message	raw=Subject: plain message"
check "body reached the chain" grep -qE "^body	len=[0-9]+	data=plain body" "$T/probe.log"
check "eom: Postfix's queue id is the transaction's (macro i)" \
    grep -qE "^eom	from=sender@example.com	rcpts=one@example.net	.*	qid=$QID	" "$T/probe.log"
check "close reached the chain" in_log "close	"

# ---- 2. refusals: the plugin's reply reaches the client ---------------------------
send --from sender@example.com --to blocked@example.net
check "rejecting plugin: Postfix refuses RCPT with the plugin's reply" \
    has "<** 550 5.7.1 Recipient <blocked@example.net> is not accepted here"
send --from temp-sender@example.com --to one@example.net
check "tempfail at MAIL: Postfix answers 451 4.7.1 with the text" \
    has "<** 451 4.7.1 Try later, sender"
# a HELO refusal holds for the session: MAIL gets it too
OUT=$(printf 'EHLO rude.client.example\nMAIL FROM:<s@example.com>\nQUIT\n' |
    $PY "$MDIR/smtp-dialogue.py" --connect 127.0.0.1:$P_SMTPD 2>&1)
check "HELO refusal: Postfix answers EHLO with the plugin's reply" has "<- 550 5.7.1 Rude HELO name"
check "HELO refusal: MAIL refused with it too" \
    sh -c "printf '%s\n' \"\$0\" | grep -A1 '^-> MAIL' | grep -q '550 5.7.1 Rude HELO name'" "$OUT"
send --from multi@example.com --to one@example.net --body "x"
check "multi-line reject at end of message: first line" has "<** 550-5.7.1 first line of the refusal"
check "multi-line reject at end of message: second line" has "<** 550 5.7.1 second line"
send --from discard@example.com --to one@example.net --header "Subject: discard me" --body "x"
check "discard: the client is told 250" queued
sleep 1
check "discard: nothing reaches the capture server" sh -c "! grep -lqF 'discard me' '$T/sink'/* 2>/dev/null"

# ---- 3. modifications applied by Postfix ---------------------------------------
send --from mods@example.com --to drop@example.net,keep@example.net \
    --header "Subject: original subject" --header "X-Remove: bye" --body "original body"
check "mods: accepted" queued
if sunk "replaced body"; then
    ok "mods: body replaced"
    check "mods: sender changed (smfi_chgfrom)" in_dump "X-Mail-Args: <changed-sender@example.org>"
    check "mods: recipient added with its parameters (smfi_addrcpt_par)" \
        in_dump "X-Rcpt-Args: <added@example.org> ORCPT=rfc822;added@example.org NOTIFY=NEVER"
    check "mods: recipient kept" in_dump "X-Rcpt-Args: <keep@example.net>"
    check "mods: recipient deleted (smfi_delrcpt)" sh -c "! grep -q 'X-Rcpt-Args: <drop@example.net>' '$DUMP'"
    check "mods: header changed" in_dump "Subject: changed subject"
    check "mods: header deleted" sh -c "! grep -q '^X-Remove' '$DUMP'"
    check "mods: header inserted above the client's fields" \
        sh -c "sed -n '/^X-Inserted: at the top/,\$p' '$DUMP' | grep -q '^Date:'"
    check "mods: folded header added" sh -c "grep -A1 '^X-Folded: first' '$DUMP' | grep -q '^	second'"
    check "mods: original body gone" sh -c "! grep -q 'original body' '$DUMP'"
else
    not_ok "mods: body replaced" "$(tail -5 "$PF/maillog")"
fi

# ---- 3b. a big message: 20 KB header field, 2 MB body in many chunks ----------
$PY -c "
import sys
sys.stdout.write(''.join('line %06d of the big body, some text to fill it up ....\r\n' % i for i in range(34000)))
" >"$T/big.body"
BIGSIZE=$(wc -c <"$T/big.body")
send --from big@example.com --to one@example.net --header "Subject: big one" \
    --header "X-Long: $($PY -c "print('x' * 20000)")" --body "@$T/big.body"
check "big message accepted" queued
check "big message: the 20 KB field reached the chain" \
    grep -qE "^header	name=X-Long	value=x{100}" "$T/probe.log"
check "big message: body chunks reached the chain" \
    test "$(grep -c '^body	' "$T/probe.log")" -ge 2
# (swaks ends the body with one more CRLF of its own)
GOT=$(sed -n 's/^eom	from=big@example.com	.*	bodysize=\([0-9]*\)	.*/\1/p' "$T/probe.log")
check "big message: the whole body readable at EOM ($BIGSIZE octets + swaks' end: $GOT)" \
    test "${GOT:-0}" -ge "$BIGSIZE" -a "${GOT:-0}" -le $((BIGSIZE + 4))
if sunk "Subject: big one"; then
    check "big message: delivered whole" grep -q "line 033999 of the big body" "$DUMP"
else
    not_ok "big message reached the capture server"
fi

# ---- 4. TLS and AUTH -------------------------------------------------------------
# (swaks needs Net::SSLeay for TLS; Python's smtplib does it without)
OUT=$($PY - $P_SMTPD 2>&1 <<'EOF'
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.test.example", timeout=20)
s.starttls(context=ctx)
s.ehlo("client.test.example")
s.mail("tls@example.com")
s.rcpt("one@example.net")
code, text = s.data(b"Subject: over tls\r\n\r\nx\r\n")
print("<-  %d %s" % (code, text.decode()))
s.quit()
EOF
)
check "STARTTLS session accepted" queued
check "tls stage ran with {tls_version} {cipher}" grep -qE "^tls	text=TLSv1\.[23]	version=TLSv1\.[23]	cipher=[A-Z0-9_-]+" "$T/probe.log"
if [ $SASL = yes ]; then
    send --from alice@example.com --to one@example.net --auth PLAIN \
        --auth-user alice --auth-password wonderland --header "Subject: authenticated" --body x
    check "SASL (Dovecot) session accepted" queued
    check "auth stage ran with the login and mechanism" in_log "auth	text=alice	login=alice	mech=PLAIN"
    check "mail stage saw the login" grep -qE "^mail	from=alice@example.com	.*	login=alice	" "$T/probe.log"
    if sunk "Subject: authenticated"; then
        check "auth-aware plugin's header arrived: X-Submilter-Login: alice" in_dump "X-Submilter-Login: alice"
    else
        not_ok "authenticated message reached the capture server"
    fi
    send --from bob@example.com --to one@example.net --auth PLAIN \
        --auth-user alice --auth-password wrong
    check "bad password refused by Postfix (no auth stage run)" has "<** 535"
else
    skip "Postfix SASL through Dovecot" "dovecot not available; mt-stages.lua covers {auth_authen}"
fi

# ---- 4b. local submission: sendmail(1) -> pickup -> cleanup (non_smtpd_milters)
printf 'Subject: submitted locally\n\nlocal body\n' |
    /usr/sbin/sendmail -C "$PF" -f local@example.com local-rcpt@example.net >"$T/local.out" 2>&1
check "local submission accepted by Postfix's sendmail(1)" test $? -eq 0
if sunk "Subject: submitted locally"; then
    check "local submission: the chain ran (example header added)" in_dump "X-Submilter-Example: yes"
    check "local submission: mail and rcpt reached the chain" \
        grep -qE "^rcpt	to=local-rcpt@example.net	" "$T/probe.log"
else
    not_ok "local submission reached the capture server" "$(cat "$T/local.out"; tail -3 "$PF/maillog")"
fi

check "discard: still nothing at the capture server after the later messages" \
    sh -c "! grep -lqF 'discard me' '$T/sink'/* 2>/dev/null"

# ---- 5. submilter down: the snippet's milter_default_action defers mail -------
stop_pid $SUB_PID
send --from sender@example.com --to one@example.net --header "Subject: while down" --body x
check "submilter stopped: Postfix defers mail (milter_default_action = tempfail)" \
    sh -c "printf '%s\n' \"\$0\" | grep -qE '^<\*\* 4[0-9][0-9] '" "$OUT"
t_done
