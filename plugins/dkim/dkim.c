/*
 * dkim.c - the dkim plugin: DKIM signing (RFC 6376; rsa-sha256 with
 * libopendkim, ed25519-sha256 (RFC 8463) with dkim_ed25519.c) of what
 * internal clients submit, and optional verification of what others send
 * with libopendkim.
 *
 * Internal = the session authenticated (subm_auth_login) or the client is
 * in internal_networks. For those, header fields are kept as they arrive;
 * at the end of the header the signing key(s) are chosen by the From:
 * address (a message without From: is not signed) from sign_table
 * (dkim_keys.c), each signer gets the header fields and then each body
 * chunk, and at end of message each signature is inserted as the first
 * field through the modification API, so both front-ends add the same
 * field. What is signed is the message as the client sent it: fields other
 * plugins add are not covered, and a plugin that changes a signed field or
 * the body breaks the signature, wherever it sits in the chain
 * (modifications are applied after the whole chain ran).
 *
 * With verify = yes, other clients' messages are fed to a verifying handle;
 * public keys come from dkim_pubkey.c (DNS under the stage deadline, or a
 * test file), and at end of message an Authentication-Results field with a
 * dkim= clause per signature replaces any forged one carrying our
 * authserv-id. Where libopendkim's answer is not RFC 6376's, ours wins: a
 * missing key is permerror and a DNS failure temperror, and a key whose k=
 * does not match the signature's a= is permerror. A deadline that passes
 * during a key lookup gives 451 4.4.3 for that message.
 *
 * Does not do ADSP, DMARC, ARC or body length limits (l=).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <opendkim/dkim.h>
#include <submilter/plugin.h>
#include "authres.h"
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
    DKIM                  *signers[DKIM_KEYS_MAX_MATCH];   /* rsa: libopendkim */
    struct ed_signer      *eds[DKIM_KEYS_MAX_MATCH];       /* ed25519: ours */
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

static const char *const canon_names[] = { "relaxed", "simple", NULL };

#define O(f) offsetof(struct dkim_conf, f)
static const subm_option_t dkim_options_table[] = {
    { "sign", SUBM_OPT_BOOL, "yes", O(sign), 0, 0, NULL,
      "sign messages of authenticated and internal clients" },
    { "verify", SUBM_OPT_BOOL, "no", O(verify), 0, 0, NULL,
      "verify other clients' signatures, add Authentication-Results" },
    { "sign_table", SUBM_OPT_PATH, "", O(sign_table), 0, 0, NULL,
      "PATTERN DOMAIN SELECTOR KEYFILE lines" },
    { "internal_networks", SUBM_OPT_LIST, "{\"127.0.0.0/8\", \"::1\"}", O(internal_networks),
      0, 0, NULL, "clients whose mail is signed without AUTH" },
    { "header_canon", SUBM_OPT_ENUM, "relaxed", O(header_canon), 0, 0, canon_names,
      "header canonicalization" },
    { "body_canon", SUBM_OPT_ENUM, "relaxed", O(body_canon), 0, 0, canon_names,
      "body canonicalization" },
    { "sign_headers", SUBM_OPT_LIST,
      "{\"From\", \"Sender\", \"Reply-To\", \"Subject\", \"Date\", \"To\", \"Cc\", "
      "\"Message-ID\", \"In-Reply-To\", \"References\", \"MIME-Version\", "
      "\"Content-Type\", \"Content-Transfer-Encoding\", \"List-Id\", "
      "\"List-Unsubscribe\", \"List-Unsubscribe-Post\"}",
      O(sign_headers), 0, 0, NULL, "header fields signed when present" },
    { "oversign_headers", SUBM_OPT_LIST, "{\"From\"}", O(oversign_headers), 0, 0, NULL,
      "fields signed once more than present, so none can be added" },
    { "authserv_id", SUBM_OPT_STR, "", O(authserv_id), 0, 0, NULL,
      "Authentication-Results authserv-id (default: hostname)" },
    { "strip_forged", SUBM_OPT_BOOL, "yes", O(strip_forged), 0, 0, NULL,
      "remove received Authentication-Results with our authserv-id" },
    { "test_keys", SUBM_OPT_PATH, "", O(test_keys), 0, 0, NULL,
      "tests only: public key records from this file, not the DNS" },
    SUBM_OPT_END
};

