/*
 * log.c - logging to syslog (facility mail) and, with -f, to stderr.
 *
 * Each call formats one line into a stack buffer (long lines are cut, with
 * "..." at the end) and hands it to syslog(3), which is thread-safe; the
 * stderr copy is one write(2) per line so threads do not interleave. It
 * does not rotate files or buffer.
 *
 * syslog(3) is only called while a syslog daemon's socket exists: with none
 * listening, glibc tries (socket, connect, close) again on every line, under
 * its lock, which costs a busy server more than the line itself; a stat()
 * per line is cheaper, and finds a syslog daemon started later at once.
 * Meanwhile lines go to stderr.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LINE_MAX_LEN 2048
#define SYSLOG_SOCKET "/dev/log"
#define SYSLOG_RECHECK_MS 10000

static int log_to_stderr;
static int log_debug_on;
static int log_syslog_open;
static long log_pid;                    /* ours, refreshed in a forked child */
static int log_syslog_there;            /* SYSLOG_SOCKET existed at the last check */
static long long log_syslog_checked;    /* when (ms, monotonic) */
static void (*log_capture)(enum log_level, const char *);

static const char *const level_names[] = {
    "debug", "info", "warning", "error", "fatal", "panic"
};
static const int level_prio[] = {
    LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT, LOG_CRIT
};

/* log_after_fork - a forked child logs under its own pid. */
static void log_after_fork(void)
{
    log_pid = (long)getpid();
}

/* log_open - start logging as ident; to_stderr copies lines to stderr. */
void log_open(const char *ident, int to_stderr, int debug)
{
    static int atfork_set;

    log_to_stderr = to_stderr;
    log_debug_on = debug;
    log_pid = (long)getpid();
    if (!atfork_set && pthread_atfork(NULL, NULL, log_after_fork) == 0)
        atfork_set = 1;
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    log_syslog_open = 1;
}

/* syslog_listening - does a syslog daemon's socket exist? Once seen it is
 * trusted for SYSLOG_RECHECK_MS (glibc reconnects by itself); while it is
 * missing it is looked for at every line (one stat), so that no line is
 * lost once a restarted syslog daemon is back. A race between threads only
 * repeats a stat. */
static int syslog_listening(void)
{
    struct timespec ts;
    struct stat st;
    long long now;
    int there;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (__atomic_load_n(&log_syslog_there, __ATOMIC_RELAXED) &&
        now - __atomic_load_n(&log_syslog_checked, __ATOMIC_RELAXED) < SYSLOG_RECHECK_MS)
        return 1;
    there = stat(SYSLOG_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode);
    __atomic_store_n(&log_syslog_there, there, __ATOMIC_RELAXED);
    __atomic_store_n(&log_syslog_checked, now, __ATOMIC_RELAXED);
    return there;
}

/* log_set_debug - turn debug lines on or off. */
void log_set_debug(int on)
{
    log_debug_on = on;
}

/* log_debug_enabled - whether debug lines are wanted. */
int log_debug_enabled(void)
{
    return log_debug_on;
}

/* log_set_capture - tests: also send lines to fn. */
void log_set_capture(void (*fn)(enum log_level lvl, const char *line))
{
    log_capture = fn;
}

/* emit - send one formatted line to every sink. */
static void emit(enum log_level lvl, const char *line)
{
    int to_syslog = log_syslog_open && syslog_listening();

    if (to_syslog)
        syslog(level_prio[lvl], "%s%s%s",
               lvl == LOG_LVL_INFO || lvl == LOG_LVL_DEBUG ? "" : level_names[lvl],
               lvl == LOG_LVL_INFO || lvl == LOG_LVL_DEBUG ? "" : ": ", line);
    if (log_to_stderr || !to_syslog) {
        char buf[LINE_MAX_LEN + 64];
        int n = snprintf(buf, sizeof(buf), "submilter[%ld]: %s: %s\n",
                         log_pid ? log_pid : (long)getpid(), level_names[lvl], line);

        if (n > (int)sizeof(buf) - 1)
            n = (int)sizeof(buf) - 1;
        if (n > 0 && write(STDERR_FILENO, buf, (size_t)n) < 0) {
            /* nowhere left to report it */
        }
    }
    if (log_capture != NULL)
        log_capture(lvl, line);
}

/* log_vmsg - format and emit a line at lvl. */
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
    char line[LINE_MAX_LEN];
    int n;

    if (lvl == LOG_LVL_DEBUG && !log_debug_on)
        return;
    n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n >= (int)sizeof(line))
        memcpy(line + sizeof(line) - 4, "...", 4);
    emit(lvl, line);
}

/* log_msg - format and emit a line at lvl. */
void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(lvl, fmt, ap);
    va_end(ap);
}

#define LOG_AT(fn, lvl) \
    void fn(const char *fmt, ...) \
    { va_list ap; va_start(ap, fmt); log_vmsg(lvl, fmt, ap); va_end(ap); }

LOG_AT(log_info, LOG_LVL_INFO)
LOG_AT(log_warn, LOG_LVL_WARN)
LOG_AT(log_error, LOG_LVL_ERROR)

/* log_with_errno - emit fmt followed by ": strerror(err)". */
static void log_with_errno(enum log_level lvl, int err, const char *fmt, va_list ap)
{
    char line[LINE_MAX_LEN];
    char ebuf[128];
    const char *es;

    vsnprintf(line, sizeof(line), fmt, ap);
    es = strerror_r(err, ebuf, sizeof(ebuf));
    log_msg(lvl, "%s: %s", line, es);
}

/* log_warn_errno - a warning with strerror(errno). */
void log_warn_errno(const char *fmt, ...)
{
    int err = errno;
    va_list ap;

    va_start(ap, fmt);
    log_with_errno(LOG_LVL_WARN, err, fmt, ap);
    va_end(ap);
    errno = err;
}

/* log_error_errno - an error with strerror(errno). */
void log_error_errno(const char *fmt, ...)
{
    int err = errno;
    va_list ap;

    va_start(ap, fmt);
    log_with_errno(LOG_LVL_ERROR, err, fmt, ap);
    va_end(ap);
    errno = err;
}

/* log_fatal - bad configuration or environment: log and exit 1. */
void log_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(LOG_LVL_FATAL, fmt, ap);
    va_end(ap);
    exit(1);
}

/* log_panic - our own bug: log and abort. */
void log_panic(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(LOG_LVL_PANIC, fmt, ap);
    va_end(ap);
    abort();
}
