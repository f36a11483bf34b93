/*
 * milter_stage.c - libmilter's callbacks as chain stages.
 *
 *   xxfi_connect  CONNECT   client address, port, name (args, else macros)
 *   xxfi_helo     HELO      the name (the protocol does not say HELO or
 *                           EHLO: esmtp is 1 unless macro `r` says "SMTP")
 *   xxfi_envfrom  TLS, AUTH (each once per session, when {tls_version} /
 *                 {auth_authen} first appear), then MAIL with address and
 *                 ESMTP parameters; a new transaction
 *   xxfi_envrcpt  RCPT      address, parameters; kept unless refused
 *   xxfi_data     DATA
 *   xxfi_unknown  EXPN (for "EXPN ...") or UNKNOWN (the command line)
 *   xxfi_header   HEADER    the field, recorded on the transaction
 *   xxfi_eoh      EOH
 *   xxfi_body     BODY      the chunk, spooled for EOM readers
 *   xxfi_eom      EOM       then the modifications (milter_mods.c)
 *   xxfi_abort    RSET      the transaction ends
 *   xxfi_close    CLOSE     the session ends
 *
 * Callback order is not trusted: xxfi_close may come without xxfi_connect,
 * xxfi_abort between any two message callbacks, a message may start without
 * the previous one ending, and a later callback may come without the earlier
 * ones (miltertest fills gaps, MTAs differ). Each callback makes what it
 * needs. A REJECT or TEMPFAIL at CONNECT, HELO, TLS or AUTH refuses the
 * session: the MTA is answered at once and again at every MAIL, since the
 * MTA, not us, keeps the SMTP session going. Stages negotiated without a
 * reply (SMFIP_NR_*) answer SMFIS_NOREPLY.
 */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "milter_int.h"
#include "pool.h"
#include "session.h"

/* The most ESMTP parameters of one MAIL or RCPT we pass on. */
#define PARAMS_MAX 32

/* printable - s for a log line: controls and non-ASCII as '?', bounded
 * (what the MTA sends is not trusted to be text). Returns buf. */
