/*
 * spf_syntax.c - RFC 7208 section 12 ABNF check of an SPF record (see
 * spf_syntax.h). Each term is one of:
 *     [qualifier] all | include:D | a[:D][cidr] | mx[:D][cidr] | ptr[:D]
 *                 | ip4:NET[/n] | ip6:NET[/n] | exists:D
 *     redirect=D | exp=D | name=macro-string
 * where D is a domain-spec: a macro-string ending in a macro or in
 * ".toplabel[.]".
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "spf_syntax.h"

#define MACROS_DOMAIN "slodiphv"        /* c, r, t are for exp text only */
#define MACROS_ALL    "slodiphvcrt"

/* a term as (start, length) */
struct span {
    const char *p;
    size_t      n;
};

/* spf_is_record - see spf_syntax.h */
int spf_is_record(const char *text, size_t len)
{
    return len >= 6 && strncasecmp(text, "v=spf1", 6) == 0 && (len == 6 || text[6] == ' ');
}

/* in_set - c (not NUL) is one of set */
static int in_set(const char *set, char c)
{
    return c != '\0' && strchr(set, c) != NULL;
}

/* macro_string - check a macro-string; *last_macro is set if it ends in a
 * macro-expand, *tail is where the literal run after the last one starts */
static int macro_string(struct span s, const char *letters, int *last_macro, size_t *tail)
{
    size_t i = 0;

    *last_macro = 0;
    *tail = 0;
    while (i < s.n) {
        unsigned char c = (unsigned char)s.p[i];

        if (c != '%') {
            if (c < 0x21 || c > 0x7e)
                return 0;                      /* macro-literal: visible ASCII */
            *last_macro = 0;
            i++;
            continue;
        }
        if (i + 1 < s.n && in_set("%_-", s.p[i + 1])) {
            *last_macro = 0;                   /* an escape stands for a literal */
            i += 2;
            continue;
        }
        if (i + 2 >= s.n || s.p[i + 1] != '{'
            || !in_set(letters, (char)tolower((unsigned char)s.p[i + 2])))
            return 0;
        i += 3;
        while (i < s.n && isdigit((unsigned char)s.p[i]))
            i++;
        if (i < s.n && (s.p[i] == 'r' || s.p[i] == 'R'))
            i++;
        while (i < s.n && in_set(".-+,/_=", s.p[i]))
            i++;
        if (i >= s.n || s.p[i] != '}')
            return 0;
        *last_macro = 1;
        *tail = ++i;
    }
    return 1;
}

/* toplabel - RFC 7208 toplabel: alphanumerics with a letter, or
 * alphanumeric at both ends with a hyphen inside */
static int toplabel(const char *p, size_t n)
{
    size_t i;
    int alpha = 0, hyphen = 0;

    if (n == 0 || !isalnum((unsigned char)p[0]) || !isalnum((unsigned char)p[n - 1]))
        return 0;
    for (i = 0; i < n; i++) {
        if (isalpha((unsigned char)p[i]))
            alpha = 1;
        else if (p[i] == '-')
            hyphen = 1;
        else if (!isdigit((unsigned char)p[i]))
            return 0;
    }
    return alpha || hyphen;
}

/* domain_spec - macro-string domain-end */
static int domain_spec(struct span s, const char *letters)
{
    int last_macro;
    size_t tail, end, dot;

    if (s.n == 0 || !macro_string(s, letters, &last_macro, &tail))
        return 0;
    if (last_macro)
        return 1;
    end = s.n;
    if (end > tail && s.p[end - 1] == '.')
        end--;                                  /* [ "." ] */
    for (dot = end; dot > tail && s.p[dot - 1] != '.'; dot--)
        ;
    /* "." toplabel: the dot must be literal, inside the final literal run */
    return dot > tail && toplabel(s.p + dot, end - dot);
}

/* number - a decimal without leading zeros in [0, max] */
static int number(struct span s, long max)
{
    long v = 0;
    size_t i;

    if (s.n == 0 || s.n > 3 || (s.n > 1 && s.p[0] == '0'))
        return 0;
    for (i = 0; i < s.n; i++) {
        if (!isdigit((unsigned char)s.p[i]))
            return 0;
        v = v * 10 + (s.p[i] - '0');
    }
    return v <= max;
}

/* cut_cidr - take "/digits" off the end of *s into *c (n = 0 if none) */
static void cut_cidr(struct span *s, struct span *c, int double_slash)
{
    size_t i = s->n;

    c->n = 0;
    while (i > 0 && isdigit((unsigned char)s->p[i - 1]))
        i--;
    if (i == s->n || i == 0 || s->p[i - 1] != '/')
        return;
    if (double_slash != (i >= 2 && s->p[i - 2] == '/'))
        return;
    c->p = s->p + i;
    c->n = s->n - i;
    s->n = i - 1 - (size_t)double_slash;
}

