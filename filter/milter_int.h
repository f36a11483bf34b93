/*
 * milter_int.h - what the files of the milter front-end share, and nothing
 * the rest of the daemon needs (that is frontend.h).
 *
 *   milter.c        registration, listening socket, run and stop.
 *   milter_neg.c    per-connection negotiation: which protocol steps and
 *                   actions to ask for, which macros (smfi_setsymlist).
 *   milter_stage.c  the xxfi_* callbacks: protocol events to chain stages.
 *   milter_reply.c  verdicts to SMFIS_* codes and replies (smfi_setreply).
 *   milter_mods.c   the transaction's modifications applied at end of
 *                   message (smfi_addheader & co).
 *
 * One struct milter_conn lives per MTA connection, as libmilter's private
 * data: from xxfi_negotiate (or xxfi_connect, if the MTA skips negotiation)
 * to xxfi_close. libmilter runs the callbacks of one connection one at a
 * time, so it needs no lock.
 */
#ifndef SUBM_MILTER_INT_H
#define SUBM_MILTER_INT_H

#include <stdint.h>
#include <libmilter/mfapi.h>
#include <submilter/plugin.h>
#include "chain.h"

struct config;
struct pool;
struct session;

struct milter_conn {
    struct config  *cfg;          /* our reference, from config_acquire() */
    struct session *s;            /* made at xxfi_connect */
    unsigned long   actions;      /* SMFIF_* agreed with the MTA */
    unsigned long   steps;        /* SMFIP_* agreed with the MTA */
    int             negotiated;   /* 0: the MTA skipped negotiation */
    int             tls_done;     /* TLS stage run for this session */
    int             auth_done;    /* AUTH stage run for this session */
    int             txn_failed;   /* spool trouble: defer at EOM */
    int             eoh_counted;  /* the header/body blank line is in size */
    int64_t         txn_t0;       /* when MAIL came, for the summary's delay */
    subm_verdict_t  refuse_v;     /* session refused at CONNECT/HELO/TLS/AUTH */
    subm_stage_t    refuse_stage; /* ... at this stage ... */
    struct reply    refuse;       /* ... with this reply, repeated at MAIL */
    char            helo[1024];   /* s->helo, rewritten at each HELO */
    char            author[1024]; /* s->auth_author, rewritten at each MAIL */
};

/* milter.c */
struct milter_conn *milter_conn_new(SMFICTX *ctx);
void                milter_conn_free(SMFICTX *ctx);
void                milter_live_add(int delta);
void                milter_touch(void);

/* milter_neg.c */
/*
 * milter_neg_steps - the SMFIP_* flags to ask for, given the chain and
 * what the MTA offers: NO* for stages no plugin needs, with no_reply NR_*
 * for stages the front-end needs but no plugin can answer, SKIP and
 * HDR_LEADSPC when offered.
 */
unsigned long milter_neg_steps(const struct chain *ch, unsigned long offered,
                               int no_reply);
/* milter_neg_actions - the SMFIF_* flags to ask for among those offered. */
unsigned long milter_neg_actions(unsigned long offered);
/* milter_neg_macros - ask the MTA for the macros we read (smfi_setsymlist). */
int           milter_neg_macros(SMFICTX *ctx, const struct config *cfg);
/* The xxfi_negotiate callback. */
sfsistat      milter_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                               unsigned long f2, unsigned long f3,
                               unsigned long *pf0, unsigned long *pf1,
                               unsigned long *pf2, unsigned long *pf3);
/* milter_macro_ok - a well-formed macro name: one character or "{name}". */
int           milter_macro_ok(const char *name);

/* milter_stage.c: the xxfi_* callbacks (besides negotiate). */
sfsistat milter_connect(SMFICTX *ctx, char *host, struct sockaddr *sa);
sfsistat milter_helo(SMFICTX *ctx, char *helo);
sfsistat milter_envfrom(SMFICTX *ctx, char **argv);
sfsistat milter_envrcpt(SMFICTX *ctx, char **argv);
sfsistat milter_data(SMFICTX *ctx);
sfsistat milter_unknown(SMFICTX *ctx, const char *cmd);
sfsistat milter_header(SMFICTX *ctx, char *name, char *value);
sfsistat milter_eoh(SMFICTX *ctx);
sfsistat milter_body(SMFICTX *ctx, unsigned char *data, size_t len);
sfsistat milter_eom(SMFICTX *ctx);
sfsistat milter_abort(SMFICTX *ctx);
sfsistat milter_close(SMFICTX *ctx);

/* milter_reply.c */
/*
 * milter_verdict - the SMFIS_* answer for verdict v at stage, setting the
 * MTA reply from r for REJECT and TEMPFAIL. ACCEPT is never SMFIS_ACCEPT
 * (that would accept the whole message or connection and skip the rest of
 * the chain): a stage that passes is SMFIS_CONTINUE.
 */
sfsistat milter_verdict(SMFICTX *ctx, const struct session *s,
                        subm_stage_t stage, subm_verdict_t v,
                        const struct reply *r);
/* milter_setreply - hand r to libmilter: split lines, double '%'. 0 or -1. */
int      milter_setreply(SMFICTX *ctx, const struct session *s,
                         const struct reply *r);

/* milter_mods.c */
/* milter_apply_mods - apply txn->mods in order; 0, or -1 if one failed. */
int      milter_apply_mods(SMFICTX *ctx, struct milter_conn *c);
/* milter_header_value - value as the MTA wants it: LF folding, and a
 * leading space when SMFIP_HDR_LEADSPC was agreed. From pool. */
char    *milter_header_value(struct pool *pool, const char *value, int leadspc);

#endif
