/*
 * log.h - the daemon's logging: syslog facility mail, optionally stderr.
 *
 * One line per call, printf-style. log_fatal() is for bad configuration or
 * environment at startup and exits 1; log_panic() is for our own bugs and
 * aborts. Lines about a session start with its id (callers pass it in the
 * format). Thread-safe. Tests may capture lines with log_set_capture().
 */
#ifndef SUBM_LOG_H
#define SUBM_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR,
                 LOG_LVL_FATAL, LOG_LVL_PANIC };

#define LOG_FMT(f, a) __attribute__((format(printf, f, a)))

void log_open(const char *ident, int to_stderr, int debug);
void log_set_debug(int on);
int  log_debug_enabled(void);
/* log_set_capture - send every line to fn too (tests); NULL to stop. */
void log_set_capture(void (*fn)(enum log_level lvl, const char *line));

void log_msg(enum log_level lvl, const char *fmt, ...) LOG_FMT(2, 3);
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap);

#define log_debug(...) do { if (log_debug_enabled()) \
                                log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)
void log_info(const char *fmt, ...) LOG_FMT(1, 2);
void log_warn(const char *fmt, ...) LOG_FMT(1, 2);
void log_error(const char *fmt, ...) LOG_FMT(1, 2);
/* log_*_errno - the same, with ": strerror(errno)" appended. */
void log_warn_errno(const char *fmt, ...) LOG_FMT(1, 2);
void log_error_errno(const char *fmt, ...) LOG_FMT(1, 2);
void log_fatal(const char *fmt, ...) LOG_FMT(1, 2) __attribute__((noreturn));
void log_panic(const char *fmt, ...) LOG_FMT(1, 2) __attribute__((noreturn));

#endif
