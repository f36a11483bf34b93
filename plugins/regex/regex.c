/*
 * regex.c - the regex plugin: PCRE2 rules on every stage of a message.
 *
 * The rules file (syntax in regex_rules.c and README) is compiled once per
 * chain, JIT where the CPU allows, and shared read-only by all sessions.
 * Each stage matches its rules, in file order, against one subject:
 *   connect  "NAME[ADDR]"  (as Postfix logs a client: "unknown[192.0.2.1]")
 *   helo     the HELO/EHLO name        auth    the AUTH login
 *   mail     the sender ("" for <>)    rcpt    the recipient
 *   header   "Name: value", unfolded
 *   body     each body line, CRLF removed; with body_decode = yes, text
 *            parts decoded from quoted-printable / base64 (regex_mime.c)
 * accept / reject / tempfail / discard end the stage with that verdict;
 * add-header and log act and go on to the next rule. Within one message an
 * add-header or log rule acts at most once, so a body of a million matching
 * lines adds one header, not a million. add-header at connect, helo and auth
 * is kept in the session and added to each message the session sends.
 *
 * Every match runs under a PCRE2 match context with a match limit, a depth
 * limit and a heap limit: a pattern that backtracks without end on hostile
 * input stops with PCRE2_ERROR_MATCHLIMIT (or its kin), is logged, and the
 * `on_limit` answer is given. Interpreted patterns (jit = no, or a CPU
 * without JIT) also count every step through an automatic callout, because
 * the interpreter's own limit restarts at each start position. The stage
 * deadline is checked before each match. The rules are per chain
 * (read-only); match data, match context, JIT stack and step counter are per
 * session (one thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rx.h"

enum { L_CONTINUE, L_TEMPFAIL, L_REJECT };

struct regex_conf {
    const char          *rules;
    int                  jit;
    int                  body_decode;
    uint64_t             body_line_max;
    long                 match_limit;
    long                 depth_limit;
    uint64_t             heap_limit;
    int                  on_limit;
    /* derived in init */
    struct rx_rules      set;
    pcre2_match_context *mctx;
};

static const char *const on_limit_choices[] = {
    "continue", "tempfail", "reject", NULL };

#define O(f) offsetof(struct regex_conf, f)
static const subm_option_t regex_options[] = {
    { "rules", SUBM_OPT_PATH, "", O(rules), 0, 0, NULL,
      "the rules file: STAGE /PATTERN/FLAGS ACTION [ARGUMENT] per line" },
    { "jit", SUBM_OPT_BOOL, "yes", O(jit), 0, 0, NULL,
      "JIT-compile the patterns where the CPU allows" },
    { "body_decode", SUBM_OPT_BOOL, "no", O(body_decode), 0, 0, NULL,
      "match body rules on decoded text parts (quoted-printable, base64)" },
    { "body_line_max", SUBM_OPT_SIZE, "64K", O(body_line_max), 1024, 64 << 20, NULL,
      "longest body line matched; longer lines are cut" },
    { "match_limit", SUBM_OPT_INT, "1000000", O(match_limit), 1, 4000000000LL, NULL,
      "PCRE2 match limit per match (backtracking steps)" },
    { "depth_limit", SUBM_OPT_INT, "100000", O(depth_limit), 1, 4000000000LL, NULL,
      "PCRE2 depth limit per match (interpreter only)" },
    { "heap_limit", SUBM_OPT_SIZE, "16M", O(heap_limit), 65536, 1LL << 40, NULL,
      "PCRE2 heap limit per match (interpreter only)" },
    { "on_limit", SUBM_OPT_ENUM, "tempfail", O(on_limit), 0, 0, on_limit_choices,
      "a match that hits a limit: continue (no match), tempfail (451 4.3.0) or reject (550 5.7.1)" },
    SUBM_OPT_END
};
#undef O

/* A header to add to each message of the session. */
struct rx_hdr {
    char          *name;
    char          *value;
    struct rx_hdr *next;
};