/* now_ms - monotonic milliseconds */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* alg_name - a= text */
static const char *alg_name(int alg)
{
    return alg == DKIM_SIGN_ED25519SHA256 ? "ed25519-sha256"
         : alg == DKIM_SIGN_RSASHA1 ? "rsa-sha1" : "rsa-sha256";
}

/* note_find - the lookup note for (domain, selector), or NULL */
static struct lookup_note *note_find(struct dkim_txn *t, const char *d, const char *s)
{
    size_t i;

    for (i = 0; i < t->nnotes; i++)
        if (strcasecmp(t->notes[i].domain, d) == 0 && strcasecmp(t->notes[i].selector, s) == 0)
            return &t->notes[i];
    return NULL;
}

/* key_lookup - libopendkim's key callback: our source, our notes */
static DKIM_CBSTAT key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
    struct dkim_txn *t = dkim_get_user_context(dkim);
    const char *d = (const char *)dkim_sig_getdomain(sig);
    const char *s = (const char *)dkim_sig_getselector(sig);
    struct lookup_note *n;
    dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
    char name[512];
    int len;

    if (!t || !d || !s)
        return DKIM_CBSTAT_ERROR;
    len = snprintf(name, sizeof(name), "%s._domainkey.%s", s, d);
    if (len < 0 || (size_t)len >= sizeof(name))
        return DKIM_CBSTAT_NOTFOUND;
    n = note_find(t, d, s);
    if (!n && t->nnotes < MAX_NOTES) {
        n = &t->notes[t->nnotes++];
        snprintf(n->domain, sizeof(n->domain), "%s", d);
        snprintf(n->selector, sizeof(n->selector), "%s", s);
    }
    if (!n)
        return DKIM_CBSTAT_ERROR;
    n->status = dkim_pubkey_lookup(t->cf->keys, name, (char *)buf, buflen,
                                   (long)(t->deadline - now_ms()));
    switch (n->status) {
    case PK_FOUND:
        dkim_pubkey_keytype((char *)buf, n->keytype, sizeof(n->keytype));
        dkim_sig_getsignalg(sig, &alg);
        /* RFC 8463 / 6376 3.6.1: the key type must be the signature's. */
        n->mismatch = strcasecmp(n->keytype,
                                 alg == DKIM_SIGN_ED25519SHA256 ? "ed25519" : "rsa") != 0;
        return DKIM_CBSTAT_CONTINUE;
    case PK_MISSING:
        return DKIM_CBSTAT_NOTFOUND;
    case PK_TIMEOUT:
        t->timed_out = 1;
        return DKIM_CBSTAT_ERROR;
    default:
        return DKIM_CBSTAT_ERROR;
    }
}

/* prescreen - libopendkim's hook before key lookups: a message with more
 * signatures than we report gets the rest ignored, so a flood of
 * signatures cannot make a flood of DNS queries */
static DKIM_CBSTAT prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
    int i;

    for (i = MAX_RESULTS; i < nsigs; i++)
        dkim_sig_ignore(sigs[i]);
    return DKIM_CBSTAT_CONTINUE;
}

/* lib_setup - one libopendkim library handle per instance */
static int lib_setup(struct dkim_conf *cf, subm_error_t *err)
{
    size_t i;
    int has_from = 0;

    for (i = 0; cf->sign_headers && cf->sign_headers[i]; i++)
        has_from |= strcasecmp(cf->sign_headers[i], "From") == 0;
    if (!has_from)
        return subm_error(err, "sign_headers must include From (RFC 6376 5.4)");
    if (!(cf->lib = dkim_init(NULL, NULL)))
        return subm_error(err, "libopendkim: dkim_init failed");
    if (dkim_options(cf->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
                     (void *)cf->sign_headers, sizeof(cf->sign_headers)) != DKIM_STAT_OK)
        return subm_error(err, "libopendkim refused sign_headers");
    if (cf->oversign_headers && cf->oversign_headers[0]
        && dkim_options(cf->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
                        (void *)cf->oversign_headers,
                        sizeof(cf->oversign_headers)) != DKIM_STAT_OK)
        return subm_error(err, "libopendkim refused oversign_headers");
    if (dkim_set_key_lookup(cf->lib, key_lookup) != DKIM_STAT_OK
        || dkim_set_prescreen(cf->lib, prescreen) != DKIM_STAT_OK)
        return subm_error(err, "libopendkim refused our callbacks");
    return 0;
}

