/*
 * spool.c - one message body, in memory up to a bound, then in a file.
 *
 * The file is made with O_TMPFILE where the file system allows it (no name
 * ever exists) and with mkstemp()+unlink() otherwise, so a crash or kill
 * leaves nothing in the spool folder. The memory part is kept when the file
 * starts: reads combine both. No parsing here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"
#include "spool.h"

struct spool {
    unsigned char *mem;
    size_t         mem_len, mem_cap, mem_limit;
    int            fd;           /* -1 until memory is full */
    uint64_t       file_len;
    char          *dir;
};

/* spool_new - an empty spool. */
struct spool *spool_new(size_t mem_limit, const char *dir)
{
    struct spool *sp = xcalloc(1, sizeof(*sp));

    sp->mem_limit = mem_limit;
    sp->fd = -1;
    sp->dir = xstrdup(dir && *dir ? dir : "/tmp");
    return sp;
}

/* spool_reset - empty it, close the file. */
void spool_reset(struct spool *sp)
{
    if (sp->fd >= 0)
        close(sp->fd);
    sp->fd = -1;
    sp->file_len = 0;
    sp->mem_len = 0;
    /* keep a small buffer; give back a big one */
    if (sp->mem_cap > 64 * 1024) {
        free(sp->mem);
        sp->mem = NULL;
        sp->mem_cap = 0;
    }
}

/* spool_free - release everything; *spp becomes NULL. */
void spool_free(struct spool **spp)
{
    struct spool *sp = *spp;

    if (sp == NULL)
        return;
    spool_reset(sp);
    free(sp->mem);
    free(sp->dir);
    free(sp);
    *spp = NULL;
}

/* open_tmp - an anonymous file in the spool folder. */
static int open_tmp(struct spool *sp)
{
    char path[4096];
    int fd;

#ifdef O_TMPFILE
    fd = open(sp->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
#endif
    if (snprintf(path, sizeof(path), "%s/submilter.XXXXXX", sp->dir) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* write_all - write len bytes at the end of the file. */
static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* spool_write - append data. */
int spool_write(struct spool *sp, const void *data, size_t len)
{
    const unsigned char *p = data;

    if (sp->fd < 0) {
        size_t room = sp->mem_limit - sp->mem_len;
        size_t take = len < room ? len : room;

        if (take > 0) {
            if (sp->mem_len + take > sp->mem_cap) {
                size_t cap = sp->mem_cap ? sp->mem_cap : 4096;

                while (cap < sp->mem_len + take)
                    cap *= 2;
                if (cap > sp->mem_limit)
                    cap = sp->mem_limit;
                sp->mem = xrealloc(sp->mem, cap);
                sp->mem_cap = cap;
            }
            memcpy(sp->mem + sp->mem_len, p, take);
            sp->mem_len += take;
            p += take;
            len -= take;
        }
        if (len == 0)
            return 0;
        if ((sp->fd = open_tmp(sp)) < 0) {
            log_error_errno("spool: cannot make a temporary file in %s", sp->dir);
            return -1;
        }
    }
    if (write_all(sp->fd, p, len) < 0) {
        log_error_errno("spool: write to temporary file in %s", sp->dir);
        return -1;
    }
    sp->file_len += len;
    return 0;
}

/* spool_read - copy up to len bytes at off into buf. */
long spool_read(struct spool *sp, uint64_t off, void *buf, size_t len)
{
    unsigned char *out = buf;
    size_t done = 0;

    if (off < sp->mem_len) {
        size_t take = sp->mem_len - (size_t)off;

        if (take > len)
            take = len;
        memcpy(out, sp->mem + off, take);
        done = take;
        off += take;
    }
    if (done < len && sp->fd >= 0 && off >= sp->mem_len) {
        uint64_t foff = off - sp->mem_len;
        ssize_t n;

        if (foff >= sp->file_len)
            return (long)done;
        do
            n = pread(sp->fd, out + done, len - done, (off_t)foff);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            log_error_errno("spool: read from temporary file");
            return -1;
        }
        done += (size_t)n;
    }
    return (long)done;
}

/* spool_size - bytes held. */
uint64_t spool_size(const struct spool *sp)
{
    return sp->mem_len + sp->file_len;
}

/* spool_on_disk - whether a file is in use. */
int spool_on_disk(const struct spool *sp)
{
    return sp->fd >= 0;
}
