/*
 * regex_mime.c - turn body chunks into the lines body rules are matched on.
 *
 * Chunks arrive in any size; lines are put back together here (CRLF or LF
 * ends, the end removed) and cut at line_max so memory stays bounded. With
 * decoding off every raw line is passed on, as Postfix body_checks does.
 * With decoding on, a small MIME walk follows multipart boundaries (nested
 * up to MIME_DEPTH) and message/rfc822 parts:
 *   - part header lines are passed on as they are (so rules can match a
 *     Content-Type or a file name);
 *   - the content of text parts (or parts without a Content-Type) is
 *     decoded from quoted-printable or base64 and passed on line by line;
 *   - the content of other parts, boundaries, preambles and epilogues are
 *     skipped.
 * It does not check MIME syntax or charsets: a malformed message just gives
 * fewer or rawer lines, never an error.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "rx.h"

#define MIME_DEPTH    8      /* nested multiparts followed */
#define BOUNDARY_MAX  200    /* RFC 2046 allows 70 */
#define FIELD_MAX     1024   /* a part's Content-Type field, unfolded */

enum { ENC_PLAIN, ENC_QP, ENC_B64 };
enum { M_RAW, M_PREAMBLE, M_HEADERS, M_CONTENT, M_SKIP };

struct mime {
    int      decode;
    size_t   line_max;
    char    *line;           /* the raw line being assembled */
    size_t   len;
    char    *out;            /* the decoded line being assembled */
    size_t   olen;
    uint32_t b64acc;
    int      b64n;
    int      state;
    int      enc;            /* of the current part's content */
    char     field[FIELD_MAX];   /* current part header field, unfolded */
    size_t   flen;
    char     ctype[FIELD_MAX];   /* the part's Content-Type value */
    char     cte[64];            /* the part's Content-Transfer-Encoding */
    char     bound[MIME_DEPTH][BOUNDARY_MAX + 1];
    size_t   blen[MIME_DEPTH];
    int      depth;
};

/* ct_param - copy parameter `name` of a Content-Type value into out. */
static int ct_param(const char *v, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name), o;

    while ((v = strchr(v, ';')) != NULL) {
        v++;
        v += strspn(v, " \t");
        if (strncasecmp(v, name, nlen) != 0)
            continue;
        v += nlen;
        v += strspn(v, " \t");
        if (*v != '=')
            continue;
        v++;
        v += strspn(v, " \t");
        o = 0;
        if (*v == '"') {
            for (v++; *v && *v != '"'; v++) {
                if (*v == '\\' && v[1] != 0)
                    v++;
                if (o + 1 >= outlen)
                    return -1;
                out[o++] = *v;
            }
        } else {
            for (; *v && *v != ';' && !isspace((unsigned char) *v); v++) {
                if (o + 1 >= outlen)
                    return -1;
                out[o++] = *v;
            }
        }
        out[o] = 0;
        return o > 0 ? 0 : -1;
    }
    return -1;
}

/* ct_is - 1 if the Content-Type value's type/subtype starts with prefix. */
static int ct_is(const char *v, const char *prefix)
{
    v += strspn(v, " \t");
    return strncasecmp(v, prefix, strlen(prefix)) == 0;
}

/* part_begin - set up for a part's content from its (or the message's) fields. */
static void part_begin(struct mime *m, const char *ctype, const char *cte)
{
    char b[BOUNDARY_MAX + 1];

    m->b64acc = 0;
    m->b64n = 0;
    m->olen = 0;
    if (ctype != NULL && ct_is(ctype, "multipart/")) {
        if (m->depth < MIME_DEPTH && ct_param(ctype, "boundary", b, sizeof(b)) == 0) {
            memcpy(m->bound[m->depth], b, strlen(b) + 1);
            m->blen[m->depth] = strlen(b);
            m->depth++;
            m->state = M_PREAMBLE;
        } else {
            m->state = M_CONTENT;       /* unusable multipart: read as text */
            m->enc = ENC_PLAIN;
        }
        return;
    }
    if (ctype != NULL && ct_is(ctype, "message/rfc822")) {
        m->state = M_HEADERS;           /* an embedded message's header */
        m->ctype[0] = m->cte[0] = 0;
        m->flen = 0;
        return;
    }
    if (ctype != NULL && ctype[strspn(ctype, " \t")] != 0 && !ct_is(ctype, "text/")) {
        m->state = M_SKIP;
        return;
    }
    m->state = M_CONTENT;
    m->enc = ENC_PLAIN;
    if (cte != NULL && ct_is(cte, "quoted-printable"))
        m->enc = ENC_QP;
    else if (cte != NULL && ct_is(cte, "base64"))
        m->enc = ENC_B64;
}

