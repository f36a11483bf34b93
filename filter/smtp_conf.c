/*
 * smtp_conf.c - the options of the `smtp {}` block (struct smtp_conf).
 *
 * Declared once here; config.c parses, checks and stores them. Timeouts
 * follow RFC 5321 4.5.3.2 (5 minutes for a command, 3 per data block, 10
 * for the reply to the final dot). A reload applies them to new sessions;
 * listen, tls_cert and tls_key are read once at start.
 */
#include <stddef.h>
#include "smtp_conf.h"

static const char *const bare_lf_choices[] = { "reject", "normalize", NULL };

#define O(f) offsetof(struct smtp_conf, f)
const subm_option_t smtp_options[] = {
    { "listen", SUBM_OPT_LIST, "{\"127.0.0.1:10587\"}", O(listen), 0, 0, NULL,
      "addresses to listen on: \"ADDR:PORT\" or \"ADDR:PORT tls\"" },
    { "hostname", SUBM_OPT_STR, "", O(hostname), 0, 0, NULL,
      "name in the banner and EHLO; empty: the global hostname" },
    { "backend", SUBM_OPT_STR, "127.0.0.1:10025", O(backend), 0, 0, NULL,
      "the MTA that receives accepted mail" },
    { "backend_tls", SUBM_OPT_BOOL, "no", O(backend_tls), 0, 0, NULL,
      "STARTTLS to the backend; a backend without it is not used" },
    { "backend_tls_ca", SUBM_OPT_PATH, "", O(backend_tls_ca), 0, 0, NULL,
      "PEM file of CA certificates the backend's certificate must chain to, with "
      "backend_tls_name; empty: not verified (encryption only, as Postfix's "
      "smtp_tls_security_level = encrypt)" },
    { "backend_tls_name", SUBM_OPT_STR, "", O(backend_tls_name), 0, 0, NULL,
      "name (or IP address) the backend's certificate must carry when backend_tls_ca "
      "is set; empty: the host of `backend`" },
    { "xclient", SUBM_OPT_BOOL, "no", O(xclient), 0, 0, NULL,
      "send XCLIENT to a backend that offers it" },
    { "proxy_protocol", SUBM_OPT_BOOL, "no", O(proxy_protocol), 0, 0, NULL,
      "every listener expects a HAProxy PROXY v1/v2 header (or \"ADDR:PORT proxy\")" },
    { "tls_cert", SUBM_OPT_PATH, "", O(tls_cert), 0, 0, NULL,
      "PEM certificate chain: STARTTLS is offered when tls_cert and tls_key are set" },
    { "tls_key", SUBM_OPT_PATH, "", O(tls_key), 0, 0, NULL,
      "PEM private key (read at start, before privileges are dropped)" },
    { "auth", SUBM_OPT_STR, "", O(auth), 0, 0, NULL,
      "AUTH source: \"passwd:/path\" (user:crypt-hash) or \"dovecot:/path/auth-client\"" },
    { "auth_requires_tls", SUBM_OPT_BOOL, "yes", O(auth_requires_tls), 0, 0, NULL,
      "offer AUTH only inside TLS (538 5.7.11 otherwise)" },
    { "max_sessions", SUBM_OPT_INT, "1000", O(max_sessions), 1, 1000000, NULL,
      "concurrent client sessions; more get 421 4.7.0" },
    { "max_sessions_per_ip", SUBM_OPT_INT, "20", O(max_sessions_per_ip), 1, 1000000, NULL,
      "concurrent sessions per client address (after PROXY); more get 421 4.7.0" },
    { "timeout", SUBM_OPT_TIME, "5m", O(timeout), 1000, 86400000, NULL,
      "waiting for the next command" },
    { "data_timeout", SUBM_OPT_TIME, "3m", O(data_timeout), 1000, 86400000, NULL,
      "waiting for the next block of message data" },
    { "min_data_rate", SUBM_OPT_INT, "500", O(min_data_rate), 0, 1000000000, NULL,
      "octets/s a client must average over its message, after data_timeout's grace "
      "(a trickling client gets 421; 0: no limit; Postfix's smtpd_min_data_rate)" },
    { "backend_timeout", SUBM_OPT_TIME, "5m", O(backend_timeout), 100, 86400000, NULL,
      "waiting for a backend reply" },
    { "backend_data_timeout", SUBM_OPT_TIME, "10m", O(backend_data_timeout), 100, 86400000, NULL,
      "waiting for the backend's reply to the final dot (RFC 5321 4.5.3.2.6)" },
    { "max_message_size", SUBM_OPT_SIZE, "50M", O(max_message_size), 1024, 0, NULL,
      "largest message (EHLO SIZE: the smallest of this, plugins' and the backend's)" },
    { "max_recipients", SUBM_OPT_INT, "1000", O(max_recipients), 100, 100000, NULL,
      "recipients per message; more get 452 4.5.3" },
    { "bare_lf", SUBM_OPT_ENUM, "reject", O(bare_lf), 0, 0, bare_lf_choices,
      "bare CR or LF in message data: reject (550 5.5.2) or normalize to CRLF" },
    { "backend_pool", SUBM_OPT_INT, "32", O(backend_pool), 0, 10000, NULL,
      "idle backend connections kept for reuse" },
    SUBM_OPT_END
};
