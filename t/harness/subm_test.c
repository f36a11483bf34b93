/*
 * subm_test.c - the fake host plugin tests drive (see subm_test.h).
 *
 * It plays a front-end without a network: the same config loader, chain
 * and session model as the daemon, with the stage calls a front-end would
 * make and the bookkeeping it would do (recipients kept when accepted,
 * header fields recorded, message size counted). Log lines are captured.
 * Single-threaded, for Check tests only.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chain.h"
#include "config.h"
#include "log.h"
#include "mods.h"
#include "pool.h"
#include "session.h"
#include "subm_test.h"

#define MAX_MACROS 32

struct st_host {
    struct config  *cfg;
    struct session *s;
    char           *log;
    size_t          loglen, logcap;
    char           *macro_name[MAX_MACROS];
    char           *macro_value[MAX_MACROS];
    size_t          nmacros;
};

static struct st_host *capturing;

/* capture - keep log lines of the current host. */
static void capture(enum log_level lvl, const char *line)
{
    struct st_host *h = capturing;
    size_t len = strlen(line);

    (void)lvl;
    if (h == NULL)
        return;
    if (h->loglen + len + 2 > h->logcap) {
        h->logcap = (h->loglen + len + 2) * 2;
        h->log = xrealloc(h->log, h->logcap);
    }
    memcpy(h->log + h->loglen, line, len);
    h->loglen += len;
    h->log[h->loglen++] = '\n';
    h->log[h->loglen] = '\0';
}

struct errbuf { char *buf; size_t len; };

/* collect - configuration problems, '\n'-joined. */
static void collect(void *arg, const char *line)
{
    struct errbuf *e = arg;
    size_t used = strlen(e->buf);

    snprintf(e->buf + used, e->len - used, "%s%s", used ? "\n" : "", line);
}

/* macro_lookup - subm_macro() for the fake host. */
static const char *macro_lookup(void *arg, const char *name)
{
    struct st_host *h = arg;
    size_t i;

    for (i = 0; i < h->nmacros; i++)
        if (strcmp(h->macro_name[i], name) == 0)
            return h->macro_value[i];
    return NULL;
}

/* host_make - load text; NULL with the problems in err. */
static struct st_host *host_make(const char *text, const char *frontend,
                                 char *err, size_t errlen)
{
    struct errbuf e = { err, errlen };
    struct st_host *h = xcalloc(1, sizeof(*h));

    err[0] = '\0';
    capturing = h;
    log_set_capture(capture);
    h->cfg = config_load_string(text, "test.conf", getenv("SUBM_TEST_PLUGIN_DIR"),
                                collect, &e);
    if (h->cfg == NULL) {
        st_host_free(&h);
        return NULL;
    }
    h->s = session_new(h->cfg, frontend);
    h->s->macro = macro_lookup;
    h->s->macro_arg = h;
    return h;
}

struct st_host *st_host_try(const char *text, char *err, size_t errlen)
{
    return host_make(text, "smtp", err, errlen);
}

struct st_host *st_host_new_frontend(const char *text, const char *frontend)
{
    char err[4096];
    struct st_host *h = host_make(text, frontend, err, sizeof(err));

    if (h == NULL)
        ck_abort_msg("configuration did not load:\n%s", err);
    return h;
}

struct st_host *st_host_new(const char *text)
{
    return st_host_new_frontend(text, "smtp");
}

void st_host_free(struct st_host **hp)
{
    struct st_host *h = *hp;
    size_t i;

    if (h == NULL)
        return;
    session_free(&h->s);
    config_unref(&h->cfg);
    for (i = 0; i < h->nmacros; i++) {
        free(h->macro_name[i]);
        free(h->macro_value[i]);
    }
    if (capturing == h) {
        capturing = NULL;
        log_set_capture(NULL);
    }
    free(h->log);
    free(h);
    *hp = NULL;
}

struct session *st_session(struct st_host *h)
{
    return h->s;
}

void st_set_tls(struct st_host *h, const char *version, const char *cipher)
{
    session_set_tls(h->s, version, cipher, NULL);
}

