/*
 * relay.c - backend connections, their pool and capability cache, replies
 * and the DATA encoder (see relay.h).
 *
 * The pool is a LIFO list of idle connections under one mutex, held only
 * to push or pop (never across a system call); a pooled connection is
 * checked before reuse (anything readable on it means the
 * backend spoke or closed, e.g. its idle 421) and dropped past an idle
 * age. The capability cache remembers the last EHLO answer per backend so
 * that a client's EHLO can be answered without a backend round trip.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"
#include "relay.h"
#include "session.h"
#include "smtp_conf.h"
#include "smtp_tls.h"

#define RELAY_IN_BUF   8192
#define RELAY_OUT_BUF  65536
#define RELAY_LINE_MAX 2048
#define RELAY_POOL_IDLE_MS 30000

struct pooled {
    struct relay  *r;
    struct pooled *next;
};

static pthread_mutex_t relay_lock = PTHREAD_MUTEX_INITIALIZER;   /* pool, list */
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER; /* read at every EHLO */
static struct pooled  *relay_idle;
static size_t          relay_nidle;
static size_t          relay_pool_max = 32;
static char            cache_backend[256];
static struct relay_caps cache_caps;
static int             cache_valid;
static struct relay    relay_all = { .all_next = &relay_all, .all_prev = &relay_all };

/* breply_set - a reply of our own, "CODE ECODE text". */
void breply_set(struct breply *rep, int code, const char *ecode,
                const char *fmt, ...)
{
    char text[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0)
        text[0] = '\0';
    n = snprintf(rep->buf, sizeof(rep->buf), "%d %s %s\r\n", code, ecode, text);
    if (n < 0 || (size_t)n >= sizeof(rep->buf))
        n = snprintf(rep->buf, sizeof(rep->buf), "%d %s\r\n", code, ecode);
    rep->len = (size_t)n;
    rep->code = code;
}

/* relay_lost - the reply for a backend connection that broke. */
void relay_lost(struct breply *rep)
{
    breply_set(rep, 451, "4.4.2", "Backend connection lost, try again later");
}

/* breply_line - first line of a reply, without CRLF. */
const char *breply_line(const struct breply *rep, char *buf, size_t size)
{
    size_t n = 0;

    while (n < rep->len && rep->buf[n] != '\r' && rep->buf[n] != '\n' && n + 1 < size) {
        buf[n] = rep->buf[n];
        n++;
    }
    buf[n] = '\0';
    return buf;
}

/* relay_split - "HOST:PORT" or "[HOST]:PORT" into host and port. */
static int relay_split(const char *spec, char *host, size_t hsize,
                       char *port, size_t psize)
{
    const char *colon = strrchr(spec, ':');
    const char *h = spec;
    size_t hl;

    if (colon == NULL || colon[1] == '\0')
        return -1;
    hl = (size_t)(colon - spec);
    if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hsize || strlen(colon + 1) >= psize)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, psize, "%s", colon + 1);
    return 0;
}

/* relay_connect - a TCP connection within timeout_ms; fd or -1 (errno). */
static int relay_connect(const char *spec, long timeout_ms)
{
    char host[256], port[16];
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, err = ECONNREFUSED, one = 1;

    if (relay_split(spec, host, sizeof(host), port, sizeof(port)) < 0) {
        errno = EINVAL;
        return -1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        struct pollfd pf;
        socklen_t sl = sizeof(err);
        int r;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno != EINPROGRESS) {
            err = errno;
            close(fd);
            fd = -1;
            continue;
        }
        pf.fd = fd;
        pf.events = POLLOUT;
        do
            r = poll(&pf, 1, (int)timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == 0 && err == 0)
            break;
        if (r == 0)
            err = ETIMEDOUT;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        errno = err;
    return fd;
}

