/*
 * smtp_authsrc.c - AUTH credential sources: a crypt(3) passwd file and
 * Dovecot's auth-client socket (see smtp_authsrc.h).
 */
#include <crypt.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"
#include "session.h"
#include "smtp_authsrc.h"

/* A valid hash nobody's password matches, hashed for unknown users so that
 * they take as long as known ones. */
static const char dummy_hash[] =
    "$6$submilterdummy$Kl.66Sxowwm6BTeMNMsw4KEVe25QzxgPQHU3LIpvk9XUpjJU0de7ZCid0Voe1zuWLq2AXZL2CIhgV0l8jPgcv1";

/* authsrc_check_spec - "passwd:PATH" or "dovecot:PATH". */
int authsrc_check_spec(const char *spec)
{
    if (spec == NULL || *spec == '\0')
        return 0;
    if ((strncmp(spec, "passwd:", 7) == 0 && spec[7] == '/') ||
        (strncmp(spec, "dovecot:", 8) == 0 && spec[8] == '/'))
        return 0;
    log_error("smtp: auth \"%s\": want \"passwd:/path\" or \"dovecot:/path\"", spec);
    return -1;
}

/* passwd_lookup - the hash of user from file into hash; 1 found, 0 not, -1 error. */
static int passwd_lookup(const char *file, const char *user, char *hash, size_t size)
{
    FILE *f = fopen(file, "r");
    char line[1024];
    size_t ul = strlen(user);
    int found = 0;

    if (f == NULL)
        return -1;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char *h, *end;
        if (line[0] == '#' || strncmp(line, user, ul) != 0 || line[ul] != ':')
            continue;
        h = line + ul + 1;
        if (*h == '{' && (end = strchr(h, '}')) != NULL && end[1] == '$')
            h = end + 1;                /* "{SHA512-CRYPT}$6$..." */
        h[strcspn(h, ":\r\n")] = '\0';
        snprintf(hash, size, "%s", h);
        found = 1;
    }
    fclose(f);
    return found;
}

/* passwd_verify - crypt(3) check; constant work whether or not user exists. */
static enum authsrc_result passwd_verify(const char *file, const char *user,
                                         const char *pass, const char *sid)
{
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));
    char hash[512];
    const char *out;
    int found = 0, ok;

    if (strchr(user, ':') == NULL && *user != '\0')
        found = passwd_lookup(file, user, hash, sizeof(hash));
    if (found < 0) {
        log_warn("%s: auth source %s: %s", sid, file, strerror(errno));
        free(cd);
        return AUTHSRC_TEMP;
    }
    out = crypt_r(pass, found ? hash : dummy_hash, cd);
    ok = found && out != NULL && out[0] != '*' && strcmp(out, hash) == 0;
    free(cd);
    return ok ? AUTHSRC_OK : AUTHSRC_FAIL;
}

/* b64 - base64 of len octets of in into out (size >= 4*ceil(len/3)+1). */
static void b64(const unsigned char *in, size_t len, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;

    for (i = 0; i + 2 < len; i += 3) {
        out[o++] = tab[in[i] >> 2];
        out[o++] = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        out[o++] = tab[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        out[o++] = tab[in[i + 2] & 63];
    }
    if (i < len) {
        out[o++] = tab[in[i] >> 2];
        if (i + 1 < len) {
            out[o++] = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
            out[o++] = tab[(in[i + 1] & 15) << 2];
        } else {
            out[o++] = tab[(in[i] & 3) << 4];
            out[o++] = '=';
        }
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* dc_read - append what fd has to buf (NUL-terminated) by the deadline; 0 or -1. */
static int dc_read(int fd, char *buf, size_t size, size_t *len, int64_t deadline)
{
    struct pollfd pf;
    ssize_t n;
    long left = (long)(deadline - monotonic_ms());

    if (*len + 1 >= size || left <= 0)
        return -1;
    pf.fd = fd;
    pf.events = POLLIN;
    if (poll(&pf, 1, (int)left) <= 0)
        return -1;
    n = read(fd, buf + *len, size - *len - 1);
    if (n <= 0)
        return -1;
    *len += (size_t)n;
    buf[*len] = '\0';
    return 0;
}

/* dovecot_verify - one AUTH PLAIN request on Dovecot's auth-client socket. */
static enum authsrc_result dovecot_verify(const char *path, const char *user, const char *pass,
                                          const char *client_addr, int tls, long timeout_ms,
                                          const char *sid)
{
    int64_t deadline = monotonic_ms() + timeout_ms;
    struct sockaddr_un sun;
    char buf[4096], req[2048], resp[1200];
    unsigned char plain[800];
    size_t len = 0, ul = strlen(user), pl = strlen(pass);
    enum authsrc_result res = AUTHSRC_TEMP;
    char *line;
    int fd, n;

    if (ul + pl + 2 > sizeof(plain) || strlen(path) >= sizeof(sun.sun_path))
        return AUTHSRC_FAIL;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        log_warn("%s: auth source dovecot:%s: %s", sid, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return AUTHSRC_TEMP;
    }
    n = snprintf(req, sizeof(req), "VERSION\t1\t2\nCPID\t%ld\n", (long)getpid());
    if (write(fd, req, (size_t)n) != n)
        goto out;
    buf[0] = '\0';
    while (strncmp(buf, "DONE\n", 5) != 0 && strstr(buf, "\nDONE\n") == NULL)
        if (dc_read(fd, buf, sizeof(buf), &len, deadline) < 0)   /* the handshake */
            goto out;
    plain[0] = '\0';
    memcpy(plain + 1, user, ul);
    plain[1 + ul] = '\0';
    memcpy(plain + 2 + ul, pass, pl);
    b64(plain, ul + pl + 2, resp);
    n = snprintf(req, sizeof(req), "AUTH\t1\tPLAIN\tservice=smtp\tnologin%s%s%s\tresp=%s\n",
                 tls ? "\tsecured" : "", client_addr ? "\trip=" : "",
                 client_addr ? client_addr : "", resp);
    if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n)
        goto out;
    len = 0;
    buf[0] = '\0';
    while (strchr(buf, '\n') == NULL)
        if (dc_read(fd, buf, sizeof(buf), &len, deadline) < 0)
            goto out;
    line = buf;
    if (strncmp(line, "OK\t1", 4) == 0)
        res = AUTHSRC_OK;
    else if (strncmp(line, "FAIL\t1", 6) == 0)
        res = strstr(line, "\ttemp") != NULL ? AUTHSRC_TEMP : AUTHSRC_FAIL;
out:
    if (res == AUTHSRC_TEMP)
        log_warn("%s: auth source dovecot:%s: no usable answer", sid, path);
    close(fd);
    return res;
}

/* authsrc_verify - see smtp_authsrc.h. */
enum authsrc_result authsrc_verify(const char *spec, const char *user, const char *pass,
                                   const char *client_addr, int tls, long timeout_ms,
                                   const char *sid)
{
    if (strncmp(spec, "passwd:", 7) == 0)
        return passwd_verify(spec + 7, user, pass, sid);
    if (strncmp(spec, "dovecot:", 8) == 0)
        return dovecot_verify(spec + 8, user, pass, client_addr, tls, timeout_ms, sid);
    return AUTHSRC_TEMP;
}
