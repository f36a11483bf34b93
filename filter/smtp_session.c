/*
 * smtp_session.c - one client session of the smtp front-end: greeting,
 * the command loop, replies, and the pending backend replies that let a
 * pipelined MAIL/RCPT group go to the backend in one write.
 *
 * Calls: smtp_session_run (from smtp_server.c, in the session's thread),
 * smtp_reply*, smtp_stage, smtp_resolve, smtp_backend, smtp_txn_abort.
 * The commands themselves live in smtp_cmd.c, message reading in
 * smtp_data.c, the end of message in smtp_deliver.c. Nothing here is
 * shared between sessions except through relay.c's pool.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"
#include "pool.h"
#include "session.h"
#include "smtp_conf.h"
#include "smtp_session.h"
#include "smtp_tls.h"

/* smtp_reply - one reply line "CODE ECODE text". */
void smtp_reply(struct smtp_sess *ss, int code, const char *ecode,
                const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    if (ss->npend > 0)
        smtp_resolve(ss);               /* replies leave in command order */
    va_start(ap, fmt);
    if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
        text[0] = '\0';
    va_end(ap);
    if (ecode != NULL && *ecode)
        sio_printf(&ss->io, "%d %s %s\r\n", code, ecode, text);
    else
        sio_printf(&ss->io, "%d %s\r\n", code, text);
    if (code >= 500 && code <= 504)
        ss->errors++;
}

/* smtp_reply_chain - a chain reply: '\n' separates lines. */
void smtp_reply_chain(struct smtp_sess *ss, const struct reply *r)
{
    const char *p = r->text, *nl;
    char sep;

    if (ss->npend > 0)
        smtp_resolve(ss);
    do {
        nl = strchr(p, '\n');
        sep = nl ? '-' : ' ';
        if (r->ecode[0])
            sio_printf(&ss->io, "%d%c%s %.*s\r\n", r->code, sep, r->ecode,
                       (int)(nl ? (size_t)(nl - p) : strlen(p)), p);
        else
            sio_printf(&ss->io, "%d%c%.*s\r\n", r->code, sep,
                       (int)(nl ? (size_t)(nl - p) : strlen(p)), p);
        p = nl ? nl + 1 : NULL;
    } while (p != NULL);
}

/* smtp_reply_backend - a backend reply, verbatim. */
void smtp_reply_backend(struct smtp_sess *ss, const struct breply *b)
{
    sio_put(&ss->io, b->buf, b->len);
}

/* smtp_stage - run a stage with a fresh plugin deadline. */
subm_verdict_t smtp_stage(struct smtp_sess *ss, subm_stage_t stage,
                          subm_arg_t *arg, struct reply *r)
{
    subm_arg_t none;

    if (arg == NULL) {
        memset(&none, 0, sizeof(none));
        arg = &none;
    }
    arg->stage = stage;
    r->code = 0;
    session_set_deadline(ss->s, 0);
    return chain_run(ss->s, stage, arg, r);
}

/* smtp_txn_abort - end the open transaction: RSET stage, then txn_end. */
void smtp_txn_abort(struct smtp_sess *ss)
{
    struct reply r;

    if (ss->s->txn != NULL) {
        (void)smtp_stage(ss, SUBM_STAGE_RSET, NULL, &r);
        txn_end(ss->s);
    }
    if (ss->relay != NULL && (ss->relay->data_sent || ss->relay->in_data))
        ss->relay->broken = 1;          /* in data mode: RSET cannot reach it */
    ss->txn_bdat = ss->data_started = ss->relay_txn = ss->mail_unsent = 0;
    ss->body_8bit = ss->smtputf8 = 0;
}

/* smtp_backend - an open, identified backend connection, or -1 (answered). */
int smtp_backend(struct smtp_sess *ss)
{
    struct breply rep;

    if (ss->relay != NULL && ss->relay->broken)
        relay_close(&ss->relay, 0);
    if (ss->relay == NULL && ss->relay_txn) {
        /* a new connection would know nothing of this transaction: its
         * RCPTs would be refused and its DATA answered 503/554 */
        relay_lost(&rep);
        smtp_reply_backend(ss, &rep);
        return -1;
    }
    if (ss->relay == NULL) {
        ss->relay = relay_open(ss->conf, ss->hostname, ss->s->id, &rep);
        if (ss->relay == NULL) {
            smtp_reply_backend(ss, &rep);
            return -1;
        }
    }
    if (relay_xclient(ss->relay, ss->s, ss->hostname, &rep) < 0) {
        relay_close(&ss->relay, 0);
        smtp_reply_backend(ss, &rep);
        return -1;
    }
    return 0;
}

/* smtp_resolve - read the replies of queued backend commands, in order.
 * After a refused deferred MAIL (PEND_MAIL_QUIET) the RCPTs sent with it
 * get the backend's refusal of the sender as their reply, and MAIL is due
 * again with the next RCPT. */
