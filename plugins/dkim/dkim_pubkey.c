/*
 * dkim_pubkey.c - public key records from a file or the DNS, with a
 * deadline (see dkim_pubkey.h).
 *
 * A DNS lookup is a job shared by the waiting session and a detached worker
 * thread; whichever lets go last frees it, so a session that gives up at its
 * deadline leaves nothing behind but a worker that ends with the resolver's
 * own timeout. The source counts its workers; freed while some still run,
 * it is destroyed by the last of them.
 */
#define _GNU_SOURCE 1               /* dladdr */
#include <sys/types.h>
#include <netinet/in.h>
#include <dlfcn.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <resolv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "dkim_pubkey.h"

#define PK_MAX_WORKERS 64
#define PK_RECORD_MAX  4096

struct pk_entry {
    char *name;
    char *record;       /* NULL: DNS failure */
};

struct pk_source {
    struct pk_entry *entries;    /* file mode */
    size_t           n;
    int              file_mode;
    pthread_mutex_t  mu;
    long             running;         /* workers alive */
    int              closing;         /* freed; the last worker frees */
};

struct pk_job {
    pthread_mutex_t   mu;
    pthread_cond_t    cv;
    int               refs, done;
    struct pk_source *src;
    char              name[512];
    enum pk_status    status;
    char              record[PK_RECORD_MAX];
};

static const char *const status_names[] = { "found", "missing", "tempfail", "timeout" };

/* dkim_pubkey_status_name - see dkim_pubkey.h */
const char *dkim_pubkey_status_name(enum pk_status st)
{
    return (unsigned)st <= PK_TIMEOUT ? status_names[st] : "?";
}