static void dkim_fini(void *conf);

/* init_parts - keys, networks, key source, library */
static int init_parts(void *conf, subm_error_t *err)
{
    struct dkim_conf *cf = conf;
    char msg[512];

    if (!(cf->internal = netlist_new(cf->internal_networks, msg, sizeof(msg))))
        return subm_error(err, "internal_networks: %s", msg);
    if (cf->sign && cf->sign_table && cf->sign_table[0]
        && !(cf->table = sign_table_load(cf->sign_table, msg, sizeof(msg))))
        return subm_error(err, "%s", msg);
    if (cf->sign && !cf->table && !cf->verify)
        return subm_error(err, "nothing to do: set sign_table, or verify = yes");
    if (cf->verify && !(cf->keys = dkim_pubkey_new(cf->test_keys, msg, sizeof(msg))))
        return subm_error(err, "%s", msg);
    return lib_setup(cf, err);
}

/* dkim_init_conf - init_parts, undone if it fails half-way */
static int dkim_init_conf(void *conf, subm_error_t *err)
{
    if (init_parts(conf, err) == 0)
        return 0;
    dkim_fini(conf);
    return -1;
}

/* dkim_fini - free what init made (safe to call twice) */
static void dkim_fini(void *conf)
{
    struct dkim_conf *cf = conf;

    if (cf->lib)
        dkim_close(cf->lib);
    cf->lib = NULL;
    dkim_pubkey_free(&cf->keys);
    sign_table_free(&cf->table);
    netlist_free(&cf->internal);
}

/* txn_cleanup - free libopendkim handles when the transaction ends */
static void txn_cleanup(void *arg)
{
    struct dkim_txn *t = arg;
    size_t i;

    for (i = 0; i < t->nsigners; i++) {
        if (t->signers[i])
            dkim_free(t->signers[i]);
        ed_signer_free(&t->eds[i]);
    }
    t->nsigners = 0;
    if (t->verifier)
        dkim_free(t->verifier);
    t->verifier = NULL;
}

/* txn_get - this transaction's state, or NULL */
static struct dkim_txn *txn_get(subm_ctx_t *ctx)
{
    void **slot = subm_txn_slot(ctx);

    return slot ? *slot : NULL;
}

/* dkim_mail - decide: sign (internal client), verify, or nothing */
static subm_verdict_t dkim_mail(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_conf *cf = subm_instance(ctx);
    void **slot = subm_txn_slot(ctx);
    struct dkim_txn *t;
    int internal = subm_auth_login(ctx) != NULL
                   || netlist_match(cf->internal, subm_client_sockaddr(ctx));

    if (!slot)
        return SUBM_CONTINUE;
    if (!(internal ? cf->table != NULL : cf->verify))
        return SUBM_CONTINUE;
    t = subm_txn_alloc(ctx, sizeof(*t));
    if (!t || subm_txn_on_end(ctx, txn_cleanup, t) < 0)
        return subm_tempfail(ctx, 451, "4.3.0", "DKIM: out of memory");
    t->cf = cf;
    t->sign_mode = internal;
    t->hdrs = subm_txn_alloc(ctx, MAX_HEADERS * sizeof(char *));
    t->hlens = subm_txn_alloc(ctx, MAX_HEADERS * sizeof(size_t));
    if (!t->hdrs || !t->hlens)
        return subm_tempfail(ctx, 451, "4.3.0", "DKIM: out of memory");
    *slot = t;
    return SUBM_CONTINUE;
}

