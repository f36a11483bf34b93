/*
 * smtp_auth.c - the AUTH command of the smtp front-end (RFC 4954): the
 * SASL mechanisms PLAIN (RFC 4616) and LOGIN, their base64 exchange, the
 * rules of HOSTILE-INPUT.md (no AUTH in clear unless auth_requires_tls =
 * no, one AUTH per session, none inside a transaction, "*" cancels, bad
 * base64 501, over-long responses 500, wrong credentials 535 5.7.8 in the
 * same time as unknown users, source down 454), and the AUTH stage.
 *
 * Calls: smtp_auth_offered (for EHLO), smtp_cmd_auth. Checking a password
 * is smtp_authsrc.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "session.h"
#include "smtp_authsrc.h"
#include "smtp_conf.h"
#include "smtp_session.h"

#define AUTH_LINE_MAX (SMTP_AUTH_LINE_MAX - 2)  /* RFC 4954 4: at least 12288 */

/* smtp_auth_offered - AUTH in this session's EHLO? */
int smtp_auth_offered(const struct smtp_sess *ss)
{
    return ss->conf->auth != NULL && *ss->conf->auth != '\0' &&
           (ss->tls_on || !ss->conf->auth_requires_tls);
}

/* b64_val - the value of a base64 character, -1 if none. */
static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* b64_decode - strict base64 into out (NUL-terminated); length or -1. */
static long b64_decode(const char *in, size_t n, char *out, size_t size)
{
    size_t i, o = 0;
    int v[4], k, pad = 0;

    if (n % 4 != 0)
        return -1;
    for (i = 0; i < n; i += 4) {
        for (k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad || (v[k] = b64_val(in[i + k])) < 0)
                return -1;
        }
        if (o + 3 >= size)
            return -1;
        out[o++] = (char)((v[0] << 2) | (v[1] >> 4));
        out[o++] = (char)(((v[1] & 15) << 4) | (v[2] >> 2));
        out[o++] = (char)(((v[2] & 3) << 6) | v[3]);
    }
    o -= (size_t)pad;
    out[o] = '\0';
    return (long)o;
}

/* auth_read - a client response line, decoded; its length, or -1 after
 * answering (cancelled, too long, bad base64, client gone). The whole
 * exchange shares one deadline: a client trickling octets is dropped too. */
static long auth_read(struct smtp_sess *ss, const char *prompt, char *out, size_t size,
                      int64_t deadline)
{
    const char *line;
    size_t len;
    int rc, toolong;
    long n, left;

    sio_printf(&ss->io, "334 %s\r\n", prompt);
    if (sio_flush(&ss->io, ss->conf->timeout) < 0) {
        ss->quit = 1;
        return -1;
    }
    while ((rc = sio_getline(&ss->io, AUTH_LINE_MAX + 2, &line, &len, &toolong)) == SIO_MORE) {
        left = (long)(deadline - monotonic_ms());
        rc = left > 0 ? sio_fill(&ss->io, left, 0) : SIO_TIMEOUT;
        if (rc > 0)
            continue;
        if (rc == SIO_TIMEOUT) {
            log_info("%s: timeout in AUTH from %s", ss->s->id, ss->s->client_addr);
            smtp_reply(ss, 421, "4.4.2", "%s Error: timeout exceeded", ss->hostname);
        }
        ss->quit = 1;
        return -1;
    }
    if (toolong) {
        smtp_reply(ss, 500, "5.5.6", "Authentication exchange line is too long");
        return -1;
    }
    len -= len >= 2 && line[len - 2] == '\r' ? 2 : 1;
    if (len == 1 && line[0] == '*') {
        smtp_reply(ss, 501, "5.0.0", "Authentication aborted");
        return -1;
    }
    n = b64_decode(line, len, out, size);
    if (n < 0)
        smtp_reply(ss, 501, "5.5.2", "Cannot decode response");
    return n;
}

/* initial - decode an initial response ("=" is empty); -1 after answering. */
static long initial(struct smtp_sess *ss, const char *ir, char *out, size_t size)
{
    long n;

    if (strcmp(ir, "=") == 0) {
        out[0] = '\0';
        return 0;
    }
    n = b64_decode(ir, strlen(ir), out, size);
    if (n < 0)
        smtp_reply(ss, 501, "5.5.2", "Cannot decode response");
    return n;
}

/* user_ok - a user name fit for logs and plugins: no control characters. */
static int user_ok(const char *u)
{
    for (; *u; u++)
        if ((unsigned char)*u < 0x20 || *u == 0x7f)
            return 0;
    return 1;
}

