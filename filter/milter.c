/*
 * milter.c - the milter front-end's life cycle: one libmilter registration
 * for the whole chain, the listening socket, smfi_main, stop and drain.
 *
 * Calls (frontend.h): milter_frontend_init() registers and opens the socket
 * (before privileges drop), milter_frontend_run() blocks in smfi_main() and
 * then waits for live MTA connections up to the shutdown grace time,
 * milter_frontend_stop() makes smfi_main() return. Also the per-connection
 * private data (milter_conn_new/_free), the live-connection count and the
 * time of the last callback (milter_live_add, milter_touch).
 *
 * Facts that shape it (MILTER-NOTES.md):
 * - One smfi_register per process: the flags name every action the chain
 *   may ever take; each connection then agrees to a subset (milter_neg.c).
 * - libmilter hides its listening socket; Linux copies TCP_NODELAY from a
 *   listening socket to the sockets accept() returns, so we find the socket
 *   smfi_opensocket() made among our descriptors and set it there. Without
 *   it, the replies libmilter writes back to back at end of message wait for
 *   the MTA's delayed ACK (~40-90 ms a message).
 * - Debian's libmilter (8.17) waits with poll(), not select(), so
 *   descriptors past FD_SETSIZE are fine; we still raise RLIMIT_NOFILE to
 *   its hard limit, since every MTA connection is one descriptor.
 * - libmilter's signal thread takes SIGHUP and SIGTERM as "stop" and SIGINT
 *   as "abort"; the daemon reloads on SIGUSR1 (main.c).
 *
 * It does not parse the configuration (config.c) nor map protocol events
 * to stages (milter_stage.c).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "frontend.h"
#include "log.h"
#include "milter_int.h"
#include "pool.h"
#include "session.h"

/* Every action a plugin's modification can need (see milter_mods.c). */
#define MILTER_ACTIONS (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | \
                        SMFIF_ADDRCPT | SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT | \
                        SMFIF_CHGFROM | SMFIF_SETSYMLIST)

/* The highest descriptor number we look at for libmilter's socket. */
#define MILTER_FD_SCAN 1024

static atomic_int milter_live;          /* MTA connections open now */
static _Atomic int64_t milter_active;   /* monotonic ms of the last callback */
static char      *milter_spec;          /* the socket spec libmilter keeps */
static long       milter_grace_ms;      /* drain time after smfi_main */
static int        milter_ready;         /* init succeeded */

/* milter_live_add - count MTA connections (for the drain at stop). */
void milter_live_add(int delta)
{
    atomic_fetch_add(&milter_live, delta);
}

/* milter_touch - note that a callback ran (for the drain at stop). */
void milter_touch(void)
{
    atomic_store(&milter_active, monotonic_ms());
}

/* milter_conn_new - private data for a new MTA connection, with the
 * configuration current now. NULL only if none is published. */
struct milter_conn *milter_conn_new(SMFICTX *ctx)
{
    struct milter_conn *c = xcalloc(1, sizeof(*c));

    c->cfg = config_acquire();
    if (c->cfg == NULL) {
        free(c);
        return NULL;
    }
    if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
        log_error("milter: cannot attach connection data");
        config_release(&c->cfg);
        free(c);
        return NULL;
    }
    milter_live_add(1);
    return c;
}

/* milter_conn_free - end the session and drop the configuration. */
void milter_conn_free(SMFICTX *ctx)
{
    struct milter_conn *c = smfi_getpriv(ctx);

    if (c == NULL)
        return;
    session_free(&c->s);
    config_release(&c->cfg);
    free(c);
    smfi_setpriv(ctx, NULL);
    milter_live_add(-1);
}

/* raise_nofile - lift the descriptor soft limit to the hard one. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn_errno("milter: cannot raise the descriptor limit");
}

/* fd_is_listener - whether fd is a listening socket. */
static int fd_is_listener(int fd)
{
    struct stat st;
    int on = 0;
    socklen_t len = sizeof(on);

    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return 0;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0)
        return 0;
    return on != 0;
}

/* listeners_mark - note in seen[] the listening sockets open now. */
static void listeners_mark(unsigned char *seen)
{
    int fd;

    for (fd = 0; fd < MILTER_FD_SCAN; fd++)
        seen[fd] = (unsigned char)fd_is_listener(fd);
}

/* set_nodelay_new - TCP_NODELAY on a TCP listener that appeared since
 * seen[] was taken (libmilter's), so accepted sockets inherit it. */