/* mime_new - see regex.h. */
struct mime *mime_new(int decode, const char *content_type, const char *cte,
                      size_t line_max)
{
    struct mime *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->decode = decode;
    m->line_max = line_max;
    m->line = malloc(line_max + 1);
    m->out = decode ? malloc(line_max + 1) : NULL;
    if (m->line == NULL || (decode && m->out == NULL)) {
        mime_free(&m);
        return NULL;
    }
    if (decode)
        part_begin(m, content_type, cte);
    else
        m->state = M_RAW;
    return m;
}

/* mime_free - see regex.h. */
void mime_free(struct mime **mp)
{
    if (*mp == NULL)
        return;
    free((*mp)->line);
    free((*mp)->out);
    free(*mp);
    *mp = NULL;
}

/* out_emit - pass on the decoded line. */
static int out_emit(struct mime *m, mime_line_fn fn, void *arg)
{
    size_t n = m->olen;

    if (n > 0 && m->out[n - 1] == '\r')
        n--;
    m->olen = 0;
    return fn(arg, m->out, n);
}

/* out_byte - one decoded octet; a LF ends the decoded line. */
static int out_byte(struct mime *m, unsigned char c, mime_line_fn fn, void *arg)
{
    if (c == '\n')
        return out_emit(m, fn, arg);
    if (m->olen < m->line_max)
        m->out[m->olen++] = (char) c;
    return 0;
}

/* b64_value - the 6-bit value of a base64 character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* b64_line - decode one line of base64 (junk characters are ignored). */
static int b64_line(struct mime *m, const char *s, size_t n,
                    mime_line_fn fn, void *arg)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < n && rc == 0; i++) {
        int v = b64_value((unsigned char) s[i]);

        if (s[i] == '=') {
            if (m->b64n == 2)
                rc = out_byte(m, (unsigned char) (m->b64acc >> 4), fn, arg);
            else if (m->b64n == 3) {
                rc = out_byte(m, (unsigned char) (m->b64acc >> 10), fn, arg);
                if (rc == 0)
                    rc = out_byte(m, (unsigned char) (m->b64acc >> 2), fn, arg);
            }
            m->b64acc = 0;
            m->b64n = 0;
            continue;
        }
        if (v < 0)
            continue;
        m->b64acc = (m->b64acc << 6) | (uint32_t) v;
        if (++m->b64n == 4) {
            rc = out_byte(m, (unsigned char) (m->b64acc >> 16), fn, arg);
            if (rc == 0)
                rc = out_byte(m, (unsigned char) (m->b64acc >> 8), fn, arg);
            if (rc == 0)
                rc = out_byte(m, (unsigned char) m->b64acc, fn, arg);
            m->b64acc = 0;
            m->b64n = 0;
        }
    }
    return rc;
}

/* hexval - a hex digit's value, or -1. */
static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (unsigned char) toupper(c);
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* qp_line - decode one quoted-printable line; '=' at the end joins lines. */
static int qp_line(struct mime *m, const char *s, size_t n,
                   mime_line_fn fn, void *arg)
{
    size_t i;
    int rc = 0;

    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;                            /* RFC 2045 6.7 (3) */
    for (i = 0; i < n && rc == 0; i++) {
        if (s[i] == '=' && i + 1 == n)
            return 0;                   /* soft line break */
        if (s[i] == '=' && i + 2 < n && hexval((unsigned char) s[i + 1]) >= 0 &&
            hexval((unsigned char) s[i + 2]) >= 0) {
            rc = out_byte(m, (unsigned char) (hexval((unsigned char) s[i + 1]) * 16 +
                                              hexval((unsigned char) s[i + 2])), fn, arg);
            i += 2;
            continue;
        }
        rc = out_byte(m, (unsigned char) s[i], fn, arg);
    }
    return rc ? rc : out_emit(m, fn, arg);
}

/* content_line - one line of a text part's content. */
static int content_line(struct mime *m, const char *s, size_t n,
                        mime_line_fn fn, void *arg)
{
    switch (m->enc) {
    case ENC_QP:
        return qp_line(m, s, n, fn, arg);
    case ENC_B64:
        return b64_line(m, s, n, fn, arg);
    default:
        return fn(arg, s, n);
    }
}

/* decoder_flush - what a text part's decoder still holds. */
static int decoder_flush(struct mime *m, mime_line_fn fn, void *arg)
{
    int rc = 0;

    if (m->state == M_CONTENT && m->enc != ENC_PLAIN && m->olen > 0)
        rc = out_emit(m, fn, arg);
    m->olen = 0;
    m->b64acc = 0;
    m->b64n = 0;
    return rc;
}

