/*
 * regex_rules.c - read a rules file into compiled rules.
 *
 * One rule per logical line (a line starting with blanks continues the one
 * before, as in Postfix tables; `#` starts a comment line):
 *     STAGE [!]/PATTERN/FLAGS ACTION [ARGUMENT]
 * STAGE    connect helo auth mail rcpt header body
 * PATTERN  PCRE2; any punctuation other than `\` and `!` may replace `/`
 * FLAGS    i caseless, m multiline, s dotall, x extended, u UTF-8 (invalid
 *          UTF-8 in the subject is tolerated)
 * ACTION   accept | discard
 *          reject | tempfail [CODE [ECODE]] [TEXT]   (or the same in "...")
 *          add-header NAME: VALUE
 *          log [TEXT]
 * TEXT and VALUE may use $N, ${N} and ${name} (captures) and $$.
 *
 * Everything is checked here, once: a bad stage, pattern, flag, action,
 * reply code or capture reference fails the load with "FILE:LINE: ...".
 * Patterns are JIT-compiled when asked and supported. Matching and actions
 * live in regex.c; this file only builds the read-only rule set.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rx.h"

static const char *const stage_names[RX_NSTAGES] = {
    "connect", "helo", "auth", "mail", "rcpt", "header", "body"
};

static const char *const action_names[] = {
    "accept", "reject", "tempfail", "discard", "add-header", "log", NULL
};

/* Where parsing is. */
struct rx_parse {
    const char   *file;
    int           line;
    int           use_jit;
    subm_error_t *err;
};

#define MAX_NAME 32     /* longest capture group name in a template */

/* rx_stage_name - the name of a stage. */
const char *rx_stage_name(int stage)
{
    return stage >= 0 && stage < RX_NSTAGES ? stage_names[stage] : "?";
}

/* perr - a load error at the current line; returns -1. */
static int perr(struct rx_parse *pc, const char *fmt, ...) SUBM_PRINTF(2, 3);
static int perr(struct rx_parse *pc, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return subm_error(pc->err, "%s:%d: %s", pc->file, pc->line, msg);
}

/*
 * tmpl_ref - the reference at t (which points at '$'). Sets *len_r to the
 * octets it spans. Returns 1 with *num_r for $N / ${N}, 2 with name for
 * ${name}, 3 for "$$", 0 for a '$' that is plain text.
 */
static int tmpl_ref(const char *t, size_t *len_r, int *num_r,
                    char name[MAX_NAME + 1])
{
    size_t n;

    if (t[1] == '$') {
        *len_r = 2;
        return 3;
    }
    if (isdigit((unsigned char) t[1])) {
        *num_r = t[1] - '0';
        *len_r = 2;
        return 1;
    }
    if (t[1] != '{')
        return (*len_r = 1), 0;
    for (n = 0; t[2 + n] != '}' && t[2 + n] != 0; n++)
        if (!(isalnum((unsigned char) t[2 + n]) || t[2 + n] == '_') || n >= MAX_NAME)
            return (*len_r = 1), 0;
    if (t[2 + n] != '}' || n == 0)
        return (*len_r = 1), 0;
    *len_r = n + 3;
    if (strspn(t + 2, "0123456789") == n) {
        *num_r = n > 4 ? 100000 : atoi(t + 2);
        return 1;
    }
    memcpy(name, t + 2, n);
    name[n] = 0;
    return 2;
}

/* tmpl_check - every capture reference in t exists in re. */
static int tmpl_check(struct rx_parse *pc, const struct rx_rule *r,
                      const char *t)
{
    uint32_t ncap = 0;
    char name[MAX_NAME + 1];
    size_t len;
    int n = 0, kind;

    if (t == NULL)
        return 0;
    pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &ncap);
    for (; *t; t++) {
        if (*t != '$')
            continue;
        kind = tmpl_ref(t, &len, &n, name);
        if ((kind == 1 || kind == 2) && r->negate)
            return perr(pc, "a rule with !/.../ has no captures to use");
        if (kind == 1 && (uint32_t) n > ncap) {
            return perr(pc, "$%d: the pattern has no such group", n);
        }
        if (kind == 2) {
            int rc = pcre2_substring_number_from_name(r->re, (PCRE2_SPTR) name);

            if (rc == PCRE2_ERROR_NOUNIQUESUBSTRING)
                return perr(pc, "${%s}: group name used more than once", name);
            if (rc < 0)
                return perr(pc, "${%s}: the pattern has no group of that name", name);
        }
        t += len - 1;
    }
    return 0;
}

/*
 * rx_expand - see regex.h.
 */
