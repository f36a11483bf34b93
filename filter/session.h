/*
 * session.h - the session and transaction model shared by both front-ends.
 *
 * A session is one client connection (smtp front-end) or one MTA connection
 * (milter front-end): who the client is, HELO, TLS, AUTH, the per-plugin
 * session slots, and at most one open transaction. A transaction runs from
 * MAIL to end of message or RSET/abort: sender and parameters, accepted
 * recipients, header fields, the body spool, the modifications plugins
 * recorded, per-plugin transaction slots. Each has its own pool; ending a
 * transaction resets its pool and runs the plugins' cleanups.
 *
 * Front-ends fill these with the setters below, run stages with chain_run(),
 * and at end of message read the modifications (txn->mods, in call order)
 * and apply them their own way. This module does not talk to the network.
 * A session belongs to one thread.
 */
#ifndef SUBM_SESSION_H
#define SUBM_SESSION_H

#include <stdint.h>
#include <sys/socket.h>
#include <submilter/plugin.h>
#include "chain.h"

struct pool;
struct spool;
struct config;

struct rcpt {
    char         *addr;
    subm_param_t *params;
    size_t        nparams;
};

struct header {
    char   *name;
    char   *value;      /* unfolded, leading blanks trimmed */
    char   *raw;        /* "Name:value" as received, folding kept, no CRLF */
    size_t  raw_len;
};

enum mod_type {
    MOD_ADD_HEADER,     /* name, value */
    MOD_INSERT_HEADER,  /* index, name, value */
    MOD_CHANGE_HEADER,  /* name, n (1-based), value (NULL: delete) */
    MOD_CHANGE_SENDER,  /* value = address, params = ESMTP text or NULL */
    MOD_ADD_RCPT,       /* value = address, params */
    MOD_DELETE_RCPT,    /* value = address */
    MOD_REPLACE_BODY    /* the new body is txn->new_body */
};

struct mod {
    enum mod_type  type;
    const char    *plugin;   /* who asked (for logs) */
    char          *name;
    char          *value;
    char          *params;
    size_t         index;
    int            n;
    struct mod    *next;
};

struct txn {
    struct pool   *pool;
    unsigned       number;           /* 1, 2, ... within the session */
    char          *queue_id;
    char          *sender;           /* "" null sender */
    subm_param_t  *params;
    size_t         nparams;
    struct rcpt   *rcpts;            /* recipients accepted so far */
    size_t         nrcpts, rcpt_cap;
    struct header *headers;
    size_t         nheaders, header_cap;
    uint64_t       size;             /* message octets seen (CRLF) */
    struct spool  *body;             /* the body as received (may be NULL) */
    struct spool  *new_body;         /* replacement body, if a plugin set one */
    struct mod    *mods, **mods_tail;
    size_t         nmods;
    void         **slots;            /* one per chain link */
    unsigned       stage_closed;     /* bit per stage ended by ACCEPT */
    int            discard;          /* a plugin said DISCARD */
};

/* The milter front-end answers macro lookups through this. */
typedef const char *(*session_macro_fn)(void *arg, const char *name);

struct session {
    struct pool        *pool;
    char                id[16];
    struct config      *cfg;         /* a reference held for the session */
    const struct chain *chain;       /* cfg->chain */
    const char         *frontend;    /* "smtp" or "milter" */
    struct sockaddr_storage client_sa;
    int                 have_sa;
    char               *client_addr;
    int                 client_port;
    char               *client_name;
    char               *helo;
    int                 esmtp;
    char               *tls_version, *tls_cipher, *tls_peer;
    char               *auth_login, *auth_mech, *auth_author;
    session_macro_fn    macro;
    void               *macro_arg;
    void              **slots;       /* one per chain link */
    struct txn         *txn;         /* NULL outside a transaction */
    unsigned            ntxn;
    int64_t             deadline;    /* monotonic ms; 0 = none */
    uint64_t            size_limit;  /* smallest subm_set_size_limit(); 0 = none */
};

/* session_new - with a reference to cfg (taken here). */
struct session *session_new(struct config *cfg, const char *frontend);
/* session_free - end any transaction, run session cleanups, drop cfg. */
void            session_free(struct session **sp);

void session_set_client(struct session *s, const struct sockaddr *sa,
                        socklen_t salen, const char *name);
/* session_set_client_text - for addresses known only as text (milter). */
void session_set_client_text(struct session *s, const char *addr, int port,
                             const char *name);
void session_set_helo(struct session *s, const char *name, int esmtp);
void session_set_tls(struct session *s, const char *version,
                     const char *cipher, const char *peer);
void session_set_auth(struct session *s, const char *login,
                      const char *mech, const char *author);
/* session_reset_identity - forget HELO/TLS/AUTH facts (after STARTTLS). */
void session_reset_identity(struct session *s);
/* session_set_deadline - the deadline plugins get, ms from now (0: default). */
void session_set_deadline(struct session *s, long ms);
int64_t monotonic_ms(void);

/* txn_begin - open a transaction (ends any open one first). */
struct txn *txn_begin(struct session *s, const char *sender,
                      const subm_param_t *params, size_t nparams);
/* txn_end - run cleanups, free it; s->txn becomes NULL. */
void        txn_end(struct session *s);
void        txn_set_queue_id(struct session *s, const char *id);
/* txn_add_rcpt - record an accepted recipient; returns its index. */
size_t      txn_add_rcpt(struct session *s, const char *addr,
                         const subm_param_t *params, size_t nparams);
/* txn_drop_rcpt - forget recipient i (the backend refused it after the chain
 * accepted it); later indexes move down by one. */
void        txn_drop_rcpt(struct session *s, size_t i);
/* txn_add_header - record a received field from its raw text ("Name:value",
 * folding kept, no final CRLF); fills *h_r for the HEADER stage's argument.
 * Returns -1 if raw is not a header field (no colon, bad name). */
int         txn_add_header(struct session *s, const char *raw, size_t len,
                           const struct header **h_r);
/* txn_body_write - append body octets to the body spool (made on demand). */
int         txn_body_write(struct session *s, const void *data, size_t len);

/* subm_ctx: what a hook's ctx points at. Built by chain_run per call. */
struct subm_ctx {
    struct session          *s;
    const struct chain_link *link;
    size_t                   slot;
    subm_stage_t             stage;
    struct reply            *reply;
    int64_t                  deadline;   /* monotonic ms */
};

/* api_ctx_init - set up a ctx for one stage (plugin_api.c). Being the one
 * call of plugin_api.c the core makes, it also ties that file, and so every
 * subm_* symbol plugins resolve against the executable, into each program. */
void api_ctx_init(struct subm_ctx *ctx, struct session *s, subm_stage_t stage,
                  struct reply *reply, int64_t deadline);

/* Parsing of ESMTP parameter text "A=1 B" into an array from pool. */
int  params_parse(struct pool *pool, const char *text,
                  subm_param_t **params_r, size_t *n_r);
const char *params_get(const subm_param_t *params, size_t n, const char *name);

#endif
