/*
 * pool.c - arena allocation for sessions and transactions.
 *
 * Memory comes from a list of chunks; a request larger than a quarter of
 * the chunk size gets a chunk of its own. pool_reset() keeps the first
 * chunk so a transaction pool costs no malloc per message in the common
 * case. See pool.h for the contract.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pool.h"

struct chunk {
    struct chunk *next;
    size_t        size;        /* usable bytes after the header */
    size_t        used;
    /* data follows, aligned to max_align_t */
};

struct cleanup {
    struct cleanup *next;
    void          (*fn)(void *);
    void           *arg;
};

struct pool {
    struct chunk   *chunks;    /* newest first; the last one is the first made */
    size_t          chunk_size;
    size_t          held;
    struct cleanup *cleanups;
};

#define ALIGN_UP(n) (((n) + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1))
#define CHUNK_HDR   ALIGN_UP(sizeof(struct chunk))

/* xmalloc - malloc that never returns NULL. */
void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        log_panic("out of memory allocating %zu bytes", size);
    return p;
}

/* xcalloc - calloc that never returns NULL. */
void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL)
        log_panic("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

/* xrealloc - realloc that never returns NULL. */
void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL)
        log_panic("out of memory reallocating %zu bytes", size);
    return p;
}

/* xstrdup - strdup that never returns NULL. */
char *xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;

    return memcpy(xmalloc(len), s, len);
}

/* chunk_new - a chunk with room for at least size bytes. */
static struct chunk *chunk_new(size_t size)
{
    struct chunk *c = xmalloc(CHUNK_HDR + size);

    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

/* pool_new - an empty pool whose chunks hold chunk_size bytes. */
struct pool *pool_new(size_t chunk_size)
{
    struct pool *p = xcalloc(1, sizeof(*p));

    p->chunk_size = chunk_size < 256 ? 256 : ALIGN_UP(chunk_size);
    p->chunks = chunk_new(p->chunk_size);
    p->held = p->chunk_size;
    return p;
}

/* run_cleanups - call every registered cleanup, newest first. */
static void run_cleanups(struct pool *p)
{
    while (p->cleanups != NULL) {
        struct cleanup *c = p->cleanups;

        p->cleanups = c->next;   /* a cleanup may register no more */
        c->fn(c->arg);
    }
}

/* pool_reset - run cleanups, free all chunks but the first. */
void pool_reset(struct pool *p)
{
    struct chunk *c, *next;

    run_cleanups(p);
    for (c = p->chunks; c->next != NULL; c = next) {
        next = c->next;
        free(c);
    }
    p->chunks = c;
    c->used = 0;
    p->held = c->size;
}

/* pool_free - run cleanups and free everything; *pp becomes NULL. */
void pool_free(struct pool **pp)
{
    struct pool *p = *pp;
    struct chunk *c, *next;

    if (p == NULL)
        return;
    run_cleanups(p);
    for (c = p->chunks; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(p);
    *pp = NULL;
}

/* pool_alloc - size zeroed bytes, aligned for any type. */
void *pool_alloc(struct pool *p, size_t size)
{
    struct chunk *c = p->chunks;
    unsigned char *mem;

    size = ALIGN_UP(size ? size : 1);
    if (size > c->size - c->used) {
        if (size > p->chunk_size / 4) {
            /* a big block gets its own chunk, kept behind the current one */
            struct chunk *big = chunk_new(size);

            big->used = size;
            big->next = c->next;
            c->next = big;
            p->held += size;
            return memset((unsigned char *)big + CHUNK_HDR, 0, size);
        }
        c = chunk_new(p->chunk_size);
        c->next = p->chunks;
        p->chunks = c;
        p->held += c->size;
    }
    mem = (unsigned char *)c + CHUNK_HDR + c->used;
    c->used += size;
    return memset(mem, 0, size);
}

/* pool_memdup - a copy of len bytes. */
void *pool_memdup(struct pool *p, const void *src, size_t len)
{
    return memcpy(pool_alloc(p, len), src, len);
}

/* pool_strndup - a NUL-terminated copy of at most len bytes of s. */
char *pool_strndup(struct pool *p, const char *s, size_t len)
{
    char *d;

    if (s == NULL)
        return NULL;
    len = strnlen(s, len);
    d = pool_alloc(p, len + 1);
    memcpy(d, s, len);
    return d;
}

/* pool_strdup - a copy of s (NULL stays NULL). */
char *pool_strdup(struct pool *p, const char *s)
{
    return s == NULL ? NULL : pool_strndup(p, s, SIZE_MAX);
}

/* pool_vprintf - format into pool memory. */
char *pool_vprintf(struct pool *p, const char *fmt, va_list ap)
{
    va_list ap2;
    int len;
    char *d;

    va_copy(ap2, ap);
    len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (len < 0)
        return pool_strdup(p, "");
    d = pool_alloc(p, (size_t)len + 1);
    vsnprintf(d, (size_t)len + 1, fmt, ap);
    return d;
}

/* pool_printf - format into pool memory. */
char *pool_printf(struct pool *p, const char *fmt, ...)
{
    va_list ap;
    char *d;

    va_start(ap, fmt);
    d = pool_vprintf(p, fmt, ap);
    va_end(ap);
    return d;
}

/* pool_cleanup_add - call fn(arg) at reset or free. */
void pool_cleanup_add(struct pool *p, void (*fn)(void *), void *arg)
{
    struct cleanup *c = pool_alloc(p, sizeof(*c));

    c->fn = fn;
    c->arg = arg;
    c->next = p->cleanups;
    p->cleanups = c;
}

/* pool_used - bytes of chunks held (for memory accounting). */
size_t pool_used(const struct pool *p)
{
    return p->held;
}