size_t rx_expand(const char *t, const pcre2_code *re, pcre2_match_data *md,
                 const char *subject, char *out, size_t outlen)
{
    PCRE2_SIZE *ov = md ? pcre2_get_ovector_pointer(md) : NULL;
    uint32_t nov = md ? pcre2_get_ovector_count(md) : 0;
    char name[MAX_NAME + 1];
    size_t o = 0, len, i;
    int n = 0, kind;

    for (; *t && o + 1 < outlen; t++) {
        if (*t != '$') {
            out[o++] = *t;
            continue;
        }
        kind = tmpl_ref(t, &len, &n, name);
        if (kind == 0 || kind == 3) {
            out[o++] = '$';
            t += len - 1;
            continue;
        }
        if (kind == 2)
            n = pcre2_substring_number_from_name(re, (PCRE2_SPTR) name);
        t += len - 1;
        if (ov == NULL || n < 0 || (uint32_t) n >= nov ||
            ov[2 * n] == PCRE2_UNSET || ov[2 * n + 1] < ov[2 * n])
            continue;
        for (i = ov[2 * n]; i < ov[2 * n + 1] && o + 1 < outlen; i++) {
            unsigned char ch = (unsigned char) subject[i];

            out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char) ch;
        }
    }
    out[o] = 0;
    return o;
}

/* unquote - strip one pair of surrounding double quotes in place. */
static char *unquote(char *s)
{
    size_t n = strlen(s);

    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = 0;
        return s + 1;
    }
    return s;
}

/* is_ecode - "D.D{1,3}.D{1,3}" of length n. */
static int is_ecode(const char *s, size_t n)
{
    size_t a, b;

    if (n < 5 || n > 11 || !isdigit((unsigned char) s[0]) || s[1] != '.')
        return 0;
    a = strspn(s + 2, "0123456789");
    if (a < 1 || a > 3 || s[2 + a] != '.')
        return 0;
    b = strspn(s + 3 + a, "0123456789");
    return b >= 1 && b <= 3 && 3 + a + b == n;
}

/* parse_reply - [CODE [ECODE]] [TEXT] for reject / tempfail. */
static int parse_reply(struct rx_parse *pc, struct rx_rule *r, char *arg)
{
    char want = r->action == RX_REJECT ? '5' : '4';
    size_t n;

    arg = unquote(arg);
    if (strspn(arg, "0123456789") == 3 && (arg[3] == 0 || isspace((unsigned char) arg[3]))) {
        if (arg[0] != want)
            return perr(pc, "%s needs a %sxx reply code",
                        r->action == RX_REJECT ? "reject" : "tempfail",
                        r->action == RX_REJECT ? "5" : "4");
        r->code = atoi(arg);
        arg += 3;
        arg += strspn(arg, " \t");
        n = strcspn(arg, " \t");
        if (is_ecode(arg, n)) {
            if (arg[0] != want)
                return perr(pc, "enhanced code %.*s does not match the reply class", (int) n, arg);
            memcpy(r->ecode, arg, n);
            r->ecode[n] = 0;
            arg += n;
            arg += strspn(arg, " \t");
        }
    }
    if (*arg != 0 && (r->text = strdup(arg)) == NULL)
        return perr(pc, "out of memory");
    return 0;
}

/* parse_add_header - "Name: value" for add-header. */
static int parse_add_header(struct rx_parse *pc, struct rx_rule *r, char *arg)
{
    char *colon, *p;

    arg = unquote(arg);
    colon = strchr(arg, ':');
    if (colon == NULL || colon == arg)
        return perr(pc, "add-header needs \"Name: value\"");
    for (p = arg; p < colon; p++)
        if ((unsigned char) *p <= 32 || (unsigned char) *p >= 127)
            return perr(pc, "bad character in header name");
    *colon = 0;
    p = colon + 1;
    p += strspn(p, " \t");
    if ((r->hdr_name = strdup(arg)) == NULL || (r->text = strdup(p)) == NULL)
        return perr(pc, "out of memory");
    return 0;
}

/* parse_action - ACTION and its argument, checked against the stage. */
static int parse_action(struct rx_parse *pc, struct rx_rule *r, char *p)
{
    size_t n = strcspn(p, " \t");
    char *arg = p + n;
    int i;

    arg += strspn(arg, " \t");
    for (i = 0; action_names[i]; i++)
        if (strlen(action_names[i]) == n && strncasecmp(p, action_names[i], n) == 0)
            break;
    if (action_names[i] == NULL) {
        p[n] = 0;
        return perr(pc, "unknown action `%s` (accept, reject, tempfail, "
                    "discard, add-header, log)", p);
    }
    r->action = i;
    if (r->action == RX_DISCARD &&
        (r->stage == RX_CONNECT || r->stage == RX_HELO || r->stage == RX_AUTH))
        return perr(pc, "discard needs a message: use it at mail, rcpt, header "
                    "or body, not %s", rx_stage_name(r->stage));
    switch (r->action) {
    case RX_ACCEPT:
    case RX_DISCARD:
        if (*arg != 0)
            return perr(pc, "%s takes no argument", action_names[i]);
        return 0;
    case RX_REJECT:
    case RX_TEMPFAIL:
        return parse_reply(pc, r, arg);
    case RX_ADD_HEADER:
        return parse_add_header(pc, r, arg);
    default:
        if (*arg != 0 && (r->text = strdup(unquote(arg))) == NULL)
            return perr(pc, "out of memory");
        return 0;
    }
}

