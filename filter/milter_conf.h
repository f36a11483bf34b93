/*
 * milter_conf.h - the `milter {}` block, as config.c stores it (options in
 * milter_conf.c). Owned by the milter front-end.
 */
#ifndef SUBM_MILTER_CONF_H
#define SUBM_MILTER_CONF_H

#include <submilter/plugin.h>

struct milter_conf {
    const char        *listen;          /* libmilter socket spec */
    long               timeout;         /* ms */
    long               backlog;
    const char *const *macros;          /* extra macros to ask the MTA for */
    int                tcp_nodelay;     /* set TCP_NODELAY on the listener */
    int                no_reply_steps;  /* MILTER_NR_*: SMFIP_NR_* where no
                                           plugin answers */
};

/* no_reply_steps choices, in milter_conf.c's order (past AUTO: boolean
 * spellings, even = yes) */
#define MILTER_NR_NO   0
#define MILTER_NR_YES  1
#define MILTER_NR_AUTO 2                /* yes on a unix socket */

extern const subm_option_t milter_options[];

#endif
