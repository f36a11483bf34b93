/*
 * option.c - typed option values: parse, check bounds, store.
 *
 * One place knows how a size, a time, a boolean, an enum or a list is
 * written in submilter.conf; plugins and the daemon's own sections share it
 * through subm_option_t tables. Messages name the option and the value, not
 * the file: config.c adds "FILE:LINE:".
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "option.h"
#include "pool.h"

/* option_find - the option called name in table, or NULL. */
const subm_option_t *option_find(const subm_option_t *table, const char *name)
{
    for (; table != NULL && table->name != NULL; table++)
        if (strcmp(table->name, name) == 0)
            return table;
    return NULL;
}

/* parse_scaled - "<digits><suffix>" with suffix -> multiplier from units. */
struct unit { const char *suffix; uint64_t mult; };

static int parse_scaled(const char *s, const struct unit *units, uint64_t *out)
{
    char *end;
    unsigned long long v;

    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    for (; units->suffix != NULL; units++) {
        if (strcasecmp(end, units->suffix) == 0) {
            if (units->mult != 0 && v > UINT64_MAX / units->mult)
                return -1;
            *out = v * units->mult;
            return 0;
        }
    }
    return -1;
}

/* option_parse_size - "25M" -> bytes (K, M, G are 1024-based). */
int option_parse_size(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        { "", 1 }, { "B", 1 }, { "K", 1024 }, { "KB", 1024 },
        { "M", 1024 * 1024 }, { "MB", 1024 * 1024 },
        { "G", 1024ULL * 1024 * 1024 }, { "GB", 1024ULL * 1024 * 1024 },
        { NULL, 0 }
    };
    return parse_scaled(s, units, out);
}

/* option_parse_time_ms - "5m" -> milliseconds (bare number: seconds). */
int option_parse_time_ms(const char *s, long *out)
{
    static const struct unit units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
        { "h", 3600000 }, { "d", 86400000 }, { NULL, 0 }
    };
    uint64_t v;

    if (parse_scaled(s, units, &v) < 0 || v > (uint64_t)LONG_MAX)
        return -1;
    *out = (long)v;
    return 0;
}

/* option_parse_bool - yes/no, true/false, on/off, 1/0. */
int option_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1", NULL };
    static const char *const no[] = { "no", "false", "off", "0", NULL };
    int i;

    for (i = 0; yes[i] != NULL; i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
    for (i = 0; no[i] != NULL; i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    return -1;
}

/* check_bounds - v within [min, max] when bounds are set. */
static int check_bounds(const subm_option_t *o, long long v, char *err, size_t errlen)
{
    if (o->min == 0 && o->max == 0)
        return 0;
    if (v < o->min || (o->max != 0 && v > o->max)) {
        if (o->max != 0)
            snprintf(err, errlen, "option '%s': %lld is outside %lld..%lld",
                     o->name, v, o->min, o->max);
        else
            snprintf(err, errlen, "option '%s': %lld is below %lld",
                     o->name, v, o->min);
        return -1;
    }
    return 0;
}

/* parse_scalar - one value of a non-list option into *dst (may be NULL). */
static int parse_scalar(const subm_option_t *o, const char *v, void *dst,
                        struct pool *pool, char *err, size_t errlen)
{
    uint64_t size;
    long ms, n;
    int b, i;
    char *end;

    switch (o->type) {
    case SUBM_OPT_STR:
    case SUBM_OPT_PATH:
        if (dst)
            *(const char **)dst = pool ? pool_strdup(pool, v) : NULL;
        return 0;
    case SUBM_OPT_INT:
        errno = 0;
        n = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno == ERANGE) {
            snprintf(err, errlen, "option '%s': '%s' is not a whole number", o->name, v);
            return -1;
        }
        if (check_bounds(o, n, err, errlen) < 0)
            return -1;
        if (dst)
            *(long *)dst = n;
        return 0;
    case SUBM_OPT_BOOL:
        if (option_parse_bool(v, &b) < 0) {
            snprintf(err, errlen, "option '%s': '%s' is not yes or no", o->name, v);
            return -1;
        }
        if (dst)
            *(int *)dst = b;
        return 0;
    case SUBM_OPT_SIZE:
        if (option_parse_size(v, &size) < 0) {
            snprintf(err, errlen, "option '%s': '%s' is not a size (e.g. 512K, 25M, 1G)",
                     o->name, v);
            return -1;
        }
        if (size > (uint64_t)LLONG_MAX || check_bounds(o, (long long)size, err, errlen) < 0) {
            if (size > (uint64_t)LLONG_MAX)
                snprintf(err, errlen, "option '%s': '%s' is too large", o->name, v);
            return -1;
        }
        if (dst)
            *(uint64_t *)dst = size;
        return 0;
    case SUBM_OPT_TIME:
        if (option_parse_time_ms(v, &ms) < 0) {
            snprintf(err, errlen, "option '%s': '%s' is not a time (e.g. 30s, 5m, 1h)",
                     o->name, v);
            return -1;
        }
        if (check_bounds(o, ms, err, errlen) < 0)
            return -1;
        if (dst)
            *(long *)dst = ms;
        return 0;
    case SUBM_OPT_ENUM:
        for (i = 0; o->choices != NULL && o->choices[i] != NULL; i++) {
            if (strcasecmp(v, o->choices[i]) == 0) {
                if (dst)
                    *(int *)dst = i;
                return 0;
            }
        }
        {
            char list[256] = "";
            size_t off = 0;

            for (i = 0; o->choices != NULL && o->choices[i] != NULL; i++) {
                int w = snprintf(list + off, sizeof(list) - off, "%s%s",
                                 i ? ", " : "", o->choices[i]);
                if (w < 0 || (size_t)w >= sizeof(list) - off)
                    break;
                off += (size_t)w;
            }
            snprintf(err, errlen, "option '%s': '%s' is not one of: %s", o->name, v, list);
        }
        return -1;
    default:
        snprintf(err, errlen, "option '%s': bad declaration (type %d)", o->name, (int)o->type);
        return -1;
    }
}