static void set_nodelay_new(const unsigned char *seen, const char *spec)
{
    int fd, one = 1, found = 0;

    for (fd = 0; fd < MILTER_FD_SCAN; fd++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        if (seen[fd] || !fd_is_listener(fd))
            continue;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
            (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
            continue;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
            log_warn_errno("milter: TCP_NODELAY on %s", spec);
        else
            found = 1;
    }
    if (!found)
        log_debug("milter: no TCP listener for %s (unix socket?): "
                  "TCP_NODELAY not set", spec);
}

/* milter_frontend_check - the `macros` option names macros. */
int milter_frontend_check(const struct config *cfg)
{
    const struct milter_conf *mc = cfg->milter;

    for (const char *const *m = mc ? mc->macros : NULL; m != NULL && *m != NULL; m++)
        if (!milter_macro_ok(*m)) {
            log_error("milter: macros: \"%s\" is not a macro name "
                      "(one character, or {name})", *m);
            return -1;
        }
    return 0;
}

/* milter_frontend_init - register the filter and open its socket. */
int milter_frontend_init(const struct config *cfg)
{
    static struct smfiDesc desc = {
        .xxfi_name      = "submilter",
        .xxfi_version   = SMFI_VERSION,
        .xxfi_flags     = MILTER_ACTIONS,
        .xxfi_connect   = milter_connect,
        .xxfi_helo      = milter_helo,
        .xxfi_envfrom   = milter_envfrom,
        .xxfi_envrcpt   = milter_envrcpt,
        .xxfi_header    = milter_header,
        .xxfi_eoh       = milter_eoh,
        .xxfi_body      = milter_body,
        .xxfi_eom       = milter_eom,
        .xxfi_abort     = milter_abort,
        .xxfi_close     = milter_close,
        .xxfi_unknown   = milter_unknown,
        .xxfi_data      = milter_data,
        .xxfi_negotiate = milter_negotiate,
    };
    const struct milter_conf *mc = cfg->milter;
    unsigned char *seen;
    char *spec;

    if (mc == NULL)
        return 0;
    if (milter_frontend_check(cfg) < 0)
        return -1;
    raise_nofile();
    free(milter_spec);
    milter_spec = spec = xstrdup(mc->listen);  /* libmilter keeps the pointer */
    if (smfi_setconn(spec) != MI_SUCCESS) {
        log_error("milter: bad listen address \"%s\"", mc->listen);
        return -1;
    }
    smfi_settimeout((int)(mc->timeout / 1000));
    smfi_setbacklog((int)mc->backlog);
    if (smfi_register(desc) != MI_SUCCESS) {
        log_error("milter: smfi_register failed");
        return -1;
    }
    seen = xcalloc(MILTER_FD_SCAN, 1);
    listeners_mark(seen);
    if (smfi_opensocket(1) != MI_SUCCESS) {
        log_error("milter: cannot listen on %s (in use, or no permission?)",
                  mc->listen);
        free(seen);
        return -1;
    }
    if (mc->tcp_nodelay)
        set_nodelay_new(seen, mc->listen);
    free(seen);
    milter_grace_ms = cfg->root.shutdown_grace;
    milter_ready = 1;
    log_info("milter: listening on %s", mc->listen);
    return 0;
}

/*
 * drain - after smfi_main returned: let open MTA connections finish, up
 * to the grace time, while libmilter still serves them. A libmilter built
 * with its worker pool (Debian's) stops serving open connections at stop;
 * their callbacks then never come, and waiting would only hold the MTA on
 * a dead connection (exiting closes it: the MTA applies its
 * milter_default_action at once). So stop waiting once no callback has run
 * for DRAIN_IDLE_MS.
 */
#define DRAIN_IDLE_MS 2000
static void drain(void)
{
    int64_t end = monotonic_ms() + milter_grace_ms;
    struct timespec tick = { 0, 50 * 1000 * 1000 };

    while (atomic_load(&milter_live) > 0 && monotonic_ms() < end &&
           monotonic_ms() - atomic_load(&milter_active) < DRAIN_IDLE_MS)
        nanosleep(&tick, NULL);
    if (atomic_load(&milter_live) > 0)
        log_warn("milter: %d MTA connection(s) still open at stop; closing them "
                 "(the MTA applies its milter_default_action)",
                 atomic_load(&milter_live));
}

/* milter_frontend_run - serve until milter_frontend_stop() or a libmilter
 * stop signal; 0, or -1 if libmilter failed. */
int milter_frontend_run(void)
{
    int r;

    if (!milter_ready)
        return -1;
    r = smfi_main();
    drain();
    free(milter_spec);
    milter_spec = NULL;
    if (r != MI_SUCCESS) {
        log_error("milter: smfi_main failed");
        return -1;
    }
    return 0;
}

/* milter_frontend_stop - make smfi_main() return (it notices within about
 * a second: libmilter polls its listener with a timeout). */
void milter_frontend_stop(void)
{
    if (milter_ready)
        smfi_stop();
}
