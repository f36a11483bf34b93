/*
 * smtp_data.c - reading a message from the client: the DATA byte parser
 * (end of data, dot-unstuffing, bare CR/LF, line length) and BDAT chunks,
 * the split into header fields and body, and the HEADER, EOH and BODY
 * stages as the bytes arrive.
 *
 * The only end of data is CRLF "." CRLF where both line ends are real
 * CRLFs: a bare CR or LF is refused (550 5.5.2) or, with bare_lf =
 * normalize, turned into CRLF but never starts a line that could end the
 * data. Header fields go to the transaction (txn_add_header), body octets
 * to its spool (txn_body_write) in 64 KiB chunks, so memory stays bounded
 * whatever the client sends. It does not talk to the backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "config.h"
#include "pool.h"
#include "session.h"
#include "smtp_conf.h"
#include "smtp_session.h"

#define MI_LINE_MAX    1024            /* one header line (limit 1000) */
#define MI_FIELD_MAX   65536           /* one header field with folding */
#define MI_HEADER_MAX  (1024 * 1024)   /* the whole header section */
#define MI_BODY_CHUNK  65536

enum mi_state { S_BOL, S_DOT, S_DOTCR, S_MID, S_CR, S_BOLN };

struct msgin {
    int           bdat;
    int           normalize;
    enum mi_state st;
    size_t        linelen;
    int           in_header, had_sep, eoh_done;
    char          line[MI_LINE_MAX];
    size_t        llen;
    char         *field;
    size_t        flen;
    size_t        hdr_total;
    char         *body;
    size_t        blen;
    uint64_t      size, limit;
    int64_t       t0;           /* when the message data began (ms) */
    int           failed;
    struct reply  fail;
};

/* msgin_new - the reader with its buffers (kept for the session). */
struct msgin *msgin_new(void)
{
    struct msgin *m = xcalloc(1, sizeof(*m));

    m->field = xmalloc(MI_FIELD_MAX);
    m->body = xmalloc(MI_BODY_CHUNK);
    return m;
}

void msgin_free(struct msgin **mp)
{
    if (*mp == NULL)
        return;
    free((*mp)->field);
    free((*mp)->body);
    free(*mp);
    *mp = NULL;
}

/* msgin_start - a new message (DATA, or the first BDAT if bdat). */
void msgin_start(struct smtp_sess *ss, int bdat)
{
    struct msgin *m;

    if (ss->msg == NULL)
        ss->msg = msgin_new();
    m = ss->msg;
    m->bdat = bdat;
    m->normalize = ss->conf->bare_lf == 1;
    m->st = S_BOL;
    m->linelen = 0;
    m->in_header = 1;
    m->had_sep = m->eoh_done = 0;
    m->llen = m->flen = m->hdr_total = m->blen = 0;
    m->size = 0;
    m->t0 = monotonic_ms();
    m->limit = ss->size_max ? ss->size_max : ss->conf->max_message_size;
    m->failed = 0;
    m->fail.code = 0;
}

/* mi_fail - record the first reason the message cannot be accepted. */
static void mi_fail(struct msgin *m, int code, const char *ecode, const char *text)
{
    if (m->failed)
        return;
    m->failed = 1;
    if (reply_set(&m->fail, code, ecode, text) < 0) {
        m->fail.code = code;
        m->fail.ecode[0] = '\0';
        snprintf(m->fail.text, sizeof(m->fail.text), "%s", text);
    }
}

/* mi_fail_chain - a chain verdict that ends the message. */
static void mi_fail_chain(struct smtp_sess *ss, subm_verdict_t v, const struct reply *r)
{
    struct msgin *m = ss->msg;

    if (m->failed || (v != SUBM_REJECT && v != SUBM_TEMPFAIL))
        return;
    m->failed = 1;
    m->fail = *r;
}

/* mi_flush_field - the assembled header field to the transaction and
 * the HEADER stage. */
static void mi_flush_field(struct smtp_sess *ss)
{
    struct msgin *m = ss->msg;
    const struct header *h;
    subm_arg_t a;
    struct reply r;
    subm_verdict_t v;

    if (m->flen == 0)
        return;
    ss->s->txn->size = m->size;         /* what subm_txn_size() says */
    if (!m->failed && txn_add_header(ss->s, m->field, m->flen, &h) == 0 &&
        chain_uses_stage(ss->s->chain, SUBM_STAGE_HEADER)) {
        memset(&a, 0, sizeof(a));
        a.name = h->name;
        a.value = h->value;
        a.raw = h->raw;
        a.raw_len = h->raw_len;
        v = smtp_stage(ss, SUBM_STAGE_HEADER, &a, &r);
        mi_fail_chain(ss, v, &r);
    }
    m->flen = 0;
}

