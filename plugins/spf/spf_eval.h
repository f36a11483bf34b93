/*
 * spf_eval.h - one RFC 7208 check_host() evaluation with libspf2, made
 * RFC-correct where libspf2 is not, and bounded in time.
 *
 * The engine owns a libspf2 server over a DNS stack of the system resolver
 * (or, for tests, a zone file read into libspf2's zone layer) under a layer
 * of ours that enforces the RFC 7208 4.6.4 limits (10 DNS-querying terms, 2
 * void lookups) that libspf2 does not, notes DNS failures, and stops querying
 * at the deadline. libspf2's "(invalid)" is mapped to temperror (DNS failure)
 * or permerror (bad record).
 *
 * spf_eval_run() runs the evaluation in a worker thread and waits at most
 * until the deadline: a slow DNS never holds a session past it. The worker
 * finishes on its own (bounded by the resolver's timeouts) and its result
 * still reaches the cache hook. The engine is shared by all sessions.
 *
 * Does not apply policy or write headers (spf.c does).
 */
#ifndef SUBM_SPF_EVAL_H
#define SUBM_SPF_EVAL_H

#include <stdint.h>
#include <stddef.h>

/* RFC 7208 results, in the order of the plugin's per-result options. */
enum spf_result {
    SPF_R_PASS = 0,
    SPF_R_FAIL,
    SPF_R_SOFTFAIL,
    SPF_R_NEUTRAL,
    SPF_R_NONE,
    SPF_R_TEMPERROR,
    SPF_R_PERMERROR,
    SPF_R_COUNT
};

struct spf_outcome {
    enum spf_result result;
    char            comment[256];   /* for Received-SPF's comment */
    char            explanation[256]; /* for a rejection's text */
};

struct spf_query {
    char ip[64];                    /* client address as text */
    char helo[256];
    char sender[512];               /* the identity checked: MAIL FROM or postmaster@helo */
    int  identity_helo;             /* 1 if sender is derived from HELO */
};

struct spf_engine;

/* Called by the worker with a finished (not timed-out-by-DNS) outcome. */
typedef void (*spf_done_fn)(void *arg, const struct spf_query *q,
                            const struct spf_outcome *o);

/* spf_engine_new - zone_file NULL/"" for the system resolver; receiver
 * (NULL/"": the host name) names us in libspf2's comments. NULL with a
 * message in err on failure. */
struct spf_engine *spf_engine_new(const char *zone_file, const char *receiver, int max_terms,
                                  int max_void, long max_workers,
                                  spf_done_fn done, void *done_arg,
                                  char *err, size_t errlen);
/* spf_engine_free - frees now, or (if workers still wait on the DNS) when
 * the last of them ends; the done hook is not called after this. */
void spf_engine_free(struct spf_engine **ep);

/* spf_result_name - "pass", "fail", ... */
const char *spf_result_name(enum spf_result r);

/* spf_eval_run - evaluate q, waiting at most timeout_ms. Returns 0 with *o
 * filled, -1 if the deadline passed, -2 if too many evaluations are already
 * running, -3 on a resource failure (thread, memory). */
int spf_eval_run(struct spf_engine *e, const struct spf_query *q,
                 long timeout_ms, struct spf_outcome *o);

#endif
