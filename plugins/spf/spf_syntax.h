/*
 * spf_syntax.h - an RFC 7208 section 12 syntax check of SPF records.
 *
 * libspf2 accepts records the RFC calls permerror (control and non-ASCII
 * characters, bad toplabels, unknown macro letters, a second exp= or
 * redirect=, CIDR lengths with leading zeros, a qualifier on a modifier).
 * spf_eval.c runs every "v=spf1" record fetched during an evaluation through
 * this check and answers permerror for one that fails. Does not evaluate.
 */
#ifndef SUBM_SPF_SYNTAX_H
#define SUBM_SPF_SYNTAX_H

#include <stddef.h>

/* spf_is_record - 1 if text is an SPF record ("v=spf1" then SP or end). */
int spf_is_record(const char *text, size_t len);

/* spf_syntax_ok - 1 if the record (len octets, not NUL-terminated) follows
 * the RFC 7208 ABNF; else 0 with the reason in why. */
int spf_syntax_ok(const char *rec, size_t len, char *why, size_t whylen);

#endif