/* Per-session state (the session slot). */
struct rx_session {
    pcre2_match_data    *md;
    pcre2_match_context *mctx;            /* the instance's, plus our own... */
    pcre2_jit_stack     *jit_stack;       /* ...JIT stack... */
    unsigned long        steps;           /* ...and step count (interpreter) */
    unsigned long        max_steps;
    struct rx_hdr       *pending[RX_MAIL];   /* from connect, helo, auth rules */
    unsigned             limit_logs;         /* limit warnings this message */
};

/* Per-transaction state (the transaction slot). */
struct rx_txn {
    struct mime    *mime;          /* made at the first body chunk */
    subm_ctx_t     *ctx;           /* the call feeding the body */
    subm_verdict_t  verdict;       /* of the body rule that ended it */
    int             done;          /* body matching is over */
    unsigned char  *fired;         /* per rule: add-header / log acted */
};

#define REPLY_MAX   480           /* reply text after expansion */
#define HEADER_MAX  900           /* header value after expansion */
#define LIMIT_LOGS  3             /* limit warnings logged per message */
#define JIT_STACK_MAX (512 * 1024) /* per session, for deeply nested matches */

/* hdr_list_free - free a pending header list. */
static void hdr_list_free(struct rx_hdr **lp)
{
    while (*lp != NULL) {
        struct rx_hdr *h = *lp;

        *lp = h->next;
        free(h->name);
        free(h->value);
        free(h);
    }
}

/* session_end - free the session state. */
static void session_end(void *arg)
{
    struct rx_session *ss = arg;
    int i;

    pcre2_match_data_free(ss->md);
    pcre2_match_context_free(ss->mctx);
    pcre2_jit_stack_free(ss->jit_stack);
    for (i = 0; i < RX_MAIL; i++)
        hdr_list_free(&ss->pending[i]);
    free(ss);
}

/* count_step - auto-callout of interpreted patterns: bound the whole match. */
static int count_step(pcre2_callout_block *cb, void *arg)
{
    struct rx_session *ss = arg;

    return ++ss->steps > ss->max_steps ? PCRE2_ERROR_MATCHLIMIT : 0;
}

/* session_state - the session's state, made on first use; NULL if no memory. */
static struct rx_session *session_state(subm_ctx_t *ctx)
{
    const struct regex_conf *c = subm_instance(ctx);
    void **slot = subm_session_slot(ctx);
    struct rx_session *ss;

    if (*slot != NULL)
        return *slot;
    if ((ss = calloc(1, sizeof(*ss))) == NULL)
        return NULL;
    ss->md = pcre2_match_data_create(c->set.max_groups, NULL);
    ss->mctx = pcre2_match_context_copy(c->mctx);
    ss->max_steps = (unsigned long) c->match_limit;
    if (c->set.njit > 0)
        ss->jit_stack = pcre2_jit_stack_create(32 * 1024, JIT_STACK_MAX, NULL);
    if (ss->md == NULL || ss->mctx == NULL || (c->set.njit > 0 && ss->jit_stack == NULL) ||
        subm_session_on_end(ctx, session_end, ss) != 0) {
        session_end(ss);
        return NULL;
    }
    pcre2_set_callout(ss->mctx, count_step, ss);
    if (ss->jit_stack != NULL)
        pcre2_jit_stack_assign(ss->mctx, NULL, ss->jit_stack);
    *slot = ss;
    return ss;
}

/* txn_end - free the transaction state. */
static void txn_end(void *arg)
{
    struct rx_txn *t = arg;

    mime_free(&t->mime);
    free(t->fired);
    free(t);
}

/* txn_state - the transaction's state, made on first use; NULL outside a
 * transaction or without memory. */
static struct rx_txn *txn_state(subm_ctx_t *ctx)
{
    const struct regex_conf *c = subm_instance(ctx);
    void **slot = subm_txn_slot(ctx);
    struct rx_txn *t;

