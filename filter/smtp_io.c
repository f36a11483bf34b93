/*
 * smtp_io.c - buffered, deadline-bounded socket I/O (see smtp_io.h).
 *
 * Buffers are fixed at init: an over-long line is skipped, never grown
 * into; output that does not fit forces a flush. Writes use send() with
 * MSG_NOSIGNAL so a vanished peer is an error, not a signal.
 */
#include <stdlib.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "pool.h"
#include "smtp_io.h"

/* sio_init - take fd with buffers of the given sizes. The fd is already
 * non-blocking with TCP_NODELAY: accept4(SOCK_NONBLOCK) gives both (Linux
 * copies TCP_NODELAY from the listener), relay_connect sets them; setting
 * them again here would cost three system calls per connection. */
void sio_init(struct sio *io, int fd, size_t in_cap, size_t out_cap)
{
    memset(io, 0, sizeof(*io));
    io->fd = fd;
    io->stop_fd = -1;
    io->wtimeout = 60000;
    io->in_cap = in_cap;
    io->out_cap = out_cap;
    io->in = xmalloc(in_cap);
    io->out = xmalloc(out_cap);
}

/* sio_fini - free buffers, close the socket. */
void sio_fini(struct sio *io)
{
    if (io->ssl != NULL) {
        (void)SSL_shutdown(io->ssl);    /* one try: the peer may be gone */
        SSL_free(io->ssl);
        io->ssl = NULL;
    }
    free(io->in);
    free(io->out);
    io->in = io->out = NULL;
    if (io->fd >= 0)
        close(io->fd);
    io->fd = -1;
}

