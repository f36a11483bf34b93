/*
 * main.c - the submilter daemon: command line, start-up, signals, reload.
 *
 *   submilter [-c FILE] [-f] [-t] [-d] [-V]
 *
 * Start-up: load and check the configuration (every plugin loaded and
 * initialised), publish it, bind the front-ends' sockets, detach (unless
 * -f), write the pid file, drop privileges, start serving. Signals: SIGUSR1 reloads (and SIGHUP
 * too when no milter front-end runs: libmilter's own signal thread takes
 * SIGHUP as "stop", see MILTER-NOTES.md); a bad new configuration is logged
 * and the running one kept. SIGTERM/SIGINT stop accepting and drain live
 * sessions for up to shutdown_grace. Policy and protocols live elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain.h"
#include "config.h"
#include "frontend.h"
#include "log.h"
#include "version.h"

#ifndef DEFAULT_CONFIG
#define DEFAULT_CONFIG "/etc/submilter/submilter.conf"
#endif

struct options {
    const char *file;
    int         foreground, test, debug, version;
};

/* usage - the synopsis, to stderr; exit 2. */
static void usage(void)
{
    fprintf(stderr, "usage: submilter [-c FILE] [-f] [-t] [-d] [-V]\n"
            "  -c FILE  configuration (default %s)\n"
            "  -f       stay in the foreground, log to stderr as well as syslog\n"
            "  -t       check the configuration and every plugin's options, exit 0/1\n"
            "           (with -d: list every option with its default)\n"
            "  -d       debug logging\n"
            "  -V       print version, plugin ABI and library versions\n",
            DEFAULT_CONFIG);
    exit(2);
}

/* parse_args - the command line into opt. */
static void parse_args(int argc, char **argv, struct options *opt)
{
    int c;

    opt->file = DEFAULT_CONFIG;
    while ((c = getopt(argc, argv, "c:ftdVh")) != -1) {
        switch (c) {
        case 'c': opt->file = optarg; break;
        case 'f': opt->foreground = 1; break;
        case 't': opt->test = 1; break;
        case 'd': opt->debug = 1; break;
        case 'V': opt->version = 1; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
}

/* report_stderr - a configuration problem, printed for -t. */
static void report_stderr(void *arg, const char *line)
{
    (void)arg;
    fprintf(stderr, "%s\n", line);
}

/* print_options - one block's options: name, type, default, help (-t -d). */
static void print_options(const char *block, const subm_option_t *o)
{
    static const char *const types[] = {
        "-", "string", "path", "int", "bool", "size", "time", "enum", "list"
    };

    printf("%s:\n", block);
    for (; o != NULL && o->name != NULL; o++) {
        printf("  %-22s %-6s %-24s %s\n", o->name,
               (unsigned)o->type <= SUBM_OPT_LIST ? types[o->type] : "?",
               o->def ? o->def : "(none)", o->help ? o->help : "");
        if (o->type == SUBM_OPT_ENUM && o->choices != NULL) {
            const char *const *c;

            printf("  %-22s %-6s one of:", "", "");
            for (c = o->choices; *c != NULL; c++)
                printf(" %s", *c);
            printf("\n");
        }
    }
}

/* print_all_options - every option the loaded configuration can take. */
static void print_all_options(const struct config *cfg)
{
    size_t i;

    print_options("top level", root_options);
    print_options("smtp {}", smtp_options);
    print_options("milter {}", milter_options);
    for (i = 0; i < cfg->chain->nlinks; i++) {
        const struct chain_link *l = &cfg->chain->links[i];
        char title[256];

        snprintf(title, sizeof(title), "plugin %s {} (%s %s)", l->name, l->desc->name,
                 l->desc->version ? l->desc->version : "");
        print_options(title, l->desc->options);
    }
}

/* check_only - -t: load everything, list problems, exit 0 or 1; with -d
 * also every option of every block, with defaults and help. */
static int check_only(const struct options *opt)
{
    struct config *cfg = config_load(opt->file, NULL, report_stderr, NULL);
    size_t i;

    if (cfg == NULL || smtp_frontend_check(cfg) < 0 || milter_frontend_check(cfg) < 0) {
        fprintf(stderr, "%s: configuration has errors\n", opt->file);
        config_unref(&cfg);
        return 1;
    }
    printf("%s: ok; front-ends:%s%s; chain:", opt->file,
           cfg->smtp ? " smtp" : "", cfg->milter ? " milter" : "");
    for (i = 0; i < cfg->chain->nlinks; i++)
        printf(" %s", cfg->chain->links[i].name);
    printf("%s\n", cfg->chain->nlinks ? "" : " (empty)");
    if (opt->debug)
        print_all_options(cfg);
    config_unref(&cfg);
    return 0;
}

/* raise_nofile - as many descriptors as allowed (1,000 sessions need 2,000+). */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn_errno("cannot raise the descriptor limit");
    }
}

