/*
 * smtp_session.h - one client session of the smtp front-end: the state
 * shared by the command handlers (smtp_session.c, smtp_cmd.c), the message
 * reader (smtp_data.c), address and parameter syntax (smtp_addr.c) and the
 * end-of-message relay (smtp_deliver.c). Internal to the smtp front-end.
 *
 * Replies to the client are appended to ss->io's output buffer and leave in
 * one write when the session next waits for input (a pipelined group gets
 * one segment). Commands relayed to the backend are queued the same way;
 * their replies are "pending" (ss->pend, in order) until the session
 * resolves them (smtp_resolve): before any reply of its own, before
 * waiting for the client, and at DATA/BDAT/RSET/QUIT. A recipient the chain
 * accepted is recorded on the transaction at once (so the next RCPT's
 * plugins count it) and taken off again if the backend refuses it.
 */
#ifndef SUBM_SMTP_SESSION_H
#define SUBM_SMTP_SESSION_H

#include <stdint.h>
#include <sys/socket.h>
#include <submilter/plugin.h>
#include "chain.h"
#include "relay.h"
#include "smtp_io.h"

struct config;
struct session;
struct smtp_conf;
struct msgin;

#define SMTP_CMD_MAX      512     /* RFC 5321 4.5.3.1.4 */
#define SMTP_CMD_MAX_ARGS 2048    /* MAIL/RCPT with parameters */
#define SMTP_AUTH_LINE_MAX (12288 + 2) /* RFC 4954 4, with CRLF */
#define SMTP_TEXT_MAX     1000    /* RFC 5321 4.5.3.1.6, with CRLF */
#define SMTP_IN_BUF       16384
#define SMTP_OUT_BUF      16384
#define SMTP_MAX_ERRORS   20      /* protocol errors before 421 */

/* What a queued backend command is; its reply is read in smtp_resolve. */
enum pend_kind {
    PEND_MAIL,          /* its reply goes to the client */
    PEND_MAIL_QUIET,    /* the client has our 250 (deferred MAIL): a refusal
                           becomes the reply to the RCPTs sent with it */
    PEND_RCPT,
    PEND_RSET,          /* no client reply */
    PEND_CMD
};

struct smtp_pend {
    enum pend_kind kind;
    size_t         index;         /* RCPT: its place in txn->rcpts */
};

struct smtp_sess {
    struct session         *s;
    const struct smtp_conf *conf;
    const char             *hostname;
    struct sio              io;
    struct relay           *relay;
    int                     helo_seen;
    int                     rejected;     /* CONNECT/TLS refused: only QUIT */
    struct reply            refusal;      /* what other commands then get */
    int                     tls_on;       /* TLS is up (STARTTLS or implicit) */
    int                     quit;         /* close after this group */
    unsigned                errors;
    unsigned                adv;          /* RELAY_* bits advertised at EHLO */
    uint64_t                size_max;     /* the SIZE we enforce */
    int                     body_8bit;    /* MAIL BODY=8BITMIME */
    int                     smtputf8;     /* MAIL SMTPUTF8 */
    int                     txn_bdat;     /* this transaction used BDAT */
    int                     relay_txn;    /* this transaction's MAIL went to
                                             ss->relay: no other may serve it */
    int                     mail_unsent;  /* MAIL answered by us, to go to the
                                             backend with the next RCPT */
    int                     data_started; /* DATA stage run (first BDAT) */
    int64_t                 txn_t0;
    struct smtp_pend       *pend;
    size_t                  npend, pend_cap;
    struct msgin           *msg;          /* message reader, made once */
};

/* smtp_session_run - serve one admitted client on fd (the caller closes
 * it) under cfg (the caller's reference; the session takes its own);
 * implicit_tls: handshake before the banner (RFC 8314). */
void smtp_session_run(struct config *cfg, int fd, const struct sockaddr *sa,
                      socklen_t salen, int stop_fd, int implicit_tls);
/* smtp_tls_start - handshake and TLS stage; 0, or -1 (close the session). */
int  smtp_tls_start(struct smtp_sess *ss);

