/*
 * size.c - message size limits (RFC 1870 SIZE).
 *
 * The limit of a transaction is, first match wins:
 *   1. the AUTH login's entry in the map file        (alice      100M)
 *   2. the sender domain's entry in the map file     (@example.org 5M)
 *   3. the global `limit`                            (0: none)
 * At CONNECT and HELO the global limit is handed to the front-end with
 * subm_set_size_limit(), so the smtp front-end advertises it in EHLO SIZE.
 * At MAIL a SIZE= over the limit gets 552 5.3.4; when `spool_dir` is set and
 * its file system has less than SIZE= plus `spool_reserve` free, 452 4.3.1
 * (RFC 1870: a temporary lack of storage). SIZE= is parsed without overflow:
 * a value too big for 64 bits is simply over any limit.
 * At end of header, at each body chunk and at end of message the octets
 * actually received (subm_txn_size) are compared with the limit: a client
 * whose SIZE= lied, or who gave none, is refused with 552 5.3.4 at the
 * latest at end of data, so the backend never gets the message.
 *
 * It buffers nothing: it only reads the front-end's byte count. It does not
 * frame data by SIZE= (the front-end finds the end of data).
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <submilter/plugin.h>

struct size_entry {
    char     *key;              /* lower case: "login" or "@domain" */
    uint64_t  limit;            /* 0: no limit */
};

struct size_conf {
    uint64_t           limit;
    const char        *map;
    const char        *spool_dir;
    uint64_t           spool_reserve;
    /* derived in init */
    struct size_entry *entries;
    size_t             nentries;
};

#define O(f) offsetof(struct size_conf, f)
static const subm_option_t size_options[] = {
    { "limit", SUBM_OPT_SIZE, "25M", O(limit), 0, 0, NULL,
      "global message size limit, advertised in EHLO SIZE; 0 = none" },
    { "map", SUBM_OPT_PATH, "", O(map), 0, 0, NULL,
      "map file: `LOGIN SIZE` or `@DOMAIN SIZE` per line" },
    { "spool_dir", SUBM_OPT_PATH, "", O(spool_dir), 0, 0, NULL,
      "a directory whose free space bounds SIZE= (452 4.3.1); empty: off" },
    { "spool_reserve", SUBM_OPT_SIZE, "100M", O(spool_reserve), 0, 0, NULL,
      "free space to keep in spool_dir beyond the announced SIZE=" },
    SUBM_OPT_END
};
#undef O

/*
 * size_parse - "1024", "10K", "25M", "2G", "1T" (1024-based) into *out.
 * Returns 0, -1 if malformed, -2 if it does not fit in 64 bits.
 */