/* drop_privileges - become user/group once the sockets are bound. */
static void drop_privileges(const struct root_conf *rc)
{
    struct passwd *pw = NULL;
    struct group *gr = NULL;
    gid_t gid;

    if (*rc->user == '\0')
        return;
    if ((pw = getpwnam(rc->user)) == NULL)
        log_fatal("user %s: no such user", rc->user);
    gid = pw->pw_gid;
    if (*rc->group != '\0') {
        if ((gr = getgrnam(rc->group)) == NULL)
            log_fatal("group %s: no such group", rc->group);
        gid = gr->gr_gid;
    }
    if (geteuid() != 0) {
        if (geteuid() != pw->pw_uid)
            log_fatal("cannot become user %s: not running as root", rc->user);
        return;
    }
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0)
        log_fatal("cannot become user %s: %s", rc->user, strerror(errno));
}

/* detach - the classic daemon dance; the parent exits 0. */
static void detach(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        log_fatal("fork: %s", strerror(errno));
    if (pid > 0)
        _exit(0);
    setsid();
    if (chdir("/") < 0)
        log_warn_errno("chdir /");
    if ((fd = open("/dev/null", O_RDWR)) >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
}

/*
 * The pid file is opened and locked (as root, in a root-owned folder) before
 * the daemon binds anything and detaches: a second daemon on the same file
 * is refused on the terminal before libmilter replaces the first one's unix
 * socket or a listener fails to bind. It is written once our pid is final, and kept open: at exit
 * it is removed, or emptied through the open descriptor when the dropped
 * privileges no longer allow removing it from a root-owned folder.
 */
static int pid_fd = -1;

/* pid_file_lock - open and lock path ("" : none); exits if locked. */
static void pid_file_lock(const char *path)
{
    char other[32];
    ssize_t n;

    if (*path == '\0')
        return;
    pid_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (pid_fd < 0) {
        log_warn_errno("cannot write pid file %s", path);
        return;
    }
    if (flock(pid_fd, LOCK_EX | LOCK_NB) < 0) {
        n = pread(pid_fd, other, sizeof(other) - 1, 0);
        other[n > 0 ? n : 0] = '\0';
        other[strcspn(other, "\n")] = '\0';
        log_fatal("pid file %s is locked: submilter already runs (pid %s)", path,
                  *other ? other : "?");
    }
}

/* pid_file_write - our pid into the locked pid file. */
static void pid_file_write(const char *path)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

    if (pid_fd < 0)
        return;
    if (ftruncate(pid_fd, 0) < 0 || pwrite(pid_fd, buf, (size_t)n, 0) != n)
        log_warn_errno("cannot write pid file %s", path);
}

/* pid_file_remove - at exit: remove the pid file, or at least empty it. */
static void pid_file_remove(const char *path)
{
    if (pid_fd < 0)
        return;
    if (unlink(path) < 0 && ftruncate(pid_fd, 0) < 0)
        log_warn_errno("cannot remove or empty pid file %s", path);
    close(pid_fd);
    pid_fd = -1;
}

