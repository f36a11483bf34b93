/*
 * spf_cache.c - the shared, bounded SPF outcome cache (see spf_cache.h).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "spf_cache.h"

struct slot {
    char              *key;          /* NULL: empty */
    int64_t            expires;
    struct spf_outcome o;
};

struct spf_cache {
    pthread_mutex_t mu;
    long            size, ttl_ms;
    struct slot    *slots;
};

/* now_ms - monotonic milliseconds */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* cache_key - "ip\nhelo\nsender" in a malloc'd string */
static char *cache_key(const struct spf_query *q)
{
    size_t len = strlen(q->ip) + strlen(q->helo) + strlen(q->sender) + 4;
    char *k = malloc(len);

    if (k && snprintf(k, len, "%s\n%s\n%s", q->ip, q->helo, q->sender) >= (int)len) {
        free(k);
        k = NULL;
    }
    return k;
}

/* key_hash - FNV-1a */
static uint32_t key_hash(const char *k)
{
    uint32_t h = 2166136261u;

    while (*k)
        h = (h ^ (unsigned char)*k++) * 16777619u;
    return h;
}

/* spf_cache_new - see spf_cache.h */
struct spf_cache *spf_cache_new(long size, long ttl_ms)
{
    struct spf_cache *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (size > 0 && !(c->slots = calloc((size_t)size, sizeof(struct slot)))) {
        free(c);
        return NULL;
    }
    c->size = size > 0 ? size : 0;
    c->ttl_ms = ttl_ms;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

/* spf_cache_free - free and clear *cp */
void spf_cache_free(struct spf_cache **cp)
{
    struct spf_cache *c = *cp;
    long i;

    if (!c)
        return;
    for (i = 0; i < c->size; i++)
        free(c->slots[i].key);
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    free(c);
    *cp = NULL;
}

/* spf_cache_get - see spf_cache.h */
int spf_cache_get(struct spf_cache *c, const struct spf_query *q,
                  struct spf_outcome *o)
{
    char *k;
    struct slot *s;
    int hit = 0;

    if (!c || c->size == 0 || !(k = cache_key(q)))
        return 0;
    pthread_mutex_lock(&c->mu);
    s = &c->slots[key_hash(k) % (uint32_t)c->size];
    if (s->key && strcmp(s->key, k) == 0 && s->expires > now_ms()) {
        *o = s->o;
        hit = 1;
    }
    pthread_mutex_unlock(&c->mu);
    free(k);
    return hit;
}

/* spf_cache_put - see spf_cache.h */
void spf_cache_put(struct spf_cache *c, const struct spf_query *q,
                   const struct spf_outcome *o)
{
    char *k;
    struct slot *s;

    if (!c || c->size == 0 || !(k = cache_key(q)))
        return;
    pthread_mutex_lock(&c->mu);
    s = &c->slots[key_hash(k) % (uint32_t)c->size];
    free(s->key);
    s->key = k;
    s->o = *o;
    s->expires = now_ms() + c->ttl_ms;
    pthread_mutex_unlock(&c->mu);
}
