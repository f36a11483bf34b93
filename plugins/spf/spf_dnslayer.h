/*
 * spf_dnslayer.h - our DNS layer under libspf2, and the test zone.
 *
 * The layer sits between libspf2 and the resolver (or zone) and, for the
 * evaluation running in the calling thread (spf_layer_begin), counts what
 * RFC 7208 4.6.4 limits (DNS-querying terms, void lookups; MX and PTR
 * targets are neither), notes DNS failures, answers a malformed name as
 * NXDOMAIN instead of asking, cuts PTR answers to 10 names, checks every
 * fetched "v=spf1" record against the RFC grammar (spf_syntax.c) and stops
 * asking once the deadline has passed. spf_layer_result() then turns
 * libspf2's answer and those notes into the RFC 7208 result.
 * Does not run evaluations (spf_eval.c does).
 */
#ifndef SUBM_SPF_DNSLAYER_H
#define SUBM_SPF_DNSLAYER_H

#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/nameser.h>
#include <stddef.h>
#include <stdint.h>
#include <spf2/spf.h>
#include "spf_eval.h"

#define SPF_FOLLOW_MAX 24   /* names from MX/PTR answers whose A lookups are free */

/* Counters of one evaluation (RFC 7208 4.6.4). */
struct spf_limits {
    int     terms, voids;
    int     max_terms, max_void;
    int     over_terms, over_void, dns_fail, timed_out;
    int     bad_record;              /* a fetched record fails RFC 7208 12 */
    char    bad_why[128];
    int     record_fetched;          /* the first TXT is the record itself */
    /* The last lookup, so an explanation fetch (the last TXT of a "fail")
     * can be taken back: its errors do not count (RFC 7208 6.2). */
    ns_type last_type;
    int     last_fail, last_void;
    int64_t deadline;
    size_t  nfollow;
    char    follow[SPF_FOLLOW_MAX][256];
};

/* spf_layer_new - our layer over below (owned from here on: SPF_dns_free
 * of the result frees both). NULL if out of memory. */
SPF_dns_server_t *spf_layer_new(SPF_dns_server_t *below);
/* spf_layer_begin / spf_layer_end - the counters the layer uses in this
 * thread (L zeroed but for max_terms, max_void, deadline). */
void spf_layer_begin(struct spf_limits *L);
void spf_layer_end(void);
/* spf_layer_result - the RFC 7208 result of libspf2's answer r given what
 * the layer saw; *why names a correction made (NULL if none). */
enum spf_result spf_layer_result(SPF_result_t r, struct spf_limits *L, const char **why);
/* spf_zone_load - libspf2's zone layer filled from a file of "name TYPE
 * data" lines (data "!TRY_AGAIN", "!HOST_NOT_FOUND", "!NO_DATA": that
 * status). NULL with a message in err. */
SPF_dns_server_t *spf_zone_load(const char *path, char *err, size_t errlen);

#endif