void st_set_auth(struct st_host *h, const char *login, const char *mech)
{
    session_set_auth(h->s, login, mech, NULL);
}

void st_set_macro(struct st_host *h, const char *name, const char *value)
{
    ck_assert_uint_lt(h->nmacros, MAX_MACROS);
    h->macro_name[h->nmacros] = xstrdup(name);
    h->macro_value[h->nmacros] = xstrdup(value);
    h->nmacros++;
}

/* run - one stage through the chain, as a result. */
static st_result_t run(struct st_host *h, subm_stage_t stage, const subm_arg_t *arg)
{
    st_result_t r;
    struct reply rep;

    memset(&r, 0, sizeof(r));
    r.verdict = chain_run(h->s, stage, arg, &rep);
    if (rep.code != 0) {
        r.code = rep.code;
        snprintf(r.ecode, sizeof(r.ecode), "%s", rep.ecode);
        snprintf(r.text, sizeof(r.text), "%s", rep.text);
    }
    return r;
}

/* arg_for - a zeroed argument for stage. */
static subm_arg_t arg_for(subm_stage_t stage, const char *text)
{
    subm_arg_t a;

    memset(&a, 0, sizeof(a));
    a.stage = stage;
    a.text = text;
    return a;
}

static int refused(subm_verdict_t v)
{
    return v == SUBM_REJECT || v == SUBM_TEMPFAIL;
}

st_result_t st_connect(struct st_host *h, const char *addr, const char *name)
{
    subm_arg_t a = arg_for(SUBM_STAGE_CONNECT, NULL);

    session_set_client_text(h->s, addr, 40000, name);
    return run(h, SUBM_STAGE_CONNECT, &a);
}

st_result_t st_helo(struct st_host *h, const char *name, int esmtp)
{
    subm_arg_t a = arg_for(SUBM_STAGE_HELO, name);

    a.esmtp = esmtp;
    session_set_helo(h->s, name, esmtp);
    return run(h, SUBM_STAGE_HELO, &a);
}

st_result_t st_auth(struct st_host *h, const char *login, const char *mech)
{
    subm_arg_t a = arg_for(SUBM_STAGE_AUTH, login);

    session_set_auth(h->s, login, mech, NULL);
    return run(h, SUBM_STAGE_AUTH, &a);
}

st_result_t st_mail(struct st_host *h, const char *sender, const char *params)
{
    subm_param_t *p;
    size_t n;
    subm_arg_t a = arg_for(SUBM_STAGE_MAIL, sender);
    st_result_t r;

    ck_assert_int_eq(params_parse(h->s->pool, params, &p, &n), 0);
    txn_begin(h->s, sender, p, n);
    a.params = h->s->txn->params;
    a.nparams = h->s->txn->nparams;
    r = run(h, SUBM_STAGE_MAIL, &a);
    if (refused(r.verdict))
        txn_end(h->s);
    return r;
}

st_result_t st_rcpt(struct st_host *h, const char *rcpt, const char *params)
{
    subm_param_t *p;
    size_t n;
    subm_arg_t a = arg_for(SUBM_STAGE_RCPT, rcpt);
    st_result_t r;

    ck_assert_msg(h->s->txn != NULL, "st_rcpt without an accepted st_mail");
    ck_assert_int_eq(params_parse(h->s->txn->pool, params, &p, &n), 0);
    a.params = p;
    a.nparams = n;
    a.index = h->s->txn->nrcpts;
    r = run(h, SUBM_STAGE_RCPT, &a);
    if (!refused(r.verdict))
        txn_add_rcpt(h->s, rcpt, p, n);
    return r;
}

st_result_t st_data(struct st_host *h)
{
    ck_assert_msg(h->s->txn != NULL, "st_data without a transaction");
    return run(h, SUBM_STAGE_DATA, NULL);
}

st_result_t st_header(struct st_host *h, const char *raw)
{
    size_t len = strlen(raw);
    const struct header *hd;
    subm_arg_t a = arg_for(SUBM_STAGE_HEADER, NULL);

    while (len > 0 && (raw[len - 1] == '\n' || raw[len - 1] == '\r'))
        len--;
    ck_assert_msg(txn_add_header(h->s, raw, len, &hd) == 0, "not a header: %s", raw);
    h->s->txn->size += len + 2;
    a.name = hd->name;
    a.value = hd->value;
    a.raw = hd->raw;
    a.raw_len = hd->raw_len;
    return run(h, SUBM_STAGE_HEADER, &a);
}

