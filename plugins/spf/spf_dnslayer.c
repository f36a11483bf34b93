/*
 * spf_dnslayer.c - the DNS layer under libspf2 (see spf_dnslayer.h).
 * Per-evaluation counters live in thread-local storage: each evaluation
 * runs in its own worker thread.
 */
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <spf2/spf.h>
#include <spf2/spf_dns_zone.h>
#include "spf_dnslayer.h"
#include "spf_syntax.h"

static __thread struct spf_limits *tl_limits;

/* now_ms - monotonic milliseconds */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* spf_layer_begin - see spf_dnslayer.h */
void spf_layer_begin(struct spf_limits *L)
{
    tl_limits = L;
}

/* spf_layer_end - see spf_dnslayer.h */
void spf_layer_end(void)
{
    tl_limits = NULL;
}

/* follow_add - remember a name an MX/PTR answer pointed to */
static void follow_add(struct spf_limits *L, const char *name)
{
    if (L->nfollow < SPF_FOLLOW_MAX && strlen(name) < sizeof(L->follow[0])) {
        memcpy(L->follow[L->nfollow], name, strlen(name) + 1);
        L->nfollow++;
    }
}

/* follow_take - 1 (and forget it) if name came from an MX/PTR answer */
static int follow_take(struct spf_limits *L, const char *name)
{
    size_t i;

    for (i = 0; i < L->nfollow; i++) {
        if (strcasecmp(L->follow[i], name) == 0) {
            L->follow[i][0] = '\0';
            return 1;
        }
    }
    return 0;
}

/* note_void - one more void lookup */
static void note_void(struct spf_limits *L)
{
    L->last_void = 1;
    if (++L->voids > L->max_void)
        L->over_void = 1;
}

/* limits_note_answer - count void lookups and DNS failures, note follow-ups.
 * Lookups of MX/PTR targets are neither terms nor voids (RFC 7208 4.6.4). */
static void limits_note_answer(struct spf_limits *L, SPF_dns_rr_t *rr,
                               ns_type type, int counted)
{
    int i;

    switch (rr->herrno) {
    case NETDB_SUCCESS:
        break;
    case HOST_NOT_FOUND:
    case NO_DATA:
        if (counted)
            note_void(L);
        return;
    default:                        /* TRY_AGAIN, NO_RECOVERY */
        L->dns_fail = L->last_fail = 1;
        return;
    }
    if (rr->num_rr == 0 && counted)
        note_void(L);
    for (i = 0; type == ns_t_txt && i < rr->num_rr && !L->bad_record; i++) {
        const char *txt = rr->rr[i]->txt;

        if (spf_is_record(txt, strlen(txt))
            && !spf_syntax_ok(txt, strlen(txt), L->bad_why, sizeof(L->bad_why)))
            L->bad_record = 1;
    }
    /* RFC 7208 4.6.4: names past the first 10 of a PTR answer are ignored
     * (libspf2 would call the answer an error instead). */
    if (type == ns_t_ptr && rr->num_rr > 10)
        rr->num_rr = 10;
    for (i = 0; i < rr->num_rr; i++) {
        if (type == ns_t_mx)
            follow_add(L, rr->rr[i]->mx);
        else if (type == ns_t_ptr)
            follow_add(L, rr->rr[i]->ptr);
    }
}

/* name_ok - a name the DNS can hold: labels of 1..63, 253 in all */
static int name_ok(const char *name)
{
    size_t len = strlen(name), label = 0, i;

    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return 0;
    for (i = 0; i < len; i++) {
        if (name[i] != '.') {
            label++;
            continue;
        }
        if (label == 0 || label > 63)
            return 0;
        label = 0;
    }
    return label > 0 && label <= 63;
}

/* limits_lookup - the limits layer's lookup: count, bound, pass down */
static SPF_dns_rr_t *limits_lookup(SPF_dns_server_t *srv, const char *domain,
                                   ns_type type, int should_cache)
{
    struct spf_limits *L = tl_limits;
    SPF_dns_rr_t *rr;
    int counted = 1;

    if (!name_ok(domain)) {
        /* RFC 7208 4.3/4.8: a malformed name is no match (or "none" at the
         * top), not a DNS failure as the resolver's refusal would say. */
        if (L)
            L->last_type = type, L->last_fail = L->last_void = 0;
        return SPF_dns_rr_new_nxdomain(srv, domain);
    }
    if (!L)
        return SPF_dns_lookup(srv->layer_below, domain, type, should_cache);
    L->last_type = type;
    L->last_fail = L->last_void = 0;
    if (now_ms() >= L->deadline) {
        L->timed_out = L->dns_fail = 1;
        return SPF_dns_rr_new_init(srv, domain, type, 0, TRY_AGAIN);
    }
    if (type == ns_t_txt && !L->record_fetched) {
        counted = 0;
        L->record_fetched = 1;
    } else if ((type == ns_t_a || type == ns_t_aaaa) && follow_take(L, domain)) {
        counted = 0;
    }
    if (counted && ++L->terms > L->max_terms) {
        /* Stop the evaluation short: nothing more is asked of the DNS. */
        L->over_terms = 1;
        return SPF_dns_rr_new_nxdomain(srv, domain);
    }
    rr = SPF_dns_lookup(srv->layer_below, domain, type, should_cache);
    if (!rr) {
        L->dns_fail = L->last_fail = 1;
        return NULL;
    }
    limits_note_answer(L, rr, type, counted);
    return rr;
}

/* limits_destroy - free our layer (SPF_dns_free then frees those below) */
static void limits_destroy(SPF_dns_server_t *srv)
{
    free(srv);
}