void smtp_resolve(struct smtp_sess *ss)
{
    struct relay *r = ss->relay;
    struct breply rep, mail_refusal;
    int failed, txn_gone = 0, mail_refused = 0;
    size_t i, dropped = 0;

    if (ss->npend == 0)
        return;
    failed = r == NULL || relay_flush(r) < 0;
    if (failed)
        relay_lost(&rep);
    for (i = 0; i < ss->npend; i++) {
        struct smtp_pend *p = &ss->pend[i];

        if (!failed && relay_reply(r, 0, &rep, ss->s->id) < 0)
            failed = 1;
        if (!failed) {
            relay_final(r, &rep, ss->s->id);
            failed = r->broken;
        }
        switch (p->kind) {
        case PEND_RSET:
            if (!failed)
                r->in_txn = 0;
            break;
        case PEND_MAIL:
            if (!failed && rep.code / 100 == 2)
                r->in_txn = 1;
            else {
                txn_gone = 1;
                smtp_txn_abort(ss);
            }
            smtp_reply_backend(ss, &rep);
            break;
        case PEND_MAIL_QUIET:
            mail_refused = failed || rep.code / 100 != 2;
            if (!mail_refused)
                r->in_txn = 1;
            else {
                char l[256];
                log_info("%s: backend refused the sender: %s", ss->s->id,
                         breply_line(&rep, l, sizeof(l)));
                mail_refusal = rep;
                ss->mail_unsent = ss->s->txn != NULL;
            }
            break;
        case PEND_RCPT:
            if (mail_refused)
                rep = mail_refusal;
            if ((failed || rep.code / 100 != 2) && !txn_gone && ss->s->txn != NULL)
                txn_drop_rcpt(ss->s, p->index - dropped++);
            smtp_reply_backend(ss, &rep);
            break;
        case PEND_CMD:
            smtp_reply_backend(ss, &rep);
            break;
        }
    }
    ss->npend = 0;
    if (r != NULL && r->broken)
        relay_close(&ss->relay, 0);
}

/* Words of other protocols: the peer is not an SMTP client. */
static const char *const foreign_verbs[] = {
    "USER", "PASS", "GET", "POST", "CONNECT", "HEAD", "PUT", "OPTIONS", NULL
};

/* word_in - verb in list (case-insensitive)? */
static int word_in(const char *verb, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(verb, *list) == 0)
            return 1;
    return 0;
}

/* line_max - the longest command line verb may have, CRLF included. */
static size_t line_max(const char *verb)
{
    if (strcasecmp(verb, "AUTH") == 0)
        return SMTP_AUTH_LINE_MAX;      /* RFC 4954 4: initial responses */
    if (strcasecmp(verb, "MAIL") == 0 || strcasecmp(verb, "RCPT") == 0)
        return SMTP_CMD_MAX_ARGS;
    return SMTP_CMD_MAX;
}

