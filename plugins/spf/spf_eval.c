/*
 * spf_eval.c - libspf2 evaluation with RFC 7208 limits and a deadline
 * (see spf_eval.h).
 *
 * DNS stack:   libspf2 server -> limits layer (ours) -> resolver or zone.
 * The limits layer keeps per-evaluation counters in thread-local storage:
 * each evaluation runs in its own worker thread, which sets them up.
 */
#define _GNU_SOURCE 1               /* dladdr */
#include <sys/types.h>
#include <netinet/in.h>
#include <dlfcn.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <spf2/spf.h>
#include <spf2/spf_dns_resolv.h>
#include <spf2/spf_dns_zone.h>
#include "spf_eval.h"
#include "spf_syntax.h"

#define FOLLOW_MAX 24       /* names from MX/PTR answers whose A lookups are free */

/* Counters of one evaluation (RFC 7208 4.6.4). */
struct limits {
    int     terms, voids;
    int     max_terms, max_void;
    int     over_terms, over_void, dns_fail, timed_out;
    int     bad_record;              /* a fetched record fails RFC 7208 12 */
    char    bad_why[128];
    int     record_fetched;          /* the first TXT is the record itself */
    /* The last lookup, so an explanation fetch (the last TXT of a "fail")
     * can be taken back: its errors do not count (RFC 7208 6.2). */
    ns_type last_type;
    int     last_fail, last_void;
    int64_t deadline;
    size_t  nfollow;
    char    follow[FOLLOW_MAX][256];
};

static __thread struct limits *tl_limits;

struct spf_engine {
    SPF_server_t     *server;
    SPF_dns_server_t *limits_layer;  /* ours; owns the layers below */
    spf_done_fn       done;
    void             *done_arg;
    pthread_mutex_t   mu;                /* guards the three below and done */
    long              running, max_workers;
    int               closing;
    int               max_terms, max_void;
};

/* One evaluation shared by the waiting session and the worker. */
struct job {
    pthread_mutex_t    mu;
    pthread_cond_t     cv;
    int                refs, done;
    struct spf_engine *e;
    struct spf_query   q;
    struct spf_outcome o;
    int64_t            deadline;
    int                max_terms, max_void;
};

static const char *const result_names[SPF_R_COUNT] = {
    "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"
};

/* spf_result_name - see spf_eval.h */
const char *spf_result_name(enum spf_result r)
{
    return (unsigned)r < SPF_R_COUNT ? result_names[r] : "permerror";
}

/* now_ms - monotonic milliseconds */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* quiet_handler - libspf2 warnings and info go nowhere (we log results) */
static void quiet_handler(const char *file, int line, const char *msg)
{
    (void)file; (void)line; (void)msg;
}

/* follow_add - remember a name an MX/PTR answer pointed to */
static void follow_add(struct limits *L, const char *name)
{
    if (L->nfollow < FOLLOW_MAX && strlen(name) < sizeof(L->follow[0])) {
        memcpy(L->follow[L->nfollow], name, strlen(name) + 1);
        L->nfollow++;
    }
}

/* follow_take - 1 (and forget it) if name came from an MX/PTR answer */
static int follow_take(struct limits *L, const char *name)
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
static void note_void(struct limits *L)
{
    L->last_void = 1;
    if (++L->voids > L->max_void)
        L->over_void = 1;
}

/* limits_note_answer - count void lookups and DNS failures, note follow-ups.
 * Lookups of MX/PTR targets are neither terms nor voids (RFC 7208 4.6.4). */
