/*
 * session.c - the session and transaction model both front-ends share.
 *
 * Owns the memory of a session (its pool) and of its open transaction (a
 * transaction pool reset, not freed, between messages, and one body spool
 * reused likewise), the setters front-ends call, and the recording of
 * recipients, header fields and body octets. The plugin-facing reads and
 * the modification calls are in plugin_api.c; running stages is chain.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chain.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "session.h"
#include "spool.h"

/* The pool sizes: a session's facts are small; a transaction holds headers. */
#define SESSION_POOL_CHUNK 2048
#define TXN_POOL_CHUNK     8192

/* A reusable buffer for one session fact (see fact_set). */
struct fact_slot {
    char   *buf;
    size_t  cap;
};

enum { FACT_HELO, FACT_TLS_VERSION, FACT_TLS_CIPHER, FACT_TLS_PEER,
       FACT_AUTH_LOGIN, FACT_AUTH_MECH, FACT_AUTH_AUTHOR, FACT_COUNT };

struct session_private {
    struct session   pub;
    struct pool     *txn_pool;
    struct spool    *spool;
    struct fact_slot facts[FACT_COUNT];
};

static atomic_uint session_counter;

/* monotonic_ms - milliseconds of CLOCK_MONOTONIC. */
int64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* make_id - a short id, unique within a day per process, for log lines. */
static void make_id(char *id, size_t len)
{
    unsigned n = atomic_fetch_add(&session_counter, 1);
    unsigned long t = (unsigned long)time(NULL);

    snprintf(id, len, "%05lX%06X", t & 0xFFFFFUL, n & 0xFFFFFFu);
}

/* session_new - a session on cfg (which gains a reference). */
struct session *session_new(struct config *cfg, const char *frontend)
{
    struct session_private *sp = xcalloc(1, sizeof(*sp));
    struct session *s = &sp->pub;
    size_t n = cfg->chain ? cfg->chain->nlinks : 0;

    s->pool = pool_new(SESSION_POOL_CHUNK);
    config_ref(cfg);
    s->cfg = cfg;
    s->chain = cfg->chain;
    s->frontend = frontend;
    s->slots = pool_alloc(s->pool, (n ? n : 1) * sizeof(void *));
    make_id(s->id, sizeof(s->id));
    return s;
}

/* session_free - end the transaction, free everything, drop cfg. */
void session_free(struct session **sp)
{
    struct session_private *p;

    if (*sp == NULL)
        return;
    p = (struct session_private *)*sp;
    txn_end(&p->pub);
    pool_free(&p->txn_pool);
    spool_free(&p->spool);
    pool_free(&p->pub.pool);
    config_unref(&p->pub.cfg);
    free(p);
    *sp = NULL;
}

/* session_set_client - the client's socket address and (reverse) name. */
void session_set_client(struct session *s, const struct sockaddr *sa,
                        socklen_t salen, const char *name)
{
    char addr[INET6_ADDRSTRLEN] = "";
    int port = 0;

    if (salen > sizeof(s->client_sa))
        salen = sizeof(s->client_sa);
    memcpy(&s->client_sa, sa, salen);
    s->have_sa = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
        port = ntohs(in->sin_port);
        s->have_sa = 1;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            /* present ::ffff:a.b.c.d as the IPv4 client it is */
            struct sockaddr_in *in = (struct sockaddr_in *)&s->client_sa;

            memset(in, 0, sizeof(*in));
            in->sin_family = AF_INET;
            in->sin_port = in6->sin6_port;
            memcpy(&in->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
            inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
        } else {
            inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
        }
        port = ntohs(in6->sin6_port);
        s->have_sa = 1;
    }
    s->client_addr = pool_strdup(s->pool, addr);
    s->client_port = port;
    s->client_name = pool_strdup(s->pool, name && *name ? name : "unknown");
}

/* session_set_client_text - an address known only as text (milter). */
void session_set_client_text(struct session *s, const char *addr, int port,
                             const char *name)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;

    memset(&in, 0, sizeof(in));
    memset(&in6, 0, sizeof(in6));
    if (addr != NULL && inet_pton(AF_INET, addr, &in.sin_addr) == 1) {
        in.sin_family = AF_INET;
        in.sin_port = htons((uint16_t)port);
        session_set_client(s, (struct sockaddr *)&in, sizeof(in), name);
        return;
    }
    if (addr != NULL && inet_pton(AF_INET6, addr, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons((uint16_t)port);
        session_set_client(s, (struct sockaddr *)&in6, sizeof(in6), name);
        return;
    }
    s->have_sa = 0;
    s->client_addr = pool_strdup(s->pool, addr);
    s->client_port = port;
    s->client_name = pool_strdup(s->pool, name && *name ? name : "unknown");
}

/*
 * fact_set - store a session fact in its own slot, reusing the slot's memory
 * when the new value fits: a client may repeat HELO (or an MTA resend its
 * macros) any number of times without the session pool growing each time.
 */
