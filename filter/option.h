/*
 * option.h - typed options: the same subm_option_t tables serve plugins
 * (their blocks) and the daemon's own sections (root, smtp, milter).
 *
 * option_parse() checks one value's text against its declaration and, given
 * a destination block, stores it; option_set_defaults() writes every
 * default. Strings and lists are allocated from the given pool. This module
 * knows nothing of libconfuse; config.c feeds it.
 */
#ifndef SUBM_OPTION_H
#define SUBM_OPTION_H

#include <stddef.h>
#include <submilter/plugin.h>

struct pool;

/* option_find - the option called name in table, or NULL. */
const subm_option_t *option_find(const subm_option_t *table, const char *name);
/* option_parse - parse values[0..n) for o; store into block if non-NULL.
 * Returns 0, or -1 with a message in err. */
int option_parse(const subm_option_t *o, const char *const *values, size_t n,
                 void *block, struct pool *pool, char *err, size_t errlen);
/* option_set_defaults - write every option's default into block. */
int option_set_defaults(const subm_option_t *table, void *block,
                        struct pool *pool, char *err, size_t errlen);
/* Helpers also used elsewhere: 0 on success, -1 if malformed. */
int option_parse_size(const char *s, uint64_t *out);
int option_parse_time_ms(const char *s, long *out);
int option_parse_bool(const char *s, int *out);

#endif
