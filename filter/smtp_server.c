/*
 * smtp_server.c - the smtp front-end's listeners and sessions: binding,
 * accepting, admission (max_sessions, max_sessions_per_ip), the PROXY
 * protocol header, and the drain at shutdown.
 *
 * Concurrency model: leader/follower. Idle worker threads wait together in
 * epoll_wait() on one epoll set holding every listener (one-shot, so one
 * worker wakes per client) and the stop pipe. The worker that wakes accepts
 * the client, re-arms the listener for the next idle worker, starts one
 * more worker if none is left idle, and serves the client itself - there
 * is no accept thread handing clients over, which would cost a thread
 * switch and a contended lock per connection. A worker has a small stack
 * (SMTP_STACK, 512 KiB of address space) and runs the whole session
 * synchronously -
 * command parsing, TLS, the plugin chain (plugins run in the session's
 * thread, as plugin.h promises) and the backend connection - with every
 * wait bounded by poll() and a timeout. A session holds only fixed buffers
 * (16 KiB in and out, 64 KiB of message staging while in DATA, the message
 * itself spooled to a file past spool_memory), so 1,000 sessions cost tens
 * of MiB (about 50 KiB each measured), not the 8 MiB default stack each.
 * A worker whose session ended goes back to waiting for the next client
 * (up to WORKER_IDLE_MS; WORKER_IDLE_MAX are kept), which saves a thread
 * creation and teardown per connection on a busy server. Shared state is
 * small and locked, each once at a session's start and once at its end:
 * the session counters and per-IP table here; then the backend pool in
 * relay.c and the configuration snapshot (config_acquire). Shutdown closes
 * a pipe that idle workers and every idle session poll, so idle sessions
 * answer 421 at once while sessions inside a message get the grace time to
 * finish.
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
#include <sys/epoll.h>
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
#define WORKER_IDLE_MS  30000           /* and for how long (one always stays) */
#define STOP_TAG        UINT32_MAX      /* epoll data of the stop pipe */

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
static int              srv_epfd = -1;  /* listeners (one-shot) and stop pipe */
static pthread_attr_t   worker_attr;
static pthread_mutex_t  srv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t   srv_idle = PTHREAD_COND_INITIALIZER;  /* a count fell */
static long             nsessions;      /* sessions admitted, not yet ended */
static long             nidle;          /* workers waiting for a client */
static int              stopping;
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

/* listener_arm - (re)enable listener i in the epoll set, for one wake-up. */
static int listener_arm(uint32_t i, int op)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u32 = i;
    return epoll_ctl(srv_epfd, op, listeners[i].fd, &ev);
}

/* epoll_setup - the epoll set idle workers wait on: every listener, one
 * wake-up at a time, and the stop pipe; 0 or -1 logged. */
static int epoll_setup(void)
{
    struct epoll_event ev;
    uint32_t i;

    srv_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (srv_epfd < 0) {
        log_error_errno("smtp: epoll_create1");
        return -1;
    }
    for (i = 0; i < nlisteners; i++)
        if (listener_arm(i, EPOLL_CTL_ADD) < 0) {
            log_error_errno("smtp: epoll_ctl %s", listeners[i].spec);
            return -1;
        }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = STOP_TAG;
    if (epoll_ctl(srv_epfd, EPOLL_CTL_ADD, stop_pipe[0], &ev) < 0) {
        log_error_errno("smtp: epoll_ctl");
        return -1;
    }
    return 0;
}

/* smtp_frontend_check - what binding needs first: the TLS files (the
 * certificate and key, the backend CA file) load, the auth source is usable. */
int smtp_frontend_check(const struct config *cfg)
{
    if (cfg->smtp == NULL)
        return 0;
    if (smtp_tls_init(cfg->smtp) < 0 || authsrc_check_spec(cfg->smtp->auth) < 0)
        return -1;
    return 0;
}

/* smtp_frontend_init - bind every listener of the smtp {} block. */
int smtp_frontend_init(const struct config *cfg)
{
    const char *const *l;

    if (cfg->smtp == NULL)
        return 0;
    if (smtp_frontend_check(cfg) < 0)
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
    return epoll_setup();
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

/* ip_admit_locked - count a session from addr; 0 if within max, -1 if
 * not. The caller holds srv_lock. */
static int ip_admit_locked(const char *addr, long max)
{
    struct ipcount *e;
    unsigned h = ip_hash(addr);

    for (e = iptab[h]; e != NULL && strcmp(e->addr, addr) != 0; e = e->next)
        ;
    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        snprintf(e->addr, sizeof(e->addr), "%s", addr);
        e->next = iptab[h];
        iptab[h] = e;
    }
    if (e->n >= max)
        return -1;
    e->n++;
    return 0;
}

