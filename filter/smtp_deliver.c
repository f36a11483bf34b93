/*
 * smtp_deliver.c - the end of a message on the smtp front-end: the EOM
 * stage, the chain's modifications applied to what is relayed (envelope by
 * RSET and a replayed MAIL/RCPT, headers and body while writing), DATA to
 * the backend, its reply to the client, and the per-message summary line.
 *
 * The client gets the backend's reply to the final dot, verbatim; if the
 * backend fails in any way the client gets a 4xx, never a 250. A backend
 * connection that died while the message came in (a slow client outlasting
 * the backend's timeout) is replaced and given the envelope again. Nothing is
 * written to the backend before the whole message has been received, so a
 * client that vanishes mid-message never produces a terminating dot.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mods.h"
#include "pool.h"
#include "session.h"
#include "smtp_conf.h"
#include "smtp_session.h"
#include "spool.h"

/* smtp_log_summary - one line per message, in Postfix's manner. */
void smtp_log_summary(struct smtp_sess *ss, const char *verdict, int code,
                      const char *detail)
{
    struct txn *t = ss->s->txn;
    char to[1536];
    size_t off = 0, i;
    int k;

    if (t == NULL)
        return;
    to[0] = '\0';
    for (i = 0; i < t->nrcpts; i++) {
        k = snprintf(to + off, sizeof(to) - off, "%s<%s>", i ? "," : "", t->rcpts[i].addr);
        if (k < 0 || (size_t)k >= sizeof(to) - off) {
            snprintf(to + off, sizeof(to) - off, ",...");
            break;
        }
        off += (size_t)k;
    }
    if (code)
        log_info("%s: from=<%s> to=%s nrcpt=%zu size=%llu auth=%s verdict=%s "
                 "backend=%d (%s) delay=%.3f", ss->s->id, t->sender, to, t->nrcpts,
                 (unsigned long long)msgin_size(ss),
                 ss->s->auth_login ? ss->s->auth_login : "none", verdict, code,
                 detail ? detail : "", (double)(monotonic_ms() - ss->txn_t0) / 1000.0);
    else
        log_info("%s: from=<%s> to=%s nrcpt=%zu size=%llu auth=%s verdict=%s "
                 "backend=none (%s) delay=%.3f", ss->s->id, t->sender, to, t->nrcpts,
                 (unsigned long long)msgin_size(ss),
                 ss->s->auth_login ? ss->s->auth_login : "none", verdict,
                 detail ? detail : "", (double)(monotonic_ms() - ss->txn_t0) / 1000.0);
}

/* release_relay - the backend connection back to the pool; the client's
 * reply leaves first if an RSET round trip must come before. */
static void release_relay(struct smtp_sess *ss)
{
    if (ss->relay == NULL)
        return;
    if (ss->relay->in_txn && !ss->relay->broken)
        (void)sio_flush(&ss->io, ss->conf->timeout);
    relay_close(&ss->relay, !ss->relay->broken);
}

/* txn_done - the transaction is over (after its final reply). Between
 * messages the backend connection goes back to the pool (after an RSET if
 * the backend's transaction is still open): backend connections follow
 * transactions, not idle client sessions. */
static void txn_done(struct smtp_sess *ss)
{
    release_relay(ss);
    txn_end(ss->s);
    ss->txn_bdat = ss->data_started = ss->relay_txn = ss->mail_unsent = 0;
    ss->body_8bit = ss->smtputf8 = 0;
}

/* params_join - " A=1 B" from a parameter array, into pool. */
static const char *params_join(struct pool *p, const subm_param_t *pa, size_t n)
{
    char buf[1024];
    size_t off = 0, i;
    int k;

    buf[0] = '\0';
    for (i = 0; i < n; i++) {
        if (strcasecmp(pa[i].name, "AUTH") == 0)
            continue;
        k = snprintf(buf + off, sizeof(buf) - off, " %s%s%s", pa[i].name,
                     pa[i].value ? "=" : "", pa[i].value ? pa[i].value : "");
        if (k < 0 || (size_t)k >= sizeof(buf) - off)
            break;
        off += (size_t)k;
    }
    return pool_strdup(p, buf);
}

