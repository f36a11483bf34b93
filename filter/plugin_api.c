/*
 * plugin_api.c - the calls of <submilter/plugin.h>, on top of the session
 * model: replies, reads of session and transaction, modifications, slots,
 * allocation, logging, time.
 *
 * Every call takes the ctx chain_run() built for one hook call. Reads never
 * copy; modifications are validated here (so a front-end can apply them
 * without checking) and appended to txn->mods. This file does not apply
 * modifications: each front-end does that its own way.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chain.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "session.h"
#include "spool.h"

/* api_ctx_init - a ctx for stage of session s (links are set per call). */
void api_ctx_init(struct subm_ctx *ctx, struct session *s, subm_stage_t stage,
                  struct reply *reply, int64_t deadline)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->s = s;
    ctx->stage = stage;
    ctx->reply = reply;
    ctx->deadline = deadline;
}

/* ---- replies, instance, errors ------------------------------------------ */

/* vreply - format and set ctx's reply. */
static void vreply(subm_ctx_t *ctx, int code, const char *ecode,
                   const char *fmt, va_list ap)
{
    char text[REPLY_TEXT_MAX];

    vsnprintf(text, sizeof(text), fmt ? fmt : "", ap);
    if (reply_set(ctx->reply, code, ecode, text) < 0)
        log_warn("%s: %s: unusable reply code %d / enhanced code %s; the "
                 "stage default will be used", ctx->s->id, ctx->link->name, code,
                 ecode ? ecode : "-");
}

void subm_reply(subm_ctx_t *ctx, int code, const char *ecode, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreply(ctx, code, ecode, fmt, ap);
    va_end(ap);
}

subm_verdict_t subm_reject(subm_ctx_t *ctx, int code, const char *ecode,
                           const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreply(ctx, code, ecode, fmt, ap);
    va_end(ap);
    return SUBM_REJECT;
}

subm_verdict_t subm_tempfail(subm_ctx_t *ctx, int code, const char *ecode,
                             const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreply(ctx, code, ecode, fmt, ap);
    va_end(ap);
    return SUBM_TEMPFAIL;
}

void *subm_instance(const subm_ctx_t *ctx)
{
    return ctx->link->conf;
}

subm_stage_t subm_stage(const subm_ctx_t *ctx)
{
    return ctx->stage;
}

int subm_error(subm_error_t *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return -1;
}

void subm_set_size_limit(subm_ctx_t *ctx, uint64_t bytes)
{
    if (bytes > 0 && (ctx->s->size_limit == 0 || bytes < ctx->s->size_limit))
        ctx->s->size_limit = bytes;
}

long subm_time_left_ms(const subm_ctx_t *ctx)
{
    int64_t left = ctx->deadline - monotonic_ms();

    return left > 0 ? (long)left : 0;
}

void subm_log(const subm_ctx_t *ctx, subm_log_level_t level, const char *fmt, ...)
{
    static const enum log_level map[] = {
        LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR
    };
    enum log_level lvl = (unsigned)level <= SUBM_LOG_ERROR ? map[level] : LOG_LVL_ERROR;
    char line[1800];
    va_list ap;

    if (lvl == LOG_LVL_DEBUG && !log_debug_enabled())
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (ctx != NULL)
        log_msg(lvl, "%s: %s: %s", ctx->s->id, ctx->link->name, line);
    else
        log_msg(lvl, "plugin: %s", line);
}

/* ---- session ----------------------------------------------------------- */

const char *subm_session_id(const subm_ctx_t *ctx) { return ctx->s->id; }
const char *subm_frontend(const subm_ctx_t *ctx) { return ctx->s->frontend; }
const char *subm_hostname(const subm_ctx_t *ctx) { return ctx->s->cfg->root.hostname; }
const char *subm_client_addr(const subm_ctx_t *ctx) { return ctx->s->client_addr; }
int         subm_client_port(const subm_ctx_t *ctx) { return ctx->s->client_port; }
const char *subm_client_name(const subm_ctx_t *ctx) { return ctx->s->client_name; }
const char *subm_helo(const subm_ctx_t *ctx) { return ctx->s->helo; }
int         subm_helo_esmtp(const subm_ctx_t *ctx) { return ctx->s->esmtp; }
const char *subm_tls_version(const subm_ctx_t *ctx) { return ctx->s->tls_version; }
const char *subm_tls_cipher(const subm_ctx_t *ctx) { return ctx->s->tls_cipher; }
const char *subm_tls_peer(const subm_ctx_t *ctx) { return ctx->s->tls_peer; }
const char *subm_auth_login(const subm_ctx_t *ctx) { return ctx->s->auth_login; }
const char *subm_auth_mech(const subm_ctx_t *ctx) { return ctx->s->auth_mech; }
const char *subm_auth_author(const subm_ctx_t *ctx) { return ctx->s->auth_author; }

