/*
 * spf.c - the spf plugin: RFC 7208 check of the client address against the
 * MAIL FROM identity (the HELO identity, as postmaster@HELO, for the null
 * sender), at MAIL, with a per-result policy:
 *     reject    550 5.7.23 (5.7.24 for temperror/permerror), RFC 7372
 *     tempfail  451 4.7.24
 *     tag       a Received-SPF (RFC 7208 9.1) and/or Authentication-Results
 *               (RFC 8601) field added at end of message
 *     accept    nothing
 * Authenticated sessions and skip_networks are not checked. The check runs
 * under the stage deadline (spf_eval.c); a deadline that passes gives
 * 451 4.4.3 for that message. Outcomes are cached across sessions
 * (spf_cache.c). Forged Authentication-Results fields that carry our
 * authserv-id are removed before ours is added.
 *
 * With check_helo, the HELO identity is checked first as well (RFC 7208
 * 2.3): if it fails, that decides; otherwise MAIL FROM does. No DMARC.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <submilter/plugin.h>
#include "authres.h"
#include "netlist.h"
#include "spf_cache.h"
#include "spf_eval.h"

enum action { ACT_REJECT = 0, ACT_TEMPFAIL, ACT_TAG, ACT_ACCEPT };
enum headers { HDR_BOTH = 0, HDR_RECEIVED_SPF, HDR_AUTH_RESULTS, HDR_NONE };

struct spf_conf {
    int                action[SPF_R_COUNT];   /* indexed by enum spf_result */
    int                skip_authenticated;
    int                check_helo;
    const char *const *skip_networks;
    int                headers;
    const char        *authserv_id;
    int                strip_forged;
    long               cache_size;
    long               cache_ttl;             /* ms */
    long               max_lookups;           /* evaluations at once */
    long               max_dns_terms;
    long               max_void_lookups;
    const char        *test_zone;
    /* made by init */
    struct netlist    *skip;
    struct spf_cache  *cache;
    struct spf_engine *engine;
};

/* What MAIL found, for EOM (one transaction at a time per session). */
struct spf_sess {
    int                have;
    struct spf_query   q;
    struct spf_outcome o;
};

static const char *const action_names[] = { "reject", "tempfail", "tag", "accept", NULL };
static const char *const header_names[] = {
    "both", "received-spf", "authentication-results", "none", NULL
};

#define ACTION_OPT(name, def, field, help) \
    { name, SUBM_OPT_ENUM, def, offsetof(struct spf_conf, action) + (field) * sizeof(int), \
      0, 0, action_names, help }

static const subm_option_t spf_options[] = {
    ACTION_OPT("pass", "tag", SPF_R_PASS, "what a pass does"),
    ACTION_OPT("fail", "reject", SPF_R_FAIL, "what a fail does"),
    ACTION_OPT("softfail", "tag", SPF_R_SOFTFAIL, "what a softfail does"),
    ACTION_OPT("neutral", "tag", SPF_R_NEUTRAL, "what a neutral does"),
    ACTION_OPT("none", "tag", SPF_R_NONE, "what none (no record) does"),
    ACTION_OPT("temperror", "tag", SPF_R_TEMPERROR, "what a temperror does"),
    ACTION_OPT("permerror", "tag", SPF_R_PERMERROR, "what a permerror does"),
    { "skip_authenticated", SUBM_OPT_BOOL, "yes", offsetof(struct spf_conf, skip_authenticated),
      0, 0, NULL, "do not check sessions that authenticated" },
    { "check_helo", SUBM_OPT_BOOL, "no", offsetof(struct spf_conf, check_helo),
      0, 0, NULL, "also check the HELO identity; its fail decides (RFC 7208 2.3)" },
    { "skip_networks", SUBM_OPT_LIST, "{\"127.0.0.0/8\", \"::1\"}", offsetof(struct spf_conf, skip_networks),
      0, 0, NULL, "client networks that are not checked" },
    { "header", SUBM_OPT_ENUM, "both", offsetof(struct spf_conf, headers),
      0, 0, header_names, "which result field(s) a tag adds" },
    { "authserv_id", SUBM_OPT_STR, "", offsetof(struct spf_conf, authserv_id),
      0, 0, NULL, "Authentication-Results authserv-id (default: hostname)" },
    { "strip_forged", SUBM_OPT_BOOL, "yes", offsetof(struct spf_conf, strip_forged),
      0, 0, NULL, "remove received Authentication-Results with our authserv-id" },
    { "cache_size", SUBM_OPT_INT, "10000", offsetof(struct spf_conf, cache_size),
      0, 10000000, NULL, "outcomes kept (0: no cache)" },
    { "cache_ttl", SUBM_OPT_TIME, "5m", offsetof(struct spf_conf, cache_ttl),
      0, 86400000, NULL, "how long an outcome is kept" },
    { "max_lookups", SUBM_OPT_INT, "64", offsetof(struct spf_conf, max_lookups),
      1, 100000, NULL, "SPF evaluations running at once; more get 451" },
    { "max_dns_terms", SUBM_OPT_INT, "10", offsetof(struct spf_conf, max_dns_terms),
      1, 100, NULL, "DNS-querying terms before permerror (RFC 7208 4.6.4)" },
    { "max_void_lookups", SUBM_OPT_INT, "2", offsetof(struct spf_conf, max_void_lookups),
      0, 100, NULL, "void lookups before permerror (RFC 7208 4.6.4)" },
    { "test_zone", SUBM_OPT_PATH, "", offsetof(struct spf_conf, test_zone),
      0, 0, NULL, "tests only: answer DNS from this file (name TYPE data)" },
    SUBM_OPT_END
};