/* reply_line_ok - "DDD", "DDD text" or "DDD-text", printable text. */
static int reply_line_ok(const char *p, size_t n)
{
    size_t i;

    if (n < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
        p[2] < '0' || p[2] > '9')
        return 0;
    if (n > 3 && p[3] != ' ' && p[3] != '-')
        return 0;
    for (i = 4; i < n; i++)
        if ((unsigned char)p[i] < 0x20 && p[i] != '\t')
            return 0;
    return 1;
}

/* relay_reply - read one (multi-line) reply; see relay.h. */
int relay_reply(struct relay *r, long timeout_ms, struct breply *rep,
                const char *sid)
{
    int64_t deadline;
    const char *line;
    size_t len, n;
    int toolong, first = 1, code = 0, rc;
    const char *why = "timeout";

    if (timeout_ms <= 0)
        timeout_ms = r->timeout;
    deadline = monotonic_ms() + timeout_ms;
    rep->len = 0;
    if (r->broken) {
        why = "connection unusable";
        goto fail;
    }
    for (;;) {
        rc = sio_getline(&r->io, RELAY_LINE_MAX, &line, &len, &toolong);
        if (rc == SIO_MORE) {
            long left = (long)(deadline - monotonic_ms());
            if (left <= 0)
                goto fail;
            rc = sio_fill(&r->io, left, 0);
            if (rc > 0)
                continue;
            why = rc == SIO_TIMEOUT ? "timeout" : "connection lost";
            goto fail;
        }
        if (toolong) {
            why = "over-long reply line";
            goto fail;
        }
        n = len - 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (!reply_line_ok(line, n)) {
            why = "malformed reply";
            goto fail;
        }
        if (first)
            code = atoi(line);
        else if (atoi(line) != code) {
            why = "inconsistent multi-line reply";
            goto fail;
        }
        first = 0;
        if (rep->len + n + 2 > sizeof(rep->buf)) {
            why = "reply too long";
            goto fail;
        }
        memcpy(rep->buf + rep->len, line, n);
        rep->len += n;
        memcpy(rep->buf + rep->len, "\r\n", 2);
        rep->len += 2;
        if (n == 3 || line[3] == ' ')
            break;
    }
    rep->code = code;
    if (log_debug_enabled()) {
        char l[256];
        size_t l1 = strlen(breply_line(rep, l, sizeof(l)));
        log_debug("%s: backend > %s%s", sid, l, rep->len > l1 + 2 ? " ..." : "");
    }
    if (code == 421) {
        char l[256];
        log_info("%s: backend %s closing: %s", sid, r->backend,
                 breply_line(rep, l, sizeof(l)));
        r->broken = 1;
        breply_set(rep, 451, "4.3.0", "Backend unavailable, try again later");
    }
    return 0;
fail:
    log_warn("%s: backend %s: %s", sid, r->backend, why);
    r->broken = 1;
    if (strcmp(why, "timeout") == 0)
        breply_set(rep, 451, "4.4.2", "Backend timeout, try again later");
    else if (strcmp(why, "connection lost") == 0 || strcmp(why, "connection unusable") == 0)
        relay_lost(rep);
    else
        breply_set(rep, 451, "4.3.0", "Backend protocol error, try again later");
    return -1;
}

/* relay_final - a reply that must end its command (2xx, 4xx, 5xx): a 3xx
 * is a backend out of step, never relayed; 451 and the connection broken. */
void relay_final(struct relay *r, struct breply *rep, const char *sid)
{
    char l[256];

    if (rep->code / 100 != 3)
        return;
    log_warn("%s: backend %s: unexpected %s", sid, r->backend, breply_line(rep, l, sizeof(l)));
    r->broken = 1;
    breply_set(rep, 451, "4.3.0", "Backend protocol error, try again later");
}