/* option_parse - parse values[0..n) for o; store into block if non-NULL. */
int option_parse(const subm_option_t *o, const char *const *values, size_t n,
                 void *block, struct pool *pool, char *err, size_t errlen)
{
    void *dst = block ? (char *)block + o->offset : NULL;
    size_t i;

    if (o->type == SUBM_OPT_LIST) {
        const char **list = NULL;

        if (dst && pool) {
            list = pool_alloc(pool, (n + 1) * sizeof(*list));
            for (i = 0; i < n; i++)
                list[i] = pool_strdup(pool, values[i]);
            *(const char *const **)dst = list;
        }
        return 0;
    }
    if (n != 1) {
        snprintf(err, errlen, "option '%s' takes one value, not %zu", o->name, n);
        return -1;
    }
    return parse_scalar(o, values[0], dst, pool, err, errlen);
}

/* split_list_default - parse a list default written as {"a", "b"} or "a". */
static size_t split_list_default(const char *def, char *buf, size_t buflen,
                                 const char **items, size_t max)
{
    size_t n = 0, off = 0;
    const char *p = def;

    while (*p != '\0' && n < max) {
        while (*p == ' ' || *p == '{' || *p == ',' || *p == '}')
            p++;
        if (*p == '\0')
            break;
        if (*p == '"') {
            const char *q = strchr(++p, '"');
            size_t len = q ? (size_t)(q - p) : strlen(p);

            if (off + len + 1 > buflen)
                break;
            memcpy(buf + off, p, len);
            buf[off + len] = '\0';
            items[n++] = buf + off;
            off += len + 1;
            p += len + (q != NULL);
        } else {
            size_t len = strcspn(p, ",}");

            while (len > 0 && p[len - 1] == ' ')
                len--;
            if (off + len + 1 > buflen)
                break;
            memcpy(buf + off, p, len);
            buf[off + len] = '\0';
            items[n++] = buf + off;
            off += len + 1;
            p += len;
        }
    }
    return n;
}

/* option_set_defaults - write every option's default into block. */
int option_set_defaults(const subm_option_t *table, void *block,
                        struct pool *pool, char *err, size_t errlen)
{
    const subm_option_t *o;

    for (o = table; o != NULL && o->name != NULL; o++) {
        if (o->type == SUBM_OPT_LIST) {
            char buf[1024];
            const char *items[64];
            size_t n = o->def ? split_list_default(o->def, buf, sizeof(buf), items, 64) : 0;

            if (option_parse(o, items, n, block, pool, err, errlen) < 0)
                return -1;
        } else if (o->def == NULL) {
            if (o->type == SUBM_OPT_STR || o->type == SUBM_OPT_PATH)
                *(const char **)((char *)block + o->offset) = NULL;
        } else {
            const char *v = o->def;

            if (option_parse(o, &v, 1, block, pool, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}