static const char *printable(char *buf, size_t len, const char *s)
{
    size_t i;

    if (s == NULL)
        s = "";
    for (i = 0; s[i] != '\0' && i + 1 < len; i++)
        buf[i] = (unsigned char)s[i] < 32 || (unsigned char)s[i] > 126 ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* macro_cb - subm_macro() for this connection: "x", "{name}" or "name". */
static const char *macro_cb(void *arg, const char *name)
{
    SMFICTX *ctx = arg;
    char braced[80];
    const char *v;

    if (name == NULL || *name == '\0')
        return NULL;
    if (name[1] != '\0' && name[0] != '{') {
        int n = snprintf(braced, sizeof(braced), "{%s}", name);

        if (n < 0 || (size_t)n >= sizeof(braced))
            return NULL;
        name = braced;
    }
    v = smfi_getsymval(ctx, (char *)name);
    return v;
}

/* macro - a macro's value, NULL if absent or empty. */
static const char *macro(SMFICTX *ctx, const char *name)
{
    const char *v = smfi_getsymval(ctx, (char *)name);

    return v != NULL && *v != '\0' ? v : NULL;
}

/*
 * conn - this connection's data, made here if xxfi_negotiate did not run
 * for it: an MTA that does not negotiate, or a second SMTP session on the
 * same milter connection after SMFIC_QUIT_NC (libmilter keeps the old
 * negotiation; our data ended at xxfi_close). Then we assume no SMFIP_*
 * options (libmilter itself holds back any reply the MTA agreed not to
 * get) and let libmilter refuse modifications the MTA did not allow.
 */
static struct milter_conn *conn(SMFICTX *ctx)
{
    struct milter_conn *c = smfi_getpriv(ctx);

    milter_touch();
    if (c == NULL && (c = milter_conn_new(ctx)) != NULL) {
        c->actions = milter_neg_actions(~0UL);
        c->steps = 0;
    }
    return c;
}

/* session - this connection's session, made on first need. */
static struct session *session(SMFICTX *ctx, struct milter_conn **c_r)
{
    struct milter_conn *c = conn(ctx);

    *c_r = c;
    if (c == NULL)
        return NULL;
    if (c->s == NULL) {
        c->s = session_new(c->cfg, "milter");
        c->s->macro = macro_cb;
        c->s->macro_arg = ctx;
    }
    return c->s;
}

/* answer - r, or no answer at all where the step was agreed without one. */
static sfsistat answer(const struct milter_conn *c, unsigned long nr, sfsistat r)
{
    if ((c->steps & nr) == 0)
        return r;
    if (r != SMFIS_CONTINUE)
        log_warn("%s: milter: verdict for a step agreed without reply; dropped",
                 c->s ? c->s->id : "-");
    return SMFIS_NOREPLY;
}

/* run_answer - run stage through the chain and answer the MTA with its
 * verdict (or no answer, where the step was agreed without one). */
static sfsistat run_answer(SMFICTX *ctx, const struct milter_conn *c,
                           struct session *s, subm_stage_t stage,
                           const subm_arg_t *arg, unsigned long nr)
{
    struct reply r;
    subm_verdict_t v = chain_run(s, stage, arg, &r);

    return answer(c, nr, milter_verdict(ctx, s, stage, v, &r));
}

/* count_eoh - the blank line ending the header, once per message (the
 * MTA may not send EOH at all). */
static void count_eoh(struct milter_conn *c, struct txn *t)
{
    if (!c->eoh_counted) {
        t->size += 2;
        c->eoh_counted = 1;
    }
}

/* queue_id - pick up the MTA's queue id once it exists. */
static void queue_id(SMFICTX *ctx, struct session *s)
{
    const char *i = macro(ctx, "i");

    if (i != NULL && s->txn != NULL && strcmp(s->txn->queue_id, i) != 0)
        txn_set_queue_id(s, i);
}

/* refuse - remember a session-level refusal and where it came from. */
static void refuse(struct milter_conn *c, subm_stage_t stage, subm_verdict_t v,
                   const struct reply *r)
{
    c->refuse_v = v;
    c->refuse_stage = stage;
    c->refuse = *r;
}

/* strip_brackets - "<a@b>" to "a@b" in place; "<>" to "". */
static char *strip_brackets(char *a)
{
    size_t len;

    if (a == NULL)
        return NULL;
    while (*a == ' ')
        a++;
    len = strlen(a);
    if (len >= 2 && a[0] == '<' && a[len - 1] == '>') {
        a[len - 1] = '\0';
        a++;
    }
    return a;
}

/* split_params - argv[1..] ("NAME=VALUE" or "NAME") as subm_param_t,
 * pointing into argv (which stays valid for the callback). Parameters
 * past PARAMS_MAX or with an unusable name are passed over, with a warning
 * (the MTA has checked them; plugins just do not see them). */
static size_t split_params(const struct session *s, char **argv,
                           subm_param_t *p, char names[][64])
{
    size_t n = 0;
    int i, dropped = 0;

    for (i = 1; argv[i] != NULL; i++) {
        const char *eq = strchr(argv[i], '=');
        size_t nl = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);

        if (nl == 0 || nl >= 64 || n == PARAMS_MAX) {
            dropped++;
            continue;
        }
        memcpy(names[n], argv[i], nl);
        names[n][nl] = '\0';
        p[n].name = names[n];
        p[n].value = eq ? eq + 1 : NULL;
        n++;
    }
    if (dropped) {
        char b[64];

        log_warn("%s: milter: %d ESMTP parameter(s) of \"%s\" not passed to plugins",
                 s->id, dropped, printable(b, sizeof(b), argv[0]));
    }
    return n;
}

