/*
 * smtp_authsrc.h - where the smtp front-end checks AUTH credentials, as the
 * `auth` option names it:
 *   "passwd:/path"   lines "user:hash" with crypt(3) hashes ($y$, $6$, $5$,
 *                    $2b$...; a "{SHA512-CRYPT}"-style prefix is allowed),
 *                    read at each check (no reload needed)
 *   "dovecot:/path"  Dovecot's auth-client socket (protocol 1.2), asked
 *                    with mechanism PLAIN, one connection per check
 * It only answers "right, wrong, or cannot say"; the SASL exchange with the
 * client is smtp_auth.c's.
 */
#ifndef SUBM_SMTP_AUTHSRC_H
#define SUBM_SMTP_AUTHSRC_H

enum authsrc_result { AUTHSRC_OK, AUTHSRC_FAIL, AUTHSRC_TEMP };

/* authsrc_check_spec - is the auth option usable? 0, or -1 logged. */
int authsrc_check_spec(const char *spec);
/*
 * authsrc_verify - check user/pass within timeout_ms. client_addr and tls
 * are passed on to Dovecot (rip=, secured). The time taken does not depend
 * on whether the user exists (passwd: an unknown user is hashed too).
 */
enum authsrc_result authsrc_verify(const char *spec, const char *user, const char *pass,
                                   const char *client_addr, int tls, long timeout_ms,
                                   const char *sid);

#endif