/* sio_wait - poll for events on fd (and stop_fd); 1 ready, or SIO_*. */
static int sio_wait(struct sio *io, short events, long timeout_ms, int use_stop)
{
    struct pollfd pf[2];
    int n = 1, r;

    pf[0].fd = io->fd;
    pf[0].events = events;
    pf[0].revents = 0;
    if (use_stop && io->stop_fd >= 0) {
        pf[1].fd = io->stop_fd;
        pf[1].events = POLLIN;
        pf[1].revents = 0;
        n = 2;
    }
    do
        r = poll(pf, n, timeout_ms < 0 ? -1 : (int)timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return SIO_ERROR;
    if (r == 0)
        return SIO_TIMEOUT;
    if (n == 2 && pf[1].revents && !pf[0].revents)
        return SIO_STOP;
    return 1;
}

/* sio_tls_io - one SSL_read (write 0) or SSL_write (write 1): bytes done,
 * 0 with *want_r set to the poll event to wait for, or SIO_EOF/ERROR. */
static int sio_tls_io(struct sio *io, int write, void *buf, size_t len, short *want_r)
{
    int n, e;

    ERR_clear_error();
    n = write ? SSL_write(io->ssl, buf, (int)len) : SSL_read(io->ssl, buf, (int)len);
    if (n > 0)
        return n;
    e = SSL_get_error(io->ssl, n);
    if (e == SSL_ERROR_WANT_READ) {
        *want_r = POLLIN;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        *want_r = POLLOUT;
        return 0;
    }
    return e == SSL_ERROR_ZERO_RETURN ? SIO_EOF : SIO_ERROR;
}

/* sio_compact - move unread input to the front of the buffer. */
static void sio_compact(struct sio *io)
{
    size_t n = io->in_end - io->in_start;

    if (io->in_start == 0)
        return;
    if (n)
        memmove(io->in, io->in + io->in_start, n);
    io->in_start = 0;
    io->in_end = n;
}

/* sio_fill - read more input, waiting up to timeout_ms. */
int sio_fill(struct sio *io, long timeout_ms, int use_stop)
{
    ssize_t n;
    int r;

    sio_compact(io);
    if (io->in_end == io->in_cap)
        return SIO_ERROR;
    for (;;) {
        if (io->ssl != NULL) {
            short want;
            r = sio_tls_io(io, 0, io->in + io->in_end, io->in_cap - io->in_end, &want);
            if (r > 0) {
                io->in_end += (size_t)r;
                return r;
            }
            if (r < 0)
                return r;
            r = sio_wait(io, want, timeout_ms, use_stop);
            if (r != 1)
                return r;
            continue;
        }
        if (io->answer_due) {
            /* what we just wrote cannot have been answered yet: a read now
             * would only fail with EAGAIN (most waits, measured) */
            io->answer_due = 0;
            r = sio_wait(io, POLLIN, timeout_ms, use_stop);
            if (r != 1)
                return r;
        }
        n = recv(io->fd, io->in + io->in_end, io->in_cap - io->in_end, 0);
        if (n > 0) {
            io->in_end += (size_t)n;
            return (int)n;
        }
        if (n == 0)
            return SIO_EOF;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return SIO_ERROR;
        r = sio_wait(io, POLLIN, timeout_ms, use_stop);
        if (r != 1)
            return r;
    }
}

/* sio_getline - the next complete line from the buffer. */
int sio_getline(struct sio *io, size_t max, const char **line_r,
                size_t *len_r, int *toolong_r)
{
    char *p = io->in + io->in_start;
    size_t n = io->in_end - io->in_start;
    char *lf = memchr(p, '\n', n);

    *toolong_r = 0;
    if (lf == NULL) {
        /* keep at most max bytes of an unfinished line */
        if (n > max || (io->skipping && n > 0)) {
            io->skipping = 1;
            io->in_start = io->in_end = 0;
        }
        return SIO_MORE;
    }
    io->in_start += (size_t)(lf - p) + 1;
    if (io->skipping || (size_t)(lf - p) + 1 > max) {
        io->skipping = 0;
        *toolong_r = 1;
        *line_r = NULL;
        *len_r = 0;
        return SIO_OK;
    }
    *line_r = p;
    *len_r = (size_t)(lf - p) + 1;
    return SIO_OK;
}

/* sio_pending_input - is there input buffered or on the socket now? */
int sio_pending_input(struct sio *io)
{
    struct pollfd pf;

    if (io->in_end > io->in_start)
        return 1;
    if (io->ssl != NULL && SSL_pending(io->ssl) > 0)
        return 1;
    pf.fd = io->fd;
    pf.events = POLLIN;
    pf.revents = 0;
    return poll(&pf, 1, 0) > 0;
}

/* sio_put - append output, flushing when the buffer is full. */
void sio_put(struct sio *io, const void *p, size_t n)
{
    const char *c = p;
    size_t k;

    while (n > 0) {
        if (io->out_len == io->out_cap && sio_flush(io, io->wtimeout) < 0) {
            io->out_len = 0;            /* dropped: the peer is gone */
            return;
        }
        k = io->out_cap - io->out_len;
        if (k > n)
            k = n;
        memcpy(io->out + io->out_len, c, k);
        io->out_len += k;
        c += k;
        n -= k;
    }
}

/* sio_vprintf - formatted output (one formatted piece up to 4 KiB). */
void sio_vprintf(struct sio *io, const char *fmt, va_list ap)
{
    char buf[4096];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);

    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;            /* callers bound their text */
    sio_put(io, buf, (size_t)n);
}

void sio_printf(struct sio *io, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sio_vprintf(io, fmt, ap);
    va_end(ap);
}

/* sio_flush - write everything buffered, in as few sends as the kernel takes. */
int sio_flush(struct sio *io, long timeout_ms)
{
    size_t off = 0;
    ssize_t n;
    int r;

    if (io->failed) {
        io->out_len = 0;
        return -1;
    }
    while (off < io->out_len) {
        if (io->ssl != NULL) {
            short want;
            r = sio_tls_io(io, 1, io->out + off, io->out_len - off, &want);
            if (r > 0) {
                off += (size_t)r;
                continue;
            }
            if (r == 0 && sio_wait(io, want, timeout_ms, 0) == 1)
                continue;
            io->failed = 1;
            io->out_len = 0;
            return -1;
        }
        n = send(io->fd, io->out + off, io->out_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            r = sio_wait(io, POLLOUT, timeout_ms, 0);
            if (r == 1)
                continue;
        }
        io->failed = 1;
        io->out_len = 0;
        return -1;
    }
    if (io->out_len > 0)
        io->answer_due = 1;
    io->out_len = 0;
    return 0;
}