/* milter_connect - xxfi_connect: CONNECT. */
sfsistat milter_connect(SMFICTX *ctx, char *host, struct sockaddr *sa)
{
    struct milter_conn *c = conn(ctx);
    struct session *s;
    struct reply r;
    subm_verdict_t v;
    const char *name = host;

    if (c != NULL && chain_empty(c->cfg->chain))
        return SMFIS_ACCEPT;            /* nothing to decide: the MTA calls us no more */
    s = session(ctx, &c);
    if (s == NULL)
        return SMFIS_TEMPFAIL;
    /* MTAs give "[addr]" (Sendmail, Postfix) when the name is not known */
    if (name != NULL && (name[0] == '[' || strcmp(name, "unknown") == 0))
        name = NULL;
    if (sa != NULL && sa->sa_family == AF_INET)
        session_set_client(s, sa, sizeof(struct sockaddr_in), name);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        session_set_client(s, sa, sizeof(struct sockaddr_in6), name);
    else {
        /* no socket address (a local client, sendmail -bs): an IP address
         * from the macros if there is one ("0" from Sendmail is none) */
        const char *addr = macro(ctx, "{client_addr}");
        const char *port = macro(ctx, "{client_port}");
        unsigned char buf[sizeof(struct in6_addr)];

        if (addr != NULL && inet_pton(AF_INET, addr, buf) != 1 &&
            inet_pton(AF_INET6, addr, buf) != 1)
            addr = NULL;
        session_set_client_text(s, addr, addr && port ? atoi(port) : 0, name);
    }
    if (log_debug_enabled()) {
        char b1[256], b2[256], b3[256];

        log_debug("%s: milter: connect from %s[%s]:%d j=%s _=%s", s->id,
                  printable(b1, sizeof(b1), s->client_name),
                  s->client_addr ? s->client_addr : "?", s->client_port,
                  printable(b2, sizeof(b2), macro(ctx, "j")),
                  printable(b3, sizeof(b3), macro(ctx, "_")));
    }
    v = chain_run(s, SUBM_STAGE_CONNECT, NULL, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL)
        refuse(c, SUBM_STAGE_CONNECT, v, &r);
    return answer(c, SMFIP_NR_CONN, milter_verdict(ctx, s, SUBM_STAGE_CONNECT, v, &r));
}

/* milter_helo - xxfi_helo: HELO. A new HELO that passes lifts an earlier
 * HELO refusal. */
sfsistat milter_helo(SMFICTX *ctx, char *helo)
{
    struct milter_conn *c;
    struct session *s = session(ctx, &c);
    const char *proto;
    subm_arg_t arg;
    struct reply r;
    subm_verdict_t v;
    int esmtp = 1;

    if (s == NULL)
        return SMFIS_TEMPFAIL;
    proto = macro(ctx, "r");
    if (proto != NULL && strcasecmp(proto, "SMTP") == 0)
        esmtp = 0;
    /* a client may send any number of HELOs (each reaches us): keep the
     * name in our own buffer, not in the session pool, so they cost no
     * memory (longer than any domain or address literal: cut) */
    snprintf(c->helo, sizeof(c->helo), "%s", helo ? helo : "");
    s->helo = c->helo;
    s->esmtp = esmtp;
    memset(&arg, 0, sizeof(arg));
    arg.stage = SUBM_STAGE_HELO;
    arg.text = s->helo;
    arg.esmtp = esmtp;
    v = chain_run(s, SUBM_STAGE_HELO, &arg, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL)
        refuse(c, SUBM_STAGE_HELO, v, &r);
    else if (c->refuse_stage == SUBM_STAGE_HELO)
        c->refuse_v = SUBM_CONTINUE;
    return answer(c, SMFIP_NR_HELO, milter_verdict(ctx, s, SUBM_STAGE_HELO, v, &r));
}

/* run_tls_auth - the TLS and AUTH stages, once each, when their macros
 * first show; a refusal there refuses the session. */
