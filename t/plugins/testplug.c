/*
 * testplug.c - a plugin for the core's tests whose behaviour is set by
 * options: it logs every stage it sees ("<mark> <stage> <text>"), returns
 * the verdicts its `rules` give, and records the modifications `mods` lists
 * at end of message. Not installed.
 *
 *   rules = { "STAGE[@TEXT]:VERDICT[:CODE:ECODE:TEXT]", ... }
 *   mods  = { "add:Name:value", "insert:0:Name:value", "change:Name:1:value",
 *             "delete:Name:1", "sender:addr", "addrcpt:addr", "delrcpt:addr",
 *             "body:text" }
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <submilter/plugin.h>

struct tp_conf {
    const char         *mark;
    const char *const  *rules;
    const char *const  *mods;
    int                 fail_init;
    const char *const  *only;
};

static const subm_option_t tp_options[] = {
    { "mark", SUBM_OPT_STR, "tp", offsetof(struct tp_conf, mark), 0, 0, NULL, NULL },
    { "rules", SUBM_OPT_LIST, NULL, offsetof(struct tp_conf, rules), 0, 0, NULL, NULL },
    { "mods", SUBM_OPT_LIST, NULL, offsetof(struct tp_conf, mods), 0, 0, NULL, NULL },
    { "fail_init", SUBM_OPT_BOOL, "no", offsetof(struct tp_conf, fail_init), 0, 0, NULL, NULL },
    { "only", SUBM_OPT_LIST, NULL, offsetof(struct tp_conf, only), 0, 0, NULL, NULL },
    SUBM_OPT_END
};

static const char *const stage_names[] = {
    "connect", "helo", "tls", "auth", "mail", "rcpt", "data", "header", "eoh",
    "body", "eom", "vrfy", "expn", "help", "noop", "unknown", "rset", "close"
};

static int tp_init(void *conf, subm_error_t *err)
{
    const struct tp_conf *c = conf;

    if (c->fail_init)
        return subm_error(err, "asked to fail (%s)", c->mark);
    return 0;
}

/* tp_stages - the stages named in `only`, or all of them. */
static unsigned tp_stages(const void *conf)
{
    const struct tp_conf *c = conf;
    const char *const *o;
    unsigned mask = 0, i;

    if (c->only == NULL || c->only[0] == NULL)
        return ~0u;
    for (o = c->only; *o; o++)
        for (i = 0; i < sizeof(stage_names) / sizeof(stage_names[0]); i++)
            if (strcmp(*o, stage_names[i]) == 0)
                mask |= SUBM_STAGE_BIT(i);
    return mask;
}

/* field - the next ':'-separated field of *p into buf. */
static const char *field(const char **p, char *buf, size_t len)
{
    const char *s = *p, *e;
    size_t n;

    if (s == NULL)
        return NULL;
    e = strchr(s, ':');
    n = e ? (size_t)(e - s) : strlen(s);
    if (n >= len)
        n = len - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *p = e ? e + 1 : NULL;
    return buf;
}

static subm_verdict_t verdict_of(const char *v)
{
    if (strcmp(v, "accept") == 0) return SUBM_ACCEPT;
    if (strcmp(v, "reject") == 0) return SUBM_REJECT;
    if (strcmp(v, "tempfail") == 0) return SUBM_TEMPFAIL;
    if (strcmp(v, "discard") == 0) return SUBM_DISCARD;
    if (strcmp(v, "bogus") == 0) return (subm_verdict_t)42;
    return SUBM_CONTINUE;
}

/* apply_mod - one "kind:..." entry of `mods`. */
static void apply_mod(subm_ctx_t *ctx, const char *spec)
{
    char kind[32], a[256], b[256], c[256];
    const char *p = spec;
    int r = -1;

    field(&p, kind, sizeof(kind));
    if (strcmp(kind, "add") == 0) {
        field(&p, a, sizeof(a));
        r = subm_txn_add_header(ctx, a, p ? p : "");
    }
    else if (strcmp(kind, "insert") == 0) {
        size_t at = (size_t)atoi(field(&p, a, sizeof(a)));
        field(&p, b, sizeof(b));
        r = subm_txn_insert_header(ctx, at, b, p ? p : "");
    } else if (strcmp(kind, "change") == 0) {
        field(&p, a, sizeof(a));
        int n = atoi(field(&p, b, sizeof(b)));
        r = subm_txn_change_header(ctx, a, n, p ? p : "");
    } else if (strcmp(kind, "delete") == 0) {
        field(&p, a, sizeof(a));
        r = subm_txn_delete_header(ctx, a, atoi(field(&p, b, sizeof(b))));
    } else if (strcmp(kind, "sender") == 0)
        r = subm_txn_change_sender(ctx, p ? p : "", NULL);
    else if (strcmp(kind, "addrcpt") == 0)
        r = subm_txn_add_rcpt(ctx, p ? p : "", NULL);
    else if (strcmp(kind, "delrcpt") == 0)
        r = subm_txn_delete_rcpt(ctx, p ? p : "");
    else if (strcmp(kind, "body") == 0)
        r = subm_txn_replace_body(ctx, p ? p : "", p ? strlen(p) : 0);
    (void)c;
    subm_log(ctx, SUBM_LOG_INFO, "mod %s -> %d", spec, r);
}

/* tp_any - every hook: log, then the first matching rule decides. */
static subm_verdict_t tp_any(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct tp_conf *c = subm_instance(ctx);
    const char *stage = stage_names[subm_stage(ctx)];
    const char *text = arg->text ? arg->text : arg->name ? arg->name : "";
    const char *const *r;

    subm_log(ctx, SUBM_LOG_INFO, "%s %s %s", c->mark, stage, text);
    if (subm_stage(ctx) == SUBM_STAGE_EOM)
        for (r = c->mods; r && *r; r++)
            apply_mod(ctx, *r);
    for (r = c->rules; r && *r; r++) {
        char st[64], verdict[32], code[8], ecode[16], txt[256];
        const char *p = *r, *at;

        field(&p, st, sizeof(st));
        at = strchr(st, '@');
        if (at != NULL) {
            st[at - st] = '\0';
            if (strcasecmp(at + 1, text) != 0)
                continue;
        }
        if (strcmp(st, stage) != 0)
            continue;
        field(&p, verdict, sizeof(verdict));
        if (p != NULL) {
            field(&p, code, sizeof(code));
            field(&p, ecode, sizeof(ecode));
            field(&p, txt, sizeof(txt));
            subm_reply(ctx, atoi(code), *ecode ? ecode : NULL, "%s", txt);
        }
        return verdict_of(verdict);
    }
    return SUBM_CONTINUE;
}

SUBM_PLUGIN(testplug) = {
    SUBM_PLUGIN_HEAD,
    .name = "testplug",
    .version = "0",
    .options = tp_options,
    .conf_size = sizeof(struct tp_conf),
    .init = tp_init,
    .stages = tp_stages,
    .on_connect = tp_any, .on_helo = tp_any, .on_tls = tp_any, .on_auth = tp_any,
    .on_mail = tp_any, .on_rcpt = tp_any, .on_data = tp_any, .on_header = tp_any,
    .on_eoh = tp_any, .on_body = tp_any, .on_eom = tp_any, .on_vrfy = tp_any,
    .on_expn = tp_any, .on_help = tp_any, .on_noop = tp_any, .on_unknown = tp_any,
    .on_rset = tp_any, .on_close = tp_any,
};