st_result_t st_eoh(struct st_host *h)
{
    h->s->txn->size += 2;
    return run(h, SUBM_STAGE_EOH, NULL);
}

st_result_t st_body(struct st_host *h, const void *data, size_t len)
{
    subm_arg_t a = arg_for(SUBM_STAGE_BODY, NULL);

    ck_assert_int_eq(txn_body_write(h->s, data, len), 0);
    h->s->txn->size += len;
    a.data = data;
    a.len = len;
    return run(h, SUBM_STAGE_BODY, &a);
}

st_result_t st_eom(struct st_host *h)
{
    return run(h, SUBM_STAGE_EOM, NULL);
}

st_result_t st_rset(struct st_host *h)
{
    st_result_t r = run(h, SUBM_STAGE_RSET, NULL);

    txn_end(h->s);
    return r;
}

st_result_t st_command(struct st_host *h, subm_stage_t stage, const char *arg)
{
    subm_arg_t a = arg_for(stage, arg);

    return run(h, stage, &a);
}

/* to_crlf - text with every line ending as CRLF (malloc'd). */
static char *to_crlf(const char *text, size_t *len_r)
{
    size_t len = strlen(text), i, o = 0;
    char *out = xmalloc(2 * len + 1);

    for (i = 0; i < len; i++) {
        if (text[i] == '\r' && text[i + 1] == '\n')
            continue;
        if (text[i] == '\n')
            out[o++] = '\r';
        out[o++] = text[i];
    }
    out[o] = '\0';
    *len_r = o;
    return out;
}

/* passes - whether a message stage let the message go on. */
static int passes(subm_verdict_t v)
{
    return v == SUBM_CONTINUE || v == SUBM_ACCEPT;
}

st_result_t st_message(struct st_host *h, const char *text, size_t chunk)
{
    size_t len, pos = 0;
    char *msg = to_crlf(text, &len);
    st_result_t r = st_data(h);

    /* header fields: a line, plus the continuation lines that start with blanks */
    while (passes(r.verdict) && pos < len && !(msg[pos] == '\r' && msg[pos + 1] == '\n')) {
        size_t end = pos;
        char *field;

        for (;;) {
            char *nl = strstr(msg + end, "\r\n");

            end = nl ? (size_t)(nl - msg) + 2 : len;
            if (end >= len || (msg[end] != ' ' && msg[end] != '\t'))
                break;
        }
        field = strndup(msg + pos, end - pos);
        r = st_header(h, field);
        free(field);
        pos = end;
    }
    if (passes(r.verdict)) {
        if (pos < len)
            pos += 2;               /* the blank line */
        r = st_eoh(h);
    }
    while (passes(r.verdict) && pos < len) {
        size_t take = chunk == 0 || len - pos < chunk ? len - pos : chunk;

        r = st_body(h, msg + pos, take);
        pos += take;
    }
    if (passes(r.verdict))
        r = st_eom(h);
    free(msg);
    return r;
}

const struct mod *st_mods(struct st_host *h)
{
    return h->s->txn ? h->s->txn->mods : NULL;
}

size_t st_mod_count(struct st_host *h)
{
    return h->s->txn ? h->s->txn->nmods : 0;
}

const char *st_header_after_mods(struct st_host *h, const char *name, int n)
{
    struct header *hd;
    size_t count, i;

    if (h->s->txn == NULL)
        return NULL;
    mods_headers(h->s, &hd, &count);
    for (i = 0; i < count; i++)
        if (strcasecmp(hd[i].name, name) == 0 && --n == 0)
            return hd[i].value;
    return NULL;
}

int st_log_contains(struct st_host *h, const char *needle)
{
    return h->log != NULL && strstr(h->log, needle) != NULL;
}

const char *st_log(struct st_host *h)
{
    return h->log ? h->log : "";
}
