/*
 * frontend.h - what main.c needs of each front-end, and their option blocks.
 *
 * Each front-end declares its options once, as a subm_option_t table like a
 * plugin's (smtp_options, milter_options); config.c reads the `smtp {}` and
 * `milter {}` blocks into these structs. The calls: *_check makes the
 * checks of *_init that need no socket (for -t); *_init binds sockets
 * (before privileges are dropped); the start and run calls serve; the stop
 * calls end.
 */
#ifndef SUBM_FRONTEND_H
#define SUBM_FRONTEND_H

#include <stdint.h>
#include <submilter/plugin.h>
#include "smtp_conf.h"
#include "milter_conf.h"

struct config;


/* smtp front-end (smtp_server.c) */
int  smtp_frontend_check(const struct config *cfg);  /* -t: files, auth; -1 logged */
int  smtp_frontend_init(const struct config *cfg);   /* bind; -1 logged */
int  smtp_frontend_start(void);                      /* accept threads */
void smtp_frontend_stop(long grace_ms);              /* stop, drain */

/* milter front-end (milter.c) */
int  milter_frontend_check(const struct config *cfg); /* -t: macros; -1 logged */
int  milter_frontend_init(const struct config *cfg); /* register, bind */
int  milter_frontend_run(void);                      /* blocks in smfi_main */
void milter_frontend_stop(void);

#endif