/* now_ms - monotonic milliseconds */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* file_load - read "NAME RECORD" lines */
static int file_load(struct pk_source *s, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    char line[PK_RECORD_MAX + 600];
    size_t cap = 0;
    unsigned lineno = 0;

    if (!fp) {
        snprintf(err, errlen, "test_keys %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), fp)) {
        char *name = line + strspn(line, " \t"), *rec;
        struct pk_entry *ne;

        lineno++;
        name[strcspn(name, "\r\n")] = '\0';
        if (*name == '#' || *name == '\0')
            continue;
        rec = name + strcspn(name, " \t");
        if (*rec == '\0') {
            snprintf(err, errlen, "test_keys %s:%u: expected \"NAME RECORD\"", path, lineno);
            fclose(fp);
            return -1;
        }
        *rec++ = '\0';
        rec += strspn(rec, " \t");
        if (s->n == cap) {
            cap = cap ? cap * 2 : 16;
            if (!(ne = realloc(s->entries, cap * sizeof(*ne)))) {
                fclose(fp);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            s->entries = ne;
        }
        s->entries[s->n].name = strdup(name);
        s->entries[s->n].record = strcmp(rec, "!TRY_AGAIN") == 0 ? NULL : strdup(rec);
        s->n++;
    }
    fclose(fp);
    return 0;
}

/* pin_self - keep this shared object mapped even after the daemon
 * dlclose()s it (reload, stop): a detached DNS worker may still be running
 * our code when fini returns. RTLD_NODELETE on the already loaded object
 * (RTLD_NOLOAD) does that; the reference is never dropped on purpose. */
static void pin_self(void)
{
    Dl_info info;

    if (dladdr((void *)pin_self, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* dkim_pubkey_new - see dkim_pubkey.h */
struct pk_source *dkim_pubkey_new(const char *file, char *err, size_t errlen)
{
    struct pk_source *s = calloc(1, sizeof(*s));

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    if (!(file && file[0]))
        pin_self();                 /* DNS mode: workers may outlive us */
    if (file && file[0]) {
        s->file_mode = 1;
        if (file_load(s, file, err, errlen) < 0) {
            dkim_pubkey_free(&s);
            return NULL;
        }
    }
    return s;
}

/* source_destroy - free the source (no worker left) */
static void source_destroy(struct pk_source *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        free(s->entries[i].name);
        free(s->entries[i].record);
    }
    free(s->entries);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* source_release - count a worker out; the last of a freed source frees it */
static void source_release(struct pk_source *s)
{
    int last;

    pthread_mutex_lock(&s->mu);
    last = --s->running == 0 && s->closing;
    pthread_mutex_unlock(&s->mu);
    if (last)
        source_destroy(s);
}

/* dkim_pubkey_free - see dkim_pubkey.h */
void dkim_pubkey_free(struct pk_source **sp)
{
    struct pk_source *s = *sp;
    int last;

    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    last = s->running == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        source_destroy(s);
    *sp = NULL;
}

/* file_lookup - the file source */
static enum pk_status file_lookup(struct pk_source *s, const char *name,
                                  char *buf, size_t buflen)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        if (strcasecmp(s->entries[i].name, name) != 0)
            continue;
        if (!s->entries[i].record)
            return PK_TEMPFAIL;
        if ((size_t)snprintf(buf, buflen, "%s", s->entries[i].record) >= buflen)
            return PK_TEMPFAIL;
        return PK_FOUND;
    }
    return PK_MISSING;
}

/* txt_extract - the first TXT RR of an answer, its strings joined */
static enum pk_status txt_extract(const unsigned char *ans, int len,
                                  char *buf, size_t buflen)
{
    ns_msg msg;
    ns_rr rr;
    int i, count;

    if (ns_initparse(ans, len, &msg) < 0)
        return PK_TEMPFAIL;
    count = ns_msg_count(msg, ns_s_an);
    for (i = 0; i < count; i++) {
        const unsigned char *p, *end;
        size_t o = 0;

        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            return PK_TEMPFAIL;
        if (ns_rr_type(rr) != ns_t_txt)
            continue;
        p = ns_rr_rdata(rr);
        end = p + ns_rr_rdlen(rr);
        while (p < end) {
            size_t sl = *p++;

            if (sl > (size_t)(end - p) || o + sl + 1 > buflen)
                return PK_TEMPFAIL;
            memcpy(buf + o, p, sl);
            o += sl;
            p += sl;
        }
        buf[o] = '\0';
        return PK_FOUND;
    }
    return PK_MISSING;
}

/* dns_lookup - one blocking TXT query with a private resolver state */
static enum pk_status dns_lookup(const char *name, char *buf, size_t buflen)
{
    struct __res_state rs;
    unsigned char ans[NS_PACKETSZ * 8];
    enum pk_status st;
    int len;

    memset(&rs, 0, sizeof(rs));
    if (res_ninit(&rs) < 0)
        return PK_TEMPFAIL;
    len = res_nquery(&rs, name, ns_c_in, ns_t_txt, ans, sizeof(ans));
    if (len < 0) {
        /* NXDOMAIN and "no data" mean no key; anything else is a failure. */
        st = (rs.res_h_errno == HOST_NOT_FOUND || rs.res_h_errno == NO_DATA)
             ? PK_MISSING : PK_TEMPFAIL;
    } else {
        st = txt_extract(ans, len, buf, buflen);
    }
    res_nclose(&rs);
    return st;
}

/* job_unref - the last reference frees */
static void job_unref(struct pk_job *j)
{
    int last;

    pthread_mutex_lock(&j->mu);
    last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last) {
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        free(j);
    }
}

/* worker - run one DNS job */
static void *worker(void *arg)
{
    struct pk_job *j = arg;
    struct pk_source *s = j->src;
    char rec[PK_RECORD_MAX];
    enum pk_status st = dns_lookup(j->name, rec, sizeof(rec));

    pthread_mutex_lock(&j->mu);
    j->status = st;
    if (st == PK_FOUND)
        memcpy(j->record, rec, strlen(rec) + 1);
    j->done = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    source_release(s);
    return NULL;
}

/* job_start - a job with its worker running; NULL if none could start */
static struct pk_job *job_start(struct pk_source *s, const char *name)
{
    struct pk_job *j;
    pthread_condattr_t ca;
    pthread_attr_t attr;
    pthread_t tid;
    int ok;

    pthread_mutex_lock(&s->mu);
    ok = s->running < PK_MAX_WORKERS;
    if (ok)
        s->running++;
    pthread_mutex_unlock(&s->mu);
    if (!ok)
        return NULL;
    if ((j = calloc(1, sizeof(*j))) != NULL) {
        pthread_mutex_init(&j->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&j->cv, &ca);
        pthread_condattr_destroy(&ca);
        j->refs = 2;
        j->src = s;
        snprintf(j->name, sizeof(j->name), "%s", name);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&tid, &attr, worker, j) == 0;
        pthread_attr_destroy(&attr);
        if (ok)
            return j;
        j->refs = 1;
        job_unref(j);
    }
    source_release(s);
    return NULL;
}

/* dkim_pubkey_lookup - see dkim_pubkey.h */
enum pk_status dkim_pubkey_lookup(struct pk_source *s, const char *name,
                                  char *buf, size_t buflen, long timeout_ms)
{
    struct pk_job *j;
    struct timespec until;
    int64_t deadline;
    enum pk_status st = PK_TIMEOUT;

    if (s->file_mode)
        return file_lookup(s, name, buf, buflen);
    if (timeout_ms <= 0)
        return PK_TIMEOUT;
    if (strlen(name) >= sizeof(j->name) || !(j = job_start(s, name)))
        return PK_TEMPFAIL;
    deadline = now_ms() + timeout_ms;
    until.tv_sec = (time_t)(deadline / 1000);
    until.tv_nsec = (long)(deadline % 1000) * 1000000;
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &until) == ETIMEDOUT)
            break;
    if (j->done) {
        st = j->status;
        if (st == PK_FOUND && (size_t)snprintf(buf, buflen, "%s", j->record) >= buflen)
            st = PK_TEMPFAIL;
    }
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    return st;
}

/* dkim_pubkey_keytype - see dkim_pubkey.h */
void dkim_pubkey_keytype(const char *record, char *buf, size_t buflen)
{
    const char *p = record;

    snprintf(buf, buflen, "rsa");
    while (p && *p) {
        size_t len;

        p += strspn(p, " \t\r\n;");
        if (p[0] == 'k' && (p[1] == '=' || p[1] == ' ' || p[1] == '\t')) {
            const char *v = p + 1;

            v += strspn(v, " \t");
            if (*v == '=') {
                v++;
                v += strspn(v, " \t");
                len = strcspn(v, "; \t\r\n");
                snprintf(buf, buflen, "%.*s", (int)len, v);
                return;
            }
        }
        p = strchr(p, ';');
    }
}
