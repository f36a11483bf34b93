/*
 * milter_conf.c - the options of the `milter {}` block (struct milter_conf).
 */
#include <stddef.h>
#include "milter_conf.h"

#define O(f) offsetof(struct milter_conf, f)

/* "no", "yes", "auto", then the boolean spellings the option had before it
 * became a choice: past "auto", odd indexes mean no, even ones yes */
static const char *const no_reply_choices[] = {
    "no", "yes", "auto", "false", "true", "off", "on", "0", "1", NULL
};

const subm_option_t milter_options[] = {
    { "listen", SUBM_OPT_STR, "inet:8890@127.0.0.1", O(listen), 0, 0, NULL,
      "libmilter socket: inet:PORT@ADDR, inet6:PORT@ADDR or unix:PATH" },
    { "timeout", SUBM_OPT_TIME, "5m", O(timeout), 1000, 86400000, NULL,
      "libmilter's I/O timeout towards the MTA" },
    { "backlog", SUBM_OPT_INT, "128", O(backlog), 1, 65535, NULL,
      "listen backlog of the milter socket" },
    { "macros", SUBM_OPT_LIST, NULL, O(macros), 0, 0, NULL,
      "more MTA macros for plugins' subm_macro(), e.g. { \"{if_addr}\", \"{daemon_name}\" }; "
      "asked for at connect, MAIL, RCPT and end of message" },
    { "tcp_nodelay", SUBM_OPT_BOOL, "yes", O(tcp_nodelay), 0, 0, NULL,
      "TCP_NODELAY on inet sockets (no Nagle stall on end-of-message replies)" },
    { "no_reply_steps", SUBM_OPT_ENUM, "auto", O(no_reply_steps), 0, 0, no_reply_choices,
      "let the MTA skip waiting for replies where no plugin answers: yes, no, or auto "
      "(yes on a unix socket; over TCP a packet left without a reply can wait for a "
      "delayed ACK)" },
    SUBM_OPT_END
};
