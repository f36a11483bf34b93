/*
 * dkim_verify.c - verification of other clients' signatures with
 * libopendkim, corrected where it is not RFC 6376 (see dkim.c's header):
 * our key lookup callback (dkim_pubkey.c) notes what the DNS said and the
 * key's k=, a prescreen callback bounds how many signatures are looked at,
 * and the results become one Authentication-Results field (RFC 8601).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "authres.h"
#include "dkim_int.h"

/* now_ms - monotonic milliseconds */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* dkim_alg_name - see dkim_int.h */
const char *dkim_alg_name(int alg)
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

/* dkim_verify_setup - see dkim_int.h */
int dkim_verify_setup(DKIM_LIB *lib)
{
    return dkim_set_key_lookup(lib, key_lookup) == DKIM_STAT_OK
           && dkim_set_prescreen(lib, prescreen) == DKIM_STAT_OK ? 0 : -1;
}

/* dkim_verify_header - see dkim_int.h */
void dkim_verify_header(subm_ctx_t *ctx, struct dkim_txn *t, const subm_arg_t *arg)
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

/* dkim_verify_eoh - see dkim_int.h */
subm_verdict_t dkim_verify_eoh(subm_ctx_t *ctx, struct dkim_txn *t)
{
    DKIM_STAT st;

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

/* dkim_verify_body - see dkim_int.h */
void dkim_verify_body(struct dkim_txn *t, const unsigned char *data, size_t len)
{
    if (t->verifier && !t->nosig && !t->broken)
        dkim_body(t->verifier, (u_char *)(uintptr_t)data, len);
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
                 dkim_alg_name(alg), b);
    if (n < 0 || (size_t)n >= size - *o)
        return -1;
    *o += (size_t)n;
    return 0;
}

/* dkim_verify_finish - see dkim_int.h */
subm_verdict_t dkim_verify_finish(subm_ctx_t *ctx, struct dkim_txn *t)
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
    if (nsigs == 0 && o + 64 < sizeof(v))
        /* RFC 8601 2.7.1: signed, but no signature could be processed
         * (libopendkim drops what it cannot parse) is neutral. */
        o += (size_t)snprintf(v + o, sizeof(v) - o, "%s",
                              subm_txn_header_find(ctx, "DKIM-Signature", 1)
                              ? "; dkim=neutral (signature not parsed)" : "; dkim=none");
    if (subm_txn_insert_header(ctx, 0, "Authentication-Results", v) < 0)
        subm_log(ctx, SUBM_LOG_WARN, "could not add Authentication-Results");
    return SUBM_CONTINUE;
}