/* was_accepted - is addr one of the recipients the client was told 250? */
static int was_accepted(const struct txn *t, const char *addr)
{
    size_t i;

    for (i = 0; i < t->nrcpts; i++)
        if (strcasecmp(t->rcpts[i].addr, addr) == 0)
            return 1;
    return 0;
}

/* replay_cmd - command k of the replay: 0 RSET, 1 MAIL, 2.. RCPT. */
static void replay_cmd(struct smtp_sess *ss, size_t k, const char *sender,
                       const char *sparams, const struct rcpt *rc)
{
    struct txn *t = ss->s->txn;

    if (k == 0)
        relay_cmd(ss->relay, "RSET");
    else if (k == 1)
        relay_cmd(ss->relay, "MAIL FROM:<%s>%s", sender, sparams);
    else
        relay_cmd(ss->relay, "RCPT TO:<%s>%s", rc[k - 2].addr,
                  params_join(t->pool, rc[k - 2].params, rc[k - 2].nparams));
}

/*
 * env_replay - RSET the backend and give it the (modified) envelope,
 * pipelined only if the backend offers PIPELINING. 1 if the backend took
 * the sender and every recipient the client was told 250 for (a recipient
 * a plugin added may be refused: logged), 0 if no recipient is left
 * (nothing to send), -1 with the final reply (a 4xx when a recipient the
 * client holds a 250 for was refused: the message must not lose it). After
 * a reconnect (strict) every recipient must be taken again.
 */
static int env_replay(struct smtp_sess *ss, struct breply *rep, int strict)
{
    struct txn *t = ss->s->txn;
    struct relay *r = ss->relay;
    const char *sender, *sparams;
    struct rcpt *rc;
    size_t n, k, sent = 0, ok = 0, lost = 0;
    int pipe = (r->caps.flags & RELAY_PIPELINING) != 0, mail_ok = 0;
    struct breply rr;
    char l[256];

    mods_envelope(ss->s, &sender, &sparams, &rc, &n);
    if (n == 0)
        return 0;
    sparams = sparams ? pool_printf(t->pool, " %s", sparams) :
              params_join(t->pool, t->params, t->nparams);
    for (k = 0; k < n + 2; k++) {
        /* pipelined: everything goes at once; else one command per reply */
        for (; sent < (pipe ? n + 2 : k + 1); sent++)
            replay_cmd(ss, sent, sender, sparams, rc);
        if (k == 0 || !pipe) {
            if (relay_flush(r) < 0) {
                relay_lost(rep);
                return -1;
            }
        }
        if (relay_reply(r, 0, &rr, ss->s->id) < 0) {
            *rep = rr;
            return -1;
        }
        relay_final(r, &rr, ss->s->id);
        if (r->broken) {
            *rep = rr;
            return -1;
        }
        if (k == 1 && rr.code / 100 == 2)
            mail_ok = 1;
        else if (k == 1) {
            log_warn("%s: backend refused the sender <%s>: %s", ss->s->id, sender,
                     breply_line(&rr, l, sizeof(l)));
            *rep = rr;
            if (strict)                 /* the client holds a 250 for it */
                breply_set(rep, 451, "4.3.0", "Backend changed its mind, try again later");
            if (!pipe)
                return -1;
        } else if (k >= 2 && mail_ok && rr.code / 100 == 2) {
            ok++;
        } else if (k >= 2 && mail_ok) {
            log_warn("%s: backend refused recipient <%s>: %s", ss->s->id, rc[k - 2].addr,
                     breply_line(&rr, l, sizeof(l)));
            if (strict || was_accepted(t, rc[k - 2].addr))
                lost++;
            *rep = rr;
        }
    }
    if (!mail_ok)
        return -1;
    if (lost > 0) {
        breply_set(rep, 451, "4.3.0", "Backend changed its mind, try again later");
        return -1;
    }
    return ok > 0 ? 1 : -1;
}