/* verifier_header - feed one field to the verifying handle */
static void verifier_header(subm_ctx_t *ctx, struct dkim_txn *t, const subm_arg_t *arg)
{
    DKIM_STAT st;

    if (t->broken)
        return;
    if (!t->verifier) {
        t->verifier = dkim_verify(t->cf->lib, (const u_char *)subm_session_id(ctx), NULL, &st);
        if (!t->verifier) {
            subm_log(ctx, SUBM_LOG_WARN, "libopendkim: cannot verify (%s)", dkim_getresultstr(st));
            t->broken = 1;
            return;
        }
        dkim_set_user_context(t->verifier, t);
    }
    /* A malformed field is the signer's problem: the result will say so. */
    dkim_header(t->verifier, (u_char *)(uintptr_t)arg->raw, arg->raw_len);
}

/* dkim_header_hook - keep fields for signing, or feed the verifier */
static subm_verdict_t dkim_header_hook(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_txn *t = txn_get(ctx);
    char *copy;

    if (!t || !arg->raw)
        return SUBM_CONTINUE;
    if (!t->sign_mode) {
        verifier_header(ctx, t, arg);
        return SUBM_CONTINUE;
    }
    if (t->nhdrs == MAX_HEADERS) {
        t->too_many = 1;
        return SUBM_CONTINUE;
    }
    if (!(copy = subm_txn_alloc(ctx, arg->raw_len + 1)))
        return subm_tempfail(ctx, 451, "4.3.0", "DKIM: out of memory");
    memcpy(copy, arg->raw, arg->raw_len);
    t->hdrs[t->nhdrs] = copy;
    t->hlens[t->nhdrs++] = arg->raw_len;
    return SUBM_CONTINUE;
}

/* author_address - the From: address into buf; -1 if there is no From: */
static int author_address(subm_ctx_t *ctx, char *buf, size_t size)
{
    const char *from = subm_txn_header_find(ctx, "From", 1);
    const char *lt, *gt;

    if (!from)
        return -1;
    if ((lt = strrchr(from, '<')) && (gt = strchr(lt, '>'))) {
        snprintf(buf, size, "%.*s", (int)(gt - lt - 1), lt + 1);
    } else {
        from += strspn(from, " \t");
        snprintf(buf, size, "%.*s", (int)strcspn(from, " \t("), from);
    }
    return 0;
}

/* signer_new - one signing handle fed with the kept header fields; NULL
 * with *refused set if libopendkim refused the header (not our fault) */
static DKIM *signer_new(subm_ctx_t *ctx, struct dkim_txn *t, const struct dkim_key *k,
                        int *refused)
{
    const struct dkim_conf *cf = t->cf;
    DKIM_STAT st;
    DKIM *d;
    size_t i;

    d = dkim_sign(cf->lib, (const u_char *)subm_session_id(ctx), NULL, k->pem,
                  (const u_char *)k->selector, (const u_char *)k->domain,
                  cf->header_canon == CANON_SIMPLE ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED,
                  cf->body_canon == CANON_SIMPLE ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED,
                  k->alg, -1, &st);
    if (!d) {
        subm_log(ctx, SUBM_LOG_WARN, "libopendkim: cannot sign with %s: %s", k->path,
                 dkim_getresultstr(st));
        return NULL;
    }
    for (i = 0; i < t->nhdrs && st == DKIM_STAT_OK; i++)
        st = dkim_header(d, (u_char *)t->hdrs[i], t->hlens[i]);
    if (st == DKIM_STAT_OK)
        st = dkim_eoh(d);
    if (st != DKIM_STAT_OK) {
        subm_log(ctx, SUBM_LOG_WARN, "libopendkim: header refused for signing (%s): "
                 "not signed", dkim_getresultstr(st));
        dkim_free(d);
        *refused = 1;
        return NULL;
    }
    return d;
}

/* ed_signer_start - one of our ed25519 signers for key k */
static struct ed_signer *ed_signer_start(const struct dkim_txn *t, const struct dkim_key *k)
{
    const struct dkim_conf *cf = t->cf;
    struct ed_params p = {
        .pkey = k->pkey, .domain = k->domain, .selector = k->selector,
        .header_simple = cf->header_canon == CANON_SIMPLE,
        .body_simple = cf->body_canon == CANON_SIMPLE,
        .sign_headers = cf->sign_headers, .oversign_headers = cf->oversign_headers,
    };