/* Replies (smtp_session.c). */
void smtp_reply(struct smtp_sess *ss, int code, const char *ecode,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void smtp_reply_chain(struct smtp_sess *ss, const struct reply *r);
void smtp_reply_backend(struct smtp_sess *ss, const struct breply *b);
/* smtp_stage - chain_run with a fresh plugin deadline. */
subm_verdict_t smtp_stage(struct smtp_sess *ss, subm_stage_t stage,
                          subm_arg_t *arg, struct reply *r);
/* smtp_resolve - send queued backend commands, read their replies, answer
 * the client for each in order. */
void smtp_resolve(struct smtp_sess *ss);
/* smtp_backend - make sure ss->relay is open (and XCLIENTed); 0 or -1
 * after answering the client with the failure. Inside a transaction whose
 * connection broke it opens none (451): only the end of message may replace
 * that connection, replaying the envelope. */
int  smtp_backend(struct smtp_sess *ss);
/* smtp_txn_abort - end the transaction (RSET stage, backend RSET later). */
void smtp_txn_abort(struct smtp_sess *ss);

/* Commands (smtp_cmd.c): each handles one line's argument. */
void smtp_cmd_helo(struct smtp_sess *ss, const char *arg, int esmtp);
void smtp_cmd_mail(struct smtp_sess *ss, char *arg);
void smtp_cmd_rcpt(struct smtp_sess *ss, char *arg);
void smtp_cmd_data(struct smtp_sess *ss, const char *arg);
void smtp_cmd_bdat(struct smtp_sess *ss, const char *arg);
void smtp_cmd_rset(struct smtp_sess *ss, const char *arg);
void smtp_cmd_starttls(struct smtp_sess *ss, const char *arg);
/* AUTH (smtp_auth.c). */
void smtp_cmd_auth(struct smtp_sess *ss, const char *arg);
int  smtp_auth_offered(const struct smtp_sess *ss);
void smtp_cmd_query(struct smtp_sess *ss, subm_stage_t stage, const char *verb,
                    const char *arg);
void smtp_cmd_unknown(struct smtp_sess *ss, const char *verb, const char *line);

/* Address and parameter syntax (smtp_addr.c). */
#define ADDR_OK        0
#define ADDR_SYNTAX   -1     /* 501 5.5.2 / 553 */
#define ADDR_UTF8     -2     /* 553 5.6.7: non-ASCII without SMTPUTF8 */
#define ADDR_TOOLONG  -3
/* smtp_parse_path - "<addr> params" after "FROM:"/"TO:"; *addr_r and
 * *params_r point into arg (modified in place). */
int  smtp_parse_path(char *arg, int allow_null, int allow_postmaster,
                     int utf8, char **addr_r, char **params_r);
/* smtp_xtext_ok - RFC 3461 xtext whose decoding has no CR, LF or NUL. */
int  smtp_xtext_ok(const char *v);

/* Message reading (smtp_data.c). */
struct msgin *msgin_new(void);
void msgin_free(struct msgin **mp);
void msgin_start(struct smtp_sess *ss, int bdat);
/* msgin_feed - consume message bytes; DATA mode stops after CRLF.CRLF and
 * returns 1 then (*used_r tells how much was taken). */
int  msgin_feed(struct smtp_sess *ss, const char *p, size_t n, size_t *used_r);
/* msgin_end - end of message reached: flush stages; 0, or -1 with the
 * reply the message gets in *r (failure recorded during reading). */
int  msgin_end(struct smtp_sess *ss, struct reply *r);
/* msgin_check - -1 with the reply if the message already failed. */
int  msgin_check(struct smtp_sess *ss, struct reply *r);
int  msgin_had_separator(const struct smtp_sess *ss);
uint64_t msgin_size(const struct smtp_sess *ss);
/* msgin_fill - more message data from the client (as sio_fill): waits up
 * to data_timeout, and, if rated (the octets go into the current message),
 * no longer than min_data_rate allows: data_timeout from the start of the
 * message data plus the time the octets received so far earn at that rate.
 * A client trickling its message cannot hold a session without end. */
int      msgin_fill(struct smtp_sess *ss, int rated);

/* End of message (smtp_deliver.c): EOM stage, relay, reply, summary. */
void smtp_deliver(struct smtp_sess *ss);
/* smtp_log_summary - the per-message line. */
void smtp_log_summary(struct smtp_sess *ss, const char *verdict,
                      int code, const char *detail);

#endif