/* mi_eoh - end of the header section: EOH stage. */
static void mi_eoh(struct smtp_sess *ss)
{
    struct msgin *m = ss->msg;
    struct reply r;
    subm_verdict_t v;

    mi_flush_field(ss);
    m->in_header = 0;
    if (m->eoh_done)
        return;
    m->eoh_done = 1;
    ss->s->txn->size = m->size;
    if (!m->failed) {
        v = smtp_stage(ss, SUBM_STAGE_EOH, NULL, &r);
        mi_fail_chain(ss, v, &r);
    }
}

/* mi_body_flush - staged body octets to the spool and the BODY stage. */
static void mi_body_flush(struct smtp_sess *ss)
{
    struct msgin *m = ss->msg;
    subm_arg_t a;
    struct reply r;
    subm_verdict_t v;

    if (m->blen == 0)
        return;
    if (!m->failed && txn_body_write(ss->s, m->body, m->blen) < 0)
        mi_fail(m, 452, "4.3.1", "Insufficient system storage");
    if (!m->failed && chain_uses_stage(ss->s->chain, SUBM_STAGE_BODY)) {
        ss->s->txn->size = m->size;
        memset(&a, 0, sizeof(a));
        a.data = (const unsigned char *)m->body;
        a.len = m->blen;
        v = smtp_stage(ss, SUBM_STAGE_BODY, &a, &r);
        mi_fail_chain(ss, v, &r);
    }
    m->blen = 0;
}

/* mi_body - append body octets. */
static void mi_body(struct smtp_sess *ss, const char *p, size_t n)
{
    struct msgin *m = ss->msg;
    size_t k;

    while (n > 0 && !m->failed) {
        if (m->blen == MI_BODY_CHUNK)
            mi_body_flush(ss);
        k = MI_BODY_CHUNK - m->blen;
        if (k > n)
            k = n;
        memcpy(m->body + m->blen, p, k);
        m->blen += k;
        p += k;
        n -= k;
    }
}

/* is_field_start - "Name:" with a printable name (obsolete WSP before
 * the colon allowed). */
static int is_field_start(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && (unsigned char)p[i] > 32 && (unsigned char)p[i] < 127 && p[i] != ':')
        i++;
    if (i == 0)
        return 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    return i < n && p[i] == ':';
}

/* mi_header_line - one complete line of the header section. */
static void mi_header_line(struct smtp_sess *ss)
{
    struct msgin *m = ss->msg;

    if (m->llen == 0) {                 /* the separator */
        mi_eoh(ss);
        m->had_sep = 1;
        return;
    }
    if ((m->line[0] == ' ' || m->line[0] == '\t') && m->flen > 0) {
        if (m->flen + 2 + m->llen > MI_FIELD_MAX) {
            mi_fail(m, 552, "5.3.4", "Message header field too long");
            return;
        }
        memcpy(m->field + m->flen, "\r\n", 2);
        memcpy(m->field + m->flen + 2, m->line, m->llen);
        m->flen += 2 + m->llen;
    } else if (is_field_start(m->line, m->llen)) {
        mi_flush_field(ss);
        memcpy(m->field, m->line, m->llen);
        m->flen = m->llen;
    } else {                            /* no separator: the body starts */
        mi_eoh(ss);
        mi_body(ss, m->line, m->llen);
        mi_body(ss, "\r\n", 2);
        return;
    }
    m->hdr_total += m->llen + 2;
    if (m->hdr_total > MI_HEADER_MAX)
        mi_fail(m, 552, "5.3.4", "Message header too large");
}

/* mi_put - content octets of the current line. */
static void mi_put(struct smtp_sess *ss, const char *p, size_t n)
{
    struct msgin *m = ss->msg;

    m->size += n;
    if (m->size > m->limit)
        mi_fail(m, 552, "5.3.4", "Message size exceeds fixed limit");
    if (m->failed || n == 0)
        return;
    if (!m->in_header) {
        mi_body(ss, p, n);
        return;
    }
    if (m->llen + n > sizeof(m->line)) {
        mi_fail(m, 500, "5.5.2", "Message line too long");
        return;
    }
    memcpy(m->line + m->llen, p, n);
    m->llen += n;
}