static char *fact_set(struct session *s, struct fact_slot *slot, const char *v)
{
    size_t len;

    if (v == NULL)
        return NULL;
    len = strlen(v) + 1;
    if (len > slot->cap) {
        slot->cap = len < 64 ? 64 : len * 2;
        slot->buf = pool_alloc(s->pool, slot->cap);
    }
    memcpy(slot->buf, v, len);
    return slot->buf;
}

/* session_set_helo - the HELO/EHLO name. */
void session_set_helo(struct session *s, const char *name, int esmtp)
{
    struct session_private *sp = (struct session_private *)s;

    s->helo = fact_set(s, &sp->facts[FACT_HELO], name);
    s->esmtp = esmtp;
}

/* session_set_tls - the TLS facts, once the handshake is done. */
void session_set_tls(struct session *s, const char *version,
                     const char *cipher, const char *peer)
{
    struct session_private *sp = (struct session_private *)s;

    s->tls_version = fact_set(s, &sp->facts[FACT_TLS_VERSION], version);
    s->tls_cipher = fact_set(s, &sp->facts[FACT_TLS_CIPHER], cipher);
    s->tls_peer = fact_set(s, &sp->facts[FACT_TLS_PEER], peer);
}

/* session_set_auth - the authenticated identity. */
void session_set_auth(struct session *s, const char *login,
                      const char *mech, const char *author)
{
    struct session_private *sp = (struct session_private *)s;

    s->auth_login = fact_set(s, &sp->facts[FACT_AUTH_LOGIN], login);
    s->auth_mech = fact_set(s, &sp->facts[FACT_AUTH_MECH], mech);
    s->auth_author = fact_set(s, &sp->facts[FACT_AUTH_AUTHOR], author);
}

/* session_reset_identity - forget what the client said before STARTTLS. */
void session_reset_identity(struct session *s)
{
    txn_end(s);
    s->helo = NULL;
    s->esmtp = 0;
    s->auth_login = s->auth_mech = s->auth_author = NULL;
}

/* session_set_deadline - a tighter deadline for plugins (0: default). */
void session_set_deadline(struct session *s, long ms)
{
    s->deadline = ms > 0 ? monotonic_ms() + ms : 0;
}

/* txn_begin - open a transaction for sender with its parameters. */
struct txn *txn_begin(struct session *s, const char *sender,
                      const subm_param_t *params, size_t nparams)
{
    struct session_private *sp = (struct session_private *)s;
    size_t n = s->chain ? s->chain->nlinks : 0;
    struct txn *t;
    size_t i;

    txn_end(s);
    if (sp->txn_pool == NULL)
        sp->txn_pool = pool_new(TXN_POOL_CHUNK);
    t = pool_alloc(sp->txn_pool, sizeof(*t));
    t->pool = sp->txn_pool;
    t->number = ++s->ntxn;
    t->queue_id = pool_printf(t->pool, "%s.%u", s->id, t->number);
    t->sender = pool_strdup(t->pool, sender ? sender : "");
    if (nparams > 0) {
        t->params = pool_alloc(t->pool, nparams * sizeof(*t->params));
        for (i = 0; i < nparams; i++) {
            t->params[i].name = pool_strdup(t->pool, params[i].name);
            t->params[i].value = pool_strdup(t->pool, params[i].value);
        }
        t->nparams = nparams;
    }
    t->mods_tail = &t->mods;
    t->slots = pool_alloc(t->pool, (n ? n : 1) * sizeof(void *));
    s->txn = t;
    return t;
}

/* txn_end - run the transaction's cleanups and free its memory. */
void txn_end(struct session *s)
{
    struct session_private *sp = (struct session_private *)s;
    struct txn *t = s->txn;

    if (t == NULL)
        return;
    if (t->new_body != NULL)
        spool_free(&t->new_body);
    if (sp->spool != NULL)
        spool_reset(sp->spool);
    s->txn = NULL;
    pool_reset(sp->txn_pool);
}

/* txn_set_queue_id - the MTA's queue id (milter) or our own. */
void txn_set_queue_id(struct session *s, const char *id)
{
    if (s->txn != NULL && id != NULL)
        s->txn->queue_id = pool_strdup(s->txn->pool, id);
}

/* txn_add_rcpt - record an accepted recipient; its index. */
size_t txn_add_rcpt(struct session *s, const char *addr,
                    const subm_param_t *params, size_t nparams)
{
    struct txn *t = s->txn;
    struct rcpt *r;
    size_t i;

    if (t->nrcpts == t->rcpt_cap) {
        size_t cap = t->rcpt_cap ? t->rcpt_cap * 2 : 8;
        struct rcpt *nr = pool_alloc(t->pool, cap * sizeof(*nr));

        if (t->nrcpts)
            memcpy(nr, t->rcpts, t->nrcpts * sizeof(*nr));
        t->rcpts = nr;
        t->rcpt_cap = cap;
    }
    r = &t->rcpts[t->nrcpts];
    r->addr = pool_strdup(t->pool, addr);
    if (nparams > 0) {
        r->params = pool_alloc(t->pool, nparams * sizeof(*r->params));
        for (i = 0; i < nparams; i++) {
            r->params[i].name = pool_strdup(t->pool, params[i].name);
            r->params[i].value = pool_strdup(t->pool, params[i].value);
        }
        r->nparams = nparams;
    }
    return t->nrcpts++;
}

