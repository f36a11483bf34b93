/*
 * dkim_keys.c - the signing table and private keys (see dkim_keys.h).
 */
#include <sys/stat.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <opendkim/dkim.h>
#include "dkim_keys.h"

#define KEY_FILE_MAX (64 * 1024)

struct sign_table {
    size_t           n;
    struct dkim_key *keys;
};

/* key_read - the key file's text, after checking type and permissions */
static int key_read(struct dkim_key *k, const char *where, char *err, size_t errlen)
{
    struct stat st;
    ssize_t got;
    int fd = open(k->path, O_RDONLY | O_NOFOLLOW);

    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: key file %s: %s", where, k->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > KEY_FILE_MAX) {
        snprintf(err, errlen, "%s: key file %s is not a regular file of 1 to %d octets",
                 where, k->path, KEY_FILE_MAX);
        close(fd);
        return -1;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen, "%s: key file %s has mode %04o: a private key must be "
                 "readable by its owner only (chmod 600 %s)", where, k->path,
                 (unsigned)(st.st_mode & 07777), k->path);
        close(fd);
        return -1;
    }
    k->pem = malloc((size_t)st.st_size + 1);
    got = k->pem ? read(fd, k->pem, (size_t)st.st_size) : -1;
    close(fd);
    if (got != st.st_size) {
        snprintf(err, errlen, "%s: key file %s: cannot read it", where, k->path);
        return -1;
    }
    k->pem[got] = '\0';
    k->pem_len = (size_t)got;
    return 0;
}

/* key_type - the DKIM algorithm for the key's type, via OpenSSL */
static int key_type(struct dkim_key *k, const char *where, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(k->pem, (int)k->pem_len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    int id = pkey ? EVP_PKEY_get_base_id(pkey) : 0;

    if (pkey && id == EVP_PKEY_RSA && EVP_PKEY_get_bits(pkey) < 1024) {
        snprintf(err, errlen, "%s: key file %s: RSA key of %d bits (RFC 8301 wants "
                 "at least 1024)", where, k->path, EVP_PKEY_get_bits(pkey));
        id = -1;
    }
    BIO_free(bio);
    if (id == EVP_PKEY_ED25519 || id == EVP_PKEY_RSA) {
        k->alg = id == EVP_PKEY_RSA ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256;
        k->pkey = pkey;                 /* kept: dkim_ed25519.c signs with it */
        return 0;
    }
    EVP_PKEY_free(pkey);
    if (id != -1)
        snprintf(err, errlen, "%s: key file %s is not a PEM RSA or Ed25519 private key",
                 where, k->path);
    return -1;
}

/* key_free - free one entry's strings */
static void key_free(struct dkim_key *k)
{
    free(k->pattern);
    free(k->domain);
    free(k->selector);
    free(k->path);
    EVP_PKEY_free(k->pkey);
    if (k->pem) {
        memset(k->pem, 0, k->pem_len);
        free(k->pem);
    }
}

/* line_parse - split one line into a new entry; 1 = entry, 0 = blank, -1 bad */
static int line_parse(char *line, struct dkim_key *k)
{
    char *f[5], *save = NULL, *p;
    int n = 0;

    line[strcspn(line, "#\r\n")] = '\0';
    for (p = strtok_r(line, " \t", &save); p && n < 5; p = strtok_r(NULL, " \t", &save))
        f[n++] = p;
    if (n == 0)
        return 0;
    if (n != 4)
        return -1;
    memset(k, 0, sizeof(*k));
    k->pattern = strdup(f[0]);
    k->domain = strdup(f[1]);
    k->selector = strdup(f[2]);
    k->path = strdup(f[3]);
    if (!k->pattern || !k->domain || !k->selector || !k->path) {
        key_free(k);
        return -1;
    }
    return 1;
}

/* sign_table_free - see dkim_keys.h */
void sign_table_free(struct sign_table **tp)
{
    struct sign_table *t = *tp;
    size_t i;

    if (!t)
        return;
    for (i = 0; i < t->n; i++)
        key_free(&t->keys[i]);
    free(t->keys);
    free(t);
    *tp = NULL;
}

/* table_add - append an entry, growing the array */
static int table_add(struct sign_table *t, const struct dkim_key *k, size_t *cap)
{
    struct dkim_key *nk;

    if (t->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        if (!(nk = realloc(t->keys, *cap * sizeof(*nk))))
            return -1;
        t->keys = nk;
    }
    t->keys[t->n++] = *k;
    return 0;
}

/* sign_table_load - see dkim_keys.h */
struct sign_table *sign_table_load(const char *path, char *err, size_t errlen)
{
    struct sign_table *t = calloc(1, sizeof(*t));
    FILE *fp = fopen(path, "r");
    char line[2048], where[512];
    unsigned lineno = 0;
    size_t cap = 0;
    int rc = 0;

    if (!t || !fp) {
        snprintf(err, errlen, "sign_table %s: %s", path, strerror(fp ? ENOMEM : errno));
        free(t);
        if (fp)
            fclose(fp);
        return NULL;
    }
    while (rc == 0 && fgets(line, sizeof(line), fp)) {
        struct dkim_key k;
        int got;

        lineno++;
        snprintf(where, sizeof(where), "%s:%u", path, lineno);
        got = line_parse(line, &k);
        if (got == 0)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "%s: expected \"PATTERN DOMAIN SELECTOR KEYFILE\"", where);
            rc = -1;
        } else if (key_read(&k, where, err, errlen) < 0 || key_type(&k, where, err, errlen) < 0
                   || table_add(t, &k, &cap) < 0) {
            key_free(&k);
            rc = -1;
        }
    }
    fclose(fp);
    if (rc == 0 && t->n == 0) {
        snprintf(err, errlen, "sign_table %s has no keys", path);
        rc = -1;
    }
    if (rc < 0)
        sign_table_free(&t);
    return t;
}

/* pattern_match - one PATTERN against an address */
static int pattern_match(const char *pat, const char *addr)
{
    const char *at = strrchr(addr, '@');
    const char *dom = at ? at + 1 : addr;
    size_t dl = strlen(dom), pl;

    if (strcmp(pat, "*") == 0)
        return 1;
    if (strchr(pat, '@') && strncmp(pat, "*@", 2) != 0)
        return strcasecmp(pat, addr) == 0;
    if (strncmp(pat, "*@", 2) == 0)
        pat += 2;
    if (strncmp(pat, "*.", 2) == 0) {
        pl = strlen(pat + 1);         /* ".example.com" */
        return dl > pl && strcasecmp(dom + dl - pl, pat + 1) == 0;
    }
    return strcasecmp(pat, dom) == 0;
}

/* sign_table_match - see dkim_keys.h */
size_t sign_table_match(const struct sign_table *t, const char *addr,
                        const struct dkim_key **keys, size_t max)
{
    size_t i, n = 0;
    const char *won = NULL;

    if (max > DKIM_KEYS_MAX_MATCH)
        max = DKIM_KEYS_MAX_MATCH;
    for (i = 0; t && i < t->n && n < max; i++) {
        if (won ? strcmp(won, t->keys[i].pattern) == 0
                : pattern_match(t->keys[i].pattern, addr)) {
            won = t->keys[i].pattern;
            keys[n++] = &t->keys[i];
        }
    }
    return n;
}