/* cache_done - the engine's hook: remember a finished outcome */
static void cache_done(void *arg, const struct spf_query *q, const struct spf_outcome *o)
{
    spf_cache_put(arg, q, o);
}

static void spf_fini(void *conf);

/* init_parts - networks, cache and libspf2 engine */
static int init_parts(void *conf, subm_error_t *err)
{
    struct spf_conf *cf = conf;
    char msg[300];

    if (!(cf->skip = netlist_new(cf->skip_networks, msg, sizeof(msg))))
        return subm_error(err, "skip_networks: %s", msg);
    if (!(cf->cache = spf_cache_new(cf->cache_size, cf->cache_ttl)))
        return subm_error(err, "cannot allocate a cache of %ld entries", cf->cache_size);
    cf->engine = spf_engine_new(cf->test_zone, cf->authserv_id, (int)cf->max_dns_terms,
                                (int)cf->max_void_lookups, cf->max_lookups,
                                cache_done, cf->cache, msg, sizeof(msg));
    if (!cf->engine)
        return subm_error(err, "%s", msg);
    return 0;
}

/* spf_init - init_parts once per chain, undone if it fails half-way */
static int spf_init(void *conf, subm_error_t *err)
{
    if (init_parts(conf, err) == 0)
        return 0;
    spf_fini(conf);
    return -1;
}

/* spf_fini - free what init made (safe to call twice) */
static void spf_fini(void *conf)
{
    struct spf_conf *cf = conf;

    spf_engine_free(&cf->engine);
    spf_cache_free(&cf->cache);
    netlist_free(&cf->skip);
}

/* sess_get - this session's state, made on first use */
static struct spf_sess *sess_get(subm_ctx_t *ctx)
{
    void **slot = subm_session_slot(ctx);

    if (!*slot)
        *slot = subm_session_alloc(ctx, sizeof(struct spf_sess));
    return *slot;
}

/* client_ip - the client address as text, IPv4-mapped IPv6 as IPv4 */
static int client_ip(const struct sockaddr *sa, char *buf, size_t size)
{
    const struct sockaddr_in6 *s6;

    if (sa->sa_family == AF_INET)
        return inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                         buf, (socklen_t)size) ? 0 : -1;
    if (sa->sa_family != AF_INET6)
        return -1;
    s6 = (const struct sockaddr_in6 *)(const void *)sa;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        return inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, (socklen_t)size) ? 0 : -1;
    return inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)size) ? 0 : -1;
}

/* query_fill - the identity to check; -1 if it does not fit */
static int query_fill(struct spf_query *q, const char *ip, const char *helo,
                      const char *sender)
{
    int n;

    memset(q, 0, sizeof(*q));
    if (strlen(ip) >= sizeof(q->ip) || strlen(helo) >= sizeof(q->helo))
        return -1;
    memcpy(q->ip, ip, strlen(ip) + 1);
    memcpy(q->helo, helo, strlen(helo) + 1);
    if (sender[0]) {
        n = snprintf(q->sender, sizeof(q->sender), "%s", sender);
    } else {
        /* RFC 7208 2.4: the null sender is checked as postmaster@HELO. */
        q->identity_helo = 1;
        n = snprintf(q->sender, sizeof(q->sender), "postmaster@%s", helo);
    }
    return n < 0 || (size_t)n >= sizeof(q->sender) ? -1 : 0;
}