/* address - an ip4 (dotted quads, no leading zeros) or ip6 network */
static int address(struct span s, int v6)
{
    char buf[64];
    unsigned char bin[16];
    size_t i, start = 0;
    int parts = 0;

    if (s.n == 0 || s.n >= sizeof(buf))
        return 0;
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    if (v6)
        return inet_pton(AF_INET6, buf, bin) == 1;
    for (i = 0; i <= s.n; i++) {
        if (i < s.n && buf[i] != '.')
            continue;
        if (!number((struct span){ buf + start, i - start }, 255))
            return 0;
        parts++;
        start = i + 1;
    }
    return parts == 4;
}

/* mechanism - one directive without its qualifier */
static int mechanism(struct span t, char *why, size_t whylen)
{
    static const char *const names[] = { "all", "include", "a", "mx", "ptr", "ip4", "ip6",
                                         "exists", NULL };
    struct span arg, c4 = { NULL, 0 }, c6 = { NULL, 0 };
    size_t nl = 0, k;

    while (nl < t.n && isalnum((unsigned char)t.p[nl]))
        nl++;
    for (k = 0; names[k]; k++)
        if (strlen(names[k]) == nl && strncasecmp(t.p, names[k], nl) == 0)
            break;
    if (!names[k]) {
        snprintf(why, whylen, "unknown mechanism \"%.*s\"", (int)(t.n > 40 ? 40 : t.n), t.p);
        return 0;
    }
    arg.p = t.p + nl;
    arg.n = t.n - nl;
    snprintf(why, whylen, "malformed %s", names[k]);
    switch (k) {
    case 0:                                     /* all */
        return arg.n == 0;
    case 2: case 3:                             /* a, mx: [:D][/n][//n] */
        cut_cidr(&arg, &c6, 1);
        cut_cidr(&arg, &c4, 0);
        if ((c4.p && !number(c4, 32)) || (c6.p && !number(c6, 128)))
            return 0;
        return arg.n == 0 || (arg.p[0] == ':' && domain_spec((struct span){ arg.p + 1, arg.n - 1 },
                                                             MACROS_DOMAIN));
    case 4:                                     /* ptr [:D] */
        return arg.n == 0 || (arg.p[0] == ':' && domain_spec((struct span){ arg.p + 1, arg.n - 1 },
                                                             MACROS_DOMAIN));
    case 5: case 6:                             /* ip4, ip6 */
        if (arg.n == 0 || arg.p[0] != ':')
            return 0;
        arg.p++;
        arg.n--;
        cut_cidr(&arg, &c4, 0);
        if (c4.p && !number(c4, k == 5 ? 32 : 128))
            return 0;
        return address(arg, k == 6);
    default:                                    /* include, exists: :D */
        return arg.n > 0 && arg.p[0] == ':'
               && domain_spec((struct span){ arg.p + 1, arg.n - 1 }, MACROS_DOMAIN);
    }
}

/* modifier_name - length of a modifier name followed by '=', else 0 */
static size_t modifier_name(struct span t)
{
    size_t i = 1;

    if (t.n == 0 || !isalpha((unsigned char)t.p[0]))
        return 0;
    while (i < t.n && (isalnum((unsigned char)t.p[i]) || in_set("-_.", t.p[i])))
        i++;
    return i < t.n && t.p[i] == '=' ? i : 0;
}

/* term - one term; counts redirect= and exp= */
static int term(struct span t, int *redirects, int *exps, char *why, size_t whylen)
{
    size_t nl = modifier_name(t);
    struct span v;
    int last_macro;
    size_t tail;

    if (nl == 0) {
        if (t.n > 0 && in_set("+-?~", t.p[0])) {
            t.p++;
            t.n--;
        }
        return mechanism(t, why, whylen);
    }
    v.p = t.p + nl + 1;
    v.n = t.n - nl - 1;
    snprintf(why, whylen, "malformed modifier \"%.*s\"", (int)(nl > 40 ? 40 : nl), t.p);
    if (nl == 8 && strncasecmp(t.p, "redirect", 8) == 0)
        return ++*redirects == 1 && domain_spec(v, MACROS_DOMAIN);
    if (nl == 3 && strncasecmp(t.p, "exp", 3) == 0)
        return ++*exps == 1 && domain_spec(v, MACROS_DOMAIN);
    return macro_string(v, MACROS_ALL, &last_macro, &tail);
}

/* spf_syntax_ok - see spf_syntax.h */
int spf_syntax_ok(const char *rec, size_t len, char *why, size_t whylen)
{
    size_t i = 6, start;
    int redirects = 0, exps = 0;

    if (!spf_is_record(rec, len)) {
        snprintf(why, whylen, "not an SPF record");
        return 0;
    }
    while (i < len) {
        if (rec[i] != ' ') {
            snprintf(why, whylen, "terms must be separated by spaces");
            return 0;
        }
        while (i < len && rec[i] == ' ')
            i++;
        if (i == len)
            break;
        for (start = i; i < len && rec[i] != ' '; i++)
            ;
        if (!term((struct span){ rec + start, i - start }, &redirects, &exps, why, whylen))
            return 0;
    }
    return 1;
}
