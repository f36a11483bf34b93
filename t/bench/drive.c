/*
 * drive.c - the bench's own SMTP load driver, for what smtp-source cannot
 * express: a fixed number of messages per connection (smtp-source's -d keeps
 * one connection for the whole run).
 *
 * drive -s SESSIONS -n PER_CONN -m TOTAL -F FILE -f FROM -t TO [-o LATFILE]
 *       HOST:PORT
 *
 * SESSIONS threads each open a connection, EHLO, send up to PER_CONN
 * messages (MAIL, RCPT, DATA, body and dot; one command at a time and no
 * pipelining, as smtp-source does), QUIT, and connect again until TOTAL
 * messages were sent. FILE is the message (header and body, LF or CRLF
 * lines); it is sent with CRLF line ends and dot-stuffed. Each message is
 * timed as lat.c times smtp-source's: from connect() for the first message
 * of a connection, from MAIL for later ones, to the reply to the dot; with
 * -o the times go to LATFILE ("MICROSECONDS CODE" per line). Prints
 * "ok=N fail=M secs=T" on stdout. A failed reply or I/O error ends that
 * connection and counts the message as failed; it does not retry.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

struct sess {
    pthread_t tid;
    int fd;
    char buf[8192];         /* reply bytes read and not yet consumed */
    size_t len;
    unsigned *lat;          /* this thread's latencies, microseconds */
    char *code;
    size_t nlat, cap;
};

static struct addrinfo *dest;
static const char *msg_from, *msg_to;
static char *body;          /* CRLF, dot-stuffed, ending in CRLF . CRLF */
static size_t body_len;
static unsigned per_conn = 1;
static atomic_long remaining;
static atomic_long n_ok, n_fail;

/* now - monotonic seconds */
static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* write_all - write the whole buffer or fail */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t) w;
    }
    return 0;
}

/* read_reply - read one whole (possibly multi-line) reply; its code or -1 */
static int read_reply(struct sess *s)
{
    for (;;) {
        char *start = s->buf, *nl;

        while ((nl = memchr(start, '\n', s->len - (size_t) (start - s->buf))) != NULL) {
            size_t linelen = (size_t) (nl - start) + 1;

            if (linelen >= 4 && start[3] != '-') {
                int code = atoi(start);
                size_t used = (size_t) (nl + 1 - s->buf);

                memmove(s->buf, nl + 1, s->len - used);
                s->len -= used;
                return code;
            }
            start = nl + 1;
        }
        if (s->len == sizeof s->buf) {
            /* a reply line longer than our buffer: drop what we have */
            s->len = 0;
        }
        ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        s->len += (size_t) r;
    }
}

/* command - send one command line and return the reply code (-1: I/O) */
static int command(struct sess *s, const char *line)
{
    if (write_all(s->fd, line, strlen(line)) < 0)
        return -1;
    return read_reply(s);
}

/* keep - store one message's latency */
static void keep(struct sess *s, double secs, int code)
{
    if (s->nlat == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        unsigned *l = realloc(s->lat, cap * sizeof *l);
        char *c;

        if (l == NULL)
            return;
        s->lat = l;
        if ((c = realloc(s->code, cap)) == NULL)
            return;
        s->code = c;
        s->cap = cap;
    }
    s->lat[s->nlat] = (unsigned) (secs * 1e6 + 0.5);
    s->code[s->nlat] = (char) ('0' + (code > 0 ? code / 100 : 0));
    s->nlat++;
}

/* claim - take one message from the shared count; 0 when none is left */
static int claim(void)
{
    return atomic_fetch_sub(&remaining, 1) > 0;
}

/* one_message - send a message on the open session; 0 if it was accepted */
static int one_message(struct sess *s, double t0)
{
    char line[1024];
    int code;

    snprintf(line, sizeof line, "MAIL FROM:<%s>\r\n", msg_from);
    if ((code = command(s, line)) != 250)
        goto fail;
    snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", msg_to);
    if ((code = command(s, line)) != 250 && code != 251)
        goto fail;
    if ((code = command(s, "DATA\r\n")) != 354)
        goto fail;
    if (write_all(s->fd, body, body_len) < 0)
        code = -1;
    else
        code = read_reply(s);
    keep(s, now() - t0, code);
    if (code != 250)
        goto fail_counted;
    atomic_fetch_add(&n_ok, 1);
    return 0;
fail:
    keep(s, now() - t0, code);
fail_counted:
    atomic_fetch_add(&n_fail, 1);
    return -1;
}

