/*
 * milter_mods.c - the modifications plugins recorded on the transaction,
 * applied at end of message with libmilter's calls, in the order recorded:
 *
 *   MOD_ADD_HEADER     smfi_addheader      (SMFIF_ADDHDRS)
 *   MOD_INSERT_HEADER  smfi_insheader      (SMFIF_ADDHDRS)
 *   MOD_CHANGE_HEADER  smfi_chgheader      (SMFIF_CHGHDRS; NULL value deletes)
 *   MOD_CHANGE_SENDER  smfi_chgfrom        (SMFIF_CHGFROM)
 *   MOD_ADD_RCPT       smfi_addrcpt_par    (SMFIF_ADDRCPT_PAR), or smfi_addrcpt
 *                                          when there are no parameters
 *   MOD_DELETE_RCPT    smfi_delrcpt        (SMFIF_DELRCPT)
 *   MOD_REPLACE_BODY   smfi_replacebody    (SMFIF_CHGBODY), 64 KB at a time
 *
 * Header values go to the MTA with LF folding (libmilter's convention) and,
 * when SMFIP_HDR_LEADSPC was agreed, with the leading space the MTA then no
 * longer adds. Addresses go in angle brackets. A modification the MTA did
 * not agree to, or a call that fails, makes the whole message TEMPFAIL
 * (milter_apply_mods returns -1): delivering it without a change a plugin
 * asked for (a signature, a recipient removed by policy) would be silent
 * policy loss. It does not decide anything itself.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "milter_int.h"
#include "pool.h"
#include "session.h"
#include "spool.h"

#define BODY_CHUNK 65536

/* milter_header_value - LF folding, and the leading space if asked. */
char *milter_header_value(struct pool *pool, const char *value, int leadspc)
{
    size_t len = strlen(value), o = 0, i;
    char *out = pool_alloc(pool, len + 2);

    if (leadspc)
        out[o++] = ' ';
    for (i = 0; i < len; i++) {
        if (value[i] == '\r' && value[i + 1] == '\n')
            continue;
        out[o++] = value[i];
    }
    out[o] = '\0';
    return out;
}

/* bracket - "<addr>" from pool. */
static char *bracket(struct pool *pool, const char *addr)
{
    return pool_printf(pool, "<%s>", addr);
}

/* mod_flag - the action a modification needs. */
static unsigned long mod_flag(const struct mod *m)
{
    switch (m->type) {
    case MOD_ADD_HEADER:
    case MOD_INSERT_HEADER:
        return SMFIF_ADDHDRS;
    case MOD_CHANGE_HEADER:
        return SMFIF_CHGHDRS;
    case MOD_CHANGE_SENDER:
        return SMFIF_CHGFROM;
    case MOD_ADD_RCPT:
        return m->params ? SMFIF_ADDRCPT_PAR : SMFIF_ADDRCPT;
    case MOD_DELETE_RCPT:
        return SMFIF_DELRCPT;
    case MOD_REPLACE_BODY:
        return SMFIF_CHGBODY;
    }
    return 0;
}

/* mod_name - for log lines. */
static const char *mod_name(enum mod_type t)
{
    static const char *const names[] = {
        "add header", "insert header", "change header", "change sender",
        "add recipient", "delete recipient", "replace body"
    };

    return (size_t)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* replace_body - stream the new body to the MTA. */
static int replace_body(SMFICTX *ctx, struct txn *t)
{
    unsigned char buf[BODY_CHUNK];
    uint64_t off = 0;
    long n;

    if (t->new_body == NULL)
        return 0;
    if (spool_size(t->new_body) == 0) {
        /* libmilter sends nothing for an empty body; one empty line is
         * the closest the protocol allows. */
        return smfi_replacebody(ctx, (unsigned char *)"\r\n", 2);
    }
    while ((n = spool_read(t->new_body, off, buf, sizeof(buf))) > 0) {
        if (smfi_replacebody(ctx, buf, (int)n) != MI_SUCCESS)
            return MI_FAILURE;
        off += (uint64_t)n;
    }
    return n < 0 ? MI_FAILURE : MI_SUCCESS;
}

/* apply_one - one modification; MI_SUCCESS or MI_FAILURE. */
static int apply_one(SMFICTX *ctx, struct milter_conn *c, struct txn *t,
                     const struct mod *m)
{
    int leadspc = (c->steps & SMFIP_HDR_LEADSPC) != 0;
    char *v;

    switch (m->type) {
    case MOD_ADD_HEADER:
        v = milter_header_value(t->pool, m->value, leadspc);
        return smfi_addheader(ctx, m->name, v);
    case MOD_INSERT_HEADER:
        v = milter_header_value(t->pool, m->value, leadspc);
        return smfi_insheader(ctx, m->index > 0x7fffffff ? 0x7fffffff : (int)m->index,
                              m->name, v);
    case MOD_CHANGE_HEADER:
        v = m->value ? milter_header_value(t->pool, m->value, leadspc) : NULL;
        return smfi_chgheader(ctx, m->name, m->n, v);
    case MOD_CHANGE_SENDER:
        return smfi_chgfrom(ctx, bracket(t->pool, m->value), m->params);
    case MOD_ADD_RCPT:
        if (m->params != NULL)
            return smfi_addrcpt_par(ctx, bracket(t->pool, m->value), m->params);
        return smfi_addrcpt(ctx, bracket(t->pool, m->value));
    case MOD_DELETE_RCPT:
        return smfi_delrcpt(ctx, bracket(t->pool, m->value));
    case MOD_REPLACE_BODY:
        return replace_body(ctx, t);
    }
    return MI_FAILURE;
}

/* milter_apply_mods - apply the transaction's modifications in order. */
int milter_apply_mods(SMFICTX *ctx, struct milter_conn *c)
{
    struct session *s = c->s;
    struct txn *t = s->txn;
    const struct mod *m;

    if (t == NULL)
        return 0;
    /* all or nothing: check every action before the first call */
    for (m = t->mods; m != NULL; m = m->next) {
        unsigned long need = mod_flag(m);

        if (c->negotiated && (c->actions & need) != need) {
            log_error("%s: milter: %s: %s: the MTA does not allow this "
                      "modification (action 0x%lx not offered); message deferred",
                      s->id, m->plugin, mod_name(m->type), need);
            return -1;
        }
    }
    for (m = t->mods; m != NULL; m = m->next) {
        if (apply_one(ctx, c, t, m) != MI_SUCCESS) {
            log_error("%s: milter: %s: %s%s%s failed; message deferred",
                      s->id, m->plugin, mod_name(m->type),
                      m->name ? " " : "", m->name ? m->name : "");
            return -1;
        }
        log_debug("%s: milter: %s: %s %s", s->id, m->plugin, mod_name(m->type),
                  m->name ? m->name : m->value ? m->value : "");
    }
    return 0;
}
