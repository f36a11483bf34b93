/*
 * probe.c - a test plugin for the milter front-end's tests: it writes one
 * line per stage it sees to a log file (what the stage carried, and the
 * session and transaction facts the plugin API gives at that moment) and
 * answers from scripted rules, so a test can check both directions: what
 * reached the chain, and what the MTA was told.
 *
 *   plugin probe {
 *       path  = ".../t/milter/.libs/probe.so"
 *       log   = "/tmp/x/probe.log"
 *       rules = { "rcpt:bad@ reject 550 5.1.1 No such user",
 *                 "eom addheader X-Probe yes" }
 *       macros = { "j", "{daemon_name}" }   # logged at connect, mail, eom
 *   }
 *
 * A rule is "STAGE[:MATCH] ACTION ARGS": MATCH is a substring of what the
 * stage carries (client address, HELO name, TLS version, login, address,
 * "Name:value" of a header, body bytes, command line; at DATA, EOH and EOM,
 * the sender). Actions: continue, accept [CODE ECODE TEXT], reject CODE
 * ECODE TEXT, tempfail CODE ECODE TEXT, discard, and the modifications
 * addheader NAME VALUE, insheader IDX NAME VALUE, chgheader NAME N VALUE,
 * delheader NAME N, chgfrom ADDR [PARAMS], addrcpt ADDR [PARAMS],
 * delrcpt ADDR, replbody TEXT. In TEXT and VALUE, "\n" is a newline and
 * "\r" a carriage return; ECODE "-" means none. The first matching verdict
 * rule decides; every matching modification rule is recorded.
 *
 * Built twice: probe.so hooks every stage; probe_eom.so (PROBE_EOM_ONLY)
 * hooks only MAIL, RCPT and EOM and is flagged SUBM_PLUGIN_NEEDS_HEADERS
 * and SUBM_PLUGIN_NEEDS_BODY, to test negotiation.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <submilter/plugin.h>

struct probe_conf {
    const char        *log;
    const char *const *rules;
    const char *const *macros;
};

static const subm_option_t probe_options[] = {
    { "log", SUBM_OPT_STR, "", offsetof(struct probe_conf, log), 0, 0, NULL,
      "file to append one line per stage to" },
    { "rules", SUBM_OPT_LIST, NULL, offsetof(struct probe_conf, rules), 0, 0, NULL,
      "scripted answers: \"STAGE[:MATCH] ACTION ARGS\"" },
    { "macros", SUBM_OPT_LIST, NULL, offsetof(struct probe_conf, macros), 0, 0, NULL,
      "macros to log at connect, mail and eom" },
    SUBM_OPT_END
};

static const char *const stage_names[] = {
    "connect", "helo", "tls", "auth", "mail", "rcpt", "data", "header", "eoh",
    "body", "eom", "vrfy", "expn", "help", "noop", "unknown", "rset", "close"
};

/* esc - s (len octets) with CR, LF, tab, '\\' and controls escaped. */
static void esc(char *out, size_t outlen, const char *s, size_t len)
{
    size_t o = 0, i;

    for (i = 0; s != NULL && i < len && o + 5 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '\r') { out[o++] = '\\'; out[o++] = 'r'; }
        else if (ch == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
        else if (ch == '\t') { out[o++] = '\\'; out[o++] = 't'; }
        else if (ch == '\\') { out[o++] = '\\'; out[o++] = '\\'; }
        else if (ch < 32 || ch == 127) o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
        else out[o++] = (char)ch;
    }
    out[o] = '\0';
}

/* field - append "\tkey=value" (escaped) to line. */
static void field(char *line, size_t len, const char *key, const char *v, size_t vlen)
{
    char e[4096];
    size_t used = strlen(line);

    if (v == NULL) {
        snprintf(line + used, len - used, "\t%s=(null)", key);
        return;
    }
    esc(e, sizeof(e), v, vlen);
    snprintf(line + used, len - used, "\t%s=%s", key, e);
}

static void fs(char *line, size_t len, const char *key, const char *v)
{
    field(line, len, key, v, v ? strlen(v) : 0);
}

static void fnum(char *line, size_t len, const char *key, unsigned long long n)
{
    char b[32];

    snprintf(b, sizeof(b), "%llu", n);
    fs(line, len, key, b);
}