static subm_verdict_t run_tls_auth(SMFICTX *ctx, struct milter_conn *c,
                                   struct reply *r)
{
    struct session *s = c->s;
    const char *ver = macro(ctx, "{tls_version}");
    const char *login = macro(ctx, "{auth_authen}");
    subm_arg_t arg;
    subm_verdict_t v;

    memset(&arg, 0, sizeof(arg));
    if (!c->tls_done && ver != NULL) {
        c->tls_done = 1;
        session_set_tls(s, ver, macro(ctx, "{cipher}"), macro(ctx, "{cert_subject}"));
        arg.stage = SUBM_STAGE_TLS;
        arg.text = s->tls_version;
        v = chain_run(s, SUBM_STAGE_TLS, &arg, r);
        if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
            refuse(c, SUBM_STAGE_TLS, v, r);
            return v;
        }
    }
    if (!c->auth_done && login != NULL) {
        c->auth_done = 1;
        session_set_auth(s, login, macro(ctx, "{auth_type}"), macro(ctx, "{auth_author}"));
        arg.stage = SUBM_STAGE_AUTH;
        arg.text = s->auth_login;
        v = chain_run(s, SUBM_STAGE_AUTH, &arg, r);
        if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
            refuse(c, SUBM_STAGE_AUTH, v, r);
            return v;
        }
    } else if (c->auth_done) {
        /* {auth_author} is the MAIL AUTH= of this message: our buffer, so
         * many messages in a session cost no memory */
        const char *author = macro(ctx, "{auth_author}");

        if (author == NULL) {
            s->auth_author = NULL;
        } else {
            snprintf(c->author, sizeof(c->author), "%s", author);
            s->auth_author = c->author;
        }
    }
    r->code = 0;
    return SUBM_CONTINUE;
}

/* milter_envfrom - xxfi_envfrom: TLS and AUTH (once), then MAIL. */
sfsistat milter_envfrom(SMFICTX *ctx, char **argv)
{
    struct milter_conn *c;
    struct session *s = session(ctx, &c);
    subm_param_t params[PARAMS_MAX];
    char names[PARAMS_MAX][64];
    subm_arg_t arg;
    struct reply r;
    subm_verdict_t v;
    char *addr;
    size_t n;

    if (s == NULL)
        return SMFIS_TEMPFAIL;
    txn_end(s);                   /* a new message ends any previous one */
    c->txn_failed = 0;
    c->eoh_counted = 0;
    c->txn_t0 = monotonic_ms();
    if (c->refuse_v == SUBM_REJECT || c->refuse_v == SUBM_TEMPFAIL)
        return answer(c, SMFIP_NR_MAIL, milter_verdict(ctx, s, SUBM_STAGE_MAIL,
                                                       c->refuse_v, &c->refuse));
    v = run_tls_auth(ctx, c, &r);
    if (v != SUBM_CONTINUE)
        return answer(c, SMFIP_NR_MAIL, milter_verdict(ctx, s, SUBM_STAGE_MAIL, v, &r));
    addr = strip_brackets(argv != NULL ? argv[0] : NULL);
    if (addr == NULL)
        addr = (char *)(macro(ctx, "{mail_addr}") ? macro(ctx, "{mail_addr}") : "");
    n = argv != NULL && argv[0] != NULL ? split_params(s, argv, params, names) : 0;
    txn_begin(s, addr, params, n);
    queue_id(ctx, s);
    memset(&arg, 0, sizeof(arg));
    arg.stage = SUBM_STAGE_MAIL;
    arg.text = s->txn->sender;
    arg.params = s->txn->params;
    arg.nparams = s->txn->nparams;
    v = chain_run(s, SUBM_STAGE_MAIL, &arg, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
        sfsistat ret = milter_verdict(ctx, s, SUBM_STAGE_MAIL, v, &r);

        txn_end(s);
        return answer(c, SMFIP_NR_MAIL, ret);
    }
    return answer(c, SMFIP_NR_MAIL, milter_verdict(ctx, s, SUBM_STAGE_MAIL, v, &r));
}