/* txn_drop_rcpt - forget recipient i. */
void txn_drop_rcpt(struct session *s, size_t i)
{
    struct txn *t = s->txn;

    if (t == NULL || i >= t->nrcpts)
        return;
    memmove(&t->rcpts[i], &t->rcpts[i + 1], (t->nrcpts - i - 1) * sizeof(*t->rcpts));
    t->nrcpts--;
}

/* header_name_ok - RFC 5322 field name: printable US-ASCII but ':'. */
static int header_name_ok(const char *p, size_t len)
{
    size_t i;

    if (len == 0)
        return 0;
    for (i = 0; i < len; i++)
        if ((unsigned char)p[i] < 33 || (unsigned char)p[i] > 126 || p[i] == ':')
            return 0;
    return 1;
}

/* unfold - value without CR/LF, leading and trailing blanks trimmed. */
static char *unfold(struct pool *pool, const char *v, size_t len)
{
    char *out = pool_alloc(pool, len + 1);
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        if (v[i] == '\r' || v[i] == '\n')
            continue;
        if (o == 0 && (v[i] == ' ' || v[i] == '\t'))
            continue;
        out[o++] = v[i];
    }
    while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
        o--;
    out[o] = '\0';
    return out;
}

/* txn_add_header - record one received header field from its raw text. */
int txn_add_header(struct session *s, const char *raw, size_t len,
                   const struct header **h_r)
{
    struct txn *t = s->txn;
    const char *colon = memchr(raw, ':', len);
    size_t nlen;
    struct header *h;

    if (colon == NULL)
        return -1;
    nlen = (size_t)(colon - raw);
    while (nlen > 0 && (raw[nlen - 1] == ' ' || raw[nlen - 1] == '\t'))
        nlen--;       /* "Subject : x" is obsolete syntax, still a field */
    if (!header_name_ok(raw, nlen))
        return -1;
    if (t->nheaders == t->header_cap) {
        size_t cap = t->header_cap ? t->header_cap * 2 : 32;
        struct header *nh = pool_alloc(t->pool, cap * sizeof(*nh));

        if (t->nheaders)
            memcpy(nh, t->headers, t->nheaders * sizeof(*nh));
        t->headers = nh;
        t->header_cap = cap;
    }
    h = &t->headers[t->nheaders++];
    h->name = pool_strndup(t->pool, raw, nlen);
    /* by length: raw comes from the wire and may hold a NUL */
    h->raw = pool_alloc(t->pool, len + 1);
    memcpy(h->raw, raw, len);
    h->raw_len = len;
    h->value = unfold(t->pool, colon + 1, len - (size_t)(colon + 1 - raw));
    if (h_r != NULL)
        *h_r = h;
    return 0;
}

/* txn_body_write - append body octets to the transaction's spool. */
int txn_body_write(struct session *s, const void *data, size_t len)
{
    struct session_private *sp = (struct session_private *)s;
    struct txn *t = s->txn;

    if (sp->spool == NULL)
        sp->spool = spool_new((size_t)s->cfg->root.spool_memory, s->cfg->root.spool_dir);
    t->body = sp->spool;
    return spool_write(sp->spool, data, len);
}

/* params_parse - "A=1 B" into name/value pairs from pool. */
int params_parse(struct pool *pool, const char *text,
                 subm_param_t **params_r, size_t *n_r)
{
    size_t n = 0, cap = 0, i;
    subm_param_t *params = NULL;
    const char *p = text;

    *params_r = NULL;
    *n_r = 0;
    if (text == NULL)
        return 0;
    for (;;) {
        const char *start, *eq;
        size_t len;

        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        start = p;
        while (*p != '\0' && *p != ' ')
            p++;
        len = (size_t)(p - start);
        if (n == cap) {
            subm_param_t *np;

            cap = cap ? cap * 2 : 4;
            np = pool_alloc(pool, cap * sizeof(*np));
            for (i = 0; i < n; i++)
                np[i] = params[i];
            params = np;
        }
        eq = memchr(start, '=', len);
        if (eq == start)
            return -1;
        if (eq != NULL) {
            params[n].name = pool_strndup(pool, start, (size_t)(eq - start));
            params[n].value = pool_strndup(pool, eq + 1, len - (size_t)(eq + 1 - start));
        } else {
            params[n].name = pool_strndup(pool, start, len);
            params[n].value = NULL;
        }
        n++;
    }
    *params_r = params;
    *n_r = n;
    return 0;
}

/* params_get - value of the parameter called name ("" if it has none). */
const char *params_get(const subm_param_t *params, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcasecmp(params[i].name, name) == 0)
            return params[i].value ? params[i].value : "";
    return NULL;
}
