/*
 * relay.h - the smtp front-end's client side: connections to the backend
 * MTA, their capabilities, a pool of idle connections reused across client
 * sessions, XCLIENT, commands and replies, and the encoder that writes a
 * message as DATA (CRLF line ends only, dot-stuffed, our own terminator).
 *
 * Calls: relay_open, relay_close, relay_cmd, relay_flush, relay_reply,
 * relay_final, relay_xclient (which ends an open backend transaction
 * first), relay_caps_cached, relay_data_put, relay_data_end,
 * relay_pool_drain, relay_cut_all. A struct relay belongs to one session
 * at a time; the pool and the capability cache are shared and locked. It
 * does not decide anything: which commands to send is the session's
 * business.
 */
#ifndef SUBM_RELAY_H
#define SUBM_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include "smtp_io.h"

struct smtp_conf;
struct session;

/* backend capabilities, from its EHLO reply */
#define RELAY_PIPELINING 0x001u
#define RELAY_SIZE       0x002u
#define RELAY_8BITMIME   0x004u
#define RELAY_DSN        0x008u
#define RELAY_SMTPUTF8   0x010u
#define RELAY_CHUNKING   0x020u
#define RELAY_ENHANCED   0x040u
#define RELAY_XCLIENT    0x080u
#define RELAY_STARTTLS   0x100u
#define RELAY_ETRN       0x200u

struct relay_caps {
    unsigned flags;
    uint64_t size;              /* SIZE limit, 0 = none given */
    char     xclient[160];      /* attribute names offered, space-separated */
};

/* A reply: the lines exactly as they go to the client, CRLF-terminated. */
#define RELAY_REPLY_MAX 4096
struct breply {
    int    code;
    size_t len;
    char   buf[RELAY_REPLY_MAX];
};

struct relay {
    struct sio        io;
    char             *backend;      /* "HOST:PORT", the pool key */
    int               xclient_mode;
    struct relay_caps caps;
    char              xclient_key[300]; /* whose identity XCLIENT gave */
    int               broken;       /* unusable: never pooled */
    int               in_txn;       /* MAIL sent, not yet ended or RSET */
    int               data_sent;    /* DATA sent, its reply not read yet */
    int               in_data;      /* the backend said 354: what it reads
                                       now is message. While either is set
                                       no command may go (it would be
                                       message text), so relay_close never
                                       pools or QUITs it: it just closes,
                                       and the message without its dot is
                                       dropped by the backend. */
    unsigned          uses;         /* sessions served */
    long              timeout;      /* ms for each reply */
    long              data_timeout; /* ms for the reply to the final dot */
    int               bol, cr;      /* data encoder state */
    char              sid[16];      /* the session using it, for -d logs */
    int64_t           idle_since;
    struct relay     *all_next, *all_prev;  /* every open one, for relay_cut_all */
};

/*
 * relay_open - a ready connection (greeted, EHLO done) to conf->backend:
 * from the pool if one is idle and alive, else new. NULL on failure, with a
 * 4xx reply for the client in fail_r (and one log line with sid).
 */
struct relay *relay_open(const struct smtp_conf *conf, const char *helo_name,
                         const char *sid, struct breply *fail_r);
/* relay_close - to the pool if reuse and healthy (RSET first if a
 * transaction is open), else QUIT/close; a connection in (or maybe in)
 * data mode is only closed. *rp becomes NULL. */
void relay_close(struct relay **rp, int reuse);
/* relay_alive - 1 if an idle connection has nothing to say (no 421 after
 * its timeout, no EOF): it can take the next command. */
int  relay_alive(struct relay *r);
/* relay_pool_drain - close every idle pooled connection (shutdown). */
void relay_pool_drain(void);
/* relay_cut_all - shut down the socket of every open connection, so that a
 * session still waiting on its backend after the shutdown grace ends at
 * once (with a 451) instead of at its backend timeout. */
void relay_cut_all(void);

/* relay_caps_cached - the last capabilities seen for backend; 0 if none. */
int  relay_caps_cached(const char *backend, struct relay_caps *caps_r);

/* relay_cmd - queue one command line (CRLF added); sent at relay_flush. */
void relay_cmd(struct relay *r, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
int  relay_flush(struct relay *r);
/*
 * relay_reply - read one reply within timeout_ms (<= 0: r->timeout). 0 with
 * the reply in rep (a backend 421 comes back as a 451 and marks the
 * connection broken); -1 if none came (timeout, closed, malformed): rep
 * holds the 451 for the client and the connection is broken.
 */
int  relay_reply(struct relay *r, long timeout_ms, struct breply *rep,
                 const char *sid);
/* relay_ask - relay_flush, then relay_reply with r->timeout: 0 with the
 * reply in rep, or -1 with rep holding the 451 for the client (the send
 * failed: relay_lost's; the reply: relay_reply's). */
int  relay_ask(struct relay *r, struct breply *rep, const char *sid);
/* relay_final - for a reply that must end its command: a 3xx becomes a
 * 451 4.3.0 and breaks the connection (the backend is out of step). */
void relay_final(struct relay *r, struct breply *rep, const char *sid);
/* relay_xclient - XCLIENT for session s if configured, offered and not done
 * for this identity yet; then EHLO again. 0, or -1 with rep filled. */
int  relay_xclient(struct relay *r, const struct session *s,
                   const char *helo_name, struct breply *rep);

/* Message data: relay_data_put any number of times, then relay_data_end
 * (which adds a final CRLF if missing and ".", and flushes). Bare CR and LF
 * become CRLF; lines starting with "." are stuffed. */
void relay_data_start(struct relay *r);
void relay_data_put(struct relay *r, const void *data, size_t len);
int  relay_data_end(struct relay *r);

/* breply_set - make a reply of our own (for failures). */
void breply_set(struct breply *rep, int code, const char *ecode,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* relay_lost - the 451 4.4.2 for a backend connection that broke. */
void relay_lost(struct breply *rep);
/* breply_line - the first line without CRLF into buf (for logs). */
const char *breply_line(const struct breply *rep, char *buf, size_t size);

#endif