/* txn_need - the open transaction, or one opened for a message whose MAIL
 * we did not see (never from a real MTA; miltertest can do it). */
static struct txn *txn_need(SMFICTX *ctx, struct session *s)
{
    if (s->txn == NULL) {
        const char *from = macro(ctx, "{mail_addr}");

        char b[256];

        log_debug("%s: milter: message without MAIL; sender taken as <%s>",
                  s->id, printable(b, sizeof(b), from));
        txn_begin(s, from ? from : "", NULL, 0);
    }
    queue_id(ctx, s);
    return s->txn;
}

/* milter_envrcpt - xxfi_envrcpt: RCPT, for this recipient only. */
sfsistat milter_envrcpt(SMFICTX *ctx, char **argv)
{
    struct milter_conn *c;
    struct session *s = session(ctx, &c);
    subm_param_t params[PARAMS_MAX];
    char names[PARAMS_MAX][64];
    subm_arg_t arg;
    struct reply r;
    subm_verdict_t v;
    struct txn *t;
    char *addr;
    size_t n;

    if (s == NULL)
        return SMFIS_TEMPFAIL;
    t = txn_need(ctx, s);
    addr = strip_brackets(argv != NULL ? argv[0] : NULL);
    if (addr == NULL)
        addr = (char *)(macro(ctx, "{rcpt_addr}") ? macro(ctx, "{rcpt_addr}") : "");
    n = argv != NULL && argv[0] != NULL ? split_params(s, argv, params, names) : 0;
    memset(&arg, 0, sizeof(arg));
    arg.stage = SUBM_STAGE_RCPT;
    arg.text = addr;
    arg.params = n ? params : NULL;
    arg.nparams = n;
    arg.index = t->nrcpts;        /* the index it gets if accepted */
    v = chain_run(s, SUBM_STAGE_RCPT, &arg, &r);
    if (v == SUBM_CONTINUE || v == SUBM_ACCEPT)
        txn_add_rcpt(s, addr, params, n);
    return answer(c, SMFIP_NR_RCPT, milter_verdict(ctx, s, SUBM_STAGE_RCPT, v, &r));
}

/* milter_data - xxfi_data: DATA. */
sfsistat milter_data(SMFICTX *ctx)
{
    struct milter_conn *c;
    struct session *s = session(ctx, &c);

    if (s == NULL)
        return SMFIS_TEMPFAIL;
    txn_need(ctx, s);
    return run_answer(ctx, c, s, SUBM_STAGE_DATA, NULL, SMFIP_NR_DATA);
}

/*
 * unknown_text - the command line as a C string in buf. libmilter 8.17
 * hands xxfi_unknown its packet buffer without checking that it ends in a
 * NUL (it checks for HELO, headers and the envelope), so a broken or
 * hostile MTA could make strlen() read past it. The buffer is the start of
 * the block libmilter malloc()ed for the packet: malloc_usable_size()
 * bounds the search (glibc).
 */
static const char *unknown_text(const char *cmd, char *buf, size_t len)
{
    size_t n;

    if (cmd == NULL)
        return "";
    n = strnlen(cmd, malloc_usable_size((void *)cmd));
    if (n >= len)
        n = len - 1;
    memcpy(buf, cmd, n);
    buf[n] = '\0';
    return buf;
}

/* milter_unknown - xxfi_unknown: EXPN arrives here too (Postfix); the MTA
 * refuses the command whatever we say, we only choose the reply. */
sfsistat milter_unknown(SMFICTX *ctx, const char *cmd)
{
    struct milter_conn *c;
    struct session *s = session(ctx, &c);
    subm_stage_t stage = SUBM_STAGE_UNKNOWN;
    char line[1024];
    subm_arg_t arg;

    if (s == NULL)
        return SMFIS_TEMPFAIL;
    cmd = unknown_text(cmd, line, sizeof(line));
    memset(&arg, 0, sizeof(arg));
    arg.text = cmd;
    if (strncasecmp(cmd, "EXPN", 4) == 0 && (cmd[4] == ' ' || cmd[4] == '\0')) {
        stage = SUBM_STAGE_EXPN;
        arg.text = cmd[4] ? cmd + 5 : "";
    }
    arg.stage = stage;
    return run_answer(ctx, c, s, stage, &arg, SMFIP_NR_UNKN);
}

