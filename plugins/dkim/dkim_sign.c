/*
 * dkim_sign.c - signing: at end of header the key(s) for the From: address
 * come from the sign table, each gets a signer (libopendkim for RSA, ours
 * for Ed25519, see dkim_ed25519.h) fed with the kept header fields, then
 * the body chunks; at end of message each DKIM-Signature is put first in
 * the header through the modification API.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "dkim_int.h"

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

/* dkim_sign_start - see dkim_int.h */
subm_verdict_t dkim_sign_start(subm_ctx_t *ctx, struct dkim_txn *t)
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

/* dkim_sign_finish - see dkim_int.h */
subm_verdict_t dkim_sign_finish(subm_ctx_t *ctx, struct dkim_txn *t)
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
                 t->keys[i]->selector, dkim_alg_name(t->keys[i]->alg));
    }
    return SUBM_CONTINUE;
}

/* dkim_sign_body - see dkim_int.h */
void dkim_sign_body(struct dkim_txn *t, const unsigned char *data, size_t len)
{
    size_t i;

    for (i = 0; i < t->nsigners; i++) {
        if (t->eds[i])
            ed_signer_body(t->eds[i], data, len);
        else
            dkim_body(t->signers[i], (u_char *)(uintptr_t)data, len);
    }
}
