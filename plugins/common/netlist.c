/*
 * netlist.c - CIDR network lists for plugin options (see netlist.h).
 * Entries are kept as 16-octet addresses (IPv4 as ::ffff:a.b.c.d) with a
 * prefix length over those 128 bits, so one comparison serves both families.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "netlist.h"

struct net {
    unsigned char addr[16];
    unsigned      bits;
};

struct netlist {
    size_t     n;
    struct net nets[];
};

static const unsigned char v4mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };

/* net_parse - one "addr[/bits]" entry into *net; -1 if malformed. */
static int net_parse(const char *text, struct net *net)
{
    char buf[64], *slash, *end;
    struct in_addr a4;
    long bits;
    int is4;

    if (strlen(text) >= sizeof(buf))
        return -1;
    memcpy(buf, text, strlen(text) + 1);
    slash = strchr(buf, '/');
    if (slash)
        *slash++ = '\0';
    is4 = inet_pton(AF_INET, buf, &a4) == 1;
    if (is4) {
        memcpy(net->addr, v4mapped, 12);
        memcpy(net->addr + 12, &a4, 4);
    } else if (inet_pton(AF_INET6, buf, net->addr) != 1) {
        return -1;
    }
    bits = is4 ? 32 : 128;
    if (slash) {
        if (*slash == '\0')
            return -1;
        bits = strtol(slash, &end, 10);
        if (*end != '\0' || bits < 0 || bits > (is4 ? 32 : 128))
            return -1;
    }
    net->bits = (unsigned)bits + (is4 ? 96 : 0);
    return 0;
}

/* netlist_new - see netlist.h */
struct netlist *netlist_new(const char *const *items, char *err, size_t errlen)
{
    size_t n = 0, i;
    struct netlist *nl;

    while (items && items[n])
        n++;
    nl = calloc(1, sizeof(*nl) + n * sizeof(struct net));
    if (!nl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (net_parse(items[i], &nl->nets[i]) < 0) {
            snprintf(err, errlen, "not a network address: \"%s\"", items[i]);
            free(nl);
            return NULL;
        }
    }
    nl->n = n;
    return nl;
}

/* netlist_free - free and clear *nlp */
void netlist_free(struct netlist **nlp)
{
    free(*nlp);
    *nlp = NULL;
}

/* prefix_eq - the first `bits` bits of a and b are equal */
static int prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    unsigned char mask;

    if (memcmp(a, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* netlist_match - see netlist.h */
int netlist_match(const struct netlist *nl, const struct sockaddr *sa)
{
    unsigned char addr[16];
    size_t i;

    if (!nl || !sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(addr, v4mapped, 12);
        memcpy(addr + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else {
        return 0;
    }
    for (i = 0; i < nl->n; i++)
        if (prefix_eq(addr, nl->nets[i].addr, nl->nets[i].bits))
            return 1;
    return 0;
}