    return ed_signer_new(&p);
}

/* signers_start - choose keys and start one signer each */
static subm_verdict_t signers_start(subm_ctx_t *ctx, struct dkim_txn *t)
{
    const struct dkim_key *keys[DKIM_KEYS_MAX_MATCH];
    char author[512];
    size_t n, i;

    if (t->too_many) {
        subm_log(ctx, SUBM_LOG_WARN, "more than %d header fields: not signed", MAX_HEADERS);
        return SUBM_CONTINUE;
    }
    if (author_address(ctx, author, sizeof(author)) < 0) {
        subm_log(ctx, SUBM_LOG_WARN, "no From: field: not signed");
        return SUBM_CONTINUE;
    }
    n = sign_table_match(t->cf->table, author, keys, DKIM_KEYS_MAX_MATCH);
    if (n == 0) {
        subm_log(ctx, SUBM_LOG_DEBUG, "no signing key for <%s>", author);
        return SUBM_CONTINUE;
    }
    for (i = 0; i < n; i++) {
        int refused = 0;
        DKIM *d = NULL;
        struct ed_signer *ed = NULL;

        if (keys[i]->alg == DKIM_SIGN_ED25519SHA256)
            ed = ed_signer_start(t, keys[i]);
        else
            d = signer_new(ctx, t, keys[i], &refused);
        if (!d && !ed && refused)
            return SUBM_CONTINUE;
        if (!d && !ed)
            return subm_tempfail(ctx, 451, "4.3.0", "DKIM signing failed; try again later");
        t->keys[t->nsigners] = keys[i];
        t->eds[t->nsigners] = ed;
        t->signers[t->nsigners++] = d;
    }
    return SUBM_CONTINUE;
}

/* dkim_eoh_hook - start signing, or let the verifier see the end of header */
static subm_verdict_t dkim_eoh_hook(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_txn *t = txn_get(ctx);
    DKIM_STAT st;

    if (!t)
        return SUBM_CONTINUE;
    if (t->sign_mode)
        return signers_start(ctx, t);
    /* Forged results go now, before any plugin adds its own at EOM, so a
     * second plugin stripping the same fields can only hit received ones. */
    if (t->cf->strip_forged)
        authres_strip_forged(ctx, authres_id(ctx, t->cf->authserv_id));
    if (!t->verifier || t->broken)
        return SUBM_CONTINUE;
    t->deadline = now_ms() + subm_time_left_ms(ctx);
    st = dkim_eoh(t->verifier);
    if (t->timed_out)
        return subm_tempfail(ctx, 451, "4.4.3", "DKIM key lookup timed out; try again later");
    if (st == DKIM_STAT_NOSIG)
        t->nosig = 1;
    return SUBM_CONTINUE;
}

/* dkim_body_hook - body chunks to every handle */
static subm_verdict_t dkim_body_hook(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_txn *t = txn_get(ctx);
    u_char *data = (u_char *)(uintptr_t)arg->data;
    size_t i;

    if (!t || arg->len == 0)
        return SUBM_CONTINUE;
    for (i = 0; i < t->nsigners; i++) {
        if (t->eds[i])
            ed_signer_body(t->eds[i], data, arg->len);
        else
            dkim_body(t->signers[i], data, arg->len);
    }
    if (t->verifier && !t->nosig && !t->broken)
        dkim_body(t->verifier, data, arg->len);
    return SUBM_CONTINUE;
}

/* crlf_fold - libopendkim's folding (LF or CRLF) as CRLF, in buf */
static int crlf_fold(const u_char *in, size_t len, char *buf, size_t size)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        if (in[i] == '\r')
            continue;
        if (in[i] == '\n') {
            if (o + 2 >= size)
                return -1;
            buf[o++] = '\r';
        }
        if (o + 1 >= size)
            return -1;
        buf[o++] = (char)in[i];
    }
    buf[o] = '\0';
    return 0;
}