/* send_message - header (modified) and body through the DATA encoder. */
static void send_message(struct smtp_sess *ss)
{
    struct txn *t = ss->s->txn;
    struct relay *r = ss->relay;
    struct spool *body = mods_body(ss->s);
    struct header *h;
    size_t n, i;
    uint64_t off = 0;
    char buf[16384];
    long k;
    int hdr_mods = 0;
    const struct mod *m;

    for (m = t->mods; m != NULL; m = m->next)
        if (m->type == MOD_ADD_HEADER || m->type == MOD_INSERT_HEADER ||
            m->type == MOD_CHANGE_HEADER)
            hdr_mods = 1;
    relay_data_start(r);
    if (hdr_mods)
        mods_headers(ss->s, &h, &n);
    else {
        h = t->headers;
        n = t->nheaders;
    }
    for (i = 0; i < n; i++) {
        relay_data_put(r, h[i].raw, h[i].raw_len);
        relay_data_put(r, "\r\n", 2);
    }
    if (msgin_had_separator(ss) || (hdr_mods && body != NULL && spool_size(body) > 0))
        relay_data_put(r, "\r\n", 2);
    if (body == NULL)
        return;
    while ((k = spool_read(body, off, buf, sizeof(buf))) > 0) {
        relay_data_put(r, buf, (size_t)k);
        off += (uint64_t)k;
    }
    if (k < 0)
        r->broken = 1;                  /* never send a truncated message */
}

/* out_of_step - a 5xx to DATA that complains of our own sequence (503,
 * or X.5.x "no valid recipients"): the backend lost the envelope the client
 * was told it accepted, which is our failure, never the client's. */
static int out_of_step(const struct breply *rep)
{
    return rep->code == 503 ||
           (rep->code / 100 == 5 && rep->len > 8 && memcmp(rep->buf + 4, "5.5.", 4) == 0);
}

/* data_refused - a reply other than 354 to DATA: 2xx, 3xx and 503-like
 * replies mean the backend is out of step (our failure: 451, connection
 * dropped); others are the backend's answer to the message. */
static void data_refused(struct smtp_sess *ss, struct relay *r, struct breply *rep)
{
    char l[256];

    if (rep->code / 100 == 2 || rep->code / 100 == 3 || out_of_step(rep)) {
        log_warn("%s: backend %s answered DATA: %s", ss->s->id, r->backend,
                 breply_line(rep, l, sizeof(l)));
        r->broken = 1;
        breply_set(rep, 451, "4.3.0", "Backend protocol error, try again later");
    }
}

/* relay_message - DATA (unless the backend already said 354), the
 * message, the final reply into rep. 0 when the backend answered the final
 * dot (whatever it said), 1 when no recipient is left, -1 otherwise. */
static int relay_message(struct smtp_sess *ss, struct breply *rep, int reconnected)
{
    struct relay *r = ss->relay;
    int rc;

    if (r->in_data && !reconnected && mods_envelope_changed(ss->s->txn)) {
        /* data_early() never lets this happen: an RSET now would be text */
        log_error("%s: envelope changed after an early DATA; message refused", ss->s->id);
        r->broken = 1;
        breply_set(rep, 451, "4.3.0", "Local error, try again later");
        return -1;
    }
    if (reconnected || mods_envelope_changed(ss->s->txn)) {
        rc = env_replay(ss, rep, reconnected);
        if (rc <= 0)
            return rc == 0 ? 1 : -1;
    }
    if (!r->in_data) {
        relay_cmd(r, "DATA");
        if (relay_ask(r, rep, ss->s->id) < 0)
            return -1;
        if (rep->code != 354) {
            data_refused(ss, r, rep);
            return -1;
        }
        r->in_data = 1;
    }
    send_message(ss);
    if (r->broken || relay_data_end(r) < 0) {
        r->broken = 1;
        relay_lost(rep);
        return -1;
    }
    if (relay_reply(r, r->data_timeout, rep, ss->s->id) < 0)
        return -1;
    relay_final(r, rep, ss->s->id);
    r->in_data = r->in_txn = 0;
    return 0;
}

