/*
 * dkim_ed25519.h - the DKIM signer of our own, ed25519-sha256 (RFC 8463)
 * and rsa-sha256 (RFC 6376 3.3.1): RFC 6376 canonicalization and hashing,
 * signing with OpenSSL over a key loaded once (dkim_keys.c).
 *
 * Why not libopendkim: version 2.11 leaks the private key (an EVP_PKEY and
 * its key structure, about 1.2 KB) on every ed25519 signature, which a
 * daemon signing all day cannot afford, and folds its simple-canonicalized
 * ed25519 header differently from what it hashed; and its dkim_sign()
 * parses the PEM key again for every message (rsa-sha256 with a 2048-bit
 * key: 0.84 ms of CPU a message, ours 0.26 ms). All verification stays
 * with libopendkim.
 *
 * Use: ed_signer_new, ed_signer_body for each body chunk (CRLF line ends),
 * ed_signer_finish with the header fields as received ("Name:value", folding
 * kept, no final CRLF), ed_signer_free. Does not choose keys or fields.
 */
#ifndef SUBM_DKIM_ED25519_H
#define SUBM_DKIM_ED25519_H

#include <stddef.h>
#include <time.h>

struct ed_signer;

struct ed_params {
    void              *pkey;            /* EVP_PKEY *, Ed25519 or RSA private key */
    int                rsa;             /* 1: rsa-sha256, 0: ed25519-sha256 */
    const char        *domain, *selector;
    int                header_simple;   /* 1: simple, 0: relaxed */
    int                body_simple;
    const char *const *sign_headers;    /* NULL-terminated */
    const char *const *oversign_headers;
};

/* ed_signer_new - NULL if out of memory. p's strings and lists must outlive
 * the signer. */
struct ed_signer *ed_signer_new(const struct ed_params *p);
/* ed_signer_body - one body chunk. */
void ed_signer_body(struct ed_signer *s, const unsigned char *data, size_t len);
/* ed_signer_finish - the DKIM-Signature value (folded with CRLF + TAB) into
 * out. Returns 0, or -1 (out too small, crypto failure). */
int ed_signer_finish(struct ed_signer *s, char *const *hdrs, const size_t *hlens,
                     size_t nhdrs, time_t now, char *out, size_t outsize);
void ed_signer_free(struct ed_signer **sp);

#endif