/* spf_layer_new - see spf_dnslayer.h */
SPF_dns_server_t *spf_layer_new(SPF_dns_server_t *below)
{
    SPF_dns_server_t *srv = calloc(1, sizeof(*srv));

    if (!srv)
        return NULL;
    srv->destroy = limits_destroy;
    srv->lookup = limits_lookup;
    srv->layer_below = below;
    srv->name = "submilter-limits";
    return srv;
}

/* zone_type - "TXT" & co to an ns_type, 0 if unknown */
static ns_type zone_type(const char *t)
{
    static const struct { const char *name; ns_type type; } types[] = {
        { "TXT", ns_t_txt }, { "A", ns_t_a }, { "AAAA", ns_t_aaaa },
        { "MX", ns_t_mx }, { "PTR", ns_t_ptr }, { "SPF", ns_t_spf },
    };
    size_t i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcasecmp(types[i].name, t) == 0)
            return types[i].type;
    return (ns_type)0;
}

/* zone_line - add one "name TYPE data" line; data "!TRY_AGAIN",
 * "!HOST_NOT_FOUND" or "!NO_DATA" gives that DNS status. -1 if malformed. */
static int zone_line(SPF_dns_server_t *zone, char *line)
{
    char *name, *type, *data, *end;
    ns_type t;
    SPF_dns_stat_t herrno = NETDB_SUCCESS;

    name = strtok_r(line, " \t", &end);
    type = strtok_r(NULL, " \t", &end);
    if (!name || !type)
        return -1;
    data = end + strspn(end, " \t");
    data[strcspn(data, "\r\n")] = '\0';
    if ((t = zone_type(type)) == 0)
        return -1;
    if (data[0] == '"' && strlen(data) >= 2 && data[strlen(data) - 1] == '"') {
        data[strlen(data) - 1] = '\0';
        data++;
    }
    if (strcmp(data, "!TRY_AGAIN") == 0)
        herrno = TRY_AGAIN;
    else if (strcmp(data, "!HOST_NOT_FOUND") == 0)
        herrno = HOST_NOT_FOUND;
    else if (strcmp(data, "!NO_DATA") == 0)
        herrno = NO_DATA;
    return SPF_dns_zone_add_str(zone, name, t, herrno,
                                herrno == NETDB_SUCCESS ? data : NULL) == SPF_E_SUCCESS
           ? 0 : -1;
}

/* spf_zone_load - see spf_dnslayer.h */
SPF_dns_server_t *spf_zone_load(const char *path, char *err, size_t errlen)
{
    SPF_dns_server_t *zone;
    char line[2048];
    unsigned lineno = 0;
    FILE *fp = fopen(path, "r");

    if (!fp) {
        snprintf(err, errlen, "test_zone %s: %s", path, strerror(errno));
        return NULL;
    }
    zone = SPF_dns_zone_new(NULL, "test-zone", 0);
    while (zone && fgets(line, sizeof(line), fp)) {
        char *p = line + strspn(line, " \t");

        lineno++;
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        if (zone_line(zone, p) < 0) {
            snprintf(err, errlen, "test_zone %s:%u: expected \"name TYPE data\"",
                     path, lineno);
            SPF_dns_free(zone);
            zone = NULL;
        }
    }
    fclose(fp);
    if (!zone && !err[0])
        snprintf(err, errlen, "test_zone %s: cannot make libspf2 zone", path);
    return zone;
}

/* forgive_explanation - a "fail" whose last lookup was a TXT ended with the
 * exp= fetch: its failure or void does not change the result (RFC 7208
 * 6.2). The only TXT lookup after a decided fail is that one: an include
 * or redirect that failed would not have let the evaluation reach fail. */
static void forgive_explanation(SPF_result_t r, struct spf_limits *L)
{
    if (r != SPF_RESULT_FAIL || L->last_type != ns_t_txt || L->timed_out)
        return;
    if (L->last_fail) {
        L->dns_fail = 0;
    }
    if (L->last_void) {
        L->voids--;
        L->over_void = L->voids > L->max_void;
    }
    if (L->terms > 0)
        L->terms--;
    L->over_terms = L->terms > L->max_terms;
}

/* spf_layer_result - see spf_dnslayer.h */
enum spf_result spf_layer_result(SPF_result_t r, struct spf_limits *L, const char **why)
{
    *why = NULL;
    forgive_explanation(r, L);
    if (L->timed_out) {
        *why = "DNS deadline passed";
        return SPF_R_TEMPERROR;
    }
    if (L->bad_record) {
        *why = L->bad_why;
        return SPF_R_PERMERROR;
    }
    if (L->over_terms) {
        *why = "more than the RFC 7208 limit of DNS-querying terms";
        return SPF_R_PERMERROR;
    }
    if (L->over_void) {
        *why = "more than the RFC 7208 limit of void DNS lookups";
        return SPF_R_PERMERROR;
    }
    if (L->dns_fail) {
        /* RFC 7208 5: a DNS error in any term ends in temperror. */
        *why = "DNS lookup failed";
        return SPF_R_TEMPERROR;
    }
    switch (r) {
    case SPF_RESULT_PASS:      return SPF_R_PASS;
    case SPF_RESULT_FAIL:      return SPF_R_FAIL;
    case SPF_RESULT_SOFTFAIL:  return SPF_R_SOFTFAIL;
    case SPF_RESULT_NEUTRAL:   return SPF_R_NEUTRAL;
    case SPF_RESULT_NONE:      return SPF_R_NONE;
    case SPF_RESULT_TEMPERROR: return SPF_R_TEMPERROR;
    case SPF_RESULT_PERMERROR: return SPF_R_PERMERROR;
    default:
        /* "(invalid)" without a DNS failure: the record is broken. */
        *why = "invalid SPF record";
        return SPF_R_PERMERROR;
    }
}