/* raw_field - "Name:value" with CRLF folding, as the smtp front-end sees
 * it: the MTA folds with bare LF, and without SMFIP_HDR_LEADSPC it has
 * dropped the space after the colon. Heap; the caller frees. */
static char *raw_field(const char *name, const char *value, int leadspc, size_t *len_r)
{
    size_t nl = strlen(name), vl = strlen(value), o = 0, i;
    char *raw = xmalloc(nl + 2 + 2 * vl + 1);

    memcpy(raw, name, nl);
    o = nl;
    raw[o++] = ':';
    if (!leadspc)
        raw[o++] = ' ';
    for (i = 0; i < vl; i++) {
        if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r'))
            raw[o++] = '\r';
        raw[o++] = value[i];
    }
    raw[o] = '\0';
    *len_r = o;
    return raw;
}

/* milter_header - xxfi_header: the field joins the transaction; HEADER. */
sfsistat milter_header(SMFICTX *ctx, char *name, char *value)
{
    struct milter_conn *c;
    struct session *s = session(ctx, &c);
    const struct header *h;
    subm_arg_t arg;
    struct txn *t;
    size_t len;
    char *raw;
    int bad;

    if (s == NULL)
        return SMFIS_TEMPFAIL;
    t = txn_need(ctx, s);
    raw = raw_field(name ? name : "", value ? value : "",
                    (c->steps & SMFIP_HDR_LEADSPC) != 0, &len);
    t->size += len + 2;
    bad = txn_add_header(s, raw, len, &h) != 0;
    free(raw);
    if (bad) {
        char b[48];

        log_warn("%s: milter: header field \"%s\" not understood; passed over",
                 s->id, printable(b, sizeof(b), name));
        return answer(c, SMFIP_NR_HDR, SMFIS_CONTINUE);
    }
    memset(&arg, 0, sizeof(arg));
    arg.stage = SUBM_STAGE_HEADER;
    arg.name = h->name;
    arg.value = h->value;
    arg.raw = h->raw;
    arg.raw_len = h->raw_len;
    return run_answer(ctx, c, s, SUBM_STAGE_HEADER, &arg, SMFIP_NR_HDR);
}

/* milter_eoh - xxfi_eoh: EOH. */
sfsistat milter_eoh(SMFICTX *ctx)
{
    struct milter_conn *c;
    struct session *s = session(ctx, &c);

    if (s == NULL)
        return SMFIS_TEMPFAIL;
    count_eoh(c, txn_need(ctx, s));
    return run_answer(ctx, c, s, SUBM_STAGE_EOH, NULL, SMFIP_NR_EOH);
}

/* milter_body - xxfi_body: spool the chunk; BODY. An ACCEPT ends the body
 * transfer (SMFIS_SKIP) unless a plugin reads the body at EOM. */
sfsistat milter_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
    struct milter_conn *c;
    struct session *s = session(ctx, &c);
    subm_arg_t arg;
    struct reply r;
    subm_verdict_t v;
    struct txn *t;

    if (s == NULL)
        return SMFIS_TEMPFAIL;
    t = txn_need(ctx, s);
    count_eoh(c, t);
    t->size += len;
    if (!c->txn_failed && txn_body_write(s, data, len) != 0)
        c->txn_failed = 1;        /* spool trouble, logged; deferred at EOM */
    memset(&arg, 0, sizeof(arg));
    arg.stage = SUBM_STAGE_BODY;
    arg.data = data;
    arg.len = len;
    v = chain_run(s, SUBM_STAGE_BODY, &arg, &r);
    if (v == SUBM_ACCEPT && (c->steps & SMFIP_SKIP) &&
        (s->chain == NULL || (s->chain->flags & SUBM_PLUGIN_NEEDS_BODY) == 0))
        return SMFIS_SKIP;
    return answer(c, SMFIP_NR_BODY, milter_verdict(ctx, s, SUBM_STAGE_BODY, v, &r));
}