    if (slot == NULL)
        return NULL;
    if (*slot != NULL)
        return *slot;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    t->fired = calloc(c->set.nrules ? c->set.nrules : 1, 1);
    if (t->fired == NULL || subm_txn_on_end(ctx, txn_end, t) != 0) {
        txn_end(t);
        return NULL;
    }
    *slot = t;
    return t;
}

/* once_per_txn - 1 the first time rule r acts in this message. */
static int once_per_txn(subm_ctx_t *ctx, const struct rx_rule *r)
{
    const struct regex_conf *c = subm_instance(ctx);
    struct rx_txn *t;

    if (r->stage < RX_MAIL || (t = txn_state(ctx)) == NULL)
        return 1;
    if (t->fired[r - c->set.rule])
        return 0;
    t->fired[r - c->set.rule] = 1;
    return 1;
}

/* internal_error - 451 4.3.0 for a failure of ours. */
static subm_verdict_t internal_error(subm_ctx_t *ctx, const char *what)
{
    subm_log(ctx, SUBM_LOG_WARN, "%s", what);
    return subm_tempfail(ctx, 451, "4.3.0",
                         "Temporary content filter failure, try again later");
}

/* add_header - act on an add-header rule (now, or for each later message). */
static void add_header(subm_ctx_t *ctx, struct rx_session *ss,
                       const struct rx_rule *r, const char *value)
{
    const struct regex_conf *c = subm_instance(ctx);
    struct rx_hdr *h, **tail;

    if (r->stage >= RX_MAIL) {
        if (subm_txn_add_header(ctx, r->hdr_name, value) != 0)
            subm_log(ctx, SUBM_LOG_WARN, "%s:%d: could not add header %s",
                     c->rules, r->line, r->hdr_name);
        return;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL || (h->name = strdup(r->hdr_name)) == NULL ||
        (h->value = strdup(value)) == NULL) {
        hdr_list_free(&h);
        subm_log(ctx, SUBM_LOG_WARN, "%s:%d: out of memory", c->rules, r->line);
        return;
    }
    for (tail = &ss->pending[r->stage]; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = h;
}

/* act - carry out rule r, which applies to subject s. */
static subm_verdict_t act(subm_ctx_t *ctx, struct rx_session *ss,
                          const struct rx_rule *r, const char *s)
{
    const struct regex_conf *c = subm_instance(ctx);
    char buf[HEADER_MAX + 1];
    const char *stage = rx_stage_name(r->stage);

    if (r->text != NULL)
        rx_expand(r->text, r->re, r->negate ? NULL : ss->md, s, buf,
                  r->action == RX_ADD_HEADER ? HEADER_MAX + 1 : REPLY_MAX + 1);
    switch (r->action) {
    case RX_ACCEPT:
        subm_log(ctx, SUBM_LOG_INFO, "%s:%d: %s accepted", c->rules, r->line, stage);
        return SUBM_ACCEPT;
    case RX_DISCARD:
        subm_log(ctx, SUBM_LOG_INFO, "%s:%d: %s discard", c->rules, r->line, stage);
        return SUBM_DISCARD;
    case RX_REJECT:
        subm_log(ctx, SUBM_LOG_INFO, "%s:%d: %s rejected", c->rules, r->line, stage);
        return subm_reject(ctx, r->code ? r->code : r->stage == RX_CONNECT ? 554 : 550,
                           r->ecode[0] ? r->ecode : "5.7.1", "%s",
                           r->text ? buf : "Rejected by policy");
    case RX_TEMPFAIL:
        subm_log(ctx, SUBM_LOG_INFO, "%s:%d: %s tempfail", c->rules, r->line, stage);
        return subm_tempfail(ctx, r->code ? r->code : 451,
                             r->ecode[0] ? r->ecode : "4.7.1", "%s",
                             r->text ? buf : "Try again later");
    case RX_ADD_HEADER:
        if (once_per_txn(ctx, r))
            add_header(ctx, ss, r, buf);
        return SUBM_CONTINUE;
    default:
        if (once_per_txn(ctx, r))
            subm_log(ctx, SUBM_LOG_INFO, "%s:%d: %s matched%s%s", c->rules,
                     r->line, stage, r->text ? ": " : "", r->text ? buf : "");
        return SUBM_CONTINUE;
    }
}

/* gave_up - a match ended in a limit or an error: log, give the on_limit answer. */
static subm_verdict_t gave_up(subm_ctx_t *ctx, struct rx_session *ss,
                              const struct rx_rule *r, int rc, size_t len)
{
    const struct regex_conf *c = subm_instance(ctx);
    PCRE2_UCHAR msg[128];

    pcre2_get_error_message(rc, msg, sizeof(msg));
    if (ss->limit_logs++ < LIMIT_LOGS)
        subm_log(ctx, SUBM_LOG_WARN, "%s:%d: %s rule stopped on %zu octets: %s",
                 c->rules, r->line, rx_stage_name(r->stage), len, (char *) msg);
    switch (c->on_limit) {
    case L_TEMPFAIL:
        return subm_tempfail(ctx, 451, "4.3.0",
                             "Content could not be checked, try again later");
    case L_REJECT:
        return subm_reject(ctx, 550, "5.7.1", "Content could not be checked");
    default:
        return SUBM_CONTINUE;
    }
}

/* rx_run - match the rules of stage against subject s[0..len). */
static subm_verdict_t rx_run(subm_ctx_t *ctx, int stage, const char *s, size_t len)
{
    const struct regex_conf *c = subm_instance(ctx);
    struct rx_session *ss;
    size_t i;

    if (c->set.nstage[stage] == 0)
        return SUBM_CONTINUE;
    if ((ss = session_state(ctx)) == NULL)
        return internal_error(ctx, "out of memory for match data");
    for (i = 0; i < c->set.nstage[stage]; i++) {
        const struct rx_rule *r = c->set.stage_rule[stage][i];
        subm_verdict_t v;
        int rc;

        if (subm_time_left_ms(ctx) <= 0)
            return internal_error(ctx, "deadline passed while matching rules");
        ss->steps = 0;
        rc = pcre2_match(r->re, (PCRE2_SPTR) s, len, 0, 0, ss->md, ss->mctx);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
            if ((v = gave_up(ctx, ss, r, rc, len)) != SUBM_CONTINUE)
                return v;
            continue;
        }
        if ((rc >= 0) == r->negate)
            continue;
        if ((v = act(ctx, ss, r, s)) != SUBM_CONTINUE)
            return v;
    }
    return SUBM_CONTINUE;
}