static int size_parse(const char *s, uint64_t *out)
{
    uint64_t v = 0, mul = 1;
    const char *p = s;

    if (!isdigit((unsigned char) *p))
        return -1;
    for (; isdigit((unsigned char) *p); p++) {
        unsigned d = (unsigned) (*p - '0');

        if (v > (UINT64_MAX - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    switch (toupper((unsigned char) *p)) {
    case 0:   break;
    case 'K': mul = 1ull << 10; p++; break;
    case 'M': mul = 1ull << 20; p++; break;
    case 'G': mul = 1ull << 30; p++; break;
    case 'T': mul = 1ull << 40; p++; break;
    default:  return -1;
    }
    if (*p != 0)
        return -1;
    if (v != 0 && mul > UINT64_MAX / v)
        return -2;
    *out = v * mul;
    return 0;
}

/*
 * size_param_parse - an ESMTP SIZE= value (RFC 1870: 1*20DIGIT). Returns 0
 * with *out set (UINT64_MAX if it does not fit), -1 if not a number.
 */
static int size_param_parse(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || !isdigit((unsigned char) *s))
        return -1;
    for (; isdigit((unsigned char) *s); s++) {
        unsigned d = (unsigned) (*s - '0');

        if (v > (UINT64_MAX - d) / 10)
            v = UINT64_MAX;         /* saturate; keep checking syntax */
        else
            v = v * 10 + d;
    }
    if (*s != 0)
        return -1;
    *out = v;
    return 0;
}

/* entry_cmp - qsort/bsearch order of map entries. */
static int entry_cmp(const void *a, const void *b)
{
    return strcasecmp(((const struct size_entry *) a)->key,
                      ((const struct size_entry *) b)->key);
}

/* map_free - free the map entries. */
static void map_free(struct size_conf *c)
{
    size_t i;

    for (i = 0; i < c->nentries; i++)
        free(c->entries[i].key);
    free(c->entries);
    c->entries = NULL;
    c->nentries = 0;
}

/* map_add - append one entry; -1 on allocation failure. */
static int map_add(struct size_conf *c, size_t *cap, const char *key,
                   uint64_t limit)
{
    char *k, *p;

    if (c->nentries == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct size_entry *n = realloc(c->entries, ncap * sizeof(*n));

        if (n == NULL)
            return -1;
        c->entries = n;
        *cap = ncap;
    }
    if ((k = strdup(key)) == NULL)
        return -1;
    for (p = k; *p; p++)
        *p = (char) tolower((unsigned char) *p);
    c->entries[c->nentries].key = k;
    c->entries[c->nentries].limit = limit;
    c->nentries++;
    return 0;
}

/* map_line - parse one map line (comments and blanks already skipped). */
static int map_line(struct size_conf *c, size_t *cap, char *line,
                    subm_error_t *err, int lineno)
{
    char *key, *val, *extra, *save = NULL;
    uint64_t limit;
    int rc;

    key = strtok_r(line, " \t\r\n", &save);
    val = strtok_r(NULL, " \t\r\n", &save);
    extra = strtok_r(NULL, " \t\r\n", &save);
    if (extra != NULL && extra[0] == '#')
        extra = NULL;               /* a comment after the entry */
    if (key == NULL || val == NULL || extra != NULL)
        return subm_error(err, "%s:%d: want `LOGIN SIZE` or `@DOMAIN SIZE`",
                          c->map, lineno);
    if (strcmp(key, "@") == 0)
        return subm_error(err, "%s:%d: `@` without a domain", c->map, lineno);
    if ((rc = size_parse(val, &limit)) != 0)
        return subm_error(err, "%s:%d: %s size `%s`", c->map, lineno,
                          rc == -2 ? "too large a" : "malformed", val);
    if (map_add(c, cap, key, limit) != 0)
        return subm_error(err, "%s:%d: out of memory", c->map, lineno);
    return 0;
}

/* map_load - read the map file into sorted entries; duplicates are errors. */
static int map_load(struct size_conf *c, subm_error_t *err)
{
    FILE *fp = fopen(c->map, "r");
    char *line = NULL;
    size_t linecap = 0, cap = 0, i;
    int lineno = 0, rc = 0;

    if (fp == NULL)
        return subm_error(err, "%s: %s", c->map, strerror(errno));
    while (rc == 0 && getline(&line, &linecap, fp) >= 0) {
        char *p = line;

        lineno++;
        p += strspn(p, " \t");
        if (*p == '#' || *p == 0 || *p == '\n' || *p == '\r')
            continue;
        rc = map_line(c, &cap, p, err, lineno);
    }
    free(line);
    fclose(fp);
    if (rc != 0)
        return -1;
    qsort(c->entries, c->nentries, sizeof(*c->entries), entry_cmp);
    for (i = 1; i < c->nentries; i++)
        if (strcmp(c->entries[i - 1].key, c->entries[i].key) == 0)
            return subm_error(err, "%s: duplicate key `%s`", c->map,
                              c->entries[i].key);
    return 0;
}

/* size_init - load the map. */
static int size_init(void *conf, subm_error_t *err)
{
    struct size_conf *c = conf;

    if (c->map != NULL && c->map[0] != 0 && map_load(c, err) != 0) {
        map_free(c);
        return -1;
    }
    return 0;
}

/* size_fini - free the map. */
static void size_fini(void *conf)
{
    map_free(conf);
}

/* map_find - the entry for key (case-insensitive), or NULL. */
static const struct size_entry *map_find(const struct size_conf *c,
                                         const char *key)
{
    struct size_entry k = { (char *) key, 0 };

    if (c->nentries == 0)
        return NULL;
    return bsearch(&k, c->entries, c->nentries, sizeof(k), entry_cmp);
}

/* size_limit - the limit for this session and sender; *why_r names its source. */
static uint64_t size_limit(subm_ctx_t *ctx, const char *sender,
                           const char **why_r)
{
    const struct size_conf *c = subm_instance(ctx);
    const struct size_entry *e;
    const char *login = subm_auth_login(ctx);
    const char *at = sender ? strrchr(sender, '@') : NULL;

    if (login != NULL && (e = map_find(c, login)) != NULL) {
        *why_r = "user";
        return e->limit;
    }
    if (at != NULL && at[1] != 0 && (e = map_find(c, at)) != NULL) {
        *why_r = "domain";
        return e->limit;
    }
    *why_r = "global";
    return c->limit;
}

/* size_announce - CONNECT and HELO: tell the front-end the global limit. */
static subm_verdict_t size_announce(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct size_conf *c = subm_instance(ctx);

    if (c->limit > 0)
        subm_set_size_limit(ctx, c->limit);
    return SUBM_CONTINUE;
}

/* spool_short - 1 if spool_dir cannot take `need` octets plus the reserve. */
static int spool_short(subm_ctx_t *ctx, uint64_t need)
{
    const struct size_conf *c = subm_instance(ctx);
    struct statvfs sv;
    uint64_t avail;

    if (c->spool_dir == NULL || c->spool_dir[0] == 0)
        return 0;
    if (statvfs(c->spool_dir, &sv) != 0) {
        subm_log(ctx, SUBM_LOG_WARN, "statvfs %s: %s", c->spool_dir,
                 strerror(errno));
        return 0;
    }
    avail = (uint64_t) sv.f_bavail * (uint64_t) sv.f_frsize;
    if (avail < c->spool_reserve)
        return 1;
    return need > avail - c->spool_reserve;
}

/* mail_size_param - the SIZE= text of this MAIL, or NULL. */
static const char *mail_size_param(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    size_t i;

    for (i = 0; i < arg->nparams; i++)
        if (arg->params[i].name != NULL &&
            strcasecmp(arg->params[i].name, "SIZE") == 0)
            return arg->params[i].value ? arg->params[i].value : "";
    return subm_txn_sender_param(ctx, "SIZE");
}

/* size_mail - MAIL: check the announced SIZE=. */
static subm_verdict_t size_mail(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const char *why, *text = mail_size_param(ctx, arg);
    uint64_t declared = 0, limit = size_limit(ctx, arg->text, &why);

    if (text != NULL && size_param_parse(text, &declared) != 0)
        return subm_reject(ctx, 501, "5.5.4", "Bad SIZE= parameter");
    if (limit > 0 && declared > limit) {
        subm_log(ctx, SUBM_LOG_INFO, "SIZE=%s over the %s limit %llu",
                 text, why, (unsigned long long) limit);
        return subm_reject(ctx, 552, "5.3.4",
                           "Message size exceeds fixed maximum message size");
    }
    if (spool_short(ctx, declared)) {
        subm_log(ctx, SUBM_LOG_WARN, "not enough space in %s for SIZE=%llu",
                 ((const struct size_conf *) subm_instance(ctx))->spool_dir,
                 (unsigned long long) declared);
        return subm_tempfail(ctx, 452, "4.3.1", "Insufficient system storage");
    }
    return SUBM_CONTINUE;
}

/* size_received - EOH, BODY, EOM: check the octets actually received. */
static subm_verdict_t size_received(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const char *why;
    uint64_t got = subm_txn_size(ctx);
    uint64_t limit = size_limit(ctx, subm_txn_sender(ctx), &why);
    const char *declared = subm_txn_sender_param(ctx, "SIZE");

    if (limit == 0 || got <= limit)
        return SUBM_CONTINUE;
    subm_log(ctx, SUBM_LOG_INFO,
             "message of %s%llu octets over the %s limit %llu (SIZE=%s)",
             subm_stage(ctx) == SUBM_STAGE_EOM ? "" : "at least ",
             (unsigned long long) got, why, (unsigned long long) limit,
             declared ? declared : "none");
    return subm_reject(ctx, 552, "5.3.4",
                       "Message size exceeds fixed maximum message size");
}

SUBM_PLUGIN(size) = {
    SUBM_PLUGIN_HEAD,
    .name        = "size",
    .version     = "1.0",
    .description = "RFC 1870 SIZE limits: global, per AUTH user, per sender domain",
    .options     = size_options,
    .conf_size   = sizeof(struct size_conf),
    .init        = size_init,
    .fini        = size_fini,
    .on_connect  = size_announce,
    .on_helo     = size_announce,
    .on_mail     = size_mail,
    .on_eoh      = size_received,
    .on_body     = size_received,
    .on_eom      = size_received,
};
