/*
 * dkim_keys.h - the signing table: which private keys sign mail from which
 * sender, read once at init (in the manner of OpenDKIM's KeyTable and
 * SigningTable, in one file).
 *
 * File format, one key per line, '#' comments:
 *     PATTERN   DOMAIN   SELECTOR   KEYFILE
 * PATTERN is an address (alice@example.com), a domain (example.com, the same
 * as *@example.com), *.example.com (any subdomain) or * (anything);
 * case-insensitive. The first pattern that matches the sender wins, and
 * every line that has that same pattern signs (one DKIM-Signature each: an
 * rsa and an ed25519 key give two signatures).
 * KEYFILE is a PEM private key, RSA (rsa-sha256) or Ed25519
 * (ed25519-sha256, RFC 8463). It must be a regular file readable by its
 * owner only (no group or other permission bits).
 *
 * Does not generate keys or publish them in the DNS.
 */
#ifndef SUBM_DKIM_KEYS_H
#define SUBM_DKIM_KEYS_H

#include <stddef.h>

#define DKIM_KEYS_MAX_MATCH 4   /* signatures per message at most */

struct dkim_key {
    char          *pattern;
    char          *domain;
    char          *selector;
    char          *path;
    int            alg;        /* DKIM_SIGN_RSASHA256 or DKIM_SIGN_ED25519SHA256 */
    unsigned char *pem;        /* the key file's text, NUL-terminated */
    size_t         pem_len;
    void          *pkey;       /* EVP_PKEY *, parsed once: dkim_ed25519.c signs */
};

struct sign_table;

/* sign_table_load - read and check the table and every key. NULL with a
 * message in err ("FILE:LINE: ...") on any problem. */
struct sign_table *sign_table_load(const char *path, char *err, size_t errlen);
void               sign_table_free(struct sign_table **tp);
/* sign_table_match - the keys for sender address addr (up to max, at most
 * DKIM_KEYS_MAX_MATCH); returns how many. Pointers live as long as t. */
size_t             sign_table_match(const struct sign_table *t, const char *addr,
                                    const struct dkim_key **keys, size_t max);

#endif