/* rx_run_str - rx_run on a C string (NULL matches as ""). */
static subm_verdict_t rx_run_str(subm_ctx_t *ctx, int stage, const char *s)
{
    if (s == NULL)
        s = "";
    return rx_run(ctx, stage, s, strlen(s));
}

/* session_stage - connect, helo, auth: forget the headers the last run of
 * this stage asked for, then match. */
static subm_verdict_t session_stage(subm_ctx_t *ctx, int stage, const char *s)
{
    const struct regex_conf *c = subm_instance(ctx);
    struct rx_session *ss;

    if (c->set.nstage[stage] == 0)
        return SUBM_CONTINUE;
    if ((ss = session_state(ctx)) == NULL)
        return internal_error(ctx, "out of memory for session state");
    hdr_list_free(&ss->pending[stage]);
    ss->limit_logs = 0;
    return rx_run_str(ctx, stage, s);
}

/* regex_connect - "NAME[ADDR]". */
static subm_verdict_t regex_connect(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct regex_conf *c = subm_instance(ctx);
    const char *name = subm_client_name(ctx), *addr = subm_client_addr(ctx);
    size_t len;
    subm_verdict_t v;
    char *buf;

    if (c->set.nstage[RX_CONNECT] == 0)
        return SUBM_CONTINUE;
    name = name ? name : "unknown";
    addr = addr ? addr : "";
    len = strlen(name) + strlen(addr) + 3;
    if ((buf = malloc(len)) == NULL)
        return internal_error(ctx, "out of memory for the client name");
    snprintf(buf, len, "%s[%s]", name, addr);   /* sized to fit */
    v = session_stage(ctx, RX_CONNECT, buf);
    free(buf);
    return v;
}

