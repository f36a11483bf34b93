/*
 * smtp_conf.c - the options of the `smtp {}` block (struct smtp_conf).
 *
 * Declared once here; config.c parses, checks and stores them. Timeouts
 * follow RFC 5321 4.5.3.2 (5 minutes for a command, 3 per data block).
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
    { "backend_tls", SUBM_OPT_BOOL, "no", O(backend_tls), 0, 0, NULL, NULL },
    { "xclient", SUBM_OPT_BOOL, "no", O(xclient), 0, 0, NULL,
      "send XCLIENT to a backend that offers it" },
    { "proxy_protocol", SUBM_OPT_BOOL, "no", O(proxy_protocol), 0, 0, NULL, NULL },
    { "tls_cert", SUBM_OPT_PATH, "", O(tls_cert), 0, 0, NULL, NULL },
    { "tls_key", SUBM_OPT_PATH, "", O(tls_key), 0, 0, NULL, NULL },
    { "auth", SUBM_OPT_STR, "", O(auth), 0, 0, NULL, NULL },
    { "auth_requires_tls", SUBM_OPT_BOOL, "yes", O(auth_requires_tls), 0, 0, NULL, NULL },
    { "max_sessions", SUBM_OPT_INT, "1000", O(max_sessions), 1, 1000000, NULL, NULL },
    { "max_sessions_per_ip", SUBM_OPT_INT, "20", O(max_sessions_per_ip), 1, 1000000, NULL, NULL },
    { "timeout", SUBM_OPT_TIME, "5m", O(timeout), 1000, 86400000, NULL,
      "waiting for the next command" },
    { "data_timeout", SUBM_OPT_TIME, "3m", O(data_timeout), 1000, 86400000, NULL,
      "waiting for the next block of message data" },
    { "backend_timeout", SUBM_OPT_TIME, "5m", O(backend_timeout), 100, 86400000, NULL,
      "waiting for a backend reply" },
    { "backend_data_timeout", SUBM_OPT_TIME, "10m", O(backend_data_timeout), 100, 86400000, NULL,
      "waiting for the backend's reply to the final dot (RFC 5321 4.5.3.2.6)" },
    { "max_message_size", SUBM_OPT_SIZE, "50M", O(max_message_size), 1024, 0, NULL, NULL },
    { "max_recipients", SUBM_OPT_INT, "1000", O(max_recipients), 100, 100000, NULL, NULL },
    { "bare_lf", SUBM_OPT_ENUM, "reject", O(bare_lf), 0, 0, bare_lf_choices,
      "bare CR or LF in message data: reject (550 5.5.2) or normalize to CRLF" },
    { "backend_pool", SUBM_OPT_INT, "32", O(backend_pool), 0, 10000, NULL,
      "idle backend connections kept for reuse" },
    SUBM_OPT_END
};