/* field_done - keep the part's Content-Type / -Transfer-Encoding value. */
static void field_done(struct mime *m)
{
    const char *colon;
    size_t nlen;

    m->field[m->flen] = 0;
    colon = memchr(m->field, ':', m->flen);
    m->flen = 0;
    if (colon == NULL)
        return;
    nlen = (size_t) (colon - m->field);
    if (nlen == 12 && strncasecmp(m->field, "Content-Type", 12) == 0)
        memcpy(m->ctype, colon + 1, strlen(colon + 1) + 1);
    else if (nlen == 25 && strncasecmp(m->field, "Content-Transfer-Encoding", 25) == 0)
        snprintf(m->cte, sizeof(m->cte), "%s", colon + 1 + strspn(colon + 1, " \t"));
}

/* header_line - one line of a part's header; a blank line ends it. */
static int header_line(struct mime *m, const char *s, size_t n,
                       mime_line_fn fn, void *arg)
{
    size_t room;

    if (n == 0) {
        field_done(m);
        part_begin(m, m->ctype[0] ? m->ctype : NULL, m->cte[0] ? m->cte : NULL);
        return 0;
    }
    if (s[0] != ' ' && s[0] != '\t')
        field_done(m);
    room = sizeof(m->field) - 1 - m->flen;
    if (n < room) {
        memcpy(m->field + m->flen, s, n);
        m->flen += n;
    }
    return fn(arg, s, n);
}

/* boundary_line - handle s if it is a boundary of an open multipart. */
static int boundary_line(struct mime *m, const char *s, size_t n,
                         mime_line_fn fn, void *arg, int *rc)
{
    size_t j;
    int i;

    if (m->depth == 0 || n < 3 || s[0] != '-' || s[1] != '-')
        return 0;
    for (i = m->depth - 1; i >= 0; i--) {
        size_t bl = m->blen[i], rest;
        int closing;

        if (n - 2 < bl || memcmp(s + 2, m->bound[i], bl) != 0)
            continue;
        closing = n - 2 - bl >= 2 && s[2 + bl] == '-' && s[3 + bl] == '-';
        rest = 2 + bl + (closing ? 2 : 0);
        for (j = rest; j < n && (s[j] == ' ' || s[j] == '\t'); j++)
            ;
        if (j < n)
            continue;                   /* "--boundaryX": not ours */
        *rc = decoder_flush(m, fn, arg);
        if (closing) {
            m->depth = i;
            m->state = M_SKIP;          /* the epilogue */
        } else {
            m->depth = i + 1;
            m->state = M_HEADERS;
            m->ctype[0] = m->cte[0] = 0;
            m->flen = 0;
        }
        return 1;
    }
    return 0;
}

/* raw_line - one body line, its line end removed. */
static int raw_line(struct mime *m, const char *s, size_t n,
                    mime_line_fn fn, void *arg)
{
    int rc = 0;

    if (m->state == M_RAW)
        return fn(arg, s, n);
    if (boundary_line(m, s, n, fn, arg, &rc))
        return rc;
    switch (m->state) {
    case M_HEADERS:
        return header_line(m, s, n, fn, arg);
    case M_CONTENT:
        return content_line(m, s, n, fn, arg);
    default:
        return 0;                       /* preamble, epilogue, non-text */
    }
}

/* mime_feed - see regex.h. */
int mime_feed(struct mime *m, const unsigned char *data, size_t len,
              mime_line_fn fn, void *arg)
{
    while (len > 0) {
        const unsigned char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t) (nl - data) : len, room = m->line_max - m->len;
        int rc;

        memcpy(m->line + m->len, data, take < room ? take : room);
        m->len += take < room ? take : room;
        data += take;
        len -= take;
        if (nl == NULL)
            break;
        data++;
        len--;
        if (m->len > 0 && m->line[m->len - 1] == '\r')
            m->len--;
        rc = raw_line(m, m->line, m->len, fn, arg);
        m->len = 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* mime_finish - see regex.h. */
int mime_finish(struct mime *m, mime_line_fn fn, void *arg)
{
    int rc = 0;

    if (m->len > 0) {
        if (m->line[m->len - 1] == '\r')
            m->len--;
        rc = raw_line(m, m->line, m->len, fn, arg);
        m->len = 0;
    }
    if (rc == 0 && m->decode)
        rc = decoder_flush(m, fn, arg);
    return rc;
}