/* summary - the one line per message, in the smtp front-end's manner. */
static void summary(const struct milter_conn *c, const char *verdict)
{
    const struct session *s = c->s;
    const struct txn *t = s->txn;
    char to[1536], from[512], qid[64], b[512];
    size_t off = 0, i;
    int k;

    to[0] = '\0';
    for (i = 0; i < t->nrcpts; i++) {
        k = snprintf(to + off, sizeof(to) - off, "%s<%s>", i ? "," : "",
                     printable(b, sizeof(b), t->rcpts[i].addr));
        if (k < 0 || (size_t)k >= sizeof(to) - off) {
            snprintf(to + off, sizeof(to) - off, ",...");
            break;
        }
        off += (size_t)k;
    }
    log_info("%s: milter: queue=%s from=<%s> to=%s nrcpt=%zu size=%llu auth=%s "
             "verdict=%s mods=%zu delay=%.3f", s->id,
             printable(qid, sizeof(qid), t->queue_id),
             printable(from, sizeof(from), t->sender), to,
             t->nrcpts, (unsigned long long)t->size,
             s->auth_login ? printable(b, sizeof(b), s->auth_login) : "none",
             verdict, t->nmods,
             c->txn_t0 ? (double)(monotonic_ms() - c->txn_t0) / 1000.0 : 0.0);
}

/* milter_eom - xxfi_eom: EOM, then the modifications. */
sfsistat milter_eom(SMFICTX *ctx)
{
    struct milter_conn *c;
    struct session *s = session(ctx, &c);
    struct reply r;
    subm_verdict_t v;
    sfsistat ret;

    if (s == NULL)
        return SMFIS_TEMPFAIL;
    count_eoh(c, txn_need(ctx, s));
    if (c->txn_failed) {
        v = SUBM_TEMPFAIL;
        reply_set(&r, 451, "4.3.0", "Local error in processing, try again later");
    } else {
        v = chain_run(s, SUBM_STAGE_EOM, NULL, &r);
    }
    if (s->txn->discard)
        v = SUBM_DISCARD;
    if (v != SUBM_DISCARD && v != SUBM_REJECT && v != SUBM_TEMPFAIL &&
        milter_apply_mods(ctx, c) != 0) {
        v = SUBM_TEMPFAIL;
        reply_set(&r, 451, "4.3.0", "Local error in processing, try again later");
    }
    ret = milter_verdict(ctx, s, SUBM_STAGE_EOM, v, &r);
    summary(c, verdict_name(v));
    txn_end(s);
    c->txn_failed = 0;
    c->eoh_counted = 0;
    return ret;
}

/* milter_abort - xxfi_abort: RSET; the message (if any) ends. */
sfsistat milter_abort(SMFICTX *ctx)
{
    struct milter_conn *c = smfi_getpriv(ctx);
    struct reply r;

    milter_touch();
    if (c == NULL || c->s == NULL)
        return SMFIS_CONTINUE;
    (void)chain_run(c->s, SUBM_STAGE_RSET, NULL, &r);
    txn_end(c->s);
    c->txn_failed = 0;
    c->eoh_counted = 0;
    return SMFIS_CONTINUE;
}

/* milter_close - xxfi_close: CLOSE; everything of the connection ends. */
sfsistat milter_close(SMFICTX *ctx)
{
    struct milter_conn *c = smfi_getpriv(ctx);
    struct reply r;

    milter_touch();
    if (c == NULL)
        return SMFIS_CONTINUE;
    if (c->s != NULL)
        (void)chain_run(c->s, SUBM_STAGE_CLOSE, NULL, &r);
    milter_conn_free(ctx);
    return SMFIS_CONTINUE;
}