/* params_text - "A=1,B" of an ESMTP parameter list. */
static void params_text(char *out, size_t len, const subm_param_t *p, size_t n)
{
    size_t i, used = 0;

    out[0] = '\0';
    for (i = 0; i < n && used < len; i++) {
        int w = snprintf(out + used, len - used, "%s%s%s%s", i ? "," : "",
                         p[i].name, p[i].value ? "=" : "", p[i].value ? p[i].value : "");
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* log_line - append one line to the log file in one write. */
static void log_line(const struct probe_conf *c, const char *line)
{
    char buf[16384];
    int n, fd;

    if (c->log == NULL || *c->log == '\0')
        return;
    n = snprintf(buf, sizeof(buf), "%s\n", line);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1;
    fd = open(c->log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0)
        return;
    if (write(fd, buf, (size_t)n) < 0)
        subm_log(NULL, SUBM_LOG_WARN, "probe: cannot write %s", c->log);
    close(fd);
}

/* unescape - "\n", "\r", "\t" and "\\" in s, in place. */
static void unescape(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] != '\0') {
            s++;
            *o++ = *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s == 't' ? '\t' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* word - the next space-separated word of *p (NUL-terminated in place). */
static char *word(char **p)
{
    char *s = *p, *w;

    while (*s == ' ')
        s++;
    if (*s == '\0')
        return NULL;
    w = s;
    while (*s != '\0' && *s != ' ')
        s++;
    if (*s != '\0')
        *s++ = '\0';
    *p = s;
    return w;
}

/* rest - the rest of *p after blanks, unescaped. */
static char *rest(char **p)
{
    char *s = *p;

    while (*s == ' ')
        s++;
    unescape(s);
    return s;
}

/* do_reply - set a reply from "CODE ECODE TEXT" if given. */
static void do_reply(subm_ctx_t *ctx, char **p)
{
    char *code = word(p), *ecode = word(p), *text = rest(p);

    if (code == NULL || atoi(code) == 0)
        return;
    subm_reply(ctx, atoi(code), ecode && strcmp(ecode, "-") != 0 ? ecode : NULL,
               "%s", text ? text : "");
}

/* do_mod - a modification action; 0 if action was one. */
static int do_mod(subm_ctx_t *ctx, const char *act, char **p)
{
    int r;

    if (strcmp(act, "addheader") == 0) {
        char *n = word(p);
        r = subm_txn_add_header(ctx, n, rest(p));
    } else if (strcmp(act, "insheader") == 0) {
        char *i = word(p), *n = word(p);
        r = subm_txn_insert_header(ctx, (size_t)atol(i ? i : "0"), n, rest(p));
    } else if (strcmp(act, "chgheader") == 0) {
        char *n = word(p), *k = word(p);
        r = subm_txn_change_header(ctx, n, atoi(k ? k : "1"), rest(p));
    } else if (strcmp(act, "delheader") == 0) {
        char *n = word(p), *k = word(p);
        r = subm_txn_delete_header(ctx, n, atoi(k ? k : "1"));
    } else if (strcmp(act, "chgfrom") == 0) {
        char *a = word(p), *pr = rest(p);
        r = subm_txn_change_sender(ctx, a && strcmp(a, "<>") == 0 ? "" : a, *pr ? pr : NULL);
    } else if (strcmp(act, "addrcpt") == 0) {
        char *a = word(p), *pr = rest(p);
        r = subm_txn_add_rcpt(ctx, a, *pr ? pr : NULL);
    } else if (strcmp(act, "delrcpt") == 0) {
        r = subm_txn_delete_rcpt(ctx, word(p));
    } else if (strcmp(act, "replbody") == 0) {
        char *b = rest(p);
        r = subm_txn_replace_body(ctx, b, strlen(b));
    } else {
        return -1;
    }
    if (r != 0)
        subm_log(ctx, SUBM_LOG_WARN, "probe: %s refused by the API", act);
    return 0;
}

/* matches - the rule's stage and match against this call. */
static int matches(const char *spec, subm_stage_t st, const char *subject, size_t sublen)
{
    const char *colon = strchr(spec, ':');
    size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *m;
    size_t ml, i;

    if (strlen(stage_names[st]) != nl || strncmp(spec, stage_names[st], nl) != 0)
        return 0;
    if (colon == NULL || colon[1] == '\0')
        return 1;
    m = colon + 1;
    ml = strlen(m);
    if (subject == NULL || ml > sublen)
        return 0;
    for (i = 0; i + ml <= sublen; i++)
        if (memcmp(subject + i, m, ml) == 0)
            return 1;
    return 0;
}

/* run_rules - the verdict for this call, after recording modifications. */
static subm_verdict_t run_rules(subm_ctx_t *ctx, const struct probe_conf *c,
                                subm_stage_t st, const char *subject, size_t sublen)
{
    subm_verdict_t v = SUBM_CONTINUE;
    int decided = 0;

    for (const char *const *r = c->rules; r != NULL && *r != NULL; r++) {
        char buf[2048], *p = buf, *spec, *act;

        snprintf(buf, sizeof(buf), "%s", *r);
        if ((spec = word(&p)) == NULL || (act = word(&p)) == NULL)
            continue;
        if (!matches(spec, st, subject, sublen))
            continue;
        if (do_mod(ctx, act, &p) == 0)
            continue;
        if (decided)
            continue;
        decided = 1;
        if (strcmp(act, "accept") == 0) { do_reply(ctx, &p); v = SUBM_ACCEPT; }
        else if (strcmp(act, "reject") == 0) { do_reply(ctx, &p); v = SUBM_REJECT; }
        else if (strcmp(act, "tempfail") == 0) { do_reply(ctx, &p); v = SUBM_TEMPFAIL; }
        else if (strcmp(act, "discard") == 0) v = SUBM_DISCARD;
        else v = SUBM_CONTINUE;
    }
    return v;
}

/* log_macros - the configured macros' values. */
static void log_macros(subm_ctx_t *ctx, const struct probe_conf *c, char *line, size_t len)
{
    for (const char *const *m = c->macros; m != NULL && *m != NULL; m++) {
        char key[80];

        snprintf(key, sizeof(key), "macro%s", *m);
        fs(line, len, key, subm_macro(ctx, *m));
    }
}

/* probe_hook - every stage: log, then answer from the rules. */
static subm_verdict_t probe_hook(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct probe_conf *c = subm_instance(ctx);
    subm_stage_t st = subm_stage(ctx);
    char line[12288], tmp[1024];
    const char *subject = arg->text;
    size_t sublen = arg->text ? strlen(arg->text) : 0;

    snprintf(line, sizeof(line), "%s", stage_names[st]);
    switch (st) {
    case SUBM_STAGE_CONNECT:
        fs(line, sizeof(line), "addr", subm_client_addr(ctx));
        fnum(line, sizeof(line), "port", (unsigned long long)subm_client_port(ctx));
        fs(line, sizeof(line), "name", subm_client_name(ctx));
        fs(line, sizeof(line), "frontend", subm_frontend(ctx));
        fs(line, sizeof(line), "sa", subm_client_sockaddr(ctx) ? "yes" : "no");
        log_macros(ctx, c, line, sizeof(line));
        subject = subm_client_addr(ctx);
        sublen = subject ? strlen(subject) : 0;
        break;
    case SUBM_STAGE_HELO:
        fs(line, sizeof(line), "helo", arg->text);
        fnum(line, sizeof(line), "esmtp", (unsigned long long)arg->esmtp);
        fs(line, sizeof(line), "session_helo", subm_helo(ctx));
        break;
    case SUBM_STAGE_TLS:
        fs(line, sizeof(line), "text", arg->text);
        fs(line, sizeof(line), "version", subm_tls_version(ctx));
        fs(line, sizeof(line), "cipher", subm_tls_cipher(ctx));
        fs(line, sizeof(line), "peer", subm_tls_peer(ctx));
        break;
    case SUBM_STAGE_AUTH:
        fs(line, sizeof(line), "text", arg->text);
        fs(line, sizeof(line), "login", subm_auth_login(ctx));
        fs(line, sizeof(line), "mech", subm_auth_mech(ctx));
        fs(line, sizeof(line), "author", subm_auth_author(ctx));
        break;
    case SUBM_STAGE_MAIL:
        fs(line, sizeof(line), "from", arg->text);
        params_text(tmp, sizeof(tmp), arg->params, arg->nparams);
        fs(line, sizeof(line), "params", tmp);
        fs(line, sizeof(line), "size_param", subm_txn_sender_param(ctx, "SIZE"));
        fs(line, sizeof(line), "login", subm_auth_login(ctx));
        fs(line, sizeof(line), "tls", subm_tls_version(ctx));
        fs(line, sizeof(line), "helo", subm_helo(ctx));
        fs(line, sizeof(line), "addr", subm_client_addr(ctx));
        fs(line, sizeof(line), "qid", subm_txn_queue_id(ctx));
        log_macros(ctx, c, line, sizeof(line));
        break;
    case SUBM_STAGE_RCPT:
        fs(line, sizeof(line), "to", arg->text);
        params_text(tmp, sizeof(tmp), arg->params, arg->nparams);
        fs(line, sizeof(line), "params", tmp);
        fnum(line, sizeof(line), "index", arg->index);
        fnum(line, sizeof(line), "count", subm_txn_rcpt_count(ctx));
        break;
    case SUBM_STAGE_HEADER:
        fs(line, sizeof(line), "name", arg->name);
        fs(line, sizeof(line), "value", arg->value);
        field(line, sizeof(line), "raw", arg->raw, arg->raw_len);
        subject = arg->raw;
        sublen = arg->raw_len;
        break;
    case SUBM_STAGE_DATA:
        fs(line, sizeof(line), "qid", subm_txn_queue_id(ctx));
        subject = subm_txn_sender(ctx);
        sublen = subject ? strlen(subject) : 0;
        break;
    case SUBM_STAGE_EOH:
        fnum(line, sizeof(line), "nheaders", subm_txn_header_count(ctx));
        subject = subm_txn_sender(ctx);
        sublen = subject ? strlen(subject) : 0;
        break;
    case SUBM_STAGE_BODY:
        fnum(line, sizeof(line), "len", arg->len);
        field(line, sizeof(line), "data", (const char *)arg->data, arg->len > 200 ? 200 : arg->len);
        subject = (const char *)arg->data;
        sublen = arg->len;
        break;
    case SUBM_STAGE_EOM: {
        char body[256];
        long n = subm_txn_body_read(ctx, 0, body, sizeof(body));
        size_t i, used = 0;

        fs(line, sizeof(line), "from", subm_txn_sender(ctx));
        tmp[0] = '\0';
        for (i = 0; i < subm_txn_rcpt_count(ctx) && used < sizeof(tmp); i++) {
            int w = snprintf(tmp + used, sizeof(tmp) - used, "%s%s", i ? "," : "",
                             subm_txn_rcpt(ctx, i));
            if (w < 0)
                break;
            used += (size_t)w;
        }
        fs(line, sizeof(line), "rcpts", tmp);
        fnum(line, sizeof(line), "nheaders", subm_txn_header_count(ctx));
        fs(line, sizeof(line), "subject", subm_txn_header_find(ctx, "Subject", 1));
        fnum(line, sizeof(line), "size", subm_txn_size(ctx));
        fnum(line, sizeof(line), "bodysize", subm_txn_body_size(ctx));
        field(line, sizeof(line), "body", body, n > 0 ? (size_t)n : 0);
        fs(line, sizeof(line), "qid", subm_txn_queue_id(ctx));
        fs(line, sizeof(line), "login", subm_auth_login(ctx));
        log_macros(ctx, c, line, sizeof(line));
        subject = subm_txn_sender(ctx);
        sublen = subject ? strlen(subject) : 0;
        break;
    }
    default:
        fs(line, sizeof(line), "text", arg->text);
        break;
    }
    log_line(c, line);
    return run_rules(ctx, c, st, subject, sublen);
}

#ifdef PROBE_EOM_ONLY
SUBM_PLUGIN(probe_eom) = {
    SUBM_PLUGIN_HEAD,
    .name = "probe_eom",
    .version = "1",
    .description = "test probe: MAIL, RCPT and EOM only, reads headers and body",
    .options = probe_options,
    .conf_size = sizeof(struct probe_conf),
    .flags = SUBM_PLUGIN_NEEDS_HEADERS | SUBM_PLUGIN_NEEDS_BODY,
    .on_mail = probe_hook, .on_rcpt = probe_hook, .on_eom = probe_hook,
};
#else
SUBM_PLUGIN(probe) = {
    SUBM_PLUGIN_HEAD,
    .name = "probe",
    .version = "1",
    .description = "test probe: logs every stage, answers from rules",
    .options = probe_options,
    .conf_size = sizeof(struct probe_conf),
    .on_connect = probe_hook, .on_helo = probe_hook, .on_tls = probe_hook,
    .on_auth = probe_hook, .on_mail = probe_hook, .on_rcpt = probe_hook,
    .on_data = probe_hook, .on_header = probe_hook, .on_eoh = probe_hook,
    .on_body = probe_hook, .on_eom = probe_hook, .on_vrfy = probe_hook,
    .on_expn = probe_hook, .on_help = probe_hook, .on_noop = probe_hook,
    .on_unknown = probe_hook, .on_rset = probe_hook, .on_close = probe_hook,
};
#endif