/* mi_eol - the end of the current line. */
static void mi_eol(struct smtp_sess *ss)
{
    struct msgin *m = ss->msg;

    m->size += 2;
    if (m->linelen > SMTP_TEXT_MAX - 2)
        mi_fail(m, 500, "5.5.2", "Message line too long");
    m->linelen = 0;
    if (m->failed)
        return;
    if (m->in_header) {
        mi_header_line(ss);
        m->llen = 0;
    } else {
        mi_body(ss, "\r\n", 2);
    }
}

/* mi_bare - a bare CR or LF: refuse, or end the line here (normalize). */
static void mi_bare(struct smtp_sess *ss)
{
    struct msgin *m = ss->msg;

    if (!m->normalize) {
        mi_fail(m, 550, "5.5.2", "Message contains bare CR or LF");
        m->st = S_MID;                  /* never a line start */
        return;
    }
    mi_eol(ss);
    m->st = S_BOLN;
}

/* msgin_feed - see smtp_session.h. */
int msgin_feed(struct smtp_sess *ss, const char *p, size_t n, size_t *used_r)
{
    struct msgin *m = ss->msg;
    size_t i = 0, j;

    while (i < n) {
        char c = p[i];

        switch (m->st) {
        case S_BOL:
            m->linelen = 0;
            if (!m->bdat && c == '.') {
                m->st = S_DOT;
                m->linelen = 1;
                i++;
            } else
                m->st = S_MID;
            break;
        case S_BOLN:                    /* after a normalised line end */
            m->linelen = 0;
            m->st = S_MID;
            break;
        case S_DOT:
            if (c == '\r') {
                m->st = S_DOTCR;
                i++;
            } else {
                if (c == '\n')          /* ".\n": keep the dot as text */
                    mi_put(ss, ".", 1);
                m->st = S_MID;          /* else the stuffed dot is dropped */
            }
            break;
        case S_DOTCR:
            if (c == '\n') {
                *used_r = i + 1;
                return 1;
            }
            mi_put(ss, ".", 1);
            mi_bare(ss);
            break;
        case S_MID:
            for (j = i; j < n && p[j] != '\r' && p[j] != '\n'; j++)
                ;
            m->linelen += j - i;
            mi_put(ss, p + i, j - i);
            i = j;
            if (i == n)
                break;
            if (p[i] == '\r')
                m->st = S_CR;
            else
                mi_bare(ss);
            i++;
            break;
        case S_CR:
            if (c == '\n') {
                mi_eol(ss);
                m->st = S_BOL;
                i++;
            } else
                mi_bare(ss);            /* c is read again as content */
            break;
        }
    }
    *used_r = n;
    return 0;
}

/* msgin_check - has the message already failed? */
int msgin_check(struct smtp_sess *ss, struct reply *r)
{
    if (ss->msg == NULL || !ss->msg->failed)
        return 0;
    *r = ss->msg->fail;
    return -1;
}

/* msgin_end - end of message: finish the last line, header, body. */
int msgin_end(struct smtp_sess *ss, struct reply *r)
{
    struct msgin *m = ss->msg;

    if (m->bdat) {                      /* a chunked message may end anywhere */
        if (m->st == S_CR)
            mi_bare(ss);
        if (m->st == S_MID && (m->linelen > 0 || m->llen > 0))
            mi_eol(ss);
    }
    if (m->in_header) {
        if (m->llen > 0)
            mi_header_line(ss);
        mi_eoh(ss);
    }
    mi_body_flush(ss);
    if (ss->s->txn != NULL)
        ss->s->txn->size = m->size;
    return msgin_check(ss, r);
}

int msgin_had_separator(const struct smtp_sess *ss)
{
    return ss->msg != NULL && ss->msg->had_sep;
}

/* msgin_fill - see smtp_session.h. */
int msgin_fill(struct smtp_sess *ss, int rated)
{
    const struct msgin *m = ss->msg;
    long wait = ss->conf->data_timeout, rate = ss->conf->min_data_rate;
    int64_t left;

    if (rated && rate > 0 && m != NULL) {
        left = m->t0 + ss->conf->data_timeout + (int64_t)(m->size * 1000 / (uint64_t)rate) -
               monotonic_ms();
        if (left <= 0)
            return SIO_TIMEOUT;
        if (left < wait)
            wait = (long)left;
    }
    return sio_fill(&ss->io, wait, 0);
}

/* msgin_size - octets of the message as received (CRLF). */
uint64_t msgin_size(const struct smtp_sess *ss)
{
    return ss->msg ? ss->msg->size : 0;
}
