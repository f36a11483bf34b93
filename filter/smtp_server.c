/*
 * smtp_server.c - the smtp front-end's listeners and sessions: binding,
 * accepting, admission (max_sessions, max_sessions_per_ip), the PROXY
 * protocol header, and the drain at shutdown.
 *
 * Concurrency model: one accept thread polls every listener; each accepted
 * client is served by its own thread, with a small stack (SMTP_STACK, 512
 * KiB of address space), which runs the whole session synchronously -
 * command parsing, TLS, the plugin chain (plugins run in the session's
 * thread, as plugin.h promises) and the backend connection - with every
 * wait bounded by poll() and a timeout. A session holds only fixed buffers
 * (16 KiB in and out, 64 KiB of message staging while in DATA, the message
 * itself spooled to a file past spool_memory), so 1,000 sessions cost tens
 * of MiB (about 50 KiB each measured), not the 8 MiB default stack each.
 * A thread whose session ended waits a while to be handed the next client
 * rather than exiting, which saves a thread creation and teardown per
 * connection on a busy server. Shared state is small and locked: the
 * session counters, idle workers and per-IP table here, the backend pool in
 * relay.c, the configuration snapshot (config_acquire). Shutdown closes a
 * pipe that every idle session polls, so idle sessions answer 421 at once
 * while sessions inside a message get the grace time to finish.
 *
 * Calls: smtp_frontend_init, smtp_frontend_start, smtp_frontend_stop
 * (frontend.h). It does not speak SMTP beyond the 421 of a refused client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "config.h"
#include "frontend.h"
#include "log.h"
#include "pool.h"
#include "proxyproto.h"
#include "relay.h"
#include "session.h"
#include "smtp_conf.h"
#include "smtp_session.h"
#include "smtp_tls.h"
#include "smtp_authsrc.h"

#define SMTP_STACK    (512 * 1024)     /* plugins (libspf2, OpenSSL) use the stack too */
#define SMTP_BACKLOG  1024
#define IP_BUCKETS    1024
#define WORKER_IDLE_MAX 256             /* idle workers kept */
#define WORKER_IDLE_MS  30000           /* and for how long */

struct listener {
    int   fd;
    int   proxy;
    int   tls;                  /* implicit TLS (RFC 8314) */
    char *spec;
};

struct conn {                   /* what a session thread starts with */
    int                     fd;
    int                     proxy;
    int                     tls;
    struct sockaddr_storage sa;
    socklen_t               salen;
};

struct worker {                 /* an idle worker thread */
    pthread_cond_t  cond;
    struct conn    *c;              /* the client it is handed */
    struct worker  *next;
};

struct ipcount {
    char            addr[INET6_ADDRSTRLEN];
    long            n;
    struct ipcount *next;
};

struct live {                   /* a running session, for the drain */
    int          fd;
    struct live *next, *prev;
};

static struct listener *listeners;
static size_t           nlisteners;
static int              stop_pipe[2] = { -1, -1 };
static pthread_t        accept_tid;
static int              accept_running;
static pthread_mutex_t  srv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t   srv_idle = PTHREAD_COND_INITIALIZER;
static long             nsessions;      /* sessions admitted, not yet ended */
static size_t           nidle;          /* workers waiting for a session */
static int              stopping;
static struct worker   *idle_workers;   /* waiting for a client */
static struct ipcount  *iptab[IP_BUCKETS];
static struct live      live_head = { -1, &live_head, &live_head };

