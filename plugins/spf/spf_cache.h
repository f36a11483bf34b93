/*
 * spf_cache.h - a bounded cache of SPF outcomes shared by all sessions of a
 * plugin instance, keyed by (client address, HELO, checked identity).
 * Direct-mapped: a fixed table of `size` slots, a new entry replaces the one
 * in its slot, entries expire after `ttl_ms`. Guarded by its own mutex.
 * Does not cache temperror (the caller decides what it stores).
 */
#ifndef SUBM_SPF_CACHE_H
#define SUBM_SPF_CACHE_H

#include "spf_eval.h"

struct spf_cache;

/* spf_cache_new - size 0 gives a cache that keeps nothing. */
struct spf_cache *spf_cache_new(long size, long ttl_ms);
void              spf_cache_free(struct spf_cache **cp);
/* spf_cache_get - 1 and *o filled on a fresh hit, else 0. */
int               spf_cache_get(struct spf_cache *c, const struct spf_query *q,
                                struct spf_outcome *o);
void              spf_cache_put(struct spf_cache *c, const struct spf_query *q,
                                const struct spf_outcome *o);

#endif