/* regex_helo - the HELO/EHLO name. */
static subm_verdict_t regex_helo(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    return session_stage(ctx, RX_HELO, arg->text);
}

/* regex_auth - the login. */
static subm_verdict_t regex_auth(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    return session_stage(ctx, RX_AUTH, arg->text ? arg->text : subm_auth_login(ctx));
}

/* regex_mail - add the session's pending headers, then the mail rules. */
static subm_verdict_t regex_mail(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct regex_conf *c = subm_instance(ctx);
    struct rx_session *ss = *subm_session_slot(ctx);
    const struct rx_hdr *h;
    int i;

    if (ss != NULL) {
        ss->limit_logs = 0;
        for (i = 0; i < RX_MAIL; i++)
            for (h = ss->pending[i]; h != NULL; h = h->next)
                if (subm_txn_add_header(ctx, h->name, h->value) != 0)
                    subm_log(ctx, SUBM_LOG_WARN, "%s: could not add header %s",
                             c->rules, h->name);
    }
    return rx_run_str(ctx, RX_MAIL, arg->text);
}

/* regex_rcpt - the recipient. */
static subm_verdict_t regex_rcpt(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    return rx_run_str(ctx, RX_RCPT, arg->text);
}

/* regex_header - "Name: value", unfolded. */
static subm_verdict_t regex_header(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct regex_conf *c = subm_instance(ctx);
    const char *name = arg->name ? arg->name : "", *value = arg->value ? arg->value : "";
    size_t nl = strlen(name), vl = strlen(value);
    subm_verdict_t v;
    char *s;

    if (c->set.nstage[RX_HEADER] == 0)
        return SUBM_CONTINUE;
    if ((s = malloc(nl + vl + 3)) == NULL)
        return internal_error(ctx, "out of memory for a header");
    memcpy(s, name, nl);
    memcpy(s + nl, ": ", 2);
    memcpy(s + nl + 2, value, vl + 1);
    v = rx_run(ctx, RX_HEADER, s, nl + 2 + vl);
    free(s);
    return v;
}

/* body_line - mime_line_fn: match one body line. */
static int body_line(void *arg, const char *line, size_t len)
{
    struct rx_txn *t = arg;
    subm_verdict_t v = rx_run(t->ctx, RX_BODY, line, len);

    if (v == SUBM_CONTINUE)
        return 0;
    t->verdict = v;
    t->done = 1;
    return 1;
}

/* body_state - the transaction's body reader, made at the first chunk. */
static struct rx_txn *body_state(subm_ctx_t *ctx)
{
    const struct regex_conf *c = subm_instance(ctx);
    struct rx_txn *t = txn_state(ctx);

    if (t == NULL || t->mime != NULL)
        return t;
    t->mime = mime_new(c->body_decode,
                       subm_txn_header_find(ctx, "Content-Type", 1),
                       subm_txn_header_find(ctx, "Content-Transfer-Encoding", 1),
                       (size_t) c->body_line_max);
    return t->mime ? t : NULL;
}

/* regex_body - feed a chunk; lines are matched as they complete. */
static subm_verdict_t regex_body(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct regex_conf *c = subm_instance(ctx);
    struct rx_txn *t;

    if (c->set.nstage[RX_BODY] == 0)
        return SUBM_CONTINUE;
    if ((t = body_state(ctx)) == NULL)
        return internal_error(ctx, "out of memory for the body reader");
    if (t->done)
        return SUBM_CONTINUE;
    t->ctx = ctx;
    mime_feed(t->mime, arg->data, arg->len, body_line, t);
    t->ctx = NULL;
    return t->done ? t->verdict : SUBM_CONTINUE;
}

