/*
 * pool.h - arena allocation for sessions and transactions.
 *
 * A pool hands out zeroed memory that lives until pool_reset() or
 * pool_free(); cleanups registered with pool_cleanup_add() run first, in
 * reverse order. Out of memory is fatal (logged, abort), as in Postfix's
 * mymalloc: callers never check for NULL. Not thread-safe: one pool belongs
 * to one session thread.
 */
#ifndef SUBM_POOL_H
#define SUBM_POOL_H

#include <stdarg.h>
#include <stddef.h>

struct pool;

struct pool *pool_new(size_t chunk_size);
void         pool_free(struct pool **pp);
void         pool_reset(struct pool *p);
void        *pool_alloc(struct pool *p, size_t size);
void        *pool_memdup(struct pool *p, const void *src, size_t len);
char        *pool_strdup(struct pool *p, const char *s);      /* NULL stays NULL */
char        *pool_strndup(struct pool *p, const char *s, size_t len);
char        *pool_printf(struct pool *p, const char *fmt, ...)
                 __attribute__((format(printf, 2, 3)));
char        *pool_vprintf(struct pool *p, const char *fmt, va_list ap);
void         pool_cleanup_add(struct pool *p, void (*fn)(void *), void *arg);
size_t       pool_used(const struct pool *p);                  /* bytes held */

/* xmalloc & co: heap allocation that aborts on failure. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);

#endif
