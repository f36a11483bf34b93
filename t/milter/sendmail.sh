#!/bin/sh
# t/milter/sendmail.sh - submilter as the INPUT_MAIL_FILTER of a real
# Sendmail (Debian 8.17).
#
# Debian's sendmail-bin conflicts with postfix as a package, so it is never
# installed: sendmail-bin, sendmail-base and sendmail-cf are fetched with
# `apt-get download` once and unpacked with `dpkg -x` into the build folder
# (t/milter/sendmail-tree; SENDMAIL_TREE overrides). The .cf is built from a
# .mc with the tree's m4 files. Each SMTP session is `sendmail -C OUR.cf -bs`
# driven by smtp-dialogue.py, run under `unshare -m` with a private
# /etc/hosts bind-mounted (Sendmail sleeps at start when the short host name
# does not resolve) and, for AUTH, a private Cyrus SASL folder (Sendmail.conf
# pointing at a sasldb made with saslpasswd2) bind-mounted on /usr/lib/sasl2.
# No DNS: hosts come from files only, the smart host is [127.0.0.1]. The
# load-average limits are lifted (a busy test machine would make Sendmail
# queue instead of delivering). The machine's own files are never touched.
# Accepted mail goes to smtp-sink.
# Ports 21030-21039.
. "$top_srcdir/t/milter/lib.sh"
P_SINK=21031 P_MILTER=21032
TREE=${SENDMAIL_TREE:-$top_builddir/t/milter/sendmail-tree}
SM=$TREE/usr/libexec/sendmail/sendmail

if [ "$(id -u)" != 0 ]; then
    skip "sendmail integration" "needs root (unshare -m, bind mounts)"; t_done
fi
if ! unshare -m true 2>/dev/null; then
    skip "sendmail integration" "unshare -m not permitted here"; t_done
fi
for tool in m4 smtp-sink dpkg; do
    command -v $tool >/dev/null || { not_ok "$tool installed"; t_done; }
done
if [ ! -x "$SM" ]; then
    debs=$top_builddir/t/milter/sendmail-debs
    mkdir -p "$debs" "$TREE"
    if ! (cd "$debs" && apt-get download sendmail-bin sendmail-base sendmail-cf) >"$debs/download.log" 2>&1; then
        skip "sendmail integration" "cannot fetch sendmail-bin/-base/-cf ($(tail -1 "$debs/download.log"))"
        t_done
    fi
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$TREE"; done
fi
[ -x "$SM" ] || { not_ok "sendmail unpacked in $TREE"; t_done; }
t_tmp
SMD=$T/sendmail
mkdir -p "$SMD/mqueue" "$SMD/sasl"
chmod 700 "$SMD/mqueue"

# ---- submilter and the capture server ------------------------------------------
chain_conf "$T/sub.conf" $P_MILTER
start_submilter "$T/sub.conf" $P_MILTER || t_done
start_sink $P_SINK || t_done

# ---- Sendmail's configuration -----------------------------------------------------
HOST=$(hostname)
printf '127.0.0.1 localhost %s %s.test.example mx.test.example\n::1 localhost\n' \
    "$HOST" "$HOST" >"$SMD/hosts"
printf 'hosts files\naliases files\n' >"$SMD/service.switch"
: >"$SMD/aliases"
SASL=no
if command -v saslpasswd2 >/dev/null &&
   echo wonderland | saslpasswd2 -p -f "$SMD/sasldb2" -u mx.test.example -c alice; then
    printf 'pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: %s\nmech_list: PLAIN LOGIN\n' \
        "$SMD/sasldb2" >"$SMD/sasl/Sendmail.conf"
    SASL=yes
