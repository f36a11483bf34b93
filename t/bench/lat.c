/*
 * lat.c - per-message latency of Postfix's smtp-source, by LD_PRELOAD.
 *
 * smtp-source prints no latency, so the bench loads this shim into it
 * (LD_PRELOAD=lat.so BENCH_LAT_FILE=out smtp-source ...). It watches the
 * client side of each SMTP connection through connect/write/send/read/close
 * and times each message from the client's first byte of work for it to the
 * first reply byte read after the client wrote the final <CRLF>.<CRLF>:
 *   - the first message of a connection from connect() (so banner, EHLO and
 *     any connection set-up of the server count), later ones from MAIL FROM;
 *   - the end is the read() that brings the reply to the dot.
 * At exit it writes one line per message, "MICROSECONDS CODE", to
 * $BENCH_LAT_FILE. It does not interpret anything else, and it assumes the
 * single-threaded, non-pipelining client that smtp-source is.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#define MAX_FD 65536
#define MAX_MSG (4 * 1024 * 1024)

enum { ST_IDLE, ST_MAIL, ST_DATA, ST_DOT };

struct conn {
    double t_conn;          /* when connect() was called, 0 if not seen */
    double t0;              /* start of the current message */
    unsigned nmsg;          /* messages finished on this connection */
    int state;
    char tail[5];           /* last bytes written while in DATA */
    int ntail;
};

static struct conn conns[MAX_FD];
static unsigned *lat_us;
static char *lat_code;
static size_t nlat;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_read)(int, void *, size_t);
static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static int (*real_close)(int);

/* now - monotonic seconds */
static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* resolve - find the libc functions we wrap */
static void resolve(void)
{
    if (real_write)
        return;
    real_write = dlsym(RTLD_NEXT, "write");
    real_send = dlsym(RTLD_NEXT, "send");
    real_read = dlsym(RTLD_NEXT, "read");
    real_connect = dlsym(RTLD_NEXT, "connect");
    real_close = dlsym(RTLD_NEXT, "close");
}

/* record - keep one message's latency and the first digit of its reply */
static void record(double secs, char code)
{
    if (lat_us == NULL) {
        lat_us = malloc(MAX_MSG * sizeof *lat_us);
        lat_code = malloc(MAX_MSG);
        if (lat_us == NULL || lat_code == NULL)
            return;
    }
    if (nlat >= MAX_MSG)
        return;
    lat_us[nlat] = (unsigned) (secs * 1e6 + 0.5);
    lat_code[nlat] = code;
    nlat++;
}

/* saw_write - follow the client's side of the dialogue */
static void saw_write(int fd, const char *buf, size_t n)
{
    struct conn *c;
    size_t i;

    if (fd < 0 || fd >= MAX_FD || n == 0)
        return;
    c = &conns[fd];
    if (c->state == ST_IDLE && n >= 5 && strncasecmp(buf, "MAIL ", 5) == 0) {
        c->t0 = (c->nmsg == 0 && c->t_conn > 0) ? c->t_conn : now();
        c->state = ST_MAIL;
    } else if (c->state == ST_MAIL && n >= 6 && strncasecmp(buf, "DATA\r\n", 6) == 0) {
        c->state = ST_DATA;
        c->ntail = 0;
    } else if (c->state == ST_DATA) {
        for (i = (n > 5 ? n - 5 : 0); i < n; i++) {
            if (c->ntail == 5) {
                memmove(c->tail, c->tail + 1, 4);
                c->ntail = 4;
            }
            c->tail[c->ntail++] = buf[i];
        }
        if (c->ntail == 5 && memcmp(c->tail, "\r\n.\r\n", 5) == 0)
            c->state = ST_DOT;
    }
}

/* saw_read - the first reply bytes after the dot end the message */
static void saw_read(int fd, const char *buf, ssize_t n)
{
    struct conn *c;

    if (fd < 0 || fd >= MAX_FD || n <= 0)
        return;
    c = &conns[fd];
    if (c->state == ST_DOT) {
        record(now() - c->t0, buf[0]);
        c->nmsg++;
        c->state = ST_IDLE;
    }
}

ssize_t write(int fd, const void *buf, size_t n)
{
    resolve();
    saw_write(fd, buf, n);
    return real_write(fd, buf, n);
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    resolve();
    saw_write(fd, buf, n);
    return real_send(fd, buf, n, flags);
}

ssize_t read(int fd, void *buf, size_t n)
{
    ssize_t r;

    resolve();
    r = real_read(fd, buf, n);
    saw_read(fd, buf, r);
    return r;
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    resolve();
    if (fd >= 0 && fd < MAX_FD) {
        memset(&conns[fd], 0, sizeof conns[fd]);
        conns[fd].t_conn = now();
    }
    return real_connect(fd, sa, len);
}

int close(int fd)
{
    resolve();
    if (fd >= 0 && fd < MAX_FD)
        memset(&conns[fd], 0, sizeof conns[fd]);
    return real_close(fd);
}

/* dump - write the latencies where the bench asked for them */
__attribute__((destructor)) static void dump(void)
{
    const char *path = getenv("BENCH_LAT_FILE");
    FILE *fp;
    size_t i;

    if (path == NULL || (fp = fopen(path, "w")) == NULL)
        return;
    for (i = 0; i < nlat; i++)
        fprintf(fp, "%u %c\n", lat_us[i], lat_code[i]);
    fclose(fp);
}
