/*
 * dkim_pubkey.h - where verification gets public key records
 * ("selector._domainkey.domain" TXT), with an answer that tells a missing
 * key (permerror) from a DNS failure (temperror), which libopendkim's own
 * lookup does not.
 *
 * Two sources: the system resolver (res_nquery, run in a worker thread so
 * the caller waits no longer than its deadline), or, for tests, a file of
 * "NAME RECORD" lines (RECORD "!TRY_AGAIN" makes that name a DNS failure).
 * Does not parse the record beyond what dkim_pubkey_keytype needs.
 */
#ifndef SUBM_DKIM_PUBKEY_H
#define SUBM_DKIM_PUBKEY_H

#include <stddef.h>

enum pk_status {
    PK_FOUND = 0,
    PK_MISSING,      /* NXDOMAIN or no TXT record */
    PK_TEMPFAIL,     /* SERVFAIL, no answer, resolver error */
    PK_TIMEOUT       /* the deadline passed */
};

struct pk_source;

/* dkim_pubkey_new - file NULL or "" for DNS; NULL with err on failure. */
struct pk_source *dkim_pubkey_new(const char *file, char *err, size_t errlen);
/* dkim_pubkey_free - frees now, or when the last running DNS worker ends. */
void              dkim_pubkey_free(struct pk_source **sp);
/* dkim_pubkey_lookup - the TXT record for name into buf (NUL-terminated,
 * character-strings joined), waiting at most timeout_ms. */
enum pk_status    dkim_pubkey_lookup(struct pk_source *s, const char *name,
                                     char *buf, size_t buflen, long timeout_ms);
/* dkim_pubkey_keytype - the record's k= value ("rsa" when absent) into buf. */
void              dkim_pubkey_keytype(const char *record, char *buf, size_t buflen);
const char       *dkim_pubkey_status_name(enum pk_status st);

#endif
