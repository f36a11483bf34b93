/*
 * smtp_tls.c - the TLS server side of the smtp front-end (see smtp_tls.h).
 * OpenSSL 1.1.1 or later: TLS 1.2 and 1.3 only, the library's default
 * ciphers, no renegotiation, no compression.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "session.h"
#include "smtp_conf.h"
#include "smtp_io.h"
#include "smtp_tls.h"

static SSL_CTX *tls_ctx;        /* server: our clients */
static SSL_CTX *tls_client_ctx; /* client: the backend */

/* tls_error - the last OpenSSL error as text. */
static const char *tls_error(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        snprintf(buf, size, "%s", errno ? strerror(errno) : "unknown error");
    else
        ERR_error_string_n(e, buf, size);
    ERR_clear_error();
    return buf;
}

/* smtp_tls_init - load the certificate chain and key. */
int smtp_tls_init(const struct smtp_conf *conf)
{
    char err[256];

    if (conf->backend_tls) {
        tls_client_ctx = SSL_CTX_new(TLS_client_method());
        if (tls_client_ctx == NULL) {
            log_error("smtp: TLS client context: %s", tls_error(err, sizeof(err)));
            return -1;
        }
        SSL_CTX_set_min_proto_version(tls_client_ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(tls_client_ctx, SSL_VERIFY_NONE, NULL);
        if (conf->backend_tls_ca != NULL && *conf->backend_tls_ca) {
            if (SSL_CTX_load_verify_locations(tls_client_ctx, conf->backend_tls_ca,
                                              NULL) != 1) {
                log_error("smtp: backend_tls_ca %s: %s", conf->backend_tls_ca,
                          tls_error(err, sizeof(err)));
                SSL_CTX_free(tls_client_ctx);
                tls_client_ctx = NULL;
                return -1;
            }
            SSL_CTX_set_verify(tls_client_ctx, SSL_VERIFY_PEER, NULL);
        }
    }
    if (conf->tls_cert == NULL || conf->tls_key == NULL || !*conf->tls_cert || !*conf->tls_key)
        return 0;
    tls_ctx = SSL_CTX_new(TLS_server_method());
    if (tls_ctx == NULL) {
        log_error("smtp: TLS context: %s", tls_error(err, sizeof(err)));
        return -1;
    }
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(tls_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                        SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(tls_ctx, conf->tls_cert) != 1) {
        log_error("smtp: tls_cert %s: %s", conf->tls_cert, tls_error(err, sizeof(err)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(tls_ctx, conf->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls_ctx) != 1) {
        log_error("smtp: tls_key %s: %s", conf->tls_key, tls_error(err, sizeof(err)));
        goto fail;
    }
    return 0;
fail:
    SSL_CTX_free(tls_ctx);
    tls_ctx = NULL;
    return -1;
}

int smtp_tls_available(void)
{
    return tls_ctx != NULL;
}

/* tls_expect_peer - the name or IP address the peer's certificate must
 * carry (OpenSSL checks it during the handshake); 0, or -1. */
static int tls_expect_peer(SSL *ssl, const char *name)
{
    unsigned char ip[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, name) == 1 ? 0 : -1;
}

/* tls_handshake - SSL_accept (server) or SSL_connect on io->fd, each wait
 * bounded by one deadline; peer: the name the peer's certificate must carry
 * if the context verifies (NULL: none). The SSL, or NULL with the reason
 * in why. */
static SSL *tls_handshake(SSL_CTX *ctx, struct sio *io, long timeout_ms, int server,
                          const char *peer, char *why, size_t wsize)
{
    int64_t deadline = monotonic_ms() + timeout_ms;
    struct pollfd pf;
    SSL *ssl;
    int rc, e;

    snprintf(why, wsize, "no TLS context");
    if (ctx == NULL)
        return NULL;
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, io->fd) != 1 ||
        (peer != NULL && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) &&
         tls_expect_peer(ssl, peer) < 0)) {
        (void)tls_error(why, wsize);
        SSL_free(ssl);
        return NULL;
    }
    for (;;) {
        ERR_clear_error();
        rc = server ? SSL_accept(ssl) : SSL_connect(ssl);
        if (rc == 1)
            return ssl;
        e = SSL_get_error(ssl, rc);
        pf.fd = io->fd;
        pf.events = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        if (pf.events == 0 || monotonic_ms() >= deadline ||
            poll(&pf, 1, (int)(deadline - monotonic_ms())) <= 0) {
            if (pf.events)
                snprintf(why, wsize, "timeout");
            else if (SSL_get_verify_result(ssl) != X509_V_OK)
                snprintf(why, wsize, "certificate not verified: %s",
                         X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
            else
                (void)tls_error(why, wsize);
            SSL_free(ssl);
            return NULL;
        }
    }
}

/* smtp_tls_accept - the handshake as the client's server. */
int smtp_tls_accept(struct sio *io, long timeout_ms, char *version, size_t vsize,
                    char *cipher, size_t csize)
{
    char why[256];
    SSL *ssl = tls_handshake(tls_ctx, io, timeout_ms, 1, NULL, why, sizeof(why));

    if (ssl == NULL) {
        log_info("smtp: TLS handshake failed: %s", why);
        return -1;
    }
    io->ssl = ssl;
    snprintf(version, vsize, "%s", SSL_get_version(ssl));
    snprintf(cipher, csize, "%s", SSL_get_cipher_name(ssl));
    return 0;
}

/* smtp_tls_connect - the handshake as the backend's client. */
int smtp_tls_connect(struct sio *io, long timeout_ms, const char *peer, const char *sid)
{
    char why[256];
    SSL *ssl = tls_handshake(tls_client_ctx, io, timeout_ms, 0, peer, why, sizeof(why));

    if (ssl == NULL) {
        log_warn("%s: TLS to the backend failed: %s", sid, why);
        return -1;
    }
    io->ssl = ssl;
    log_debug("%s: TLS to the backend: %s %s", sid, SSL_get_version(ssl),
              SSL_get_cipher_name(ssl));
    return 0;
}