/* smtp_command - dispatch one command line (CRLF still there). */
static void smtp_command(struct smtp_sess *ss, char *line, size_t len)
{
    char verb[16], *arg;
    size_t vl;
    int sync_needed;

    if (len < 2 || line[len - 2] != '\r' || memchr(line, '\0', len) != NULL ||
        memchr(line, '\r', len - 2) != NULL) {
        smtp_resolve(ss);
        smtp_reply(ss, 500, "5.5.2", "Syntax error: bare CR, LF or NUL in command");
        return;
    }
    line[len - 2] = '\0';
    len -= 2;
    for (vl = 0; vl < len && line[vl] != ' '; vl++)
        ;
    arg = line + vl;
    while (*arg == ' ')
        arg++;
    if (vl == 0 || vl >= sizeof(verb)) {
        smtp_resolve(ss);
        smtp_reply(ss, 500, "5.5.2", "Syntax error, command unrecognized");
        return;
    }
    memcpy(verb, line, vl);
    verb[vl] = '\0';
    log_debug("%s: client > %.*s", ss->s->id,
              strcasecmp(verb, "AUTH") == 0 ? (int)vl : (int)len, line);
    if (len + 2 > line_max(verb)) {
        smtp_resolve(ss);
        if (strcasecmp(verb, "AUTH") == 0)
            smtp_reply(ss, 500, "5.5.6", "Authentication exchange line is too long");
        else
            smtp_reply(ss, 500, "5.5.2", "Line too long");
        return;
    }
    /* RFC 2920: a client may pipeline only after EHLO said PIPELINING */
    sync_needed = !ss->helo_seen || !ss->s->esmtp || strcasecmp(verb, "EHLO") == 0 ||
                  strcasecmp(verb, "HELO") == 0;
    if (sync_needed && sio_avail(&ss->io) > 0 && strcasecmp(verb, "QUIT") != 0) {
        smtp_resolve(ss);
        log_info("%s: pipelining before EHLO from %s", ss->s->id, ss->s->client_addr);
        smtp_reply(ss, 554, "5.5.0", "Error: SMTP protocol synchronization");
        ss->quit = 1;
        return;
    }
    if (strcasecmp(verb, "MAIL") != 0 && strcasecmp(verb, "RCPT") != 0)
        smtp_resolve(ss);
    if (strcasecmp(verb, "QUIT") == 0) {
        smtp_reply(ss, 221, "2.0.0", "Bye");
        ss->quit = 1;
    } else if (word_in(verb, foreign_verbs)) {
        log_info("%s: non-SMTP command from %s: %s", ss->s->id, ss->s->client_addr, verb);
        smtp_reply(ss, 554, "5.5.1", "Not an SMTP client: closing");
        ss->quit = 1;
    } else if (ss->rejected) {
        if (ss->refusal.code)
            smtp_reply_chain(ss, &ss->refusal);
        else
            smtp_reply(ss, 503, "5.7.0", "Session refused: only QUIT");
    } else if (strcasecmp(verb, "STARTTLS") == 0) {
        smtp_cmd_starttls(ss, arg);
    } else if (strcasecmp(verb, "AUTH") == 0) {
        smtp_cmd_auth(ss, arg);
    } else if (strcasecmp(verb, "EHLO") == 0) {
        smtp_cmd_helo(ss, arg, 1);
    } else if (strcasecmp(verb, "HELO") == 0) {
        smtp_cmd_helo(ss, arg, 0);
    } else if (strcasecmp(verb, "MAIL") == 0) {
        smtp_cmd_mail(ss, arg);
    } else if (strcasecmp(verb, "RCPT") == 0) {
        smtp_cmd_rcpt(ss, arg);
    } else if (strcasecmp(verb, "DATA") == 0) {
        smtp_cmd_data(ss, arg);
    } else if (strcasecmp(verb, "BDAT") == 0) {
        smtp_cmd_bdat(ss, arg);
    } else if (strcasecmp(verb, "RSET") == 0) {
        smtp_cmd_rset(ss, arg);
    } else if (strcasecmp(verb, "VRFY") == 0) {
        smtp_cmd_query(ss, SUBM_STAGE_VRFY, verb, arg);
    } else if (strcasecmp(verb, "EXPN") == 0) {
        smtp_cmd_query(ss, SUBM_STAGE_EXPN, verb, arg);
    } else if (strcasecmp(verb, "HELP") == 0) {
        smtp_cmd_query(ss, SUBM_STAGE_HELP, verb, arg);
    } else if (strcasecmp(verb, "NOOP") == 0) {
        smtp_cmd_query(ss, SUBM_STAGE_NOOP, verb, arg);
    } else {
        smtp_cmd_unknown(ss, verb, line);
    }
}

/* smtp_tls_start - TLS handshake, then forget what was learnt in clear
 * (RFC 3207 4.2) and run the TLS stage; a refusal there leaves the
 * session answering every command but QUIT with the plugin's reply. */
int smtp_tls_start(struct smtp_sess *ss)
{
    char version[32], cipher[128];
    subm_arg_t a;
    struct reply r;
    subm_verdict_t v;

    if (smtp_tls_accept(&ss->io, ss->conf->timeout, version, sizeof(version),
                        cipher, sizeof(cipher)) < 0) {
        log_info("%s: TLS handshake with %s failed", ss->s->id, ss->s->client_addr);
        return -1;
    }
    ss->tls_on = 1;
    ss->helo_seen = 0;
    if (ss->s->txn != NULL)
        smtp_txn_abort(ss);
    session_reset_identity(ss->s);
    session_set_tls(ss->s, version, cipher, NULL);
    log_debug("%s: TLS %s %s", ss->s->id, version, cipher);
    memset(&a, 0, sizeof(a));
    a.text = version;
    v = smtp_stage(ss, SUBM_STAGE_TLS, &a, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
        ss->rejected = 1;
        ss->refusal = r;
    }
    return 0;
}

