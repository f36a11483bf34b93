/*
 * mods.c - apply recorded modifications to copies of the header list and
 * the envelope (see mods.h). Semantics follow the milter protocol, so both
 * front-ends give the same message: change of the n-th field that does not
 * exist adds it; delete of a missing field does nothing; insert past the
 * end appends; envelope changes apply in call order.
 */
#include <string.h>
#include <strings.h>

#include "mods.h"
#include "pool.h"

/* raw_field - "Name: value" with every line break as CRLF. */
static char *raw_field(struct pool *p, const char *name, const char *value, size_t *len_r)
{
    size_t nlen = strlen(name), vlen = strlen(value), i, o;
    char *raw = pool_alloc(p, nlen + 2 + 2 * vlen + 1);

    memcpy(raw, name, nlen);
    memcpy(raw + nlen, ": ", 2);
    o = nlen + 2;
    for (i = 0; i < vlen; i++) {
        if (value[i] == '\r')
            continue;
        if (value[i] == '\n')
            raw[o++] = '\r';
        raw[o++] = value[i];
    }
    raw[o] = '\0';
    *len_r = o;
    return raw;
}

/* set_field - fill h as a field written by a plugin. */
static void set_field(struct pool *p, struct header *h, const char *name, const char *value)
{
    h->name = (char *)name;
    h->raw = raw_field(p, name, value, &h->raw_len);
    h->value = pool_strdup(p, value);
}

/* nth - index of the n-th field called name, or -1. */
static long nth(const struct header *h, size_t n, const char *name, int which)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0 && --which == 0)
            return (long)i;
    return -1;
}

void mods_headers(struct session *s, struct header **hdrs_r, size_t *n_r)
{
    struct txn *t = s->txn;
    struct header *h = pool_alloc(t->pool, (t->nheaders + t->nmods + 1) * sizeof(*h));
    size_t n = t->nheaders;
    const struct mod *m;
    long at;

    if (n > 0)
        memcpy(h, t->headers, n * sizeof(*h));
    for (m = t->mods; m != NULL; m = m->next) {
        switch (m->type) {
        case MOD_ADD_HEADER:
            set_field(t->pool, &h[n++], m->name, m->value);
            break;
        case MOD_INSERT_HEADER:
            at = m->index < n ? (long)m->index : (long)n;
            memmove(&h[at + 1], &h[at], (n - (size_t)at) * sizeof(*h));
            set_field(t->pool, &h[at], m->name, m->value);
            n++;
            break;
        case MOD_CHANGE_HEADER:
            at = nth(h, n, m->name, m->n);
            if (at < 0) {
                if (m->value != NULL)
                    set_field(t->pool, &h[n++], m->name, m->value);
            } else if (m->value == NULL) {
                memmove(&h[at], &h[at + 1], (n - (size_t)at - 1) * sizeof(*h));
                n--;
            } else {
                set_field(t->pool, &h[at], h[at].name, m->value);
            }
            break;
        default:
            break;
        }
    }
    *hdrs_r = h;
    *n_r = n;
}

void mods_envelope(struct session *s, const char **sender_r,
                   const char **sender_params_r, struct rcpt **rcpts_r, size_t *n_r)
{
    struct txn *t = s->txn;
    struct rcpt *r = pool_alloc(t->pool, (t->nrcpts + t->nmods + 1) * sizeof(*r));
    size_t n = t->nrcpts, i;
    const struct mod *m;

    *sender_r = t->sender;
    *sender_params_r = NULL;
    if (n > 0)
        memcpy(r, t->rcpts, n * sizeof(*r));
    for (m = t->mods; m != NULL; m = m->next) {
        switch (m->type) {
        case MOD_CHANGE_SENDER:
            *sender_r = m->value;
            *sender_params_r = m->params;
            break;
        case MOD_ADD_RCPT:
            memset(&r[n], 0, sizeof(r[n]));
            r[n].addr = m->value;
            if (m->params != NULL)
                params_parse(t->pool, m->params, &r[n].params, &r[n].nparams);
            n++;
            break;
        case MOD_DELETE_RCPT:
            for (i = 0; i < n; i++) {
                if (strcasecmp(r[i].addr, m->value) == 0) {
                    memmove(&r[i], &r[i + 1], (n - i - 1) * sizeof(*r));
                    n--;
                    break;
                }
            }
            break;
        default:
            break;
        }
    }
    *rcpts_r = r;
    *n_r = n;
}

/* mods_envelope_changed - see mods.h. */
int mods_envelope_changed(const struct txn *t)
{
    const struct mod *m;

    for (m = t->mods; m != NULL; m = m->next)
        if (m->type == MOD_CHANGE_SENDER || m->type == MOD_ADD_RCPT ||
            m->type == MOD_DELETE_RCPT)
            return 1;
    return 0;
}

/* mods_body - see mods.h. */
struct spool *mods_body(struct session *s)
{
    return s->txn->new_body != NULL ? s->txn->new_body : s->txn->body;
}