/* ip_release_locked - one session from addr ended (srv_lock held). */
static void ip_release_locked(const char *addr)
{
    struct ipcount **pp, *e;

    for (pp = &iptab[ip_hash(addr)]; (e = *pp) != NULL; pp = &e->next) {
        if (strcmp(e->addr, addr) != 0)
            continue;
        if (--e->n <= 0) {
            *pp = e->next;
            free(e);
        }
        break;
    }
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

/* session_admit - enter a client in the per-IP table and the list of
 * live sessions, under one lock; 0, or -1 over max_sessions_per_ip. */
static int session_admit(struct live *me, const char *addr, long per_ip)
{
    int rc;

    pthread_mutex_lock(&srv_lock);
    rc = ip_admit_locked(addr, per_ip);
    if (rc == 0) {
        me->next = live_head.next;
        me->prev = &live_head;
        live_head.next->prev = me;
        live_head.next = me;
    }
    pthread_mutex_unlock(&srv_lock);
    return rc;
}

/* session_leave - a session ended (me and addr NULL if it was never
 * admitted): out of the tables, under one lock. 1 if its worker goes back
 * to waiting for a client (counted idle again), 0 if the worker ends. */
static int session_leave(struct live *me, const char *addr)
{
    int back;

    pthread_mutex_lock(&srv_lock);
    if (me != NULL) {
        me->prev->next = me->next;
        me->next->prev = me->prev;
    }
    if (addr != NULL)
        ip_release_locked(addr);
    nsessions--;
    back = !stopping && nidle < WORKER_IDLE_MAX;
    if (back)
        nidle++;
    pthread_cond_broadcast(&srv_idle);
    pthread_mutex_unlock(&srv_lock);
    return back;
}

/* serve_conn - admit one accepted client and run its session; takes cfg
 * (the reference worker_accept got) and closes c->fd. Returns what
 * session_leave says: 1 if the worker goes on. */
static int serve_conn(struct conn *c, struct config *cfg)
{
    char addr[INET6_ADDRSTRLEN];
    long per_ip = cfg->smtp ? cfg->smtp->max_sessions_per_ip : 20;
    long tmo = cfg->smtp ? cfg->smtp->timeout : 300000;
    struct live me;
    int back;

    if (c->proxy && read_proxy(c, tmo < 10000 ? tmo : 10000) < 0) {
        addr_text(&c->sa, addr, sizeof(addr));
        log_warn("smtp: bad or missing PROXY header from %s", addr);
        close(c->fd);
        config_release(&cfg);
        return session_leave(NULL, NULL);
    }
    addr_text(&c->sa, addr, sizeof(addr));
    me.fd = c->fd;
    if (session_admit(&me, addr, per_ip) < 0) {
        log_warn("smtp: too many sessions from %s", addr);
        refuse(c->fd, "Too many connections from your address");
        config_release(&cfg);
        return session_leave(NULL, NULL);
    }
    smtp_session_run(cfg, c->fd, (struct sockaddr *)&c->sa, c->salen, stop_pipe[0], c->tls);
    config_release(&cfg);
    back = session_leave(&me, addr);    /* out of the live list before the */
    close(c->fd);                       /* fd number can be reused */
    return back;
}

static void *worker_thread(void *arg);

/* worker_spawn - start one more worker, already counted in nidle; 0, or
 * -1 (logged; the count is taken back). */
static int worker_spawn(void)
{
    pthread_t tid;
    int rc = pthread_create(&tid, &worker_attr, worker_thread, NULL);

    if (rc == 0)
        return 0;
    log_warn("smtp: cannot start a worker thread: %s", strerror(rc));
    pthread_mutex_lock(&srv_lock);
    nidle--;
    pthread_cond_broadcast(&srv_idle);
    pthread_mutex_unlock(&srv_lock);
    return -1;
}

/* worker_quit - leave the idle workers after a stop, or after an idle
 * timeout when another worker is idle; 1 if this worker ends. */
static int worker_quit(int stop_seen)
{
    int quit;

    pthread_mutex_lock(&srv_lock);
    quit = stop_seen || stopping || nidle > 1;
    if (quit) {
        nidle--;
        pthread_cond_broadcast(&srv_idle);
    }
    pthread_mutex_unlock(&srv_lock);
    return quit;
}

/* worker_admit - count an accepted client against max_sessions; the
 * worker stops being idle, and one more is started if none is left. 0, or
 * -1 when full or no thread could be started (the client was refused). */
static int worker_admit(const struct config *cfg, int fd)
{
    long max = cfg->smtp ? cfg->smtp->max_sessions : 1000;
    int spawn;

    pthread_mutex_lock(&srv_lock);
    if (nsessions >= max) {
        pthread_mutex_unlock(&srv_lock);
        log_warn("smtp: max_sessions (%ld) reached, refusing a client", max);
        refuse(fd, "Too many sessions");
        return -1;
    }
    nsessions++;
    nidle--;
    spawn = nidle == 0 && !stopping;
    if (spawn)
        nidle++;                        /* the worker started below */
    pthread_mutex_unlock(&srv_lock);
    if (spawn && worker_spawn() < 0) {
        /* no thread to take over accepting: this worker stays the acceptor
         * and the client is told to come back */
        pthread_mutex_lock(&srv_lock);
        nsessions--;
        nidle++;
        pthread_mutex_unlock(&srv_lock);
        refuse(fd, "Server busy");
        return -1;
    }
    return 0;
}

/* worker_accept - wait, as an idle worker, for a client and accept it: 1
 * with c filled and a configuration reference in *cfg_r, or 0 when this
 * worker is to end. Only idle workers (counted in nidle) touch the epoll
 * set and the listeners, so the stop closes them once nidle is 0. */
static int worker_accept(struct conn *c, struct config **cfg_r)
{
    struct epoll_event ev;
    const struct listener *l;
    int n, err;

    for (;;) {
        n = epoll_wait(srv_epfd, &ev, 1, WORKER_IDLE_MS);
        if (n < 0) {
            if (errno != EINTR) {
                log_error_errno("smtp: epoll_wait");
                (void)poll(NULL, 0, 100);
            }
            continue;
        }
        if (n == 0 || ev.data.u32 == STOP_TAG) {
            if (worker_quit(n == 1))
                return 0;
            continue;
        }
        l = &listeners[ev.data.u32];
        c->salen = sizeof(c->sa);
        c->fd = accept4(l->fd, (struct sockaddr *)&c->sa, &c->salen,
                        SOCK_CLOEXEC | SOCK_NONBLOCK);   /* TCP_NODELAY: the listener's */
        err = errno;
        if (c->fd < 0 && (err == EMFILE || err == ENFILE))
            (void)poll(NULL, 0, 100);   /* out of descriptors: do not spin */
        if (listener_arm(ev.data.u32, EPOLL_CTL_MOD) < 0)
            log_error_errno("smtp: epoll_ctl %s", l->spec);
        if (c->fd < 0) {
            if (err != EAGAIN && err != EINTR && err != ECONNABORTED) {
                errno = err;
                log_warn_errno("smtp: accept on %s", l->spec);
            }
            continue;
        }
        c->proxy = l->proxy;
        c->tls = l->tls;
        *cfg_r = config_acquire();
        if (worker_admit(*cfg_r, c->fd) == 0)
            return 1;
        config_release(cfg_r);
    }
}

/* worker_thread - accept a client, serve it, and again: a worker whose
 * session ended waits for the next client instead of exiting. */
static void *worker_thread(void *arg)
{
    struct conn c;
    struct config *cfg;

    (void)arg;
    while (worker_accept(&c, &cfg) && serve_conn(&c, cfg))
        ;
    OPENSSL_thread_stop();              /* this thread's TLS random state */
    return NULL;
}

/* smtp_frontend_start - the first idle worker (signals stay with main). */
int smtp_frontend_start(void)
{
    sigset_t all, old;
    pthread_t tid;
    int rc;

    if (nlisteners == 0)
        return 0;
    pthread_attr_init(&worker_attr);
    pthread_attr_setstacksize(&worker_attr, SMTP_STACK);
    pthread_attr_setdetachstate(&worker_attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&srv_lock);
    nidle++;
    pthread_mutex_unlock(&srv_lock);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);   /* workers inherit the mask */
    rc = pthread_create(&tid, &worker_attr, worker_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("smtp: cannot start a worker thread: %s", strerror(rc));
        pthread_mutex_lock(&srv_lock);
        nidle--;
        pthread_mutex_unlock(&srv_lock);
        return -1;
    }
    return 0;
}

