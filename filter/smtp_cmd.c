/*
 * smtp_cmd.c - the smtp front-end's command handlers: HELO/EHLO, MAIL,
 * RCPT, DATA, BDAT, RSET, VRFY/EXPN/HELP/NOOP and the unknown ones.
 *
 * Each checks sequence and syntax, runs its stage through the chain and
 * either answers itself or queues the command for the backend (MAIL and
 * RCPT; their replies are read in smtp_resolve). Message bytes are read
 * by smtp_data.c; the end of message is smtp_deliver.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "mods.h"
#include "pool.h"
#include "session.h"
#include "smtp_conf.h"
#include "smtp_session.h"
#include "smtp_tls.h"

#define SMTP_MAX_PARAMS 10

/* split_params - "A=1 B" into params (in place); -1 if malformed. */
static int split_params(char *text, subm_param_t *out, size_t *n_r)
{
    size_t n = 0;
    char *p = text;

    while (*p) {
        char *name = p, *eq = NULL;

        for (; *p && *p != ' '; p++) {
            unsigned char c = (unsigned char)*p;
            if (c == '=' && eq == NULL)
                eq = p;
            else if (eq == NULL && !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                     (c >= '0' && c <= '9') || (c == '-' && p != name)))
                return -1;
            else if (eq != NULL && (c < 33 || c == 127 || c == '='))
                return -1;
        }
        if (n == SMTP_MAX_PARAMS || p == name || eq == name)
            return -1;
        if (*p)
            *p++ = '\0';
        while (*p == ' ')
            p++;
        if (eq != NULL) {
            *eq = '\0';
            if (eq[1] == '\0')
                return -1;
        }
        out[n].name = name;
        out[n].value = eq ? eq + 1 : NULL;
        n++;
    }
    *n_r = n;
    return 0;
}

/* params_text - "A=1 B" from params, skipping `skip` (may be NULL). */
static void params_text(const subm_param_t *p, size_t n, const char *skip,
                        char *buf, size_t size)
{
    size_t i, off = 0;
    int k;

    buf[0] = '\0';
    for (i = 0; i < n; i++) {
        if (skip != NULL && strcasecmp(p[i].name, skip) == 0)
            continue;
        k = snprintf(buf + off, size - off, " %s%s%s", p[i].name,
                     p[i].value ? "=" : "", p[i].value ? p[i].value : "");
        if (k < 0 || (size_t)k >= size - off) {
            buf[off] = '\0';
            return;
        }
        off += (size_t)k;
    }
}

/* dup_param - same name twice? */
static int dup_param(const subm_param_t *p, size_t n)
{
    size_t i, j;

    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++)
            if (strcasecmp(p[i].name, p[j].name) == 0)
                return 1;
    return 0;
}

/* has_8bit - any octet >= 0x80? */
static int has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

/* helo_name_ok - 1..255 printable ASCII octets, no spaces. */
static int helo_name_ok(const char *n)
{
    size_t len = strlen(n), i;

    if (len == 0 || len > 255)
        return 0;
    for (i = 0; i < len; i++)
        if ((unsigned char)n[i] < 33 || (unsigned char)n[i] > 126)
            return 0;
    return 1;
}

/* ehlo_caps - what to advertise: the backend's (a connection opened to
 * learn them goes back to the pool at once), or a safe guess. */
static unsigned ehlo_caps(struct smtp_sess *ss, uint64_t *bsize)
{
    struct relay_caps caps;
    struct breply rep;

    *bsize = 0;
    if (!relay_caps_cached(ss->conf->backend, &caps)) {
        struct relay *r = ss->relay;
        if (r == NULL)
            r = relay_open(ss->conf, ss->hostname, ss->s->id, &rep);
        if (r == NULL)
            return RELAY_8BITMIME;
        caps = r->caps;
        if (r != ss->relay)             /* opened for its EHLO reply only: */
            relay_close(&r, 1);         /* an idle session holds none */
    }
    *bsize = caps.size;
    return caps.flags & (RELAY_8BITMIME | RELAY_DSN | RELAY_SMTPUTF8);
}