/* relay_cmd - queue a command line. */
void relay_cmd(struct relay *r, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        log_error("%s: backend command too long; connection dropped", r->sid);
        r->broken = 1;                  /* never send a truncated command */
        return;
    }
    if (r->data_sent || r->in_data) {
        /* it would be message text: our bug, never the backend's input */
        log_error("%s: \"%.40s\" for a backend connection in data mode; connection "
                  "dropped", r->sid, line);
        r->broken = 1;
        return;
    }
    log_debug("%s: backend < %s", r->sid, line);
    sio_put(&r->io, line, (size_t)n);
    sio_put(&r->io, "\r\n", 2);
}

/* relay_flush - send what is queued. */
int relay_flush(struct relay *r)
{
    if (r->broken)
        return -1;
    if (sio_flush(&r->io, r->timeout) < 0) {
        r->broken = 1;
        return -1;
    }
    return 0;
}

/* relay_ask - send what is queued and read one reply; see relay.h. */
int relay_ask(struct relay *r, struct breply *rep, const char *sid)
{
    if (relay_flush(r) < 0) {
        relay_lost(rep);
        return -1;
    }
    return relay_reply(r, 0, rep, sid);
}

/* relay_parse_ehlo - capabilities from an EHLO reply. */
static void relay_parse_ehlo(const struct breply *rep, struct relay_caps *caps)
{
    const char *p = rep->buf, *end = rep->buf + rep->len;
    int first = 1;

    memset(caps, 0, sizeof(*caps));
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        char kw[200];
        size_t n;

        if (eol == NULL)
            break;
        n = (size_t)(eol - p);
        if (!first && n > 4) {
            n -= 4;
            if (n >= sizeof(kw))
                n = sizeof(kw) - 1;
            memcpy(kw, p + 4, n);
            kw[n] = '\0';
            if (strcasecmp(kw, "PIPELINING") == 0)
                caps->flags |= RELAY_PIPELINING;
            else if (strncasecmp(kw, "SIZE", 4) == 0 && (kw[4] == '\0' || kw[4] == ' ')) {
                caps->flags |= RELAY_SIZE;
                caps->size = kw[4] ? strtoull(kw + 5, NULL, 10) : 0;
            } else if (strcasecmp(kw, "8BITMIME") == 0)
                caps->flags |= RELAY_8BITMIME;
            else if (strcasecmp(kw, "DSN") == 0)
                caps->flags |= RELAY_DSN;
            else if (strcasecmp(kw, "SMTPUTF8") == 0)
                caps->flags |= RELAY_SMTPUTF8;
            else if (strcasecmp(kw, "CHUNKING") == 0)
                caps->flags |= RELAY_CHUNKING;
            else if (strcasecmp(kw, "ENHANCEDSTATUSCODES") == 0)
                caps->flags |= RELAY_ENHANCED;
            else if (strcasecmp(kw, "STARTTLS") == 0)
                caps->flags |= RELAY_STARTTLS;
            else if (strcasecmp(kw, "ETRN") == 0)
                caps->flags |= RELAY_ETRN;
            else if (strncasecmp(kw, "XCLIENT", 7) == 0 && (kw[7] == '\0' || kw[7] == ' ')) {
                caps->flags |= RELAY_XCLIENT;
                snprintf(caps->xclient, sizeof(caps->xclient), "%.150s",
                         kw[7] ? kw + 8 : "");
            }
        }
        first = 0;
        p = eol + 2;
    }
}

/* relay_ehlo - EHLO and capabilities; 0, or -1 with rep filled. */
static int relay_ehlo(struct relay *r, const char *helo_name, struct breply *rep,
                      const char *sid)
{
    relay_cmd(r, "EHLO %s", helo_name);
    if (relay_ask(r, rep, sid) < 0)
        return -1;
    if (rep->code != 250) {
        char l[256];
        log_warn("%s: backend %s refused EHLO: %s", sid, r->backend,
                 breply_line(rep, l, sizeof(l)));
        r->broken = 1;
        breply_set(rep, 451, "4.3.0", "Backend unavailable, try again later");
        return -1;
    }
    relay_parse_ehlo(rep, &r->caps);
    pthread_rwlock_wrlock(&cache_lock);
    snprintf(cache_backend, sizeof(cache_backend), "%s", r->backend);
    cache_caps = r->caps;
    cache_valid = 1;
    pthread_rwlock_unlock(&cache_lock);
    return 0;
}