/* regex_eom - the last line, if the body did not end with a line end. */
static subm_verdict_t regex_eom(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct regex_conf *c = subm_instance(ctx);
    void **slot = subm_txn_slot(ctx);
    struct rx_txn *t = slot ? *slot : NULL;

    if (c->set.nstage[RX_BODY] == 0 || t == NULL || t->mime == NULL || t->done)
        return SUBM_CONTINUE;
    t->ctx = ctx;
    mime_finish(t->mime, body_line, t);
    t->ctx = NULL;
    return t->done && t->verdict != SUBM_ACCEPT ? t->verdict : SUBM_CONTINUE;
}

/* regex_init - compile the rules and make the match context. */
static int regex_init(void *conf, subm_error_t *err)
{
    struct regex_conf *c = conf;

    if (c->rules == NULL || c->rules[0] == 0)
        return subm_error(err, "`rules` is not set: name a rules file");
    if (rx_rules_load(c->rules, c->jit, &c->set, err) != 0)
        return -1;
    if ((c->mctx = pcre2_match_context_create(NULL)) == NULL) {
        rx_rules_free(&c->set);
        return subm_error(err, "out of memory");
    }
    pcre2_set_match_limit(c->mctx, (uint32_t) c->match_limit);
    pcre2_set_depth_limit(c->mctx, (uint32_t) c->depth_limit);
    pcre2_set_heap_limit(c->mctx, (uint32_t) (c->heap_limit / 1024));
    subm_log(NULL, SUBM_LOG_DEBUG, "regex: %s: %zu rules, %zu JIT-compiled",
             c->rules, c->set.nrules, c->set.njit);
    return 0;
}

/* regex_fini - free the rules and the match context. */
static void regex_fini(void *conf)
{
    struct regex_conf *c = conf;

    rx_rules_free(&c->set);
    pcre2_match_context_free(c->mctx);
    c->mctx = NULL;
}

/* regex_stages - only the stages some rule is for: a rules file without body
 * rules costs no body transfer behind the milter front-end. Body rules need
 * the header fields too (MIME type and encoding); mail always runs, it adds
 * the headers that connect, helo and auth rules asked for. */
static unsigned regex_stages(const void *conf)
{
    const struct regex_conf *c = conf;
    unsigned m = SUBM_STAGE_BIT(SUBM_STAGE_MAIL);

    if (c->set.nstage[RX_CONNECT])
        m |= SUBM_STAGE_BIT(SUBM_STAGE_CONNECT);
    if (c->set.nstage[RX_HELO])
        m |= SUBM_STAGE_BIT(SUBM_STAGE_HELO);
    if (c->set.nstage[RX_AUTH])
        m |= SUBM_STAGE_BIT(SUBM_STAGE_AUTH);
    if (c->set.nstage[RX_RCPT])
        m |= SUBM_STAGE_BIT(SUBM_STAGE_RCPT);
    if (c->set.nstage[RX_HEADER] || c->set.nstage[RX_BODY])
        m |= SUBM_STAGE_BIT(SUBM_STAGE_HEADER);
    if (c->set.nstage[RX_BODY])
        m |= SUBM_STAGE_BIT(SUBM_STAGE_BODY) | SUBM_STAGE_BIT(SUBM_STAGE_EOM);
    return m;
}

SUBM_PLUGIN(regex) = {
    SUBM_PLUGIN_HEAD,
    .name        = "regex",
    .version     = "1.0",
    .description = "PCRE2 rules on client, HELO, AUTH, envelope, header and body",
    .options     = regex_options,
    .conf_size   = sizeof(struct regex_conf),
    .init        = regex_init,
    .fini        = regex_fini,
    .stages      = regex_stages,
    .on_connect  = regex_connect,
    .on_helo     = regex_helo,
    .on_auth     = regex_auth,
    .on_mail     = regex_mail,
    .on_rcpt     = regex_rcpt,
    .on_header   = regex_header,
    .on_body     = regex_body,
    .on_eom      = regex_eom,
};