/* smtp_greet - CONNECT stage and banner; 0 to go on, -1 to close. */
static int smtp_greet(struct smtp_sess *ss)
{
    struct reply r;
    subm_verdict_t v;

    v = smtp_stage(ss, SUBM_STAGE_CONNECT, NULL, &r);
    if (v == SUBM_TEMPFAIL) {
        smtp_reply(ss, 421, "4.7.0", "%s Service not available, closing channel",
                   ss->hostname);
        return -1;
    }
    if (v == SUBM_REJECT) {
        /* RFC 5321 3.1: 554 instead of 220, then wait for QUIT */
        smtp_reply_chain(ss, &r);
        ss->rejected = 1;
        return 0;
    }
    if (ss->rejected) {                 /* refused at the TLS stage */
        smtp_reply_chain(ss, &ss->refusal);
        return 0;
    }
    if (sio_pending_input(&ss->io)) {
        char c;
        if (ss->io.in_end == ss->io.in_start &&
            recv(ss->io.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
            return -1;                  /* gone already (a port probe) */
        log_info("%s: client %s spoke before the greeting", ss->s->id,
                 ss->s->client_addr);
        smtp_reply(ss, 554, "5.5.0", "Error: SMTP protocol synchronization");
        return -1;
    }
    sio_printf(&ss->io, "220 %s ESMTP submilter\r\n", ss->hostname);
    return 0;
}

/* smtp_loop - read and answer commands until QUIT, error or timeout. */
static void smtp_loop(struct smtp_sess *ss)
{
    const char *line;
    size_t len;
    int rc, toolong;
    int64_t deadline = 0;

    while (!ss->quit) {
        rc = sio_getline(&ss->io, SMTP_AUTH_LINE_MAX, &line, &len, &toolong);
        if (rc == SIO_MORE) {
            smtp_resolve(ss);
            if (sio_flush(&ss->io, ss->conf->timeout) < 0)
                return;
            /* the timeout bounds a whole command line, so a client that
             * trickles one octet at a time is dropped all the same */
            if (deadline == 0)
                deadline = monotonic_ms() + ss->conf->timeout;
            rc = deadline > monotonic_ms() ?
                 sio_fill(&ss->io, (long)(deadline - monotonic_ms()), 1) : SIO_TIMEOUT;
            if (rc > 0)
                continue;
            if (rc == SIO_TIMEOUT) {
                log_info("%s: timeout waiting for a command from %s", ss->s->id,
                         ss->s->client_addr);
                smtp_reply(ss, 421, "4.4.2", "%s Error: timeout exceeded", ss->hostname);
            } else if (rc == SIO_STOP) {
                smtp_reply(ss, 421, "4.3.2", "%s Service shutting down, closing channel",
                           ss->hostname);
            } else if (ss->s->txn != NULL) {
                log_info("%s: client %s disconnected in a transaction", ss->s->id,
                         ss->s->client_addr);
            }
            return;
        }
        deadline = 0;
        if (toolong) {
            smtp_resolve(ss);
            smtp_reply(ss, 500, "5.5.2", "Line too long");
        } else {
            smtp_command(ss, (char *)line, len);
        }
        if (ss->errors >= SMTP_MAX_ERRORS && !ss->quit) {
            smtp_resolve(ss);
            log_info("%s: too many errors from %s", ss->s->id, ss->s->client_addr);
            smtp_reply(ss, 421, "4.7.0", "%s Too many errors, closing channel",
                       ss->hostname);
            return;
        }
    }
}

/* smtp_session_run - serve one client (see smtp_session.h). */
void smtp_session_run(struct config *cfg, int fd, const struct sockaddr *sa,
                      socklen_t salen, int stop_fd, int implicit_tls)
{
    struct smtp_sess ss;
    struct reply r;

    memset(&ss, 0, sizeof(ss));
    ss.s = session_new(cfg, "smtp");
    ss.conf = ss.s->cfg->smtp;
    if (ss.conf == NULL) {              /* a reload removed the smtp block */
        static const char bye[] = "421 4.3.2 Service not available\r\n";
        (void)send(fd, bye, sizeof(bye) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        session_free(&ss.s);
        return;
    }
    ss.hostname = ss.conf->hostname && *ss.conf->hostname ? ss.conf->hostname :
                  ss.s->cfg->root.hostname;
    sio_init(&ss.io, fd, SMTP_IN_BUF, SMTP_OUT_BUF);
    ss.io.stop_fd = stop_fd;
    ss.io.wtimeout = ss.conf->timeout;
    session_set_client(ss.s, sa, salen, "unknown");
    log_debug("%s: connect from %s port %d", ss.s->id, ss.s->client_addr,
              ss.s->client_port);
    if ((!implicit_tls || smtp_tls_start(&ss) == 0) && smtp_greet(&ss) == 0)
        smtp_loop(&ss);
    smtp_resolve(&ss);
    (void)sio_flush(&ss.io, 5000);
    if (ss.s->txn != NULL)
        smtp_txn_abort(&ss);
    (void)smtp_stage(&ss, SUBM_STAGE_CLOSE, NULL, &r);
    relay_close(&ss.relay, ss.relay != NULL && !ss.relay->broken);
    msgin_free(&ss.msg);
    free(ss.pend);
    ss.io.fd = -1;                      /* the caller closes it */
    sio_fini(&ss.io);
    session_free(&ss.s);
}