/* relay_starttls - STARTTLS to the backend (RFC 3207), then EHLO again;
 * a backend that does not offer it is not used (backend_tls asked for TLS). */
static int relay_starttls(struct relay *r, const char *helo_name, const char *peer,
                          struct breply *rep, const char *sid)
{
    if (!(r->caps.flags & RELAY_STARTTLS)) {
        log_warn("%s: backend %s does not offer STARTTLS (backend_tls = yes)", sid, r->backend);
        breply_set(rep, 451, "4.7.5", "Backend unavailable, try again later");
        r->broken = 1;
        return -1;
    }
    relay_cmd(r, "STARTTLS");
    if (relay_ask(r, rep, sid) < 0)
        return -1;
    if (rep->code != 220 || r->io.in_end != r->io.in_start) {
        char l[256];
        log_warn("%s: backend %s refused STARTTLS: %s", sid, r->backend,
                 breply_line(rep, l, sizeof(l)));
        breply_set(rep, 451, "4.7.5", "Backend unavailable, try again later");
        r->broken = 1;
        return -1;
    }
    if (smtp_tls_connect(&r->io, r->timeout, peer, sid) < 0) {
        breply_set(rep, 451, "4.7.5", "Backend unavailable, try again later");
        r->broken = 1;
        return -1;
    }
    return relay_ehlo(r, helo_name, rep, sid);
}

/* relay_caps_cached - last known capabilities of backend. */
int relay_caps_cached(const char *backend, struct relay_caps *caps_r)
{
    int ok;

    pthread_rwlock_rdlock(&cache_lock);
    ok = cache_valid && strcmp(cache_backend, backend) == 0;
    if (ok)
        *caps_r = cache_caps;
    pthread_rwlock_unlock(&cache_lock);
    return ok;
}

/* relay_track - enter r in the list of open connections. */
static void relay_track(struct relay *r)
{
    pthread_mutex_lock(&relay_lock);
    r->all_next = relay_all.all_next;
    r->all_prev = &relay_all;
    relay_all.all_next->all_prev = r;
    relay_all.all_next = r;
    pthread_mutex_unlock(&relay_lock);
}

/* relay_free - close and free (out of the list first: its fd is closed). */
static void relay_free(struct relay *r)
{
    pthread_mutex_lock(&relay_lock);
    r->all_prev->all_next = r->all_next;
    r->all_next->all_prev = r->all_prev;
    pthread_mutex_unlock(&relay_lock);
    sio_fini(&r->io);
    free(r->backend);
    free(r);
}

/* relay_alive - nothing to read on an idle connection (no 421, no EOF). */
int relay_alive(struct relay *r)
{
    struct pollfd pf;

    pf.fd = r->io.fd;
    pf.events = POLLIN;
    pf.revents = 0;
    return poll(&pf, 1, 0) == 0 && r->io.in_end == r->io.in_start;
}

/* pool_pop - the most recently pooled connection to backend in that
 * XCLIENT mode, taken out of the pool; NULL if none. */
static struct relay *pool_pop(const char *backend, int xclient_mode)
{
    struct pooled **pp, *e;
    struct relay *r = NULL;

    pthread_mutex_lock(&relay_lock);
    for (pp = &relay_idle; (e = *pp) != NULL; pp = &e->next) {
        if (strcmp(e->r->backend, backend) == 0 && e->r->xclient_mode == xclient_mode) {
            *pp = e->next;
            relay_nidle--;
            r = e->r;
            break;
        }
    }
    pthread_mutex_unlock(&relay_lock);
    free(e);
    return r;
}

