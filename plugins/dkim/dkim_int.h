/*
 * dkim_int.h - what the dkim plugin's files share: the instance (options and
 * what init made), the transaction state, and the calls between dkim.c (the
 * plugin: options, init, hooks), dkim_sign.c (signing) and dkim_verify.c
 * (verification). Not part of any public API.
 */
#ifndef SUBM_DKIM_INT_H
#define SUBM_DKIM_INT_H

#include <stddef.h>
#include <stdint.h>
#include <opendkim/dkim.h>
#include <submilter/plugin.h>
#include "dkim_ed25519.h"
#include "dkim_keys.h"
#include "dkim_pubkey.h"
#include "netlist.h"

#define MAX_HEADERS 1000      /* fields kept for signing; more: not signed */
#define MAX_NOTES   8         /* key lookups remembered per message */
#define MAX_RESULTS 8         /* signatures reported per message */

enum canon { CANON_RELAXED = 0, CANON_SIMPLE };

struct dkim_conf {
    int                sign;
    int                verify;
    const char        *sign_table;
    const char *const *internal_networks;
    int                header_canon;
    int                body_canon;
    const char *const *sign_headers;
    const char *const *oversign_headers;
    const char        *authserv_id;
    int                strip_forged;
    const char        *test_keys;
    /* made by init */
    struct netlist    *internal;
    struct sign_table *table;
    struct pk_source  *keys;
    DKIM_LIB          *lib;
};

/* A key lookup made during verification, to correct libopendkim's answer. */
struct lookup_note {
    char           domain[256];
    char           selector[128];
    enum pk_status status;
    char           keytype[16];
    int            mismatch;       /* k= does not fit a= */
};

struct dkim_txn {
    struct dkim_conf      *cf;
    int                    sign_mode;
    /* signing */
    char                 **hdrs;
    size_t                *hlens;
    size_t                 nhdrs;
    int                    too_many;
    struct ed_signer      *eds[DKIM_KEYS_MAX_MATCH];       /* rsa and ed25519 */
    const struct dkim_key *keys[DKIM_KEYS_MAX_MATCH];
    size_t                 nsigners;
    /* verifying */
    DKIM                  *verifier;
    int                    nosig, broken;
    int64_t                deadline;
    int                    timed_out;
    struct lookup_note     notes[MAX_NOTES];
    size_t                 nnotes;
};

/* dkim_alg_name - a= text of a DKIM_SIGN_* value */
const char *dkim_alg_name(int alg);

/* dkim_sign.c: start the signers at end of header (keys chosen by From:),
 * feed them body chunks, insert their signatures at end of message. */
subm_verdict_t dkim_sign_start(subm_ctx_t *ctx, struct dkim_txn *t);
void           dkim_sign_body(struct dkim_txn *t, const unsigned char *data, size_t len);
subm_verdict_t dkim_sign_finish(subm_ctx_t *ctx, struct dkim_txn *t);

/* dkim_verify.c: our callbacks into the library handle; feed the verifier
 * header fields, the end of header and body chunks; at end of message add
 * Authentication-Results. */
int            dkim_verify_setup(DKIM_LIB *lib);
void           dkim_verify_header(subm_ctx_t *ctx, struct dkim_txn *t, const subm_arg_t *arg);
subm_verdict_t dkim_verify_eoh(subm_ctx_t *ctx, struct dkim_txn *t);
void           dkim_verify_body(struct dkim_txn *t, const unsigned char *data, size_t len);
subm_verdict_t dkim_verify_finish(subm_ctx_t *ctx, struct dkim_txn *t);

#endif