const struct sockaddr *subm_client_sockaddr(const subm_ctx_t *ctx)
{
    return ctx->s->have_sa ? (const struct sockaddr *)&ctx->s->client_sa : NULL;
}

const char *subm_macro(const subm_ctx_t *ctx, const char *name)
{
    return ctx->s->macro ? ctx->s->macro(ctx->s->macro_arg, name) : NULL;
}

/* ---- transaction reads --------------------------------------------------- */

const char *subm_txn_queue_id(const subm_ctx_t *ctx)
{
    return ctx->s->txn ? ctx->s->txn->queue_id : NULL;
}

const char *subm_txn_sender(const subm_ctx_t *ctx)
{
    return ctx->s->txn ? ctx->s->txn->sender : NULL;
}

const char *subm_txn_sender_param(const subm_ctx_t *ctx, const char *name)
{
    const struct txn *t = ctx->s->txn;

    return t ? params_get(t->params, t->nparams, name) : NULL;
}

size_t subm_txn_rcpt_count(const subm_ctx_t *ctx)
{
    return ctx->s->txn ? ctx->s->txn->nrcpts : 0;
}

const char *subm_txn_rcpt(const subm_ctx_t *ctx, size_t i)
{
    const struct txn *t = ctx->s->txn;

    return t && i < t->nrcpts ? t->rcpts[i].addr : NULL;
}

const char *subm_txn_rcpt_param(const subm_ctx_t *ctx, size_t i, const char *name)
{
    const struct txn *t = ctx->s->txn;

    if (t == NULL || i >= t->nrcpts)
        return NULL;
    return params_get(t->rcpts[i].params, t->rcpts[i].nparams, name);
}

size_t subm_txn_header_count(const subm_ctx_t *ctx)
{
    return ctx->s->txn ? ctx->s->txn->nheaders : 0;
}

int subm_txn_header(const subm_ctx_t *ctx, size_t i, const char **name_r,
                    const char **value_r)
{
    const struct txn *t = ctx->s->txn;

    if (t == NULL || i >= t->nheaders)
        return -1;
    if (name_r)
        *name_r = t->headers[i].name;
    if (value_r)
        *value_r = t->headers[i].value;
    return 0;
}

const char *subm_txn_header_find(const subm_ctx_t *ctx, const char *name, int n)
{
    const struct txn *t = ctx->s->txn;
    size_t i;

    for (i = 0; t != NULL && i < t->nheaders; i++)
        if (strcasecmp(t->headers[i].name, name) == 0 && --n == 0)
            return t->headers[i].value;
    return NULL;
}

uint64_t subm_txn_size(const subm_ctx_t *ctx)
{
    return ctx->s->txn ? ctx->s->txn->size : 0;
}

uint64_t subm_txn_body_size(const subm_ctx_t *ctx)
{
    const struct txn *t = ctx->s->txn;

    return t && t->body ? spool_size(t->body) : 0;
}

long subm_txn_body_read(const subm_ctx_t *ctx, uint64_t offset, void *buf, size_t len)
{
    const struct txn *t = ctx->s->txn;

    if (t == NULL)
        return -1;
    if (t->body == NULL)
        return 0;
    return spool_read(t->body, offset, buf, len);
}

/* ---- modifications ------------------------------------------------------- */

/* name_ok - a header field name we can write. */
static int name_ok(const char *name)
{
    const unsigned char *p = (const unsigned char *)name;

    if (name == NULL || *p == '\0')
        return 0;
    for (; *p; p++)
        if (*p < 33 || *p > 126 || *p == ':')
            return 0;
    return 1;
}

/* value_ok - a value whose line breaks are all folding (CRLF or LF + WSP). */
static int value_ok(const char *v)
{
    const char *p;

    if (v == NULL)
        return 0;
    for (p = v; *p; p++) {
        if (*p == '\r') {
            if (p[1] != '\n')
                return 0;
            continue;
        }
        if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
            return 0;
        if (*p == '\0')
            return 0;
    }
    return 1;
}

/* addr_ok - an envelope address we can pass on (no CR/LF/NUL, no brackets). */
static int addr_ok(const char *a)
{
    return a != NULL && strpbrk(a, "\r\n<>") == NULL && strlen(a) <= 512;
}

/* mod_push - append a modification to the open transaction. */
static struct mod *mod_push(subm_ctx_t *ctx, enum mod_type type)
{
    struct txn *t = ctx->s->txn;
    struct mod *m;