/* relay_pool_take - an idle, live connection to backend, or NULL. Each
 * candidate is checked (idle age, anything readable) after it left the
 * pool, outside the lock: a poll() or a close under the lock would hold up
 * every other session. Dead or stale ones are closed. */
static struct relay *relay_pool_take(const char *backend, int xclient_mode,
                                     size_t pool_max)
{
    struct relay *r;

    __atomic_store_n(&relay_pool_max, pool_max, __ATOMIC_RELAXED);  /* the current configuration's */
    while ((r = pool_pop(backend, xclient_mode)) != NULL) {
        if (monotonic_ms() - r->idle_since <= RELAY_POOL_IDLE_MS && relay_alive(r))
            return r;
        r->io.wtimeout = 0;
        relay_free(r);
    }
    return NULL;
}

/* relay_open - a ready backend connection; see relay.h. */
struct relay *relay_open(const struct smtp_conf *conf, const char *helo_name,
                         const char *sid, struct breply *fail_r)
{
    struct relay *r;
    int fd;

    r = relay_pool_take(conf->backend, conf->xclient, (size_t)conf->backend_pool);
    if (r != NULL) {
        snprintf(r->sid, sizeof(r->sid), "%s", sid);
        r->timeout = conf->backend_timeout;     /* a reload may have changed them */
        r->data_timeout = conf->backend_data_timeout;
        r->io.wtimeout = conf->backend_timeout;
        r->uses++;
        return r;
    }
    fd = relay_connect(conf->backend, conf->backend_timeout);
    if (fd < 0) {
        log_warn("%s: backend %s: connect: %s", sid, conf->backend, strerror(errno));
        breply_set(fail_r, 451, "4.4.1", "Backend unavailable, try again later");
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    sio_init(&r->io, fd, RELAY_IN_BUF, RELAY_OUT_BUF);
    relay_track(r);
    r->io.wtimeout = conf->backend_timeout;
    r->backend = xstrdup(conf->backend);
    r->xclient_mode = conf->xclient;
    r->timeout = conf->backend_timeout;
    r->data_timeout = conf->backend_data_timeout;
    r->uses = 1;
    snprintf(r->sid, sizeof(r->sid), "%s", sid);
    if (relay_reply(r, 0, fail_r, sid) < 0)
        goto fail;
    if (fail_r->code != 220) {
        char l[256];
        log_warn("%s: backend %s greeted: %s", sid, r->backend,
                 breply_line(fail_r, l, sizeof(l)));
        breply_set(fail_r, 451, "4.4.1", "Backend unavailable, try again later");
        goto fail;
    }
    if (relay_ehlo(r, helo_name, fail_r, sid) < 0)
        goto fail;
    if (conf->backend_tls) {
        char host[256], port[16];
        const char *peer = conf->backend_tls_name && *conf->backend_tls_name ?
                           conf->backend_tls_name :
                           relay_split(conf->backend, host, sizeof(host), port,
                                       sizeof(port)) == 0 ? host : NULL;

        if (relay_starttls(r, helo_name, peer, fail_r, sid) < 0)
            goto fail;
    }
    return r;
fail:
    relay_free(r);
    return NULL;
}

/* relay_close - pool or close; see relay.h. */
void relay_close(struct relay **rp, int reuse)
{
    struct relay *r = *rp;
    struct pooled *e;
    struct breply rep;

    if (r == NULL)
        return;
    *rp = NULL;
    if (r->data_sent || r->in_data)
        r->broken = 1;                  /* a QUIT or RSET would be message text */
    if (reuse && !r->broken && r->in_txn) {
        relay_cmd(r, "RSET");
        if (relay_ask(r, &rep, "pool") < 0 || rep.code != 250)
            reuse = 0;
        r->in_txn = 0;
    }
    if (reuse && !r->broken && r->io.in_end == r->io.in_start) {
        e = xmalloc(sizeof(*e));
        e->r = r;
        snprintf(r->sid, sizeof(r->sid), "pool");
        r->idle_since = monotonic_ms();
        pthread_mutex_lock(&relay_lock);
        if (relay_nidle < __atomic_load_n(&relay_pool_max, __ATOMIC_RELAXED)) {
            e->next = relay_idle;
            relay_idle = e;
            relay_nidle++;
            e = NULL;
        }
        pthread_mutex_unlock(&relay_lock);
        if (e == NULL)
            return;
        free(e);                        /* the pool is full */
    }
    if (!r->broken) {
        r->io.wtimeout = 1000;
        relay_cmd(r, "QUIT");
        (void)sio_flush(&r->io, 1000);
    }
    relay_free(r);
}

/* relay_pool_drain - close all idle connections. */
void relay_pool_drain(void)
{
    struct pooled *e, *next;

    pthread_mutex_lock(&relay_lock);
    e = relay_idle;
    relay_idle = NULL;
    relay_nidle = 0;
    pthread_mutex_unlock(&relay_lock);
    for (; e != NULL; e = next) {
        next = e->next;
        relay_cmd(e->r, "QUIT");
        (void)sio_flush(&e->r->io, 500);
        relay_free(e->r);
        free(e);
    }
}

/* relay_cut_all - shutdown(2) every open backend socket; see relay.h. */
void relay_cut_all(void)
{
    struct relay *r;

    pthread_mutex_lock(&relay_lock);
    for (r = relay_all.all_next; r != &relay_all; r = r->all_next)
        if (r->io.fd >= 0)
            (void)shutdown(r->io.fd, SHUT_RDWR);
    pthread_mutex_unlock(&relay_lock);
}

/* xtext_put - append value as RFC 3461 xtext to buf at *off. */
static void xtext_put(char *buf, size_t size, size_t *off, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *v && *off + 4 < size; v++) {
        unsigned char c = (unsigned char)*v;
        if (c < 33 || c > 126 || c == '+' || c == '=') {
            buf[(*off)++] = '+';
            buf[(*off)++] = hex[c >> 4];
            buf[(*off)++] = hex[c & 15];
        } else
            buf[(*off)++] = (char)c;
    }
    buf[*off] = '\0';
}

