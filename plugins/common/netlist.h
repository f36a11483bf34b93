/*
 * netlist.h - a list of IPv4/IPv6 networks ("192.0.2.0/24", "2001:db8::/32",
 * "192.0.2.7") parsed once from option text and matched against a client
 * sockaddr. IPv4-mapped IPv6 clients (::ffff:a.b.c.d) match IPv4 entries.
 * Does not resolve names.
 * Shared by the spf and dkim plugins through plugins/common/, a static
 * helper library linked into each .so; it uses the public API only.
 */
#ifndef SUBM_NETLIST_H
#define SUBM_NETLIST_H

#include <stddef.h>
#include <sys/socket.h>

struct netlist;

/* netlist_new - parse a NULL-terminated list; NULL with a message in err
 * naming the bad entry. An empty or NULL list gives an empty netlist. */
struct netlist *netlist_new(const char *const *items, char *err, size_t errlen);
void            netlist_free(struct netlist **nlp);
/* netlist_match - 1 if sa falls in one of the networks, else 0. */
int             netlist_match(const struct netlist *nl, const struct sockaddr *sa);

#endif
