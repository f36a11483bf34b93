/*
 * spool.h - a byte store for one message body: memory up to a bound, then
 * an unlinked temporary file in the spool folder (so nothing is left there
 * whatever happens to the process).
 *
 * Calls: spool_new, spool_write, spool_read, spool_size, spool_reset,
 * spool_free. Not thread-safe; one spool belongs to one session.
 * It does not parse or transform what it holds.
 */
#ifndef SUBM_SPOOL_H
#define SUBM_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

/* spool_new - mem_limit bytes in memory before going to a file in dir. */
struct spool *spool_new(size_t mem_limit, const char *dir);
void          spool_free(struct spool **sp);
/* spool_write - append; 0, or -1 with errno (disk full, ...), logged. */
int           spool_write(struct spool *sp, const void *data, size_t len);
/* spool_read - up to len bytes at off; bytes read, 0 at end, -1 on error. */
long          spool_read(struct spool *sp, uint64_t off, void *buf, size_t len);
uint64_t      spool_size(const struct spool *sp);
int           spool_on_disk(const struct spool *sp);
/* spool_reset - empty it (drops the temporary file) for the next message. */
void          spool_reset(struct spool *sp);

#endif