/* parse_flags - the letters after the closing delimiter. */
static int parse_flags(struct rx_parse *pc, char **pp, uint32_t *opt_r)
{
    char *p = *pp;

    for (; isalpha((unsigned char) *p); p++) {
        switch (*p) {
        case 'i': *opt_r |= PCRE2_CASELESS; break;
        case 'm': *opt_r |= PCRE2_MULTILINE; break;
        case 's': *opt_r |= PCRE2_DOTALL; break;
        case 'x': *opt_r |= PCRE2_EXTENDED; break;
        case 'u': *opt_r |= PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF; break;
        default:
            return perr(pc, "unknown flag `%c` (i, m, s, x, u)", *p);
        }
    }
    *pp = p;
    return 0;
}

/* compile - the pattern text into r->re (JIT if asked and possible). */
static int compile(struct rx_parse *pc, struct rx_rule *r, const char *pat,
                   size_t len, uint32_t opt)
{
    int code;
    PCRE2_SIZE off;
    PCRE2_UCHAR msg[256];

    opt |= PCRE2_NEVER_BACKSLASH_C;
    r->re = pcre2_compile((PCRE2_SPTR) pat, len, opt, &code, &off, NULL);
    if (r->re == NULL) {
        pcre2_get_error_message(code, msg, sizeof(msg));
        return perr(pc, "bad pattern at offset %zu: %s", (size_t) off, (char *) msg);
    }
    if (pc->use_jit && pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE) == 0) {
        r->jit = 1;
        return 0;
    }
    /*
     * The interpreter resets its match limit at each start position, so a
     * pattern that is merely quadratic can run for minutes on a long line.
     * Compiled with automatic callouts, every step reaches regex.c's step
     * counter, which bounds the whole match instead.
     */
    pcre2_code_free(r->re);
    r->re = pcre2_compile((PCRE2_SPTR) pat, len, opt | PCRE2_AUTO_CALLOUT,
                          &code, &off, NULL);
    if (r->re == NULL)
        return perr(pc, "pattern failed to compile a second time");
    r->counted = 1;
    return 0;
}

/* parse_pattern - [!]/PATTERN/FLAGS at *pp; compiles it. */
static int parse_pattern(struct rx_parse *pc, struct rx_rule *r, char **pp)
{
    char *p = *pp, *pat, *q, d;
    uint32_t opt = 0;

    if (p[0] == '!' && p[1] != 0 && ispunct((unsigned char) p[1])) {
        r->negate = 1;
        p++;
    }
    d = *p;
    if (!ispunct((unsigned char) d) || d == '\\' || d == '!')
        return perr(pc, "a pattern starts with a delimiter, as in /PATTERN/");
    pat = q = ++p;
    while (*p != 0 && *p != d) {
        if (*p == '\\' && p[1] != 0)
            *q++ = *p++;        /* keep the escape: PCRE2 reads \/ as / */
        *q++ = *p++;
    }
    if (*p != d)
        return perr(pc, "the pattern has no closing `%c`", d);
    p++;
    if (parse_flags(pc, &p, &opt) != 0)
        return -1;
    if (*p != 0 && !isspace((unsigned char) *p))
        return perr(pc, "unexpected text after the pattern");
    if (compile(pc, r, pat, (size_t) (q - pat), opt) != 0)
        return -1;
    *pp = p + strspn(p, " \t");
    return 0;
}

/* parse_rule - one logical line into r. */
static int parse_rule(struct rx_parse *pc, char *s, struct rx_rule *r)
{
    size_t n = strcspn(s, " \t");
    char *p = s + n;
    int i;

    r->line = pc->line;
    for (i = 0; i < RX_NSTAGES; i++)
        if (strlen(stage_names[i]) == n && strncasecmp(s, stage_names[i], n) == 0)
            break;
    if (i == RX_NSTAGES) {
        s[n] = 0;
        return perr(pc, "unknown stage `%s` (connect, helo, auth, mail, rcpt, "
                    "header, body)", s);
    }
    r->stage = i;
    p += strspn(p, " \t");
    if (parse_pattern(pc, r, &p) != 0)
        return -1;
    if (*p == 0)
        return perr(pc, "no action after the pattern");
    if (parse_action(pc, r, p) != 0)
        return -1;
    return tmpl_check(pc, r, r->text);
}