/* wait_zero - wait (srv_lock held) until *count is 0 or ms passed; 1 if 0. */
static int wait_zero(const long *count, long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (*count > 0)
        if (pthread_cond_timedwait(&srv_idle, &srv_lock, &ts) != 0)
            break;
    return *count == 0;
}

/* wait_idle - wait until no session is left or ms passed; 1 if idle. */
static int wait_idle(long ms)
{
    int idle;

    pthread_mutex_lock(&srv_lock);
    idle = wait_zero(&nsessions, ms);
    pthread_mutex_unlock(&srv_lock);
    return idle;
}

/* smtp_frontend_stop - stop accepting, let sessions drain, then cut. */
void smtp_frontend_stop(long grace_ms)
{
    struct live *l;
    size_t i;
    int quiet;

    if (stop_pipe[1] >= 0) {
        close(stop_pipe[1]);            /* the read end polls readable now */
        stop_pipe[1] = -1;
    }
    pthread_mutex_lock(&srv_lock);
    stopping = 1;
    quiet = wait_zero(&nidle, 5000);    /* no idle worker left to accept */
    pthread_mutex_unlock(&srv_lock);
    if (quiet) {
        for (i = 0; i < nlisteners; i++) {
            close(listeners[i].fd);
            free(listeners[i].spec);
        }
        free(listeners);
        listeners = NULL;
        nlisteners = 0;
        if (srv_epfd >= 0)
            close(srv_epfd);
        srv_epfd = -1;
    } else {
        log_warn("smtp: idle workers did not stop; listeners left open");
    }
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