static void limits_note_answer(struct limits *L, SPF_dns_rr_t *rr,
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
    struct limits *L = tl_limits;
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

/* limits_layer_new - our layer over `below` (owned from here on) */
static SPF_dns_server_t *limits_layer_new(SPF_dns_server_t *below)
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

/* zone_load - libspf2's zone layer filled from a file */
static SPF_dns_server_t *zone_load(const char *path, char *err, size_t errlen)
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

/* pin_self - keep this shared object mapped even after the daemon
 * dlclose()s it (reload, stop): a detached DNS worker may still be running
 * our code when fini returns. RTLD_NODELETE on the already loaded object
 * (RTLD_NOLOAD) does that; the reference is never dropped on purpose. */
static void pin_self(void)
{
    Dl_info info;

    if (dladdr((void *)pin_self, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* spf_engine_new - see spf_eval.h */
struct spf_engine *spf_engine_new(const char *zone_file, const char *receiver, int max_terms,
                                  int max_void, long max_workers,
                                  spf_done_fn done, void *done_arg,
                                  char *err, size_t errlen)
{
    struct spf_engine *e;
    SPF_dns_server_t *below;

    err[0] = '\0';
    pin_self();
    SPF_warning_handler = quiet_handler;
    SPF_info_handler = quiet_handler;
    SPF_debug_handler = quiet_handler;
    if (zone_file && zone_file[0])
        below = zone_load(zone_file, err, errlen);
    else
        below = SPF_dns_resolv_new(NULL, "resolver", 0);
    if (!below) {
        if (!err[0])
            snprintf(err, errlen, "cannot make libspf2's resolver layer");
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (!e || !(e->limits_layer = limits_layer_new(below))) {
        SPF_dns_free(below);
        free(e);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->server = SPF_server_new_dns(e->limits_layer, 0);
    if (!e->server) {
        SPF_dns_free(e->limits_layer);
        free(e);
        snprintf(err, errlen, "cannot make libspf2 server");
        return NULL;
    }
    /* Our layer counts terms as RFC 7208 4.6.4 does; libspf2's own count
     * (which misses some) must not stop it first. */
    SPF_server_set_max_dns_mech(e->server, max_terms + 10);
    if (receiver && receiver[0])
        SPF_server_set_rec_dom(e->server, receiver);
    SPF_server_set_max_dns_mx(e->server, 10);
    SPF_server_set_max_dns_ptr(e->server, 10);
    /* libspf2's default explanation points at a web site long gone. */
    {
        SPF_response_t *resp = NULL;

        SPF_server_set_explanation(e->server,
                                   "%{o}%_does%_not%_designate%_%{i}%_as%_a%_permitted%_sender",
                                   &resp);
        if (resp)
            SPF_response_free(resp);
    }
    pthread_mutex_init(&e->mu, NULL);
    e->max_workers = max_workers > 0 ? max_workers : 1;
    e->max_terms = max_terms;
    e->max_void = max_void;
    e->done = done;
    e->done_arg = done_arg;
    return e;
}

/* engine_destroy - free the engine (no worker left) */
static void engine_destroy(struct spf_engine *e)
{
    SPF_server_free(e->server);
    SPF_dns_free(e->limits_layer);       /* ours and the layers below */
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* spf_engine_free - see spf_eval.h. Workers still waiting on the DNS keep
 * the engine alive; the last one to finish frees it. */
void spf_engine_free(struct spf_engine **ep)
{
    struct spf_engine *e = *ep;
    int last;

    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->done = NULL;                      /* the cache goes away with us */
    e->closing = 1;
    last = e->running == 0;
    pthread_mutex_unlock(&e->mu);
    if (last)
        engine_destroy(e);
    *ep = NULL;
}

/* forgive_explanation - a "fail" whose last lookup was a TXT ended with the
 * exp= fetch: its failure or void does not change the result (RFC 7208
 * 6.2). The only TXT lookup after a decided fail is that one: an include
 * or redirect that failed would not have let the evaluation reach fail. */
static void forgive_explanation(SPF_result_t r, struct limits *L)
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

/* map_result - libspf2's answer and our counters to an RFC 7208 result */
static enum spf_result map_result(SPF_result_t r, struct limits *L,
                                  const char **why)
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

/* copy_text - bounded copy, control characters replaced */
static void copy_text(char *dst, size_t size, const char *src)
{
    size_t i;

    for (i = 0; src && src[i] && i + 1 < size; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

/* evaluate - one check_host() for q with counters L; fills *o */
static void evaluate(struct spf_engine *e, const struct spf_query *q,
                     struct limits *L, struct spf_outcome *o)
{
    SPF_request_t *req;
    SPF_response_t *resp = NULL;
    SPF_result_t raw = SPF_RESULT_INVALID;
    const char *why;
    int bad;

    memset(o, 0, sizeof(*o));
    req = SPF_request_new(e->server);
    if (!req) {
        o->result = SPF_R_TEMPERROR;
        copy_text(o->comment, sizeof(o->comment), "out of memory");
        return;
    }
    bad = strchr(q->ip, ':') ? SPF_request_set_ipv6_str(req, q->ip)
                             : SPF_request_set_ipv4_str(req, q->ip);
    if (bad == SPF_E_SUCCESS && q->helo[0])
        bad = SPF_request_set_helo_dom(req, q->helo);
    if (bad == SPF_E_SUCCESS)
        bad = SPF_request_set_env_from(req, q->sender);
    if (bad != SPF_E_SUCCESS) {
        /* No checkable identity (RFC 7208 4.3): "none". */
        SPF_request_free(req);
        o->result = SPF_R_NONE;
        copy_text(o->comment, sizeof(o->comment), "no checkable identity");
        return;
    }
    tl_limits = L;
    SPF_request_query_mailfrom(req, &resp);
    tl_limits = NULL;
    if (resp)
        raw = SPF_response_result(resp);
    o->result = map_result(raw, L, &why);
    if (why) {
        /* Truncation is fine: a comment. */
        snprintf(o->comment, sizeof(o->comment), "%.100s: %.140s",
                 q->sender, why);
        copy_text(o->comment, sizeof(o->comment), o->comment);
    } else if (resp) {
        copy_text(o->comment, sizeof(o->comment),
                  SPF_response_get_header_comment(resp));
    }
    if (resp && o->result == SPF_R_FAIL)
        copy_text(o->explanation, sizeof(o->explanation),
                  SPF_response_get_explanation(resp));
    if (resp)
        SPF_response_free(resp);
    SPF_request_free(req);
}

/* job_unref - drop one reference; the last frees */
static void job_unref(struct job *j)
{
    int last;

    pthread_mutex_lock(&j->mu);
    last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last) {
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        free(j);
    }
}

/* engine_reserve - count a worker in, unless too many run already */
static int engine_reserve(struct spf_engine *e)
{
    int ok;

    pthread_mutex_lock(&e->mu);
    ok = e->running < e->max_workers;
    if (ok)
        e->running++;
    pthread_mutex_unlock(&e->mu);
    return ok;
}

/* engine_release - count a worker out, handing its outcome (if worth
 * keeping: not cut short, not temperror) to the cache hook; the last
 * worker of a freed engine frees it */
static void engine_release(struct spf_engine *e, const struct spf_outcome *o,
                           const struct spf_query *q)
{
    int last;

    pthread_mutex_lock(&e->mu);
    if (o && e->done)
        e->done(e->done_arg, q, o);
    last = --e->running == 0 && e->closing;
    pthread_mutex_unlock(&e->mu);
    if (last)
        engine_destroy(e);
}

/* worker - evaluate a job, hand over the outcome, feed the cache */
static void *worker(void *arg)
{
    struct job *j = arg;
    struct spf_engine *e = j->e;
    struct limits *L = calloc(1, sizeof(*L));
    struct spf_outcome o;

    if (L) {
        L->max_terms = j->max_terms;
        L->max_void = j->max_void;
        L->deadline = j->deadline;
        evaluate(e, &j->q, L, &o);
    } else {
        memset(&o, 0, sizeof(o));
        o.result = SPF_R_TEMPERROR;
    }
    engine_release(e, L && !L->timed_out && o.result != SPF_R_TEMPERROR ? &o : NULL, &j->q);
    free(L);
    pthread_mutex_lock(&j->mu);
    j->o = o;
    j->done = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    return NULL;
}

/* job_new - a job with two references (waiter, worker) */
static struct job *job_new(struct spf_engine *e, const struct spf_query *q,
                           long timeout_ms)
{
    struct job *j = calloc(1, sizeof(*j));
    pthread_condattr_t ca;

    if (!j)
        return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    j->refs = 2;
    j->e = e;
    j->q = *q;
    j->deadline = now_ms() + timeout_ms;
    return j;
}

/* spf_eval_run - see spf_eval.h */
int spf_eval_run(struct spf_engine *e, const struct spf_query *q,
                 long timeout_ms, struct spf_outcome *o)
{
    struct job *j;
    pthread_t tid;
    pthread_attr_t attr;
    struct timespec until;
    int rc = 0, started;

    if (timeout_ms <= 0)
        return -1;
    if (!engine_reserve(e))
        return -2;
    if (!(j = job_new(e, q, timeout_ms))) {
        engine_release(e, NULL, q);
        return -3;
    }
    j->max_terms = e->max_terms;
    j->max_void = e->max_void;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    started = pthread_create(&tid, &attr, worker, j) == 0;
    pthread_attr_destroy(&attr);
    if (!started) {
        engine_release(e, NULL, q);
        j->refs = 1;
        job_unref(j);
        return -3;
    }
    until.tv_sec = (time_t)(j->deadline / 1000);
    until.tv_nsec = (long)(j->deadline % 1000) * 1000000;
    pthread_mutex_lock(&j->mu);
    while (!j->done && rc == 0)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &until) == ETIMEDOUT)
            rc = j->done ? 0 : -1;
    if (j->done) {
        *o = j->o;
        rc = 0;
    }
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    return rc;
}