/* listen_one - bind one "ADDR:PORT [tls] [proxy]" entry; 0 or -1 logged. */
static int listen_one(const char *spec, int proxy_all)
{
    char buf[300], *port, *flags, *host;
    struct addrinfo hints, *res = NULL;
    struct listener *l;
    int fd, one = 1, rc, proxy = proxy_all, tls = 0;

    if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf)) {
        log_error("smtp listen \"%s\": too long", spec);
        return -1;
    }
    flags = strchr(buf, ' ');
    if (flags != NULL) {
        *flags++ = '\0';
        if (strstr(flags, "tls") != NULL) {
            if (!smtp_tls_available()) {
                log_error("smtp listen \"%s\": implicit TLS needs tls_cert and tls_key", spec);
                return -1;
            }
            tls = 1;
        }
        if (strstr(flags, "proxy") != NULL)
            proxy = 1;
    }
    port = strrchr(buf, ':');
    if (port == NULL || port[1] == '\0') {
        log_error("smtp listen \"%s\": want ADDR:PORT", spec);
        return -1;
    }
    *port++ = '\0';
    host = buf;
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        host[strlen(host) - 1] = '\0';
        host++;
    }
    if (strcmp(host, "*") == 0 || *host == '\0')
        host = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
    hints.ai_family = host ? AF_UNSPEC : AF_INET;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        log_error("smtp listen \"%s\": %s", spec, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_error_errno("smtp listen \"%s\": socket", spec);
        freeaddrinfo(res);
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (res->ai_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SMTP_BACKLOG) < 0) {
        log_error_errno("smtp listen \"%s\": bind", spec);
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    listeners = xrealloc(listeners, (nlisteners + 1) * sizeof(*listeners));
    l = &listeners[nlisteners++];
    l->fd = fd;
    l->proxy = proxy;
    l->tls = tls;
    l->spec = xstrdup(spec);
    log_info("smtp: listening on %s%s%s", spec, proxy ? " (PROXY protocol)" : "",
             tls ? " (implicit TLS)" : "");
    return 0;
}

/* smtp_frontend_init - bind every listener of the smtp {} block. */
int smtp_frontend_init(const struct config *cfg)
{
    const char *const *l;

    if (cfg->smtp == NULL)
        return 0;
    if (smtp_tls_init(cfg->smtp) < 0 || authsrc_check_spec(cfg->smtp->auth) < 0)
        return -1;
    if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        log_error_errno("smtp: pipe");
        return -1;
    }
    for (l = cfg->smtp->listen; l != NULL && *l != NULL; l++)
        if (listen_one(*l, cfg->smtp->proxy_protocol) < 0)
            return -1;
    if (nlisteners == 0) {
        log_error("smtp: no listen address");
        return -1;
    }
    return 0;
}