fi
# the .mc: the milter lines are the shipped conf/sendmail.mc, on our port
sed "s/8890/$P_MILTER/" "$top_srcdir/conf/sendmail.mc" >"$SMD/submilter.mc"
cat >"$SMD/test.mc" <<MC
divert(0)dnl
VERSIONID(\`submilter test')dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`mx.test.example')dnl
define(\`confSERVICE_SWITCH_FILE', \`$SMD/service.switch')dnl
define(\`confHOSTS_FILE', \`$SMD/hosts')dnl
define(\`confDONT_PROBE_INTERFACES', \`true')dnl
define(\`QUEUE_DIR', \`$SMD/mqueue')dnl
define(\`STATUS_FILE', \`$SMD/statistics')dnl
define(\`confPID_FILE', \`$SMD/sendmail.pid')dnl
define(\`ALIAS_FILE', \`$SMD/aliases')dnl
define(\`confLOG_LEVEL', \`14')dnl
define(\`SMART_HOST', \`relay:[127.0.0.1]')dnl
define(\`RELAY_MAILER_ARGS', \`TCP \$h $P_SINK')dnl
define(\`ESMTP_MAILER_ARGS', \`TCP \$h $P_SINK')dnl
define(\`confDELIVERY_MODE', \`interactive')dnl
define(\`confQUEUE_LA', \`1000')dnl
define(\`confREFUSE_LA', \`1000')dnl
define(\`confDELAY_LA', \`1000')dnl
define(\`confAUTH_MECHANISMS', \`PLAIN LOGIN')dnl
TRUST_AUTH_MECH(\`PLAIN LOGIN')dnl
FEATURE(\`accept_unresolvable_domains')dnl
FEATURE(\`nocanonify')dnl
include(\`$SMD/submilter.mc')dnl
MAILER(\`local')dnl
MAILER(\`smtp')dnl
MC
if ! m4 -D_CF_DIR_="$TREE/usr/share/sendmail/cf/" "$TREE/usr/share/sendmail/cf/m4/cf.m4" \
        "$SMD/test.mc" >"$SMD/test.cf" 2>"$SMD/m4.log"; then
    not_ok "sendmail.cf built from the .mc" "$(cat "$SMD/m4.log")"; t_done
fi
ok "sendmail.cf built from a .mc with INPUT_MAIL_FILTER"

# session - one `sendmail -bs` session playing $T/in; transcript in $OUT.
# (Not the end of a pipeline: that would run in a subshell and lose OUT.)
session() {
    OUT=$(/usr/bin/python3 "$MDIR/smtp-dialogue.py" --timeout 30 -- unshare -m sh -c \
        "mount --bind '$SMD/hosts' /etc/hosts && mount --bind '$SMD/sasl' /usr/lib/sasl2 && exec '$SM' -C '$SMD/test.cf' -bs" <"$T/in" 2>&1)
}
has() { printf '%s\n' "$OUT" | grep -qF -- "$1" || { printf '%s\n' "$OUT" | tail -8 | sed 's/^/#   | /'; return 1; }; }
queued() { has "Message accepted for delivery"; }
msg() {  # msg FROM RCPT... - EHLO, MAIL, RCPTs, DATA (body from $BODY), QUIT
    from=$1; shift
    printf 'EHLO client.test.example\nMAIL FROM:<%s>\n' "$from"
    for r in "$@"; do printf 'RCPT TO:<%s>\n' "$r"; done
    printf 'DATA\n%s\n.\nQUIT\n' "$BODY"
}

# ---- 1. a plain message: every stage, header added ---------------------------------
BODY=$(printf 'Subject: plain message\nX-Remove: keep me\n\nplain body')
msg sender@example.com one@example.net >"$T/in"; session
check "plain message accepted" queued
QID=$(printf '%s\n' "$OUT" | sed -n 's/.*250 2.0.0 \([0-9A-Za-z]*\) Message accepted.*/\1/p')
if sunk "plain message"; then
    ok "plain message reached the capture server"
    check "example plugin's header arrived" in_dump "X-Submilter-Example: yes"
    check "no login header without AUTH" sh -c "! grep -q X-Submilter-Login '$DUMP'"
else
    not_ok "plain message reached the capture server" "$(ls "$T/sink"; tail -3 "$T/sink.log")"
fi
check "connect reached the chain (local client, macros j and _)" \
    in_log "connect	addr=(null)	port=0	name=localhost	frontend=milter	sa=no	macroj=mx.test.example"
check "helo reached the chain" in_log "helo	helo=client.test.example	esmtp=1"
check "mail reached the chain with Sendmail's queue id" \
    grep -qE "^mail	from=sender@example.com	.*	qid=$QID	" "$T/probe.log"
check "rcpt reached the chain" in_log "rcpt	to=one@example.net	params=	index=0"
check "headers reached the chain" in_log "header	name=Subject	value=plain message	raw=Subject: plain message"
check "body reached the chain" grep -qE "^body	len=[0-9]+	data=plain body" "$T/probe.log"
check "eom reached the chain" grep -qE "^eom	from=sender@example.com	rcpts=one@example.net	.*	qid=$QID	" "$T/probe.log"
check "close reached the chain" in_log "close	"

# ---- 2. refusals ------------------------------------------------------------------
BODY="Subject: x"
msg sender@example.com blocked@example.net >"$T/in"; session
check "rejecting plugin: Sendmail refuses RCPT with the plugin's reply" \
    has "550 5.7.1 <blocked@example.net>... Recipient <blocked@example.net> is not accepted here"
msg temp-sender@example.com one@example.net >"$T/in"; session
check "tempfail at MAIL: 451 4.7.1 with the text" has "451 4.7.1 Try later, sender"
printf 'EHLO rude.client.example\nMAIL FROM:<s@example.com>\nQUIT\n' >"$T/in"; session
check "HELO refusal: Sendmail answers EHLO with the plugin's reply" has "550 5.7.1 Rude HELO name"
check "HELO refusal: MAIL refused with it too" \
    sh -c "printf '%s\n' \"\$0\" | grep -A1 '^-> MAIL' | grep -q '550 5.7.1 Rude HELO name'" "$OUT"
msg multi@example.com one@example.net >"$T/in"; session
check "multi-line reject at end of message: first line" has "550-5.7.1 first line of the refusal"
check "multi-line reject at end of message: second line" has "550 5.7.1 second line"
BODY="Subject: discard me"
msg discard@example.com one@example.net >"$T/in"; session
check "discard: the client is told 250" queued
sleep 1
check "discard: nothing reaches the capture server" sh -c "! grep -lqF 'discard me' '$T/sink'/* 2>/dev/null"

# ---- 3. modifications ---------------------------------------------------------------
BODY=$(printf 'Subject: original subject\nX-Remove: bye\n\noriginal body')
msg mods@example.com drop@example.net keep@example.net >"$T/in"; session
check "mods: accepted" queued
if sunk "replaced body"; then
    ok "mods: body replaced"
    check "mods: sender changed (smfi_chgfrom)" in_dump "X-Mail-Args: <changed-sender@example.org>"
    check "mods: recipient added (smfi_addrcpt_par)" in_dump "X-Rcpt-Args: <added@example.org>"
    check "mods: recipient kept" in_dump "X-Rcpt-Args: <keep@example.net>"
    check "mods: recipient deleted (smfi_delrcpt)" sh -c "! grep -q 'X-Rcpt-Args: <drop@example.net>' '$DUMP'"
    check "mods: header changed" in_dump "Subject: changed subject"
    check "mods: header deleted" sh -c "! grep -q '^X-Remove' '$DUMP'"
    check "mods: header inserted above the client's fields" \
        sh -c "sed -n '/^X-Inserted: at the top/,\$p' '$DUMP' | grep -q '^Subject:'"
    check "mods: folded header added" sh -c "grep -A1 '^X-Folded: first' '$DUMP' | grep -q '^	second'"
    check "mods: original body gone" sh -c "! grep -q 'original body' '$DUMP'"
else
    not_ok "mods: body replaced" "$(printf '%s\n' "$OUT" | tail -5)"
fi

# ---- 4. AUTH (Cyrus SASL, sasldb) --------------------------------------------------
if [ $SASL = yes ]; then
    P=$(printf '\000alice\000wonderland' | base64)
    BODY="Subject: authenticated"
    { printf 'EHLO client.test.example\nAUTH PLAIN %s\n' "$P"
      msg alice@example.com one@example.net | sed 1d; } >"$T/in"
    session
    check "AUTH PLAIN accepted by Sendmail" has "235 2.0.0 OK Authenticated"
    check "authenticated message accepted" queued
    check "auth stage ran with the login and mechanism" in_log "auth	text=alice	login=alice	mech=PLAIN"
    check "mail stage saw the login" grep -qE "^mail	from=alice@example.com	.*	login=alice	" "$T/probe.log"
    if sunk "Subject: authenticated"; then
        check "auth-aware plugin's header arrived: X-Submilter-Login: alice" in_dump "X-Submilter-Login: alice"
    else
        not_ok "authenticated message reached the capture server"
    fi
    P=$(printf '\000alice\000wrong' | base64)
    printf 'EHLO client.test.example\nAUTH PLAIN %s\nQUIT\n' "$P" >"$T/in"; session
    check "bad password refused by Sendmail" has "535 5.7.0"
    check "no auth stage for the failed login" test "$(grep -c '^auth	' "$T/probe.log" 2>/dev/null)" = 1
else
    skip "Sendmail AUTH through sasldb" "saslpasswd2 (sasl2-bin) not installed; mt-stages.lua covers {auth_authen}"
fi
check "discard: still nothing at the capture server after the later messages" \
    sh -c "! grep -lqF 'discard me' '$T/sink'/* 2>/dev/null"
t_done