/* Where the backend connection stands at the end of a message. */
enum backend_state {
    BACKEND_READY,              /* alive, in the transaction (maybe in data mode) */
    BACKEND_GONE,               /* to be replaced, the envelope given again */
    BACKEND_REFUSED             /* it refused DATA: its reply is the answer */
};

/* backend_state - check the connection before relaying: read the reply to
 * an early DATA (smtp_cmd.c) if one was sent, then whether anything came
 * after it (a 421 at the backend's timeout, EOF). */
static enum backend_state backend_state(struct smtp_sess *ss, struct breply *rep)
{
    struct relay *r = ss->relay;

    if (r == NULL || r->broken || !ss->relay_txn)
        return BACKEND_GONE;
    if (r->data_sent) {
        r->data_sent = 0;
        if (relay_reply(r, 0, rep, ss->s->id) < 0 || r->broken) {
            r->broken = 1;
            return BACKEND_GONE;
        }
        if (rep->code != 354) {
            data_refused(ss, r, rep);
            return BACKEND_REFUSED;
        }
        r->in_data = 1;
    }
    if (!relay_alive(r)) {
        r->broken = 1;
        return BACKEND_GONE;
    }
    return BACKEND_READY;
}

/* backend_again - the connection that took MAIL and RCPT is gone (the
 * backend timed out while a slow client sent its message, or restarted):
 * open another one; the envelope is given again. 0, or -1 with rep. */
static int backend_again(struct smtp_sess *ss, struct breply *rep)
{
    if (ss->relay != NULL) {
        log_info("%s: backend connection lost during the message; reconnecting", ss->s->id);
        relay_close(&ss->relay, 0);
    }
    ss->relay = relay_open(ss->conf, ss->hostname, ss->s->id, rep);
    if (ss->relay != NULL && relay_xclient(ss->relay, ss->s, ss->hostname, rep) < 0)
        relay_close(&ss->relay, 0);
    return ss->relay != NULL ? 0 : -1;
}

/* smtp_deliver - see smtp_session.h. */
void smtp_deliver(struct smtp_sess *ss)
{
    struct reply r;
    struct breply rep;
    subm_verdict_t v;
    char line[300];
    int rc;

    if (msgin_end(ss, &r) < 0) {
        smtp_reply_chain(ss, &r);
        smtp_log_summary(ss, r.code >= 500 ? "reject" : "tempfail", 0, r.text);
        smtp_txn_abort(ss);
        release_relay(ss);
        return;
    }
    v = smtp_stage(ss, SUBM_STAGE_EOM, NULL, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
        smtp_reply_chain(ss, &r);
        smtp_log_summary(ss, v == SUBM_REJECT ? "reject" : "tempfail", 0, r.text);
        smtp_txn_abort(ss);
        release_relay(ss);
        return;
    }
    if (v == SUBM_DISCARD || ss->s->txn->discard) {
        smtp_reply(ss, 250, "2.0.0", "Ok: discarded");
        smtp_log_summary(ss, "discard", 0, "discarded by policy");
        txn_done(ss);
        return;
    }
    switch (backend_state(ss, &rep)) {
    case BACKEND_READY:
        rc = relay_message(ss, &rep, 0);
        break;
    case BACKEND_GONE:
        rc = backend_again(ss, &rep) < 0 ? -1 : relay_message(ss, &rep, 1);
        break;
    default:
        rc = -1;
        break;
    }
    if (rc == 1) {
        smtp_reply(ss, 250, "2.0.0", "Ok: no recipients left, discarded");
        smtp_log_summary(ss, "discard", 0, "every recipient removed by policy");
    } else {
        smtp_reply_backend(ss, &rep);
        smtp_log_summary(ss, rep.code / 100 == 2 ? "accept" : rep.code / 100 == 5 ?
                         "reject" : "tempfail", rep.code,
                         breply_line(&rep, line, sizeof(line)) + (rep.len > 4 ? 4 : 0));
    }
    txn_done(ss);
}
