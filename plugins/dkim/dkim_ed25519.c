/*
 * dkim_ed25519.c - ed25519-sha256 and rsa-sha256 DKIM signatures (see
 * dkim_ed25519.h).
 *
 * Body: canonicalized as it streams through a byte state machine (no line
 * buffer, so any line length costs constant memory) into a SHA-256.
 * Header: the fields named in h= are canonicalized at the end, bottom-up
 * per name (RFC 6376 5.4.2), then the DKIM-Signature itself with an empty
 * b=, without its final CRLF; Ed25519 (RFC 8463 3) or RSASSA-PKCS1-v1_5
 * (RFC 6376 3.3.1) signs the SHA-256 of all that.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include "dkim_ed25519.h"

#define H_MAX 64                 /* names in h= at most */
#define SIG_MAX 1024             /* signature octets at most (RSA 8192) */

struct ed_signer {
    struct ed_params p;
    EVP_MD_CTX      *body;       /* SHA-256 of the canonical body */
    unsigned char    out[4096];  /* canonical bytes not yet hashed */
    size_t           nout;
    int              line_content;   /* the line has had a non-WSP octet */
    int              wsp;            /* a WSP run is pending (relaxed) */
    int              cr;             /* a CR is pending */
    unsigned long    empty_lines;    /* empty lines held back */
    int              any_output;     /* something was hashed */
};

/* emit - canonical body octets, hashed in blocks */
static void emit(struct ed_signer *s, const void *data, size_t len)
{
    const unsigned char *d = data;

    s->any_output = 1;
    while (len > 0) {
        size_t n = sizeof(s->out) - s->nout;

        if (n > len)
            n = len;
        memcpy(s->out + s->nout, d, n);
        s->nout += n;
        d += n;
        len -= n;
        if (s->nout == sizeof(s->out)) {
            EVP_DigestUpdate(s->body, s->out, s->nout);
            s->nout = 0;
        }
    }
}

/* content - a line's octet that is not WSP (nor its line end) */
static void content(struct ed_signer *s, unsigned char c)
{
    if (!s->line_content) {
        /* Empty lines are only trailing if nothing follows them. */
        for (; s->empty_lines > 0; s->empty_lines--)
            emit(s, "\r\n", 2);
        s->line_content = 1;
    }
    if (s->wsp) {
        emit(s, " ", 1);
        s->wsp = 0;
    }
    emit(s, &c, 1);
}

/* line_end - CRLF: trailing WSP dropped (relaxed), empty lines held back */
static void line_end(struct ed_signer *s)
{
    if (s->line_content)
        emit(s, "\r\n", 2);
    else
        s->empty_lines++;
    s->line_content = s->wsp = 0;
}

/* ed_signer_body - see dkim_ed25519.h */
void ed_signer_body(struct ed_signer *s, const unsigned char *data, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = data[i];

        if (s->cr) {
            s->cr = 0;
            if (c == '\n') {
                line_end(s);
                continue;
            }
            content(s, '\r');        /* a lone CR is an ordinary octet */
        }
        if (c == '\r')
            s->cr = 1;
        else if ((c == ' ' || c == '\t') && !s->p.body_simple) {
            /* Relaxed: a WSP run becomes one SP, written only if content
             * follows on the line (a run at the end is dropped). */
            s->wsp = 1;
        } else
            content(s, c);
    }
}

/* body_finish - the base64 body hash into bh */
static int body_finish(struct ed_signer *s, char *bh, size_t size)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (s->cr)
        content(s, '\r');
    if (s->line_content)
        line_end(s);                  /* a last line without CRLF gets one */
    /* RFC 6376 3.4.3: a simple empty body is one CRLF; 3.4.4: relaxed
     * adds nothing to an empty body. */
    if (s->p.body_simple && !s->any_output)
        emit(s, "\r\n", 2);
    if (s->nout > 0)
        EVP_DigestUpdate(s->body, s->out, s->nout);
    s->nout = 0;
    if (EVP_DigestFinal_ex(s->body, md, &mdlen) != 1 || size < 4 * ((mdlen + 2) / 3) + 1)
        return -1;
    EVP_EncodeBlock((unsigned char *)bh, md, (int)mdlen);
    return 0;
}

