/*
 * spf_eval.c - libspf2 evaluation with RFC 7208 limits and a deadline
 * (see spf_eval.h).
 *
 * DNS stack:   libspf2 server -> our layer (spf_dnslayer.c) -> resolver or
 * zone. Each evaluation runs in a worker thread of its own, which gives the
 * layer its counters; the session waits for it until the deadline.
 */
#define _GNU_SOURCE 1               /* dladdr */
#include <sys/types.h>
#include <netinet/in.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <spf2/spf.h>
#include <spf2/spf_dns_resolv.h>
#include "spf_dnslayer.h"
#include "spf_eval.h"

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
        below = spf_zone_load(zone_file, err, errlen);
    else
        below = SPF_dns_resolv_new(NULL, "resolver", 0);
    if (!below) {
        if (!err[0])
            snprintf(err, errlen, "cannot make libspf2's resolver layer");
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (!e || !(e->limits_layer = spf_layer_new(below))) {
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
                     struct spf_limits *L, struct spf_outcome *o)
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
    spf_layer_begin(L);
    SPF_request_query_mailfrom(req, &resp);
    spf_layer_end();
    if (resp)
        raw = SPF_response_result(resp);
    o->result = spf_layer_result(raw, L, &why);
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
    struct spf_limits *L = calloc(1, sizeof(*L));
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