/* smtp_cmd_helo - HELO and EHLO. */
void smtp_cmd_helo(struct smtp_sess *ss, const char *arg, int esmtp)
{
    struct reply r;
    subm_arg_t a;
    subm_verdict_t v;
    uint64_t bsize, limit;

    if (!helo_name_ok(arg)) {
        smtp_reply(ss, 501, "5.5.2", "Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
    if (ss->s->txn != NULL)
        smtp_txn_abort(ss);             /* RFC 5321 4.1.4: EHLO resets */
    memset(&a, 0, sizeof(a));
    a.text = arg;
    a.esmtp = esmtp;
    v = smtp_stage(ss, SUBM_STAGE_HELO, &a, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
        smtp_reply_chain(ss, &r);
        ss->helo_seen = 0;
        return;
    }
    session_set_helo(ss->s, arg, esmtp);
    ss->helo_seen = 1;
    ss->adv = RELAY_PIPELINING | RELAY_SIZE | RELAY_ENHANCED | RELAY_CHUNKING |
              ehlo_caps(ss, &bsize);
    limit = ss->conf->max_message_size;
    if (ss->s->size_limit && ss->s->size_limit < limit)
        limit = ss->s->size_limit;
    if (bsize && bsize < limit)
        limit = bsize;
    ss->size_max = limit;
    if (!esmtp) {
        smtp_reply(ss, 250, NULL, "%s", ss->hostname);
        return;
    }
    sio_printf(&ss->io, "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n",
               ss->hostname, (unsigned long long)limit);
    if (!ss->tls_on && smtp_tls_available())
        sio_printf(&ss->io, "250-STARTTLS\r\n");
    if (smtp_auth_offered(ss))
        sio_printf(&ss->io, "250-AUTH PLAIN LOGIN\r\n");
    if (ss->adv & RELAY_8BITMIME)
        sio_printf(&ss->io, "250-8BITMIME\r\n");
    if (ss->adv & RELAY_DSN)
        sio_printf(&ss->io, "250-DSN\r\n");
    if (ss->adv & RELAY_SMTPUTF8)
        sio_printf(&ss->io, "250-SMTPUTF8\r\n");
    sio_printf(&ss->io, "250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n");
}

/* mail_params - check MAIL parameters; 0, or -1 after replying. */
static int mail_params(struct smtp_sess *ss, subm_param_t *p, size_t n)
{
    size_t i;

    ss->body_8bit = ss->smtputf8 = 0;
    if (n > 0 && !ss->s->esmtp) {       /* RFC 1869: extensions need EHLO */
        smtp_reply(ss, 555, "5.5.4", "MAIL parameters need EHLO");
        return -1;
    }
    for (i = 0; i < n; i++) {
        const char *name = p[i].name, *v = p[i].value;

        if (strcasecmp(name, "SIZE") == 0) {
            unsigned long long sz;
            char *end;
            if (v == NULL || *v < '0' || *v > '9') {
                smtp_reply(ss, 501, "5.5.4", "Bad SIZE parameter");
                return -1;
            }
            errno = 0;
            sz = strtoull(v, &end, 10);
            if (*end != '\0') {
                smtp_reply(ss, 501, "5.5.4", "Bad SIZE parameter");
                return -1;
            }
            if (errno == ERANGE || sz > ss->size_max) {
                smtp_reply(ss, 552, "5.3.4", "Message size exceeds fixed limit");
                return -1;
            }
        } else if (strcasecmp(name, "BODY") == 0) {
            if (v && strcasecmp(v, "7BIT") == 0)
                continue;
            if (v && strcasecmp(v, "8BITMIME") == 0 && (ss->adv & RELAY_8BITMIME)) {
                ss->body_8bit = 1;
                continue;
            }
            smtp_reply(ss, 504, "5.5.4", "Unsupported BODY type");
            return -1;
        } else if (strcasecmp(name, "SMTPUTF8") == 0 && (ss->adv & RELAY_SMTPUTF8)) {
            if (v != NULL) {
                smtp_reply(ss, 501, "5.5.4", "SMTPUTF8 takes no value");
                return -1;
            }
            ss->smtputf8 = 1;
        } else if (strcasecmp(name, "RET") == 0 && (ss->adv & RELAY_DSN)) {
            if (v == NULL || (strcasecmp(v, "FULL") != 0 && strcasecmp(v, "HDRS") != 0)) {
                smtp_reply(ss, 501, "5.5.4", "Bad RET parameter");
                return -1;
            }
        } else if (strcasecmp(name, "ENVID") == 0 && (ss->adv & RELAY_DSN)) {
            if (v == NULL || strlen(v) > 100 || !smtp_xtext_ok(v)) {
                smtp_reply(ss, 501, "5.5.4", "Bad ENVID parameter");
                return -1;
            }
        } else if (strcasecmp(name, "AUTH") == 0) {
            if (v == NULL || strlen(v) > 500 || (strcmp(v, "<>") != 0 && !smtp_xtext_ok(v))) {
                smtp_reply(ss, 501, "5.5.4", "Bad AUTH parameter");
                return -1;
            }
            p[i].value = "<>";          /* RFC 4954 5: untrusted, so AUTH=<> */
        } else {
            smtp_reply(ss, 555, "5.5.4", "Unsupported option: %.40s", name);
            return -1;
        }
    }
    return 0;
}

/* path_error - answer a path that smtp_parse_path refused. */
static void path_error(struct smtp_sess *ss, int rc, int sender)
{
    const char *ecode = sender ? "5.1.7" : "5.1.3";
    const char *what = sender ? "sender" : "recipient";

    if (rc == ADDR_UTF8)
        smtp_reply(ss, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
    else if (rc == ADDR_TOOLONG)
        smtp_reply(ss, 553, ecode, "Bad %s address: too long", what);
    else
        smtp_reply(ss, 553, ecode, "Bad %s address syntax", what);
}

static void mail_queue(struct smtp_sess *ss, enum pend_kind kind);

/* smtp_cmd_mail - MAIL FROM:<path> [params]. */
void smtp_cmd_mail(struct smtp_sess *ss, char *arg)
{
    subm_param_t params[SMTP_MAX_PARAMS];
    char *addr, *ptr;
    size_t n = 0;
    subm_arg_t a;
    struct reply r;
    subm_verdict_t v;
    int rc;

    smtp_resolve(ss);
    if (!ss->helo_seen) {
        smtp_reply(ss, 503, "5.5.1", "Error: send HELO/EHLO first");
        return;
    }
    if (ss->s->txn != NULL) {
        smtp_reply(ss, 503, "5.5.1", "Error: nested MAIL command");
        return;
    }
    if (strncasecmp(arg, "FROM:", 5) != 0) {
        smtp_reply(ss, 501, "5.5.2", "Syntax: MAIL FROM:<address>");
        return;
    }
    rc = smtp_parse_path(arg + 5, 1, 0, 1, &addr, &ptr);
    if (rc == ADDR_SYNTAX && strchr(arg + 5, '<') == NULL) {
        smtp_reply(ss, 501, "5.5.2", "Syntax: MAIL FROM:<address>");
        return;
    }
    if (rc != ADDR_OK) {
        path_error(ss, rc, 1);
        return;
    }
    if (split_params(ptr, params, &n) < 0 || dup_param(params, n)) {
        smtp_reply(ss, 501, "5.5.4", "Syntax error in parameters");
        return;
    }
    if (mail_params(ss, params, n) < 0)
        return;
    if (has_8bit(addr) && !ss->smtputf8) {
        path_error(ss, ADDR_UTF8, 1);
        return;
    }
    (void)txn_begin(ss->s, addr, params, n);
    memset(&a, 0, sizeof(a));
    a.text = addr;
    a.params = params;
    a.nparams = n;
    v = smtp_stage(ss, SUBM_STAGE_MAIL, &a, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
        smtp_reply_chain(ss, &r);
        txn_end(ss->s);
        return;
    }
    if (smtp_backend(ss) < 0) {
        txn_end(ss->s);
        return;
    }
    ss->txn_t0 = monotonic_ms();
    ss->relay_txn = 1;
    if (ss->relay->caps.flags & RELAY_PIPELINING) {
        ss->mail_unsent = 1;            /* see mail_queue */
        smtp_reply(ss, 250, "2.1.0", "Ok");
        return;
    }
    mail_queue(ss, PEND_MAIL);
    smtp_resolve(ss);
}

/* pend_add - a queue entry for a backend command of that kind. */
static struct smtp_pend *pend_add(struct smtp_sess *ss, enum pend_kind kind)
{
    struct smtp_pend *pe;

    if (ss->npend == ss->pend_cap) {
        ss->pend_cap = ss->pend_cap ? ss->pend_cap * 2 : 16;
        ss->pend = xrealloc(ss->pend, ss->pend_cap * sizeof(*ss->pend));
    }
    pe = &ss->pend[ss->npend++];
    pe->kind = kind;
    pe->index = 0;
    return pe;
}

/*
 * mail_queue - the transaction's MAIL for the backend, after the last
 * transaction's RSET if that is still owed. To a backend that offers
 * PIPELINING the MAIL is deferred: the client gets our 250 once the chain
 * took the sender, and MAIL goes with the first RCPT (PEND_MAIL_QUIET), in
 * one write, saving a round trip per message. A backend refusing the sender
 * then answers that RCPT (as Postfix itself does with smtpd_delay_reject),
 * and MAIL is tried again with the next one. A transaction without RCPT
 * never reaches the backend at all.
 */
static void mail_queue(struct smtp_sess *ss, enum pend_kind kind)
{
    struct txn *t = ss->s->txn;
    char ptext[SMTP_CMD_MAX_ARGS];

    if (ss->relay->in_txn) {            /* the last transaction's RSET, late */
        relay_cmd(ss->relay, "RSET");
        pend_add(ss, PEND_RSET);
    }
    params_text(t->params, t->nparams, "AUTH", ptext, sizeof(ptext));
    relay_cmd(ss->relay, "MAIL FROM:<%s>%s", t->sender, ptext);
    pend_add(ss, kind);
    ss->mail_unsent = 0;
}

/* rcpt_params - check RCPT parameters; 0, or -1 after replying. */
static int rcpt_params(struct smtp_sess *ss, const subm_param_t *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const char *name = p[i].name, *v = p[i].value;

        if (strcasecmp(name, "NOTIFY") == 0 && (ss->adv & RELAY_DSN)) {
            char buf[64], *t, *save = NULL;
            int never = 0, other = 0;
            if (v == NULL || strlen(v) >= sizeof(buf)) {
                smtp_reply(ss, 501, "5.5.4", "Bad NOTIFY parameter");
                return -1;
            }
            snprintf(buf, sizeof(buf), "%s", v);
            for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (strcasecmp(t, "NEVER") == 0)
                    never = 1;
                else if (strcasecmp(t, "SUCCESS") == 0 || strcasecmp(t, "FAILURE") == 0 ||
                         strcasecmp(t, "DELAY") == 0)
                    other = 1;
                else
                    never = other = 1;
            }
            if (never && other) {
                smtp_reply(ss, 501, "5.5.4", "Bad NOTIFY parameter");
                return -1;
            }
        } else if (strcasecmp(name, "ORCPT") == 0 && (ss->adv & RELAY_DSN)) {
            const char *semi = v ? strchr(v, ';') : NULL;
            if (semi == NULL || semi == v || strlen(v) > 500 || !smtp_xtext_ok(semi + 1)) {
                smtp_reply(ss, 501, "5.5.4", "Bad ORCPT parameter");
                return -1;
            }
        } else {
            smtp_reply(ss, 555, "5.5.4", "Unsupported option: %.40s", name);
            return -1;
        }
    }
    return 0;
}

/* smtp_cmd_rcpt - RCPT TO:<path> [params]. */
void smtp_cmd_rcpt(struct smtp_sess *ss, char *arg)
{
    subm_param_t params[SMTP_MAX_PARAMS];
    char ptext[SMTP_CMD_MAX_ARGS], *addr, *ptr;
    struct smtp_pend *pe;
    size_t n = 0;
    subm_arg_t a;
    struct reply r;
    subm_verdict_t v;
    int rc;

    if (ss->s->txn == NULL) {
        smtp_reply(ss, 503, "5.5.1", "Error: need MAIL command");
        return;
    }
    if (ss->txn_bdat) {                 /* RFC 3030: the envelope is closed */
        smtp_reply(ss, 503, "5.5.1", "Error: RCPT after BDAT");
        return;
    }
    if (strncasecmp(arg, "TO:", 3) != 0) {
        smtp_reply(ss, 501, "5.5.2", "Syntax: RCPT TO:<address>");
        return;
    }
    rc = smtp_parse_path(arg + 3, 0, 1, ss->smtputf8, &addr, &ptr);
    if (rc == ADDR_SYNTAX && strchr(arg + 3, '<') == NULL) {
        smtp_reply(ss, 501, "5.5.2", "Syntax: RCPT TO:<address>");
        return;
    }
    if (rc != ADDR_OK) {
        path_error(ss, rc, 0);
        return;
    }
    if (split_params(ptr, params, &n) < 0 || dup_param(params, n)) {
        smtp_reply(ss, 501, "5.5.4", "Syntax error in parameters");
        return;
    }
    if (rcpt_params(ss, params, n) < 0)
        return;
    if (ss->s->txn->nrcpts >= (size_t)ss->conf->max_recipients) {
        smtp_reply(ss, 452, "4.5.3", "Error: too many recipients");
        return;
    }
    memset(&a, 0, sizeof(a));
    a.text = addr;
    a.params = params;
    a.nparams = n;
    a.index = ss->s->txn->nrcpts;
    v = smtp_stage(ss, SUBM_STAGE_RCPT, &a, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
        smtp_reply_chain(ss, &r);
        return;
    }
    if (ss->relay == NULL || ss->relay->broken || !ss->relay_txn) {
        smtp_resolve(ss);
        if (ss->s->txn != NULL)
            smtp_reply(ss, 451, "4.4.2", "Backend connection lost, try again later");
        else
            smtp_reply(ss, 503, "5.5.1", "Error: need MAIL command");
        return;
    }
    if (ss->mail_unsent)
        mail_queue(ss, PEND_MAIL_QUIET);
    pe = pend_add(ss, PEND_RCPT);
    pe->index = txn_add_rcpt(ss->s, addr, params, n);
    params_text(params, n, NULL, ptext, sizeof(ptext));
    relay_cmd(ss->relay, "RCPT TO:<%s>%s", addr, ptext);
    if (!(ss->relay->caps.flags & RELAY_PIPELINING))
        smtp_resolve(ss);
}

/* sync_violation - client data already sent after a refused DATA/BDAT:
 * it would be read as commands, so end the session instead. */
static void sync_violation(struct smtp_sess *ss)
{
    if (sio_avail(&ss->io) > 0) {
        log_info("%s: data pipelined after a refused DATA from %s", ss->s->id,
                 ss->s->client_addr);
        smtp_reply(ss, 554, "5.5.0", "Error: SMTP protocol synchronization");
        ss->quit = 1;
    }
}

/* chain_after_data - does a plugin of the chain look at the message
 * (header, body or end of message), where it may still refuse it or
 * change the envelope? */
static int chain_after_data(const struct smtp_sess *ss)
{
    static const subm_stage_t later[] = {
        SUBM_STAGE_HEADER, SUBM_STAGE_EOH, SUBM_STAGE_BODY, SUBM_STAGE_EOM
    };
    size_t i;

    for (i = 0; i < sizeof(later) / sizeof(later[0]); i++)
        if (chain_uses_stage(ss->s->chain, later[i]))
            return 1;
    return 0;
}

/* data_early - DATA to the backend now, at the client's DATA (never at a
 * BDAT: commands may follow a chunk, and none may reach a backend in data
 * mode), when
 * nothing from here on can change the envelope (no plugin hooks a stage
 * after DATA, no envelope change was recorded): the backend's 354 then
 * comes while the client sends its message and is read at the end of it
 * (smtp_deliver), which saves that round trip per message. The backend
 * sees the message only when it is complete; if the client vanishes or the
 * message is refused, the connection is closed without a dot (relay.h). */
static void data_early(struct smtp_sess *ss)
{
    struct relay *r = ss->relay;

    if (r == NULL || r->broken || !ss->relay_txn || !r->in_txn || ss->npend > 0 ||
        r->data_sent || r->in_data || chain_after_data(ss) ||
        mods_envelope_changed(ss->s->txn))
        return;
    relay_cmd(r, "DATA");
    if (relay_flush(r) == 0)
        r->data_sent = 1;
}

/* data_ready - checks common to DATA and the first BDAT; 0 if the
 * transaction may take a message, else -1 after replying. */
static int data_ready(struct smtp_sess *ss)
{
    struct reply r;
    subm_verdict_t v;

    if (ss->s->txn == NULL) {
        smtp_reply(ss, 503, "5.5.1", "Error: need MAIL command");
        return -1;
    }
    if (ss->s->txn->nrcpts == 0) {
        smtp_reply(ss, 554, "5.5.1", "Error: no valid recipients");
        return -1;
    }
    if (ss->data_started)
        return 0;
    v = smtp_stage(ss, SUBM_STAGE_DATA, NULL, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
        smtp_reply_chain(ss, &r);
        smtp_log_summary(ss, v == SUBM_REJECT ? "reject" : "tempfail", 0, "at DATA");
        smtp_txn_abort(ss);
        return -1;
    }
    ss->data_started = 1;
    return 0;
}

/* smtp_cmd_data - DATA: 354, the message, then the end of message. */
void smtp_cmd_data(struct smtp_sess *ss, const char *arg)
{
    size_t used;
    int rc, done = 0;

    if (*arg) {
        smtp_reply(ss, 501, "5.5.4", "Syntax: DATA");
        return;
    }
    if (ss->txn_bdat) {
        smtp_reply(ss, 503, "5.5.1", "Error: DATA after BDAT");
        sync_violation(ss);
        return;
    }
    if (data_ready(ss) < 0) {
        sync_violation(ss);
        return;
    }
    data_early(ss);             /* not for BDAT: commands may come between chunks */
    smtp_reply(ss, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    if (sio_flush(&ss->io, ss->conf->timeout) < 0) {
        ss->quit = 1;
        smtp_txn_abort(ss);
        return;
    }
    msgin_start(ss, 0);
    while (!done) {
        if (sio_avail(&ss->io) > 0) {
            done = msgin_feed(ss, ss->io.in + ss->io.in_start, sio_avail(&ss->io), &used);
            ss->io.in_start += used;
            continue;
        }
        rc = msgin_fill(ss, 1);
        if (rc > 0)
            continue;
        if (rc == SIO_TIMEOUT) {
            log_info("%s: timeout in DATA from %s after %llu octets", ss->s->id,
                     ss->s->client_addr, (unsigned long long)msgin_size(ss));
            smtp_reply(ss, 421, "4.4.2", "%s Error: timeout exceeded", ss->hostname);
        } else {
            log_info("%s: client %s lost in DATA", ss->s->id, ss->s->client_addr);
        }
        smtp_log_summary(ss, "none", 0, "client lost in DATA");
        smtp_txn_abort(ss);
        ss->quit = 1;
        return;
    }
    smtp_deliver(ss);
}

/* bdat_take - read n octets of a chunk, into the message if keep (else
 * skip them, so that a refused chunk is never read as commands); 0, or
 * -1 (client gone or too slow). */
static int bdat_take(struct smtp_sess *ss, unsigned long long n, int keep)
{
    size_t k, used;
    int rc;

    while (n > 0) {
        if (sio_avail(&ss->io) == 0) {
            rc = msgin_fill(ss, keep);
            if (rc <= 0) {
                if (rc == SIO_TIMEOUT)
                    smtp_reply(ss, 421, "4.4.2", "%s Error: timeout exceeded", ss->hostname);
                return -1;
            }
        }
        k = sio_avail(&ss->io);
        if (k > n)
            k = (size_t)n;
        if (keep)
            (void)msgin_feed(ss, ss->io.in + ss->io.in_start, k, &used);
        ss->io.in_start += k;
        n -= k;
    }
    return 0;
}

/* smtp_cmd_bdat - BDAT size [LAST] (RFC 3030), relayed as DATA. */
void smtp_cmd_bdat(struct smtp_sess *ss, const char *arg)
{
    unsigned long long n;
    char *end;
    int last = 0, ok;
    struct reply r;

    errno = 0;
    n = strtoull(arg, &end, 10);
    if (*arg < '0' || *arg > '9' || errno == ERANGE ||
        (*end != '\0' && *end != ' ') || n > ss->conf->max_message_size + 65536) {
        smtp_reply(ss, 501, "5.5.4", "Syntax: BDAT size [LAST]; closing");
        if (ss->s->txn != NULL)
            smtp_txn_abort(ss);
        ss->quit = 1;
        return;
    }
    while (*end == ' ')
        end++;
    if (strcasecmp(end, "LAST") == 0)
        last = 1;
    else if (*end != '\0') {
        smtp_reply(ss, 501, "5.5.4", "Syntax: BDAT size [LAST]; closing");
        ss->quit = 1;
        return;
    }
    if (ss->helo_seen && !ss->s->esmtp) {    /* RFC 3030: CHUNKING needs EHLO */
        smtp_reply(ss, 503, "5.5.1", "Error: BDAT needs EHLO");
        ok = 0;
    } else
        ok = data_ready(ss) == 0;
    if (!ok) {
        if (bdat_take(ss, n, 0) < 0)
            ss->quit = 1;
        return;
    }
    if (!ss->txn_bdat) {
        msgin_start(ss, 1);
        ss->txn_bdat = 1;
    }
    if (bdat_take(ss, n, 1) < 0) {
        smtp_log_summary(ss, "none", 0, "client lost in BDAT");
        smtp_txn_abort(ss);
        ss->quit = 1;
        return;
    }
    if (last) {
        smtp_deliver(ss);
        return;
    }
    if (msgin_check(ss, &r) < 0) {
        smtp_reply_chain(ss, &r);
        smtp_log_summary(ss, r.code >= 500 ? "reject" : "tempfail", 0, "in BDAT");
        smtp_txn_abort(ss);
        return;
    }
    smtp_reply(ss, 250, "2.0.0", "%llu octets received", n);
}

/* smtp_cmd_rset - RSET: end the transaction; the backend's is reset
 * lazily, in front of the next MAIL. */
void smtp_cmd_rset(struct smtp_sess *ss, const char *arg)
{
    if (*arg) {
        smtp_reply(ss, 501, "5.5.4", "Syntax: RSET");
        return;
    }
    smtp_txn_abort(ss);
    smtp_reply(ss, 250, "2.0.0", "Ok");
}

/* smtp_cmd_starttls - RFC 3207: 220, then the handshake. Whatever the
 * client pipelined behind STARTTLS is thrown away unread (CVE-2011-0411):
 * only what comes inside TLS counts. */
void smtp_cmd_starttls(struct smtp_sess *ss, const char *arg)
{
    if (!smtp_tls_available()) {
        smtp_reply(ss, 502, "5.5.1", "Error: command not implemented");
        return;
    }
    if (ss->tls_on) {
        smtp_reply(ss, 503, "5.5.1", "Error: TLS already active");
        return;
    }
    if (*arg) {
        smtp_reply(ss, 501, "5.5.4", "Syntax: STARTTLS");
        return;
    }
    smtp_reply(ss, 220, "2.0.0", "Ready to start TLS");
    if (sio_flush(&ss->io, ss->conf->timeout) < 0) {
        ss->quit = 1;
        return;
    }
    if (sio_avail(&ss->io) > 0)
        log_info("%s: %zu octets pipelined after STARTTLS from %s discarded", ss->s->id,
                 sio_avail(&ss->io), ss->s->client_addr);
    ss->io.in_start = ss->io.in_end = 0;
    if (smtp_tls_start(ss) < 0)
        ss->quit = 1;
}

/* relay_query - pass a command to the backend and its reply back. */
static void relay_query(struct smtp_sess *ss, const char *verb, const char *arg)
{
    struct breply rep;

    if (smtp_backend(ss) < 0)
        return;
    relay_cmd(ss->relay, "%s%s%s", verb, *arg ? " " : "", arg);
    if (relay_ask(ss->relay, &rep, ss->s->id) == 0)
        relay_final(ss->relay, &rep, ss->s->id);
    smtp_reply_backend(ss, &rep);
    if (ss->relay->broken)
        relay_close(&ss->relay, 0);
}

/* smtp_cmd_query - VRFY, EXPN, HELP, NOOP through their stages. */
void smtp_cmd_query(struct smtp_sess *ss, subm_stage_t stage, const char *verb,
                    const char *arg)
{
    int is_addr = stage == SUBM_STAGE_VRFY || stage == SUBM_STAGE_EXPN;
    subm_arg_t a;
    struct reply r;
    subm_verdict_t v;
    char uverb[8];
    size_t i;

    if (is_addr && *arg == '\0') {
        smtp_reply(ss, 501, "5.5.4", "Syntax: %s address", stage == SUBM_STAGE_VRFY ?
                   "VRFY" : "EXPN");
        return;
    }
    memset(&a, 0, sizeof(a));
    a.text = arg;
    v = smtp_stage(ss, stage, &a, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL || (v == SUBM_ACCEPT && r.code)) {
        smtp_reply_chain(ss, &r);
        return;
    }
    for (i = 0; i + 1 < sizeof(uverb) && verb[i]; i++)
        uverb[i] = (char)(verb[i] & ~0x20);
    uverb[i] = '\0';
    if (is_addr && v == SUBM_ACCEPT) {
        relay_query(ss, uverb, arg);
        return;
    }
    switch (stage) {
    case SUBM_STAGE_VRFY:
    case SUBM_STAGE_EXPN:
        smtp_reply(ss, 252, "2.5.0", "Cannot %s user, but will accept message "
                   "and attempt delivery", uverb);
        break;
    case SUBM_STAGE_HELP:
        sio_printf(&ss->io, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET\r\n"
                   "214-2.0.0 VRFY EXPN HELP NOOP QUIT\r\n"
                   "214 2.0.0 See RFC 5321\r\n");
        break;
    default:
        smtp_reply(ss, 250, "2.0.0", "Ok");
        break;
    }
}

/* Verbs never forwarded and never offered, whatever a plugin says. */
static const char *const refused_verbs[] = {
    "TURN", "X-EXPS", "X-LINK2STATE", "XEXCH50", "XCLIENT", "XFORWARD", NULL
};

/* smtp_cmd_unknown - anything else: the UNKNOWN stage decides ETRN/ATRN. */
void smtp_cmd_unknown(struct smtp_sess *ss, const char *verb, const char *line)
{
    subm_arg_t a;
    struct reply r;
    subm_verdict_t v;
    const char *const *w;
    int refused = 0;

    for (w = refused_verbs; *w; w++)
        if (strcasecmp(verb, *w) == 0)
            refused = 1;
    memset(&a, 0, sizeof(a));
    a.text = line;
    v = smtp_stage(ss, SUBM_STAGE_UNKNOWN, &a, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
        smtp_reply_chain(ss, &r);
        return;
    }
    if (refused) {
        smtp_reply(ss, 502, "5.5.1", "Error: command not implemented");
        return;
    }
    if (v == SUBM_ACCEPT && r.code) {
        smtp_reply_chain(ss, &r);
        return;
    }
    if (strcasecmp(verb, "ETRN") == 0 || strcasecmp(verb, "ATRN") == 0) {
        struct relay_caps caps;
        if (v == SUBM_ACCEPT && strcasecmp(verb, "ETRN") == 0 &&
            relay_caps_cached(ss->conf->backend, &caps) && (caps.flags & RELAY_ETRN)) {
            relay_query(ss, "ETRN", line + 4 + strspn(line + 4, " "));
            return;
        }
        smtp_reply(ss, 502, "5.5.1", "Error: command not implemented");
        return;
    }
    smtp_reply(ss, 500, "5.5.1", "Error: command not recognized");
}