/* reload - load the file again; publish it only if it is sound. */
static void reload(const char *file)
{
    struct config *cfg = config_load(file, NULL, NULL, NULL);

    if (cfg == NULL) {
        log_error("reload of %s refused: the running configuration stays", file);
        return;
    }
    config_publish(cfg);
    log_info("reloaded %s (%zu plugins); new sessions use it", file, cfg->chain->nlinks);
}

/* The signals main.c owns, blocked in every thread and taken by sigwait. */
static void own_signals(sigset_t *set, int with_milter)
{
    sigemptyset(set);
    sigaddset(set, SIGUSR1);
    if (!with_milter) {
        sigaddset(set, SIGHUP);
        sigaddset(set, SIGTERM);
        sigaddset(set, SIGINT);
    }
}

/* reload_thread - with a milter front-end: SIGUSR1 reloads, forever. */
static void *reload_thread(void *arg)
{
    const char *file = arg;
    sigset_t set;
    int sig;

    own_signals(&set, 1);
    for (;;)
        if (sigwait(&set, &sig) == 0 && sig == SIGUSR1)
            reload(file);
    return NULL;
}

/* wait_for_stop - without a milter: reload on HUP/USR1 until TERM/INT. */
static void wait_for_stop(const char *file)
{
    sigset_t set;
    int sig;

    own_signals(&set, 0);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP || sig == SIGUSR1) {
            reload(file);
            continue;
        }
        log_info("signal %d: stopping", sig);
        return;
    }
}

/* serve - run the configured front-ends until told to stop. */
static void serve(struct config *cfg, const char *file)
{
    sigset_t set, all;
    pthread_t tid;
    long grace = cfg->root.shutdown_grace;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&all);
    sigaddset(&all, SIGUSR1);
    sigaddset(&all, SIGHUP);
    sigaddset(&all, SIGTERM);
    sigaddset(&all, SIGINT);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    own_signals(&set, cfg->milter != NULL);
    if (cfg->smtp != NULL && smtp_frontend_start() < 0)
        log_fatal("smtp front-end did not start");
    log_info("started: front-ends%s%s, %zu plugins", cfg->smtp ? " smtp" : "",
             cfg->milter ? " milter" : "", cfg->chain->nlinks);
    if (cfg->milter != NULL) {
        if (pthread_create(&tid, NULL, reload_thread, (void *)file) != 0)
            log_fatal("cannot start the reload thread");
        pthread_detach(tid);
        if (milter_frontend_run() < 0)
            log_error("milter front-end stopped with an error");
    } else {
        wait_for_stop(file);
    }
    if (cfg->smtp != NULL)
        smtp_frontend_stop(grace);
}

int main(int argc, char **argv)
{
    struct options opt = { 0 };
    struct config *cfg;

    parse_args(argc, argv, &opt);
    if (opt.version) {
        version_print(stdout);
        return 0;
    }
    if (opt.test)
        return check_only(&opt);
    log_open("submilter", opt.foreground, opt.debug);
    if ((cfg = config_load(opt.file, NULL, opt.foreground ? report_stderr : NULL, NULL)) == NULL)
        log_fatal("%s: configuration has errors; not starting", opt.file);
    if (cfg->smtp == NULL && cfg->milter == NULL)
        log_fatal("%s: no front-end: add an smtp {} or a milter {} block", opt.file);
    config_ref(cfg);           /* main keeps the start-up snapshot for its own settings */
    config_publish(cfg);
    raise_nofile();
    pid_file_lock(cfg->root.pid_file);        /* before binding: libmilter would
                                                 replace a running daemon's socket */
    if (cfg->smtp != NULL && smtp_frontend_init(cfg) < 0)
        log_fatal("smtp front-end: cannot listen");
    if (cfg->milter != NULL && milter_frontend_init(cfg) < 0)
        log_fatal("milter front-end: cannot listen");
    if (!opt.foreground)
        detach();
    pid_file_write(cfg->root.pid_file);
    drop_privileges(&cfg->root);
    serve(cfg, opt.file);
    pid_file_remove(cfg->root.pid_file);
    config_publish(NULL);
    config_unref(&cfg);
    log_info("stopped");
    return 0;
}