/* apply_policy - the verdict for an outcome; tags are kept for EOM */
static subm_verdict_t apply_policy(subm_ctx_t *ctx, const struct spf_conf *cf,
                                   struct spf_sess *ss, int cached)
{
    enum spf_result r = ss->o.result;
    const char *name = spf_result_name(r);
    int error = r == SPF_R_TEMPERROR || r == SPF_R_PERMERROR;

    subm_log(ctx, SUBM_LOG_INFO, "spf=%s identity=%s sender=<%s> ip=%s (%s)%s", name,
             ss->q.identity_helo ? "helo" : "mailfrom", ss->q.sender, ss->q.ip,
             ss->o.comment, cached ? " (cached)" : "");
    switch (cf->action[r]) {
    case ACT_REJECT:
        return subm_reject(ctx, 550, error ? "5.7.24" : "5.7.23",
                           "SPF %s for %s from %s%s%s", name, ss->q.sender, ss->q.ip,
                           ss->o.explanation[0] ? ": " : "", ss->o.explanation);
    case ACT_TEMPFAIL:
        return subm_tempfail(ctx, 451, "4.7.24", "SPF %s for %s from %s; try again later",
                             name, ss->q.sender, ss->q.ip);
    case ACT_TAG:
        ss->have = 1;
        return SUBM_CONTINUE;
    default:
        return SUBM_CONTINUE;
    }
}

/* check_one - the outcome for q: from the cache or an evaluation under the
 * deadline. SUBM_CONTINUE with *o filled, or the TEMPFAIL to return. */
static subm_verdict_t check_one(subm_ctx_t *ctx, const struct spf_conf *cf,
                                const struct spf_query *q, struct spf_outcome *o,
                                int *cached)
{
    int rc;

    if ((*cached = spf_cache_get(cf->cache, q, o)))
        return SUBM_CONTINUE;
    rc = spf_eval_run(cf->engine, q, subm_time_left_ms(ctx), o);
    if (rc == -1) {
        subm_log(ctx, SUBM_LOG_WARN, "SPF check of <%s> from %s passed the deadline",
                 q->sender, q->ip);
        return subm_tempfail(ctx, 451, "4.4.3", "SPF check timed out; try again later");
    }
    if (rc < 0) {
        subm_log(ctx, SUBM_LOG_WARN, "SPF check of <%s> from %s not started (%s)",
                 q->sender, q->ip, rc == -2 ? "too many checks running" : "no resources");
        return subm_tempfail(ctx, 451, "4.3.0", "SPF check unavailable; try again later");
    }
    return SUBM_CONTINUE;
}

/* helo_fails - with check_helo, a HELO identity that fails decides
 * (RFC 7208 2.3); 1 with ss filled for it, 0 to go on, -1 with *v set */
static int helo_fails(subm_ctx_t *ctx, const struct spf_conf *cf, struct spf_sess *ss,
                      const char *ip, const char *helo, subm_verdict_t *v, int *cached)
{
    struct spf_query hq;
    struct spf_outcome ho;

    if (!cf->check_helo || !helo[0] || query_fill(&hq, ip, helo, "") < 0)
        return 0;
    if ((*v = check_one(ctx, cf, &hq, &ho, cached)) != SUBM_CONTINUE)
        return -1;
    if (ho.result != SPF_R_FAIL)
        return 0;
    ss->q = hq;
    ss->o = ho;
    return 1;
}

/* spf_mail - check the sender, answer by policy */
static subm_verdict_t spf_mail(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct spf_conf *cf = subm_instance(ctx);
    struct spf_sess *ss = sess_get(ctx);
    const struct sockaddr *sa = subm_client_sockaddr(ctx);
    const char *helo = subm_helo(ctx) ? subm_helo(ctx) : "";
    const char *sender = arg->text ? arg->text : "";
    char ip[INET6_ADDRSTRLEN];
    subm_verdict_t v;
    int cached = 0;

    if (!ss)
        return subm_tempfail(ctx, 451, "4.3.0", "SPF check: out of memory");
    ss->have = 0;
    if (cf->skip_authenticated && subm_auth_login(ctx))
        return SUBM_CONTINUE;
    if (!sa || netlist_match(cf->skip, sa) || client_ip(sa, ip, sizeof(ip)) < 0)
        return SUBM_CONTINUE;
    if (sender[0]) {
        switch (helo_fails(ctx, cf, ss, ip, helo, &v, &cached)) {
        case 1:  return apply_policy(ctx, cf, ss, cached);
        case -1: return v;
        default: break;
        }
    }
    if (query_fill(&ss->q, ip, helo, sender) < 0) {
        memset(&ss->o, 0, sizeof(ss->o));
        ss->o.result = SPF_R_NONE;
        snprintf(ss->o.comment, sizeof(ss->o.comment), "identity too long to check");
        return apply_policy(ctx, cf, ss, 0);
    }
    if ((v = check_one(ctx, cf, &ss->q, &ss->o, &cached)) != SUBM_CONTINUE)
        return v;
    return apply_policy(ctx, cf, ss, cached);
}