/* one_connection - connect, EHLO, up to per_conn messages, QUIT */
static int one_connection(struct sess *s)
{
    double t0 = now();
    unsigned i;

    if (!claim())
        return -1;
    s->len = 0;
    s->fd = socket(dest->ai_family, SOCK_STREAM, 0);
    if (s->fd < 0 || connect(s->fd, dest->ai_addr, dest->ai_addrlen) < 0
        || read_reply(s) != 220 || command(s, "EHLO bench.example.com\r\n") != 250) {
        keep(s, now() - t0, -1);
        atomic_fetch_add(&n_fail, 1);
        if (s->fd >= 0)
            close(s->fd);
        return 0;
    }
    for (i = 0; i < per_conn; i++) {
        if (i > 0) {
            if (!claim())
                break;
            t0 = now();
        }
        if (one_message(s, t0) < 0)
            break;
    }
    (void) command(s, "QUIT\r\n");
    close(s->fd);
    return 0;
}

/* session_main - one thread: connections until the count is used up */
static void *session_main(void *arg)
{
    struct sess *s = arg;

    while (one_connection(s) == 0)
        ;
    return NULL;
}

/* load_body - read FILE, make CRLF lines, dot-stuff, append the dot */
static int load_body(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0, alloc;
    ssize_t n;

    if (fp == NULL)
        return -1;
    fseek(fp, 0, SEEK_END);
    alloc = (size_t) ftell(fp) * 2 + 16;
    rewind(fp);
    if ((body = malloc(alloc)) == NULL)
        return -1;
    while ((n = getline(&line, &cap, fp)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (line[0] == '.')
            body[body_len++] = '.';
        memcpy(body + body_len, line, (size_t) n);
        body_len += (size_t) n;
        body[body_len++] = '\r';
        body[body_len++] = '\n';
    }
    memcpy(body + body_len, ".\r\n", 3);
    body_len += 3;
    free(line);
    fclose(fp);
    return 0;
}

int main(int argc, char **argv)
{
    const char *file = NULL, *latfile = NULL;
    unsigned sessions = 1, i;
    long total = 1;
    struct sess *ss;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    char *host, *port;
    double t0, t1;
    int c;

    msg_from = "sender@example.com";
    msg_to = "rcpt@example.net";
    while ((c = getopt(argc, argv, "s:n:m:F:f:t:o:")) != -1) {
        switch (c) {
        case 's': sessions = (unsigned) atoi(optarg); break;
        case 'n': per_conn = (unsigned) atoi(optarg); break;
        case 'm': total = atol(optarg); break;
        case 'F': file = optarg; break;
        case 'f': msg_from = optarg; break;
        case 't': msg_to = optarg; break;
        case 'o': latfile = optarg; break;
        default: goto usage;
        }
    }
    if (optind != argc - 1 || file == NULL || sessions == 0 || per_conn == 0)
        goto usage;
    host = argv[optind];
    if ((port = strrchr(host, ':')) == NULL)
        goto usage;
    *port++ = '\0';
    if (getaddrinfo(host, port, &hints, &dest) != 0) {
        fprintf(stderr, "drive: cannot resolve %s\n", host);
        return 2;
    }
    if (load_body(file) < 0) {
        fprintf(stderr, "drive: cannot read %s\n", file);
        return 2;
    }
    atomic_store(&remaining, total);
    if ((ss = calloc(sessions, sizeof *ss)) == NULL)
        return 2;
    t0 = now();
    for (i = 0; i < sessions; i++) {
        pthread_attr_t attr;

        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&ss[i].tid, &attr, session_main, &ss[i]) != 0) {
            fprintf(stderr, "drive: cannot start thread %u\n", i);
            return 2;
        }
        pthread_attr_destroy(&attr);
    }
    for (i = 0; i < sessions; i++)
        pthread_join(ss[i].tid, NULL);
    t1 = now();
    printf("ok=%ld fail=%ld secs=%.6f\n", (long) atomic_load(&n_ok),
           (long) atomic_load(&n_fail), t1 - t0);
    if (latfile != NULL) {
        FILE *fp = fopen(latfile, "w");
        size_t j;

        if (fp == NULL)
            return 2;
        for (i = 0; i < sessions; i++)
            for (j = 0; j < ss[i].nlat; j++)
                fprintf(fp, "%u %c\n", ss[i].lat[j], ss[i].code[j]);
        fclose(fp);
    }
    return atomic_load(&n_fail) > 0 ? 1 : 0;
usage:
    fprintf(stderr, "usage: drive -s SESSIONS -n PER_CONN -m TOTAL -F FILE "
            "[-f FROM] [-t TO] [-o LATFILE] HOST:PORT\n");
    return 2;
}