/* addr_text - the numeric address of sa. */
static void addr_text(const struct sockaddr_storage *sa, char *buf, size_t size)
{
    if (getnameinfo((const struct sockaddr *)sa, sizeof(*sa), buf, (socklen_t)size,
                    NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(buf, size, "unknown");
}

/* ip_hash - bucket of an address text. */
static unsigned ip_hash(const char *s)
{
    unsigned h = 5381;

    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h % IP_BUCKETS;
}

/* ip_admit - count a session from addr; 0 if within max, -1 if not. */
static int ip_admit(const char *addr, long max)
{
    struct ipcount *e;
    unsigned h = ip_hash(addr);
    int rc = 0;

    pthread_mutex_lock(&srv_lock);
    for (e = iptab[h]; e != NULL && strcmp(e->addr, addr) != 0; e = e->next)
        ;
    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        snprintf(e->addr, sizeof(e->addr), "%s", addr);
        e->next = iptab[h];
        iptab[h] = e;
    }
    if (e->n >= max)
        rc = -1;
    else
        e->n++;
    pthread_mutex_unlock(&srv_lock);
    return rc;
}

/* ip_release - one session from addr ended. */
static void ip_release(const char *addr)
{
    struct ipcount **pp, *e;

    pthread_mutex_lock(&srv_lock);
    for (pp = &iptab[ip_hash(addr)]; (e = *pp) != NULL; pp = &e->next) {
        if (strcmp(e->addr, addr) != 0)
            continue;
        if (--e->n <= 0) {
            *pp = e->next;
            free(e);
        }
        break;
    }
    pthread_mutex_unlock(&srv_lock);
}

/* refuse - a one-line 421 to a client we will not serve, then close. */
static void refuse(int fd, const char *why)
{
    char buf[256];
    int n;

    n = snprintf(buf, sizeof(buf), "421 4.7.0 %s, try again later\r\n", why);
    if (n > 0)
        (void)send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

/* read_proxy - the PROXY header, and not one octet more (an implicit-TLS
 * handshake follows it on the same socket): peeked until complete, then
 * taken. Fills c->sa. 0, or -1 for a bad, missing or slow header. */
static int read_proxy(struct conn *c, long timeout_ms)
{
    unsigned char buf[PROXYPROTO_MAX];
    size_t used = 0, last = 0;
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    int64_t deadline = monotonic_ms() + timeout_ms;
    struct pollfd pf;
    ssize_t n;
    long left;
    int rc;

    for (;;) {
        left = (long)(deadline - monotonic_ms());
        pf.fd = c->fd;
        pf.events = POLLIN;
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            return -1;
        n = recv(c->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            return -1;
        }
        rc = proxyproto_parse(buf, (size_t)n, &sa, &salen, &used);
        if (rc < 0)
            return -1;
        if (rc > 0)
            break;
        if ((size_t)n == sizeof(buf))
            return -1;
        if ((size_t)n == last)          /* nothing new yet: do not spin */
            (void)poll(NULL, 0, 10);
        last = (size_t)n;
    }
    if (recv(c->fd, buf, used, MSG_WAITALL) != (ssize_t)used)
        return -1;
    if (salen > 0) {
        memcpy(&c->sa, &sa, salen);
        c->salen = salen;
    }
    return 0;
}

/* serve_conn - admit one client and run its session; frees c. */
static void serve_conn(struct conn *c)
{
    struct config *cfg = config_acquire();
    char addr[INET6_ADDRSTRLEN];
    long per_ip = cfg->smtp ? cfg->smtp->max_sessions_per_ip : 20;
    long tmo = cfg->smtp ? cfg->smtp->timeout : 300000;
    struct live me;

    config_release(&cfg);
    if (c->proxy && read_proxy(c, tmo < 10000 ? tmo : 10000) < 0) {
        addr_text(&c->sa, addr, sizeof(addr));
        log_warn("smtp: bad or missing PROXY header from %s", addr);
        close(c->fd);
        goto out;
    }
    addr_text(&c->sa, addr, sizeof(addr));
    if (ip_admit(addr, per_ip) < 0) {
        log_warn("smtp: too many sessions from %s", addr);
        refuse(c->fd, "Too many connections from your address");
        goto out;
    }
    me.fd = c->fd;
    pthread_mutex_lock(&srv_lock);
    me.next = live_head.next;
    me.prev = &live_head;
    live_head.next->prev = &me;
    live_head.next = &me;
    pthread_mutex_unlock(&srv_lock);

    smtp_session_run(c->fd, (struct sockaddr *)&c->sa, c->salen, stop_pipe[0], c->tls);

    pthread_mutex_lock(&srv_lock);
    me.prev->next = me.next;
    me.next->prev = me.prev;
    pthread_mutex_unlock(&srv_lock);
    close(c->fd);
    ip_release(addr);
out:
    free(c);
    pthread_mutex_lock(&srv_lock);
    nsessions--;
    pthread_cond_broadcast(&srv_idle);
    pthread_mutex_unlock(&srv_lock);
}

/* worker_thread - serve conn after conn: a worker that finished a session
 * waits (up to WORKER_IDLE_MS, on its own condition) to be handed the next
 * client instead of exiting, so a busy server does not pay a thread's
 * creation and teardown per connection. */
static void *worker_thread(void *arg)
{
    struct conn *c = arg;
    struct worker w, **pp;
    struct timespec ts;

    pthread_cond_init(&w.cond, NULL);
    for (;;) {
        serve_conn(c);
        pthread_mutex_lock(&srv_lock);
        if (nidle >= WORKER_IDLE_MAX || stopping) {
            pthread_mutex_unlock(&srv_lock);
            break;
        }
        w.c = NULL;
        w.next = idle_workers;
        idle_workers = &w;
        nidle++;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += WORKER_IDLE_MS / 1000;
        while (w.c == NULL && !stopping)
            if (pthread_cond_timedwait(&w.cond, &srv_lock, &ts) != 0)
                break;
        c = w.c;
        if (c == NULL) {                /* not handed a client: leave the list */
            for (pp = &idle_workers; *pp != NULL; pp = &(*pp)->next)
                if (*pp == &w) {
                    *pp = w.next;
                    nidle--;
                    break;
                }
        }
        pthread_mutex_unlock(&srv_lock);
        if (c == NULL)
            break;
    }
    pthread_cond_destroy(&w.cond);
    OPENSSL_thread_stop();              /* this thread's TLS random state */
    return NULL;
}

/* accept_one - accept on listener l and start its session. */
static void accept_one(const struct listener *l, pthread_attr_t *attr)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    struct config *cfg;
    long max;
    pthread_t tid;
    int rc;

    c->salen = sizeof(c->sa);
    c->fd = accept4(l->fd, (struct sockaddr *)&c->sa, &c->salen, SOCK_CLOEXEC);
    if (c->fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn_errno("smtp: accept on %s", l->spec);
        if (errno == EMFILE || errno == ENFILE)
            (void)poll(NULL, 0, 100);
        free(c);
        return;
    }
    c->proxy = l->proxy;
    c->tls = l->tls;
    cfg = config_acquire();
    max = cfg->smtp ? cfg->smtp->max_sessions : 1000;
    config_release(&cfg);
    pthread_mutex_lock(&srv_lock);
    if (nsessions >= max) {
        pthread_mutex_unlock(&srv_lock);
        log_warn("smtp: max_sessions (%ld) reached, refusing a client", max);
        refuse(c->fd, "Too many sessions");
        free(c);
        return;
    }
    nsessions++;
    if (idle_workers != NULL) {         /* a waiting worker takes it */
        struct worker *w = idle_workers;
        idle_workers = w->next;
        nidle--;
        w->c = c;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&srv_lock);
        return;
    }
    pthread_mutex_unlock(&srv_lock);
    rc = pthread_create(&tid, attr, worker_thread, c);
    if (rc != 0) {
        log_warn("smtp: cannot start a session thread: %s", strerror(rc));
        refuse(c->fd, "Server busy");
        free(c);
        pthread_mutex_lock(&srv_lock);
        nsessions--;
        pthread_mutex_unlock(&srv_lock);
    }
}