/* signature_value - signer i's DKIM-Signature value into value */
static int signature_value(struct dkim_txn *t, size_t i, char *value, size_t size,
                           const char **why)
{
    u_char *hdr;
    size_t len;
    DKIM_STAT st;

    *why = "signature not made";
    if (t->eds[i])
        return ed_signer_finish(t->eds[i], t->hdrs, t->hlens, t->nhdrs, time(NULL),
                                value, size);
    st = dkim_eom(t->signers[i], NULL);
    if (st == DKIM_STAT_OK)
        st = dkim_getsighdr_d(t->signers[i], strlen("DKIM-Signature: "), &hdr, &len);
    if (st != DKIM_STAT_OK) {
        *why = dkim_getresultstr(st);
        return -1;
    }
    return crlf_fold(hdr, len, value, size);
}

/* sign_finish - close every signer, insert its DKIM-Signature */
static subm_verdict_t sign_finish(subm_ctx_t *ctx, struct dkim_txn *t)
{
    char value[8192];
    const char *why;
    size_t i;

    for (i = 0; i < t->nsigners; i++) {
        if (signature_value(t, i, value, sizeof(value), &why) < 0
            || subm_txn_insert_header(ctx, 0, "DKIM-Signature", value) < 0) {
            subm_log(ctx, SUBM_LOG_WARN, "signing with %s failed: %s", t->keys[i]->path, why);
            return subm_tempfail(ctx, 451, "4.3.0", "DKIM signing failed; try again later");
        }
        subm_log(ctx, SUBM_LOG_INFO, "signed d=%s s=%s a=%s", t->keys[i]->domain,
                 t->keys[i]->selector, alg_name(t->keys[i]->alg));
    }
    return SUBM_CONTINUE;
}

/* sig_result - the RFC 8601 result of one signature, with a reason */
static const char *sig_result(struct dkim_txn *t, DKIM_SIGINFO *sig, const char **why)
{
    const char *d = (const char *)dkim_sig_getdomain(sig);
    const char *s = (const char *)dkim_sig_getselector(sig);
    struct lookup_note *n = d && s ? note_find(t, d, s) : NULL;
    unsigned flags = dkim_sig_getflags(sig);
    int err = dkim_sig_geterror(sig);

    *why = NULL;
    if (n && n->status == PK_MISSING)
        return *why = "no key", "permerror";
    if (n && (n->status == PK_TEMPFAIL || n->status == PK_TIMEOUT))
        return *why = "key lookup failed", "temperror";
    if (n && n->status == PK_FOUND && n->mismatch)
        return *why = "key type does not match a=", "permerror";
    if ((flags & DKIM_SIGFLAG_PASSED) && dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH)
        return "pass";
    switch (err) {
    case DKIM_SIGERROR_BADSIG:
    case DKIM_SIGERROR_OK:
        return *why = "signature did not verify", "fail";
    case DKIM_SIGERROR_NOKEY:
    case DKIM_SIGERROR_KEYVERSION:
    case DKIM_SIGERROR_KEYUNKNOWNHASH:
    case DKIM_SIGERROR_KEYHASHMISMATCH:
    case DKIM_SIGERROR_NOTEMAILKEY:
    case DKIM_SIGERROR_KEYTYPEMISSING:
    case DKIM_SIGERROR_KEYTYPEUNKNOWN:
    case DKIM_SIGERROR_KEYREVOKED:
    case DKIM_SIGERROR_KEYDECODE:
    case DKIM_SIGERROR_KEYTOOSMALL:
    case DKIM_SIGERROR_DNSSYNTAX:
    case DKIM_SIGERROR_MULTIREPLY:
        return *why = dkim_sig_geterrorstr(err), "permerror";
    case DKIM_SIGERROR_KEYFAIL:
        return *why = "key lookup failed", "temperror";
    default:
        if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH)
            return *why = "body hash did not verify", "fail";
        return *why = dkim_sig_geterrorstr(err), "neutral";
    }
}

