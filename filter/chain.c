/*
 * chain.c - run a stage through the plugin chain.
 *
 * The chain is the configuration's ordered list of plugin instances. For a
 * stage, chain_run() calls each instance's hook in order until a verdict is
 * not CONTINUE, then checks that verdict's reply (class, enhanced code,
 * sanitised text) and logs it once. It owns no wire format and no policy of
 * its own; the front-ends turn verdicts into SMTP or milter answers.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "config.h"
#include "loader.h"
#include "log.h"
#include "pool.h"
#include "session.h"

#define BIT(st) (1u << (unsigned)(st))

static const char *const stage_names[SUBM_STAGE_COUNT] = {
    "connect", "helo", "tls", "auth", "mail", "rcpt", "data", "header", "eoh",
    "body", "eom", "vrfy", "expn", "help", "noop", "unknown", "rset", "close"
};

/* The hook for each stage, found in the descriptor by offset. */
static const size_t hook_offset[SUBM_STAGE_COUNT] = {
    offsetof(subm_plugin_t, on_connect), offsetof(subm_plugin_t, on_helo),
    offsetof(subm_plugin_t, on_tls), offsetof(subm_plugin_t, on_auth),
    offsetof(subm_plugin_t, on_mail), offsetof(subm_plugin_t, on_rcpt),
    offsetof(subm_plugin_t, on_data), offsetof(subm_plugin_t, on_header),
    offsetof(subm_plugin_t, on_eoh), offsetof(subm_plugin_t, on_body),
    offsetof(subm_plugin_t, on_eom), offsetof(subm_plugin_t, on_vrfy),
    offsetof(subm_plugin_t, on_expn), offsetof(subm_plugin_t, on_help),
    offsetof(subm_plugin_t, on_noop), offsetof(subm_plugin_t, on_unknown),
    offsetof(subm_plugin_t, on_rset), offsetof(subm_plugin_t, on_close),
};

/* chain_stage_name - "mail", "rcpt", ... */
const char *chain_stage_name(subm_stage_t stage)
{
    return (unsigned)stage < SUBM_STAGE_COUNT ? stage_names[stage] : "?";
}

/* verdict_name - "continue", "reject", ... */
const char *verdict_name(subm_verdict_t v)
{
    static const char *const names[] = {
        "continue", "accept", "reject", "tempfail", "discard"
    };
    return (unsigned)v <= SUBM_DISCARD ? names[v] : "invalid";
}

/* chain_hook - desc's hook for stage, or NULL. */
subm_hook_t chain_hook(const subm_plugin_t *desc, subm_stage_t stage)
{
    subm_hook_t h;

    if ((unsigned)stage >= SUBM_STAGE_COUNT)
        return NULL;
    memcpy(&h, (const char *)desc + hook_offset[stage], sizeof(h));
    return h;
}

/* chain_new - an empty chain. */
struct chain *chain_new(void)
{
    return xcalloc(1, sizeof(struct chain));
}

/* chain_free - fini the initialised links (last first), close objects. */
void chain_free(struct chain **chp)
{
    struct chain *ch = *chp;
    size_t i;

    if (ch == NULL)
        return;
    for (i = ch->nlinks; i-- > 0;) {
        struct chain_link *l = &ch->links[i];

        if (l->inited && l->desc->fini != NULL)
            l->desc->fini(l->conf);
        free(l->conf);
        free(l->name);
        loader_close(&l->so);
    }
    free(ch->links);
    free(ch);
    *chp = NULL;
}

/* chain_empty - see chain.h. */
int chain_empty(const struct chain *ch)
{
    return ch == NULL || (ch->stage_mask == 0 && ch->flags == 0);
}

/* chain_uses_stage - whether some link hooks stage. */
int chain_uses_stage(const struct chain *ch, subm_stage_t stage)
{
    return ch != NULL && (ch->stage_mask & BIT(stage)) != 0;
}

/* ecode_ok - "C.S.D" with C matching the reply class, S and D 0..999. */
static int ecode_ok(const char *e, int code)
{
    int cls, subj, det, n = 0;

    if (sscanf(e, "%1d.%3d.%3d%n", &cls, &subj, &det, &n) != 3 || e[n] != '\0')
        return 0;
    return cls == code / 100 && (cls == 2 || cls == 4 || cls == 5);
}

