/*
 * authres.h - helpers for the header fields the spf and dkim plugins add:
 * removing forged Authentication-Results fields that carry our own
 * authserv-id (RFC 8601 5), and quoting untrusted text for header values.
 * Works on the public plugin API only. Does not build whole fields.
 * Shared by the spf and dkim plugins through plugins/common/, a static
 * helper library linked into each .so; it uses the public API only.
 */
#ifndef SUBM_AUTHRES_H
#define SUBM_AUTHRES_H

#include <stddef.h>
#include <submilter/plugin.h>

/* authres_id - the authserv-id to use: the option if set, else our host
 * name, else "localhost". */
const char *authres_id(subm_ctx_t *ctx, const char *option);

/* authres_has_id - 1 if an Authentication-Results value (unfolded) starts
 * with authserv-id `id` (case-insensitive, comments skipped). */
int authres_has_id(const char *value, const char *id);

/* authres_strip_forged - delete every received Authentication-Results field
 * whose authserv-id is `id` (highest index first). Returns how many. */
int authres_strip_forged(subm_ctx_t *ctx, const char *id);

/* hdr_value - src as a dot-atom when it is one, else as a quoted-string;
 * control characters dropped; truncated to fit size. */
void hdr_value(char *dst, size_t size, const char *src);

/* hdr_addr - an address as an RFC 8601 pvalue: local@domain as it is
 * when both parts are dot-atoms, else the whole as a quoted-string. */
void hdr_addr(char *dst, size_t size, const char *addr);

/* hdr_comment - src made safe inside "( ... )": parentheses and
 * backslashes replaced, control characters dropped. */
void hdr_comment(char *dst, size_t size, const char *src);

#endif