/* ar_append - one "dkim=..." clause onto the value being built */
static int ar_append(char *v, size_t size, size_t *o, DKIM *dkim, DKIM_SIGINFO *sig,
                     const char *result, const char *why)
{
    char d[300], s[200], raw_b[16], b[24], comment[200];
    dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
    size_t blen = sizeof(raw_b);
    int n;

    hdr_value(d, sizeof(d), dkim_sig_getdomain(sig) ? (const char *)dkim_sig_getdomain(sig) : "");
    hdr_value(s, sizeof(s), dkim_sig_getselector(sig) ? (const char *)dkim_sig_getselector(sig) : "");
    if (dkim_get_sigsubstring(dkim, sig, raw_b, &blen) != DKIM_STAT_OK)
        snprintf(b, sizeof(b), "none");
    else
        hdr_value(b, sizeof(b), raw_b);
    dkim_sig_getsignalg(sig, &alg);
    hdr_comment(comment, sizeof(comment), why ? why : "");
    n = snprintf(v + *o, size - *o, ";\r\n\tdkim=%s%s%s%s header.d=%s header.s=%s header.a=%s header.b=%s",
                 result, why ? " (" : "", why ? comment : "", why ? ")" : "", d, s,
                 alg_name(alg), b);
    if (n < 0 || (size_t)n >= size - *o)
        return -1;
    *o += (size_t)n;
    return 0;
}

/* verify_finish - finish verification and add Authentication-Results */
static subm_verdict_t verify_finish(subm_ctx_t *ctx, struct dkim_txn *t)
{
    const char *id = authres_id(ctx, t->cf->authserv_id);
    DKIM_SIGINFO **sigs = NULL;
    int nsigs = 0, i;
    char v[4096];
    size_t o;

    o = (size_t)snprintf(v, sizeof(v), "%s", id);
    if (o >= sizeof(v))
        return SUBM_CONTINUE;
    if (t->verifier && !t->nosig && !t->broken) {
        t->deadline = now_ms() + subm_time_left_ms(ctx);
        dkim_eom(t->verifier, NULL);
        if (t->timed_out) {
            subm_log(ctx, SUBM_LOG_WARN, "DKIM key lookup passed the deadline");
            return subm_tempfail(ctx, 451, "4.4.3", "DKIM key lookup timed out; try again later");
        }
        if (dkim_getsiglist(t->verifier, &sigs, &nsigs) != DKIM_STAT_OK)
            nsigs = 0;
    }
    for (i = 0; i < nsigs && i < MAX_RESULTS; i++) {
        const char *why, *r = sig_result(t, sigs[i], &why);

        subm_log(ctx, SUBM_LOG_INFO, "dkim=%s d=%s s=%s%s%s", r,
                 dkim_sig_getdomain(sigs[i]) ? (const char *)dkim_sig_getdomain(sigs[i]) : "?",
                 dkim_sig_getselector(sigs[i]) ? (const char *)dkim_sig_getselector(sigs[i]) : "?",
                 why ? ": " : "", why ? why : "");
        if (ar_append(v, sizeof(v), &o, t->verifier, sigs[i], r, why) < 0)
            break;
    }
    if (nsigs == 0 && o + 12 < sizeof(v))
        o += (size_t)snprintf(v + o, sizeof(v) - o, "; dkim=none");
    if (subm_txn_insert_header(ctx, 0, "Authentication-Results", v) < 0)
        subm_log(ctx, SUBM_LOG_WARN, "could not add Authentication-Results");
    return SUBM_CONTINUE;
}

/* dkim_eom_hook - add signatures or the verification result */
static subm_verdict_t dkim_eom_hook(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct dkim_txn *t = txn_get(ctx);

    if (!t)
        return SUBM_CONTINUE;
    return t->sign_mode ? sign_finish(ctx, t) : verify_finish(ctx, t);
}

SUBM_PLUGIN(dkim) = {
    SUBM_PLUGIN_HEAD,
    .name        = "dkim",
    .version     = "1.0",
    .description = "DKIM signing and verification (libopendkim)",
    .options     = dkim_options_table,
    .conf_size   = sizeof(struct dkim_conf),
    .flags       = SUBM_PLUGIN_NEEDS_HEADERS,
    .init        = dkim_init_conf,
    .fini        = dkim_fini,
    .on_mail     = dkim_mail,
    .on_header   = dkim_header_hook,
    .on_eoh      = dkim_eoh_hook,
    .on_body     = dkim_body_hook,
    .on_eom      = dkim_eom_hook,
};