/* canon_relaxed - a field (as received) in relaxed form, no CRLF */
static long canon_relaxed(const char *raw, size_t len, char *out, size_t size)
{
    size_t i = 0, o = 0;
    int wsp = 0, in_value = 0;

    /* name: lower case, WSP before the colon dropped */
    for (; i < len && raw[i] != ':'; i++) {
        if (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == '\n')
            continue;
        if (o + 1 >= size)
            return -1;
        out[o++] = (char)tolower((unsigned char)raw[i]);
    }
    if (i == len || o + 1 >= size)
        return -1;
    out[o++] = ':';
    for (i++; i < len; i++) {
        char c = raw[i];

        if (c == '\r' || c == '\n')
            continue;                      /* unfold */
        if (c == ' ' || c == '\t') {
            wsp = in_value;                /* leading WSP of the value goes */
            continue;
        }
        if (o + 2 >= size)
            return -1;
        if (wsp)
            out[o++] = ' ';
        wsp = 0;
        in_value = 1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* hash_field - one field, canonicalized, with CRLF unless last */
static int hash_field(EVP_MD_CTX *md, const struct ed_signer *s, const char *raw,
                      size_t len, int crlf)
{
    char buf[16384];
    long n;

    if (s->p.header_simple) {
        EVP_DigestUpdate(md, raw, len);
    } else {
        if ((n = canon_relaxed(raw, len, buf, sizeof(buf))) < 0)
            return -1;
        EVP_DigestUpdate(md, buf, (size_t)n);
    }
    if (crlf)
        EVP_DigestUpdate(md, "\r\n", 2);
    return 0;
}

/* field_is - raw field's name is name */
static int field_is(const char *raw, size_t len, const char *name)
{
    size_t nl = strlen(name), i = nl;

    if (len <= nl || strncasecmp(raw, name, nl) != 0)
        return 0;
    while (i < len && (raw[i] == ' ' || raw[i] == '\t'))
        i++;
    return i < len && raw[i] == ':';
}

/* in_list - name is in the NULL-terminated list (case-insensitive) */
static int in_list(const char *const *list, const char *name)
{
    for (; list && *list; list++)
        if (strcasecmp(*list, name) == 0)
            return 1;
    return 0;
}

/* names_add - add name to the h= name set once */
static void names_add(const char **names, size_t *n, const char *name)
{
    if (*n < H_MAX && !in_list(names, name)) {
        names[(*n)++] = name;
        names[*n] = NULL;
    }
}

/* headers_hash - hash the fields named in h= (bottom-up per name) and
 * write the h= list into h; -1 if it does not fit */
static int headers_hash(EVP_MD_CTX *md, const struct ed_signer *s, char *const *hdrs,
                        const size_t *hlens, size_t nhdrs, char *h, size_t hsize)
{
    const char *names[H_MAX + 1] = { NULL };
    size_t nnames = 0, i, k, ho = 0;
    const char *const *l;

    for (l = s->p.sign_headers; l && *l; l++)
        names_add(names, &nnames, *l);
    for (l = s->p.oversign_headers; l && *l; l++)
        names_add(names, &nnames, *l);
    h[0] = '\0';
    for (k = 0; k < nnames; k++) {
        int extra = in_list(s->p.oversign_headers, names[k]);

        for (i = nhdrs; i-- > 0;) {
            if (!field_is(hdrs[i], hlens[i], names[k]))
                continue;
            if (hash_field(md, s, hdrs[i], hlens[i], 1) < 0)
                return -1;
            ho += (size_t)snprintf(h + ho, hsize - ho, "%s%s", ho ? ":" : "", names[k]);
            if (ho >= hsize)
                return -1;
        }
        if (extra) {
            ho += (size_t)snprintf(h + ho, hsize - ho, "%s%s", ho ? ":" : "", names[k]);
            if (ho >= hsize)
                return -1;
        }
    }
    return 0;
}

/* fold_b64 - base64 of sig appended to out at *o, folded every 64 */
static int fold_b64(const unsigned char *sig, size_t siglen, char *out, size_t size, size_t *o)
{
    char b64[4 * ((SIG_MAX + 2) / 3) + 1];
    size_t i, len;

    if (4 * ((siglen + 2) / 3) + 1 > sizeof(b64))
        return -1;
    len = (size_t)EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
    for (i = 0; i < len; i += 64) {
        int n = snprintf(out + *o, size - *o, "%s%.*s", i ? "\r\n\t " : "", (int)(len - i < 64 ? len - i : 64),
                         b64 + i);

        if (n < 0 || (size_t)n >= size - *o)
            return -1;
        *o += (size_t)n;
    }
    return 0;
}

/* sign_digest - the signature of the header hash md: Ed25519 over the
 * hash (RFC 8463 3), or RSASSA-PKCS1-v1_5 with SHA-256 (RFC 6376 3.3.1),
 * whose DigestInfo wraps the hash we already have */
static int sign_digest(const struct ed_signer *s, const unsigned char *md, unsigned int mdlen,
                       unsigned char *sig, size_t *siglen)
{
    EVP_MD_CTX *mctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int ok;

    if (s->p.rsa) {
        ok = (pctx = EVP_PKEY_CTX_new((EVP_PKEY *)s->p.pkey, NULL)) != NULL
             && EVP_PKEY_sign_init(pctx) == 1
             && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1
             && EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) == 1
             && EVP_PKEY_sign(pctx, sig, siglen, md, mdlen) == 1;
    } else {
        ok = (mctx = EVP_MD_CTX_new()) != NULL
             && EVP_DigestSignInit(mctx, NULL, NULL, NULL, (EVP_PKEY *)s->p.pkey) == 1
             && EVP_DigestSign(mctx, sig, siglen, md, mdlen) == 1;
    }
    EVP_PKEY_CTX_free(pctx);
    EVP_MD_CTX_free(mctx);
    return ok ? 0 : -1;
}

/* ed_signer_finish - see dkim_ed25519.h */
int ed_signer_finish(struct ed_signer *s, char *const *hdrs, const size_t *hlens,
                     size_t nhdrs, time_t now, char *out, size_t outsize)
{
    char bh[64], h[2048], field[4096];
    unsigned char md[EVP_MAX_MD_SIZE], sig[SIG_MAX];
    unsigned int mdlen = 0;
    size_t siglen = sizeof(sig), o;
    EVP_MD_CTX *hctx = EVP_MD_CTX_new();
    int n, rc = -1;

    if (!hctx || body_finish(s, bh, sizeof(bh)) < 0
        || EVP_DigestInit_ex(hctx, EVP_sha256(), NULL) != 1
        || headers_hash(hctx, s, hdrs, hlens, nhdrs, h, sizeof(h)) < 0)
        goto out;
    n = snprintf(out, outsize, "v=1; a=%s; c=%s/%s; d=%s; s=%s;\r\n\tt=%lld; "
                 "bh=%s;\r\n\th=%s;\r\n\tb=", s->p.rsa ? "rsa-sha256" : "ed25519-sha256",
                 s->p.header_simple ? "simple" : "relaxed",
                 s->p.body_simple ? "simple" : "relaxed", s->p.domain, s->p.selector,
                 (long long)now, bh, h);
    if (n < 0 || (size_t)n >= outsize)
        goto out;
    o = (size_t)n;
    /* The signature field itself, b= empty, no final CRLF (RFC 6376 3.7);
     * "DKIM-Signature: " is how both front-ends write the name. */
    n = snprintf(field, sizeof(field), "DKIM-Signature: %s", out);
    if (n < 0 || (size_t)n >= sizeof(field) || hash_field(hctx, s, field, (size_t)n, 0) < 0
        || EVP_DigestFinal_ex(hctx, md, &mdlen) != 1)
        goto out;
    if (sign_digest(s, md, mdlen, sig, &siglen) < 0)
        goto out;
    rc = fold_b64(sig, siglen, out, outsize, &o);
out:
    EVP_MD_CTX_free(hctx);
    return rc;
}

/* ed_signer_new - see dkim_ed25519.h */
struct ed_signer *ed_signer_new(const struct ed_params *p)
{
    struct ed_signer *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->p = *p;
    if (!(s->body = EVP_MD_CTX_new()) || EVP_DigestInit_ex(s->body, EVP_sha256(), NULL) != 1) {
        ed_signer_free(&s);
        return NULL;
    }
    return s;
}

/* ed_signer_free - free and clear *sp */
void ed_signer_free(struct ed_signer **sp)
{
    if (!*sp)
        return;
    EVP_MD_CTX_free((*sp)->body);
    free(*sp);
    *sp = NULL;
}