/* accept_thread - poll the listeners until the stop pipe is readable. */
static void *accept_thread(void *arg)
{
    struct pollfd *pf = xcalloc(nlisteners + 1, sizeof(*pf));
    pthread_attr_t attr;
    size_t i;

    (void)arg;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, SMTP_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (i = 0; i < nlisteners; i++) {
        pf[i].fd = listeners[i].fd;
        pf[i].events = POLLIN;
    }
    pf[nlisteners].fd = stop_pipe[0];
    pf[nlisteners].events = POLLIN;
    for (;;) {
        if (poll(pf, nlisteners + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error_errno("smtp: poll");
            break;
        }
        if (pf[nlisteners].revents)
            break;
        for (i = 0; i < nlisteners; i++)
            if (pf[i].revents & POLLIN)
                accept_one(&listeners[i], &attr);
    }
    pthread_attr_destroy(&attr);
    free(pf);
    return NULL;
}

/* smtp_frontend_start - the accept thread (signals stay with main). */
int smtp_frontend_start(void)
{
    sigset_t all, old;
    int rc;

    if (nlisteners == 0)
        return 0;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&accept_tid, NULL, accept_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("smtp: cannot start the accept thread: %s", strerror(rc));
        return -1;
    }
    accept_running = 1;
    return 0;
}

/* wait_idle - wait until no session is left or ms passed; 1 if idle. */
static int wait_idle(long ms)
{
    struct timespec ts;
    int idle;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv_lock);
    while (nsessions > 0)
        if (pthread_cond_timedwait(&srv_idle, &srv_lock, &ts) != 0)
            break;
    idle = nsessions == 0;
    pthread_mutex_unlock(&srv_lock);
    return idle;
}

/* smtp_frontend_stop - stop accepting, let sessions drain, then cut. */
void smtp_frontend_stop(long grace_ms)
{
    struct worker *w;
    struct live *l;
    size_t i;

    if (stop_pipe[1] >= 0) {
        close(stop_pipe[1]);            /* the read end polls readable now */
        stop_pipe[1] = -1;
    }
    pthread_mutex_lock(&srv_lock);
    stopping = 1;
    for (w = idle_workers; w != NULL; w = w->next)
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&srv_lock);
    if (accept_running) {
        pthread_join(accept_tid, NULL);
        accept_running = 0;
    }
    for (i = 0; i < nlisteners; i++) {
        close(listeners[i].fd);
        free(listeners[i].spec);
    }
    free(listeners);
    listeners = NULL;
    nlisteners = 0;
    if (!wait_idle(grace_ms)) {
        pthread_mutex_lock(&srv_lock);
        log_warn("smtp: %ld sessions still busy after %ld ms, closing them",
                 nsessions, grace_ms);
        for (l = live_head.next; l != &live_head; l = l->next)
            shutdown(l->fd, SHUT_RDWR);
        pthread_mutex_unlock(&srv_lock);
        relay_cut_all();                /* and those waiting on the backend */
        (void)wait_idle(5000);
    }
    relay_pool_drain();
}