/* rule_free - what a rule owns. */
static void rule_free(struct rx_rule *r)
{
    pcre2_code_free(r->re);
    free(r->text);
    free(r->hdr_name);
    memset(r, 0, sizeof(*r));
}

/* rx_rules_free - see regex.h. */
void rx_rules_free(struct rx_rules *rules)
{
    size_t i;

    for (i = 0; i < rules->nrules; i++)
        rule_free(&rules->rule[i]);
    for (i = 0; i < RX_NSTAGES; i++)
        free(rules->stage_rule[i]);
    free(rules->rule);
    memset(rules, 0, sizeof(*rules));
}

/* add_rule - parse the logical line into a new rule. */
static int add_rule(struct rx_parse *pc, struct rx_rules *rules, size_t *cap,
                    char *logical)
{
    struct rx_rule *r;
    uint32_t ncap = 0;

    if (rules->nrules == *cap) {
        size_t ncapa = *cap ? *cap * 2 : 16;
        struct rx_rule *n = realloc(rules->rule, ncapa * sizeof(*n));

        if (n == NULL)
            return perr(pc, "out of memory");
        rules->rule = n;
        *cap = ncapa;
    }
    r = &rules->rule[rules->nrules];
    memset(r, 0, sizeof(*r));
    if (parse_rule(pc, logical, r) != 0) {
        rule_free(r);
        return -1;
    }
    rules->nrules++;
    rules->njit += (size_t) r->jit;
    pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &ncap);
    if (ncap + 1 > rules->max_groups)
        rules->max_groups = ncap + 1;
    return 0;
}

/* index_stages - per-stage pointer lists in file order. */
static int index_stages(struct rx_parse *pc, struct rx_rules *rules)
{
    size_t i;

    for (i = 0; i < rules->nrules; i++)
        rules->nstage[rules->rule[i].stage]++;
    for (i = 0; i < RX_NSTAGES; i++) {
        if (rules->nstage[i] == 0)
            continue;
        rules->stage_rule[i] = calloc(rules->nstage[i], sizeof(struct rx_rule *));
        if (rules->stage_rule[i] == NULL)
            return subm_error(pc->err, "%s: out of memory", pc->file);
        rules->nstage[i] = 0;
    }
    for (i = 0; i < rules->nrules; i++) {
        struct rx_rule *r = &rules->rule[i];

        rules->stage_rule[r->stage][rules->nstage[r->stage]++] = r;
    }
    return 0;
}

/* append - add text to the logical line buffer. */
static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 2 > *cap) {
        size_t ncap = (*len + n + 2) * 2;
        char *nb = realloc(*buf, ncap);

        if (nb == NULL)
            return -1;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

/* read_rules - logical lines of fp, each handed to add_rule. */
static int read_rules(struct rx_parse *pc, FILE *fp, struct rx_rules *rules)
{
    char *line = NULL, *logical = NULL;
    size_t linecap = 0, llen = 0, lcap = 0, cap = 0;
    ssize_t got;
    int phys = 0, start = 0, rc = 0;

    while (rc == 0 && (got = getline(&line, &linecap, fp)) >= 0) {
        size_t n = (size_t) got, lead;

        phys++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        lead = strspn(line, " \t");
        if (line[lead] == 0 || line[lead] == '#')
            continue;
        if (lead > 0) {
            if (llen == 0) {
                pc->line = phys;
                rc = perr(pc, "a continuation line without a rule before it");
            } else if (append(&logical, &llen, &lcap, " ", 1) != 0 ||
                       append(&logical, &llen, &lcap, line + lead, n - lead) != 0) {
                rc = perr(pc, "out of memory");
            }
            continue;
        }
        if (llen > 0) {
            pc->line = start;
            rc = add_rule(pc, rules, &cap, logical);
        }
        llen = 0;
        start = phys;
        if (rc == 0 && append(&logical, &llen, &lcap, line, n) != 0)
            rc = perr(pc, "out of memory");
    }
    if (rc == 0 && llen > 0) {
        pc->line = start;
        rc = add_rule(pc, rules, &cap, logical);
    }
    free(line);
    free(logical);
    return rc;
}

/* rx_rules_load - see regex.h. */
int rx_rules_load(const char *file, int use_jit, struct rx_rules *rules,
                  subm_error_t *err)
{
    struct rx_parse pc = { file, 0, use_jit, err };
    FILE *fp;
    int rc;

    memset(rules, 0, sizeof(*rules));
    if ((fp = fopen(file, "r")) == NULL)
        return subm_error(err, "%s: %s", file, strerror(errno));
    rc = read_rules(&pc, fp, rules);
    if (rc == 0 && ferror(fp))
        rc = subm_error(err, "%s: read error", file);
    fclose(fp);
    if (rc == 0)
        rc = index_stages(&pc, rules);
    if (rc != 0)
        rx_rules_free(rules);
    return rc;
}