    if (t == NULL)
        return NULL;
    m = pool_alloc(t->pool, sizeof(*m));
    m->type = type;
    m->plugin = ctx->link->name;
    *t->mods_tail = m;
    t->mods_tail = &m->next;
    t->nmods++;
    return m;
}

int subm_txn_add_header(subm_ctx_t *ctx, const char *name, const char *value)
{
    return subm_txn_insert_header(ctx, (size_t)-1, name, value);
}

int subm_txn_insert_header(subm_ctx_t *ctx, size_t index, const char *name,
                           const char *value)
{
    struct mod *m;

    if (ctx->s->txn == NULL || !name_ok(name) || !value_ok(value))
        return -1;
    m = mod_push(ctx, index == (size_t)-1 ? MOD_ADD_HEADER : MOD_INSERT_HEADER);
    m->name = pool_strdup(ctx->s->txn->pool, name);
    m->value = pool_strdup(ctx->s->txn->pool, value);
    m->index = index;
    return 0;
}

int subm_txn_change_header(subm_ctx_t *ctx, const char *name, int n, const char *value)
{
    struct mod *m;

    if (ctx->s->txn == NULL || !name_ok(name) || n < 1 || (value && !value_ok(value)))
        return -1;
    m = mod_push(ctx, MOD_CHANGE_HEADER);
    m->name = pool_strdup(ctx->s->txn->pool, name);
    m->value = pool_strdup(ctx->s->txn->pool, value);
    m->n = n;
    return 0;
}

int subm_txn_delete_header(subm_ctx_t *ctx, const char *name, int n)
{
    return subm_txn_change_header(ctx, name, n, NULL);
}

/* envelope_mod - change sender / add / delete recipient. */
static int envelope_mod(subm_ctx_t *ctx, enum mod_type type, const char *addr,
                        const char *params)
{
    struct mod *m;

    if (ctx->s->txn == NULL || !addr_ok(addr) ||
        (params && strpbrk(params, "\r\n") != NULL))
        return -1;
    if (type != MOD_CHANGE_SENDER && *addr == '\0')
        return -1;
    m = mod_push(ctx, type);
    m->value = pool_strdup(ctx->s->txn->pool, addr);
    m->params = params && *params ? pool_strdup(ctx->s->txn->pool, params) : NULL;
    return 0;
}

int subm_txn_change_sender(subm_ctx_t *ctx, const char *addr, const char *params)
{
    return envelope_mod(ctx, MOD_CHANGE_SENDER, addr, params);
}

int subm_txn_add_rcpt(subm_ctx_t *ctx, const char *addr, const char *params)
{
    return envelope_mod(ctx, MOD_ADD_RCPT, addr, params);
}

int subm_txn_delete_rcpt(subm_ctx_t *ctx, const char *addr)
{
    return envelope_mod(ctx, MOD_DELETE_RCPT, addr, NULL);
}

int subm_txn_replace_body(subm_ctx_t *ctx, const void *data, size_t len)
{
    struct txn *t = ctx->s->txn;
    const struct config *cfg = ctx->s->cfg;

    if (t == NULL || (data == NULL && len > 0))
        return -1;
    if (t->new_body == NULL) {
        t->new_body = spool_new((size_t)cfg->root.spool_memory, cfg->root.spool_dir);
        mod_push(ctx, MOD_REPLACE_BODY);
    }
    return spool_write(t->new_body, data, len);
}

/* ---- state and memory ---------------------------------------------------- */

void **subm_session_slot(subm_ctx_t *ctx)
{
    return &ctx->s->slots[ctx->slot];
}

void **subm_txn_slot(subm_ctx_t *ctx)
{
    return ctx->s->txn ? &ctx->s->txn->slots[ctx->slot] : NULL;
}

void *subm_session_alloc(subm_ctx_t *ctx, size_t size)
{
    return pool_alloc(ctx->s->pool, size);
}

void *subm_txn_alloc(subm_ctx_t *ctx, size_t size)
{
    return ctx->s->txn ? pool_alloc(ctx->s->txn->pool, size) : NULL;
}

char *subm_txn_strdup(subm_ctx_t *ctx, const char *s)
{
    return ctx->s->txn ? pool_strdup(ctx->s->txn->pool, s) : NULL;
}

int subm_session_on_end(subm_ctx_t *ctx, void (*fn)(void *), void *arg)
{
    pool_cleanup_add(ctx->s->pool, fn, arg);
    return 0;
}

int subm_txn_on_end(subm_ctx_t *ctx, void (*fn)(void *), void *arg)
{
    if (ctx->s->txn == NULL)
        return -1;
    pool_cleanup_add(ctx->s->txn->pool, fn, arg);
    return 0;
}
