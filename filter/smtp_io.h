/*
 * smtp_io.h - buffered, deadline-bounded I/O on one non-blocking socket,
 * used for the client side and the backend side of the smtp front-end.
 *
 * An sio owns two fixed buffers (sizes given at init; they never grow): the
 * input buffer is read with sio_fill() and consumed with sio_getline() or
 * by the caller directly (in[start..end)); the output buffer is filled with
 * sio_put()/sio_printf() and written with sio_flush(), one send() per flush
 * so that a group of replies leaves in one segment. Every wait is bounded
 * by a timeout; an optional stop descriptor (the server's shutdown pipe)
 * interrupts idle waits. Once a TLS handshake set io->ssl, the same calls
 * read and write through TLS. It knows nothing of SMTP beyond lines.
 */
#ifndef SUBM_SMTP_IO_H
#define SUBM_SMTP_IO_H

#include <stdarg.h>
#include <stddef.h>

/* sio_fill / sio_getline results */
#define SIO_OK       1
#define SIO_MORE     0      /* no complete line yet */
#define SIO_EOF     -1
#define SIO_ERROR   -2
#define SIO_TIMEOUT -3
#define SIO_STOP    -4

struct sio {
    int     fd;
    int     stop_fd;        /* -1: none; readable means "stop waiting" */
    char   *in;
    size_t  in_cap, in_start, in_end;
    char   *out;
    size_t  out_cap, out_len;
    int     skipping;       /* discarding the rest of an over-long line */
    int     failed;         /* a write failed: further output is dropped */
    long    wtimeout;       /* ms for flushes a full output buffer forces */
    int     answer_due;     /* we wrote since the last read: the peer's
                               answer needs a round trip, so wait first */
    void   *ssl;            /* an OpenSSL SSL * once TLS is on (smtp_tls.c) */
};

/* sio_init - take fd (already non-blocking, with TCP_NODELAY) with buffers. */
void sio_init(struct sio *io, int fd, size_t in_cap, size_t out_cap);
/* sio_fini - free the buffers and close fd (if >= 0). */
void sio_fini(struct sio *io);

static inline size_t sio_avail(const struct sio *io)
{
    return io->in_end - io->in_start;
}

/* sio_fill - read what is there, waiting up to timeout_ms for something.
 * Returns bytes read (> 0) or SIO_EOF/ERROR/TIMEOUT/STOP. Full buffer:
 * returns SIO_ERROR (callers consume before filling). */
int  sio_fill(struct sio *io, long timeout_ms, int use_stop);

/*
 * sio_getline - the next line ending in LF, from the buffer only. *line_r
 * points into the buffer (valid until the next fill), *len_r includes the
 * line end. A line longer than max is discarded up to its LF with bounded
 * memory and returned as *toolong_r = 1 (len 0). Returns SIO_OK or SIO_MORE.
 */
int  sio_getline(struct sio *io, size_t max, const char **line_r,
                 size_t *len_r, int *toolong_r);

/* sio_pending_input - bytes buffered or waiting on the socket (no wait). */
int  sio_pending_input(struct sio *io);

void sio_put(struct sio *io, const void *p, size_t n);
void sio_printf(struct sio *io, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
void sio_vprintf(struct sio *io, const char *fmt, va_list ap);
/* sio_flush - write the output buffer; 0, or -1 (error or timeout). */
int  sio_flush(struct sio *io, long timeout_ms);

#endif