/* sanitise_text - copy text, controls to blanks, '\n' kept between lines. */
static void sanitise_text(char *out, size_t outlen, const char *in)
{
    size_t o = 0, line_len = 0;
    int lines = 1;

    for (; *in != '\0' && o + 1 < outlen; in++) {
        unsigned char c = (unsigned char)*in;

        if (c == '\n') {
            if (lines == 32 || o == 0 || out[o - 1] == '\n')
                continue;
            lines++;
            line_len = 0;
            out[o++] = '\n';
            continue;
        }
        if (line_len >= 900)      /* a reply line stays under 1000 octets */
            continue;
        out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
        line_len++;
    }
    while (o > 0 && out[o - 1] == '\n')
        o--;
    out[o] = '\0';
}

/* reply_set - fill r from code, ecode, text, sanitised. */
int reply_set(struct reply *r, int code, const char *ecode, const char *text)
{
    if (code < 200 || code > 599) {
        r->code = 0;
        return -1;
    }
    r->code = code;
    if (ecode != NULL && *ecode != '\0') {
        if (!ecode_ok(ecode, code)) {
            r->code = 0;
            return -1;
        }
        snprintf(r->ecode, sizeof(r->ecode), "%s", ecode);
    } else {
        r->ecode[0] = '\0';
    }
    sanitise_text(r->text, sizeof(r->text), text ? text : "");
    return 0;
}

/* chain_default_reply - the stage's reply for a REJECT or TEMPFAIL. */
void chain_default_reply(subm_stage_t stage, subm_verdict_t v, struct reply *r)
{
    if (v == SUBM_TEMPFAIL) {
        if (stage == SUBM_STAGE_CONNECT)
            reply_set(r, 421, "4.7.0", "Service not available, try again later");
        else
            reply_set(r, 451, "4.7.1", "Temporary failure, try again later");
        return;
    }
    switch (stage) {
    case SUBM_STAGE_CONNECT:
        reply_set(r, 554, "5.7.1", "Access denied");
        break;
    case SUBM_STAGE_HELO:
        reply_set(r, 550, "5.7.1", "HELO/EHLO rejected by policy");
        break;
    case SUBM_STAGE_MAIL:
        reply_set(r, 550, "5.7.1", "Sender rejected by policy");
        break;
    case SUBM_STAGE_RCPT:
        reply_set(r, 550, "5.7.1", "Recipient rejected by policy");
        break;
    case SUBM_STAGE_VRFY:
    case SUBM_STAGE_EXPN:
    case SUBM_STAGE_HELP:
    case SUBM_STAGE_UNKNOWN:
        reply_set(r, 502, "5.5.1", "Command not allowed");
        break;
    default:
        reply_set(r, 550, "5.7.1", "Message rejected by policy");
        break;
    }
}

/* settle_reply - make r a valid reply for verdict v at stage. */
static void settle_reply(const struct session *s, const struct chain_link *l,
                         subm_stage_t stage, subm_verdict_t v, struct reply *r)
{
    int want = v == SUBM_REJECT ? 5 : v == SUBM_TEMPFAIL ? 4 : 2;
    struct reply def;

    if (v == SUBM_DISCARD) {
        r->code = 0;
        return;
    }
    if (v == SUBM_ACCEPT) {
        if (r->code != 0 && r->code / 100 != 2) {
            log_warn("%s: %s: %s: reply %d does not go with accept; ignored",
                     s->id, l->name, stage_names[stage], r->code);
            r->code = 0;
        }
        if (r->code != 0 && r->ecode[0] == '\0')
            snprintf(r->ecode, sizeof(r->ecode), "2.0.0");
        return;
    }
    chain_default_reply(stage, v, &def);
    if (r->code != 0 && r->code / 100 != want) {
        log_warn("%s: %s: %s: reply %d does not go with %s; using %d",
                 s->id, l->name, stage_names[stage], r->code, verdict_name(v), def.code);
        r->code = 0;
    }
    if (r->code == 0) {
        *r = def;
        return;
    }
    if (r->ecode[0] == '\0')
        snprintf(r->ecode, sizeof(r->ecode), "%d.%s", want,
                 strchr(def.ecode, '.') ? strchr(def.ecode, '.') + 1 : "0.0");
    if (r->text[0] == '\0')
        snprintf(r->text, sizeof(r->text), "%s", def.text);
}

