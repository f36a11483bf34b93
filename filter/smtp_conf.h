/*
 * smtp_conf.h - the `smtp {}` block, as config.c stores it (options in
 * smtp_conf.c). Owned by the smtp front-end.
 */
#ifndef SUBM_SMTP_CONF_H
#define SUBM_SMTP_CONF_H

#include <stdint.h>
#include <submilter/plugin.h>

struct smtp_conf {
    const char *const *listen;          /* "ADDR:PORT [tls]" */
    const char *hostname;               /* "" = the root hostname */
    const char *backend;                /* "HOST:PORT" */
    int         backend_tls;
    const char *backend_tls_ca;         /* PEM CAs to verify it; "": no check */
    const char *backend_tls_name;       /* name its certificate must carry */
    int         xclient;
    int         proxy_protocol;
    const char *tls_cert;
    const char *tls_key;
    const char *auth;
    int         auth_requires_tls;
    long        max_sessions;
    long        max_sessions_per_ip;
    long        timeout;                /* ms: waiting for a command */
    long        data_timeout;           /* ms: waiting for a data block */
    long        min_data_rate;          /* octets/s over a message; 0: none */
    long        backend_timeout;        /* ms: waiting for the backend */
    long        backend_data_timeout;   /* ms: backend reply to the final dot */
    uint64_t    max_message_size;
    long        max_recipients;
    int         bare_lf;                /* 0 reject, 1 normalise */
    long        backend_pool;           /* idle backend connections kept */
};

extern const subm_option_t smtp_options[];

#endif
