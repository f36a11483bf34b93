/*
 * mods.h - the message as it leaves: a transaction's envelope and header
 * list with the plugins' recorded modifications applied, in order.
 *
 * For the smtp front-end (which writes the message itself) and for tests;
 * the milter front-end hands each modification to the MTA with smfi_*
 * instead. Results are allocated from the transaction's pool and live until
 * the transaction ends. Nothing here touches the received headers.
 */
#ifndef SUBM_MODS_H
#define SUBM_MODS_H

#include <stddef.h>
#include "session.h"

/* mods_headers - received fields with header modifications applied. New and
 * changed fields get raw = "Name: value" with folding as CRLF + blank. */
void mods_headers(struct session *s, struct header **hdrs_r, size_t *n_r);

/* mods_envelope - sender (and its ESMTP parameter text, NULL if unchanged)
 * and recipients with envelope modifications applied. */
void mods_envelope(struct session *s, const char **sender_r,
                   const char **sender_params_r, struct rcpt **rcpts_r,
                   size_t *n_r);

/* mods_envelope_changed - did a plugin record a change of sender or
 * recipients? */
int mods_envelope_changed(const struct txn *t);

/* mods_body - the spool to send: the replacement body if one was set. */
struct spool *mods_body(struct session *s);

#endif
