/*
 * dkim_sign.c - signing: at end of header the key(s) for the From: address
 * come from the sign table, each gets a signer (ours, see dkim_ed25519.h,
 * for RSA and Ed25519 alike, with the key parsed once at init), fed the
 * body chunks; at end of message each signs the kept header fields and its
 * DKIM-Signature is put first in the header through the modification API.
 */
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

/* ed_signer_start - one of our signers for key k (rsa or ed25519) */
static struct ed_signer *ed_signer_start(const struct dkim_txn *t, const struct dkim_key *k)
{
    const struct dkim_conf *cf = t->cf;
    struct ed_params p = {
        .pkey = k->pkey, .rsa = k->alg == DKIM_SIGN_RSASHA256,
        .domain = k->domain, .selector = k->selector,
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
        struct ed_signer *ed = ed_signer_start(t, keys[i]);

        if (!ed)
            return subm_tempfail(ctx, 451, "4.3.0", "DKIM signing failed; try again later");
        t->keys[t->nsigners] = keys[i];
        t->eds[t->nsigners++] = ed;
    }
    return SUBM_CONTINUE;
}

/* signature_value - signer i's DKIM-Signature value into value */
static int signature_value(struct dkim_txn *t, size_t i, char *value, size_t size)
{
    return ed_signer_finish(t->eds[i], t->hdrs, t->hlens, t->nhdrs, time(NULL), value, size);
}

/* dkim_sign_finish - see dkim_int.h */
subm_verdict_t dkim_sign_finish(subm_ctx_t *ctx, struct dkim_txn *t)
{
    char value[8192];
    size_t i;

    for (i = 0; i < t->nsigners; i++) {
        if (signature_value(t, i, value, sizeof(value)) < 0
            || subm_txn_insert_header(ctx, 0, "DKIM-Signature", value) < 0) {
            subm_log(ctx, SUBM_LOG_WARN, "signing with %s failed: signature not made",
                     t->keys[i]->path);
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

    for (i = 0; i < t->nsigners; i++)
        ed_signer_body(t->eds[i], data, len);
}
