/*
 * smtp_tls.h - TLS for the smtp front-end's clients: the server context
 * (tls_cert, tls_key), the handshake on a session's socket (after STARTTLS,
 * or first thing on an implicit-TLS listener, RFC 8314), and the facts the
 * TLS stage and session get (protocol, cipher).
 *
 * It also makes the client context used toward a backend with backend_tls.
 * The contexts are made once at start-up (the key is read before privileges
 * are dropped); a reload does not change it. Reads and writes over TLS are
 * smtp_io.c's (sio->ssl). It does not decide what TLS allows: that is the
 * session's (STARTTLS rules) and the plugins' (TLS stage).
 */
#ifndef SUBM_SMTP_TLS_H
#define SUBM_SMTP_TLS_H

#include <stddef.h>

struct smtp_conf;
struct sio;

/* smtp_tls_init - the server context if tls_cert and tls_key are set; 0, or
 * -1 logged (unreadable key, mismatch). */
int  smtp_tls_init(const struct smtp_conf *conf);
/* smtp_tls_available - can sessions offer STARTTLS? */
int  smtp_tls_available(void);
/* smtp_tls_accept - TLS handshake on io within timeout_ms; on success io
 * reads and writes through TLS and version/cipher describe it. 0 or -1. */
int  smtp_tls_accept(struct sio *io, long timeout_ms, char *version, size_t vsize,
                     char *cipher, size_t csize);

/* smtp_tls_connect - client side toward the backend (backend_tls = yes):
 * handshake on io within timeout_ms. With backend_tls_ca the backend's
 * certificate must chain to those CAs and carry peer (a name or an IP
 * address); without, it is not verified (encryption only, on a link the
 * administrator chose). 0, or -1 logged with sid. */
int  smtp_tls_connect(struct sio *io, long timeout_ms, const char *peer, const char *sid);

#endif
