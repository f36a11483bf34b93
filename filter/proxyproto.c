/*
 * proxyproto.c - parse a PROXY protocol v1/v2 header (see proxyproto.h).
 * Formats from HAProxy's proxy-protocol.txt.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

static const unsigned char v2sig[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

/* pp_port - a decimal port 0..65535 from text; -1 if malformed. */
static int pp_port(const char *s)
{
    long v = 0;

    if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > 65535)
            return -1;
    }
    return (int)v;
}

/* pp_v1 - "PROXY TCP4 SRC DST SPORT DPORT\r\n" (at most 107 bytes). */
static int pp_v1(const unsigned char *buf, size_t len,
                 struct sockaddr_storage *sa, socklen_t *salen_r,
                 size_t *consumed_r)
{
    char line[108], *f[7], *save = NULL, *t;
    const unsigned char *cr;
    size_t n;
    int nf = 0, port;

    cr = memchr(buf, '\r', len > 107 ? 107 : len);
    if (cr == NULL)
        return len >= 107 ? -1 : 0;
    n = (size_t)(cr - buf);
    if (n + 1 >= len)
        return 0;
    if (cr[1] != '\n')
        return -1;
    memcpy(line, buf, n);
    line[n] = '\0';
    if (memchr(line, '\0', n) != NULL)
        return -1;
    for (t = strtok_r(line, " ", &save); t && nf < 7; t = strtok_r(NULL, " ", &save))
        f[nf++] = t;
    *consumed_r = n + 2;
    *salen_r = 0;
    if (nf >= 2 && strcmp(f[1], "UNKNOWN") == 0)
        return 1;
    if (nf != 6)
        return -1;
    port = pp_port(f[4]);
    if (port < 0 || pp_port(f[5]) < 0)
        return -1;
    memset(sa, 0, sizeof(*sa));
    if (strcmp(f[1], "TCP4") == 0) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
        struct in_addr dst;
        if (inet_pton(AF_INET, f[2], &s4->sin_addr) != 1 ||
            inet_pton(AF_INET, f[3], &dst) != 1)
            return -1;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *salen_r = sizeof(*s4);
        return 1;
    }
    if (strcmp(f[1], "TCP6") == 0) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        struct in6_addr dst;
        if (inet_pton(AF_INET6, f[2], &s6->sin6_addr) != 1 ||
            inet_pton(AF_INET6, f[3], &dst) != 1)
            return -1;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *salen_r = sizeof(*s6);
        return 1;
    }
    return -1;
}

/* pp_v2 - the binary header: signature, ver/cmd, family, length, addresses. */
static int pp_v2(const unsigned char *buf, size_t len,
                 struct sockaddr_storage *sa, socklen_t *salen_r,
                 size_t *consumed_r)
{
    size_t body;

    if (len < 16)
        return 0;
    if ((buf[12] & 0xF0) != 0x20 || (buf[12] & 0x0F) > 1)
        return -1;
    body = ((size_t)buf[14] << 8) | buf[15];
    if (16 + body > PROXYPROTO_MAX)
        return -1;
    if (len < 16 + body)
        return 0;
    *consumed_r = 16 + body;
    *salen_r = 0;
    if ((buf[12] & 0x0F) == 0)          /* LOCAL: the proxy's own check */
        return 1;
    memset(sa, 0, sizeof(*sa));
    switch (buf[13]) {
    case 0x11: {                        /* TCP over IPv4 */
        struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
        if (body < 12)
            return -1;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, buf + 16, 4);
        memcpy(&s4->sin_port, buf + 24, 2);
        *salen_r = sizeof(*s4);
        return 1;
    }
    case 0x21: {                        /* TCP over IPv6 */
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        if (body < 36)
            return -1;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, buf + 16, 16);
        memcpy(&s6->sin6_port, buf + 48, 2);
        *salen_r = sizeof(*s6);
        return 1;
    }
    case 0x00:                          /* UNSPEC: keep the peer */
        return 1;
    default:
        return -1;
    }
}

/* proxyproto_parse - see proxyproto.h. */
int proxyproto_parse(const unsigned char *buf, size_t len,
                     struct sockaddr_storage *sa, socklen_t *salen_r,
                     size_t *consumed_r)
{
    size_t k;

    k = len < 12 ? len : 12;
    if (memcmp(buf, v2sig, k) == 0)
        return len < 12 ? 0 : pp_v2(buf, len, sa, salen_r, consumed_r);
    k = len < 6 ? len : 6;
    if (memcmp(buf, "PROXY ", k) == 0)
        return len < 6 ? 0 : pp_v1(buf, len, sa, salen_r, consumed_r);
    return -1;
}