/* add_received_spf - RFC 7208 9.1, prepended */
static int add_received_spf(subm_ctx_t *ctx, const struct spf_sess *ss, const char *id)
{
    char comment[300], from[700], helo[300], rcv[300], v[2048];
    int n;

    hdr_comment(comment, sizeof(comment), ss->o.comment);
    hdr_value(from, sizeof(from), ss->q.sender);
    hdr_value(helo, sizeof(helo), ss->q.helo[0] ? ss->q.helo : "unknown");
    hdr_value(rcv, sizeof(rcv), id);
    n = snprintf(v, sizeof(v), "%s (%s)\r\n\tclient-ip=%s;\r\n\tenvelope-from=%s;\r\n\t"
                 "helo=%s;\r\n\treceiver=%s;\r\n\tidentity=%s;",
                 spf_result_name(ss->o.result), comment, ss->q.ip, from, helo, rcv,
                 ss->q.identity_helo ? "helo" : "mailfrom");
    if (n < 0 || (size_t)n >= sizeof(v))
        return -1;
    return subm_txn_insert_header(ctx, 0, "Received-SPF", v);
}

/* add_auth_results - RFC 8601 spf= clause, prepended */
static int add_auth_results(subm_ctx_t *ctx, const struct spf_sess *ss, const char *id)
{
    char ident[700], v[1024];
    int n;

    if (ss->q.identity_helo)
        hdr_value(ident, sizeof(ident), ss->q.helo);
    else
        hdr_addr(ident, sizeof(ident), ss->q.sender);
    n = snprintf(v, sizeof(v), "%s;\r\n\tspf=%s smtp.%s=%s", id,
                 spf_result_name(ss->o.result),
                 ss->q.identity_helo ? "helo" : "mailfrom", ident);
    if (n < 0 || (size_t)n >= sizeof(v))
        return -1;
    return subm_txn_insert_header(ctx, 0, "Authentication-Results", v);
}

/* spf_eom - add the result field(s) for a tagged message */
static subm_verdict_t spf_eom(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct spf_conf *cf = subm_instance(ctx);
    struct spf_sess *ss = sess_get(ctx);
    const char *id = authres_id(ctx, cf->authserv_id);
    int rc = 0;

    if (!ss || !ss->have)
        return SUBM_CONTINUE;
    ss->have = 0;
    if (cf->headers == HDR_BOTH || cf->headers == HDR_AUTH_RESULTS)
        rc |= add_auth_results(ctx, ss, id);
    if (cf->headers == HDR_BOTH || cf->headers == HDR_RECEIVED_SPF)
        rc |= add_received_spf(ctx, ss, id);
    if (rc != 0)
        subm_log(ctx, SUBM_LOG_WARN, "could not add the SPF result header");
    return SUBM_CONTINUE;
}

/* spf_eoh - remove forged Authentication-Results before anything is added.
 * At EOH, before any plugin inserts its own field at EOM, so that a second
 * plugin stripping the same fields can only hit received ones. */
static subm_verdict_t spf_eoh(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct spf_conf *cf = subm_instance(ctx);
    struct spf_sess *ss = *subm_session_slot(ctx);

    if (ss && ss->have && cf->strip_forged
        && (cf->headers == HDR_BOTH || cf->headers == HDR_AUTH_RESULTS))
        authres_strip_forged(ctx, authres_id(ctx, cf->authserv_id));
    return SUBM_CONTINUE;
}

/* spf_rset - forget the transaction's result */
static subm_verdict_t spf_rset(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    struct spf_sess *ss = *subm_session_slot(ctx);

    if (ss)
        ss->have = 0;
    return SUBM_CONTINUE;
}

SUBM_PLUGIN(spf) = {
    SUBM_PLUGIN_HEAD,
    .name        = "spf",
    .version     = "1.0",
    .description = "RFC 7208 SPF check of the MAIL FROM / HELO identity (libspf2)",
    .options     = spf_options,
    .conf_size   = sizeof(struct spf_conf),
    .flags       = SUBM_PLUGIN_NEEDS_HEADERS,
    .init        = spf_init,
    .fini        = spf_fini,
    .on_mail     = spf_mail,
    .on_eoh      = spf_eoh,
    .on_eom      = spf_eom,
    .on_rset     = spf_rset,
};