/* stage_deadline - when plugins must be done with this stage. */
static int64_t stage_deadline(const struct session *s)
{
    int64_t d = monotonic_ms() + s->cfg->root.plugin_timeout;

    return s->deadline != 0 && s->deadline < d ? s->deadline : d;
}

/* log_verdict - one line for a verdict that is not CONTINUE. */
static void log_verdict(const struct session *s, const struct chain_link *l,
                        subm_stage_t stage, subm_verdict_t v, const struct reply *r)
{
    if (v == SUBM_ACCEPT && r->code == 0) {
        log_debug("%s: %s: %s: accept", s->id, l->name, stage_names[stage]);
        return;
    }
    if (r->code != 0) {
        char one_line[REPLY_TEXT_MAX];
        size_t i;

        /* a multi-line reply stays one log line */
        for (i = 0; r->text[i] != '\0' && i < sizeof(one_line) - 1; i++)
            one_line[i] = r->text[i] == '\n' ? '|' : r->text[i];
        one_line[i] = '\0';
        log_info("%s: %s: %s: %s: %d %s %s", s->id, l->name, stage_names[stage],
                 verdict_name(v), r->code, r->ecode, one_line);
    }
    else
        log_info("%s: %s: %s: %s", s->id, l->name, stage_names[stage], verdict_name(v));
}

/* chain_run - run stage through the chain for session s. */
subm_verdict_t chain_run(struct session *s, subm_stage_t stage,
                         const subm_arg_t *arg, struct reply *reply_r)
{
    const struct chain *ch = s->chain;
    struct txn *txn = s->txn;
    subm_arg_t none;
    struct subm_ctx ctx;
    size_t i;

    reply_r->code = 0;
    if (ch == NULL || (ch->stage_mask & BIT(stage)) == 0)
        return SUBM_CONTINUE;
    if (txn != NULL && (txn->stage_closed & BIT(stage)) != 0)
        return SUBM_ACCEPT;
    if (arg == NULL) {
        memset(&none, 0, sizeof(none));
        none.stage = stage;
        arg = &none;
    }
    api_ctx_init(&ctx, s, stage, reply_r, stage_deadline(s));
    for (i = 0; i < ch->nlinks; i++) {
        const struct chain_link *l = &ch->links[i];
        subm_hook_t hook = chain_hook(l->desc, stage);
        subm_verdict_t v;

        if (hook == NULL || (l->stage_mask & BIT(stage)) == 0)
            continue;
        ctx.link = l;
        ctx.slot = i;
        reply_r->code = 0;
        v = hook(&ctx, arg);
        switch (v) {
        case SUBM_CONTINUE:
            continue;
        case SUBM_ACCEPT:
            if (txn != NULL && (stage == SUBM_STAGE_HEADER || stage == SUBM_STAGE_BODY))
                txn->stage_closed |= BIT(stage);
            break;
        case SUBM_DISCARD:
            if (txn == NULL) {
                log_warn("%s: %s: %s: discard outside a transaction; taken as accept",
                         s->id, l->name, stage_names[stage]);
                v = SUBM_ACCEPT;
                reply_r->code = 0;
            } else {
                txn->discard = 1;
                reply_r->code = 0;
            }
            break;
        case SUBM_REJECT:
        case SUBM_TEMPFAIL:
            break;
        default:
            log_warn("%s: %s: %s: invalid verdict %d; taken as tempfail",
                     s->id, l->name, stage_names[stage], (int)v);
            v = SUBM_TEMPFAIL;
            reply_r->code = 0;
            break;
        }
        settle_reply(s, l, stage, v, reply_r);
        log_verdict(s, l, stage, v, reply_r);
        return v;
    }
    reply_r->code = 0;
    return SUBM_CONTINUE;
}