/* xclient_offers - does the backend's XCLIENT list name attr? */
static int xclient_offers(const struct relay *r, const char *attr)
{
    const char *p = r->caps.xclient;
    size_t n = strlen(attr);

    while (*p) {
        while (*p == ' ')
            p++;
        if (strncasecmp(p, attr, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
            return 1;
        while (*p && *p != ' ')
            p++;
    }
    return 0;
}

/* xclient_attr - append " NAME=xtext(value)" if offered. */
static void xclient_attr(const struct relay *r, char *buf, size_t size,
                         size_t *off, const char *name, const char *value)
{
    int n;

    if (!xclient_offers(r, name) || value == NULL)
        return;
    n = snprintf(buf + *off, size - *off, " %s=", name);
    if (n < 0 || (size_t)n >= size - *off)
        return;
    *off += (size_t)n;
    xtext_put(buf, size, off, value);
}

/* relay_rset - end the backend's open transaction now; 0, or -1 with rep. */
static int relay_rset(struct relay *r, struct breply *rep, const char *sid)
{
    relay_cmd(r, "RSET");
    if (relay_ask(r, rep, sid) < 0)
        return -1;
    if (rep->code != 250) {
        r->broken = 1;
        breply_set(rep, 451, "4.3.0", "Backend protocol error, try again later");
        return -1;
    }
    r->in_txn = 0;
    return 0;
}

/* relay_xclient - pass the client's identity to a Postfix backend. */
int relay_xclient(struct relay *r, const struct session *s,
                  const char *helo_name, struct breply *rep)
{
    char key[sizeof(r->xclient_key)], line[1024], addr[80], port[16];
    size_t off = 7;

    if (!r->xclient_mode || !(r->caps.flags & RELAY_XCLIENT))
        return 0;
    snprintf(key, sizeof(key), "%s|%s|%s", s->id, s->helo ? s->helo : "",
             s->auth_login ? s->auth_login : "");
    if (strcmp(key, r->xclient_key) == 0)
        return 0;
    if (r->in_txn && relay_rset(r, rep, s->id) < 0)
        return -1;                      /* XCLIENT inside a transaction is a 503 */
    memcpy(line, "XCLIENT", 8);
    if (s->client_addr != NULL) {
        snprintf(addr, sizeof(addr), "%s%s", strchr(s->client_addr, ':') ? "IPV6:" : "",
                 s->client_addr);
        xclient_attr(r, line, sizeof(line), &off, "ADDR", addr);
        snprintf(port, sizeof(port), "%d", s->client_port);
        xclient_attr(r, line, sizeof(line), &off, "PORT", port);
    }
    xclient_attr(r, line, sizeof(line), &off, "NAME",
                 s->client_name && strcmp(s->client_name, "unknown") != 0 ?
                 s->client_name : "[UNAVAILABLE]");
    xclient_attr(r, line, sizeof(line), &off, "HELO", s->helo ? s->helo : "[UNAVAILABLE]");
    xclient_attr(r, line, sizeof(line), &off, "PROTO", s->esmtp ? "ESMTP" : "SMTP");
    xclient_attr(r, line, sizeof(line), &off, "LOGIN",
                 s->auth_login ? s->auth_login : "[UNAVAILABLE]");
    relay_cmd(r, "%s", line);
    if (relay_ask(r, rep, s->id) < 0)
        return -1;
    if (rep->code != 220) {
        char l[256];
        log_warn("%s: backend %s refused XCLIENT: %s", s->id, r->backend,
                 breply_line(rep, l, sizeof(l)));
        r->broken = 1;
        breply_set(rep, 451, "4.3.0", "Backend refused client identity, try again later");
        return -1;
    }
    if (relay_ehlo(r, helo_name, rep, s->id) < 0)
        return -1;
    snprintf(r->xclient_key, sizeof(r->xclient_key), "%s", key);
    return 0;
}

/* relay_data_start - reset the encoder: we are at the start of a line. */
void relay_data_start(struct relay *r)
{
    r->bol = 1;
    r->cr = 0;
}

/* relay_data_put - CRLF-normalise and dot-stuff data into the output.
 * Runs without CR or LF are copied whole (found with memchr); only line
 * ends and line starts are looked at one by one. */
void relay_data_put(struct relay *r, const void *data, size_t len)
{
    const char *p = data, *end = p + len, *cr, *lf, *q;

    while (p < end) {
        if (r->cr) {                    /* a CR ended the last piece */
            r->cr = 0;
            sio_put(&r->io, "\r\n", 2);
            r->bol = 1;
            if (*p == '\n') {           /* that was CRLF */
                p++;
                continue;
            }
        }
        if (*p == '\r') {
            r->cr = 1;
            p++;
            continue;
        }
        if (*p == '\n') {               /* bare LF */
            sio_put(&r->io, "\r\n", 2);
            r->bol = 1;
            p++;
            continue;
        }
        if (r->bol && *p == '.')
            sio_put(&r->io, ".", 1);
        r->bol = 0;
        cr = memchr(p, '\r', (size_t)(end - p));
        lf = memchr(p, '\n', (size_t)((cr ? cr : end) - p));
        q = lf ? lf : cr ? cr : end;
        sio_put(&r->io, p, (size_t)(q - p));
        p = q;
    }
}

/* relay_data_end - final CRLF if needed, the terminator, flush. */
int relay_data_end(struct relay *r)
{
    if (r->cr) {
        r->cr = 0;
        r->bol = 1;
        sio_put(&r->io, "\r\n", 2);
    }
    if (!r->bol)
        sio_put(&r->io, "\r\n", 2);
    sio_put(&r->io, ".\r\n", 3);
    return relay_flush(r);
}