/* sasl_plain - "authzid NUL authcid NUL passwd" into user and pass. */
static int sasl_plain(struct smtp_sess *ss, const char *ir, char *user, char *pass,
                      size_t size, int64_t deadline)
{
    char buf[AUTH_LINE_MAX / 4 * 3 + 4];   /* any response that fits a line */
    long n = ir ? initial(ss, ir, buf, sizeof(buf)) :
             auth_read(ss, "", buf, sizeof(buf), deadline);
    const char *authz = buf, *authc, *pw;

    if (n < 0)
        return -1;
    authc = memchr(buf, '\0', (size_t)n);
    pw = authc ? memchr(authc + 1, '\0', (size_t)(buf + n - authc - 1)) : NULL;
    if (authc == NULL || pw == NULL || strlen(authc + 1) >= size || strlen(pw + 1) >= size ||
        (*authz && strcmp(authz, authc + 1) != 0) || memchr(pw + 1, '\0', (size_t)(buf + n - pw - 1))) {
        smtp_reply(ss, 501, "5.5.2", "Malformed PLAIN response");
        return -1;
    }
    if (!user_ok(authc + 1)) {
        smtp_reply(ss, 501, "5.5.2", "Malformed user name");
        return -1;
    }
    snprintf(user, size, "%s", authc + 1);
    snprintf(pass, size, "%s", pw + 1);
    return 0;
}

/* sasl_login - the LOGIN mechanism: user, then password. */
static int sasl_login(struct smtp_sess *ss, const char *ir, char *user, char *pass,
                      size_t size, int64_t deadline)
{
    long n = ir ? initial(ss, ir, user, size) :
             auth_read(ss, "VXNlcm5hbWU6", user, size, deadline);

    if (n < 0 || (size_t)n != strlen(user) || !user_ok(user))
        return n < 0 ? -1 : (smtp_reply(ss, 501, "5.5.2", "Malformed user name"), -1);
    n = auth_read(ss, "UGFzc3dvcmQ6", pass, size, deadline);
    if (n < 0 || (size_t)n != strlen(pass))
        return n < 0 ? -1 : (smtp_reply(ss, 501, "5.5.2", "Malformed password"), -1);
    return 0;
}

/* auth_done - credentials checked: the AUTH stage, then the reply. */
static void auth_done(struct smtp_sess *ss, const char *user, const char *mech)
{
    subm_arg_t a;
    struct reply r;
    subm_verdict_t v;

    session_set_auth(ss->s, user, mech, NULL);
    memset(&a, 0, sizeof(a));
    a.text = user;
    v = smtp_stage(ss, SUBM_STAGE_AUTH, &a, &r);
    if (v == SUBM_REJECT || v == SUBM_TEMPFAIL) {
        session_set_auth(ss->s, NULL, NULL, NULL);
        smtp_reply_chain(ss, &r);
        return;
    }
    log_info("%s: client %s authenticated as %s (%s)", ss->s->id, ss->s->client_addr,
             user, mech);
    smtp_reply(ss, 235, "2.7.0", "Authentication successful");
}

/* smtp_cmd_auth - AUTH mechanism [initial-response]. */
void smtp_cmd_auth(struct smtp_sess *ss, const char *arg)
{
    char mech[32], user[512], pass[512];
    const char *ir;
    size_t ml = strcspn(arg, " ");
    int rc;
    int64_t deadline;

    if (ss->conf->auth == NULL || *ss->conf->auth == '\0') {
        smtp_reply(ss, 502, "5.5.1", "Error: command not implemented");
        return;
    }
    if (!smtp_auth_offered(ss)) {
        smtp_reply(ss, 538, "5.7.11", "Encryption required for requested authentication mechanism");
        return;
    }
    if (!ss->helo_seen || !ss->s->esmtp) {
        smtp_reply(ss, 503, "5.5.1", "Error: send EHLO first");
        return;
    }
    if (ss->s->auth_login != NULL) {
        smtp_reply(ss, 503, "5.5.1", "Error: already authenticated");
        return;
    }
    if (ss->s->txn != NULL) {
        smtp_reply(ss, 503, "5.5.1", "Error: MAIL transaction in progress");
        return;
    }
    if (ml == 0 || ml >= sizeof(mech)) {
        smtp_reply(ss, 501, "5.5.4", "Syntax: AUTH mechanism");
        return;
    }
    memcpy(mech, arg, ml);
    mech[ml] = '\0';
    ir = arg[ml] ? arg + ml + 1 + strspn(arg + ml + 1, " ") : NULL;
    if (ir != NULL && *ir == '\0')
        ir = NULL;
    deadline = monotonic_ms() + ss->conf->timeout;
    if (strcasecmp(mech, "PLAIN") == 0)
        rc = sasl_plain(ss, ir, user, pass, sizeof(user), deadline);
    else if (strcasecmp(mech, "LOGIN") == 0)
        rc = sasl_login(ss, ir, user, pass, sizeof(user), deadline);
    else {
        smtp_reply(ss, 504, "5.5.4", "Unrecognized authentication type");
        return;
    }
    if (rc < 0)
        return;
    for (rc = 0; mech[rc]; rc++)
        mech[rc] = (char)(mech[rc] & ~0x20);
    switch (authsrc_verify(ss->conf->auth, user, pass, ss->s->client_addr, ss->tls_on,
                           ss->conf->timeout, ss->s->id)) {
    case AUTHSRC_OK:
        auth_done(ss, user, mech);
        break;
    case AUTHSRC_FAIL:
        log_info("%s: AUTH %s failed for %s from %s", ss->s->id, mech, user,
                 ss->s->client_addr);
        ss->errors++;
        smtp_reply(ss, 535, "5.7.8", "Authentication credentials invalid");
        break;
    default:
        smtp_reply(ss, 454, "4.7.0", "Temporary authentication failure");
        break;
    }
    memset(pass, 0, sizeof(pass));
}
