/*
 * proxyproto.h - the HAProxy PROXY protocol header (v1 text and v2 binary)
 * that a load balancer sends before the client's first byte.
 *
 * proxyproto_parse() looks at the bytes read so far and says whether a
 * complete header is there, how long it is and which client address it
 * carries. It reads no socket and accepts only TCP over IPv4/IPv6, LOCAL
 * (v2) and UNKNOWN (v1), which leave the address as the peer's.
 */
#ifndef SUBM_PROXYPROTO_H
#define SUBM_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

#define PROXYPROTO_MAX 1024     /* longest header we accept (v2 with TLVs) */

/*
 * proxyproto_parse - 1: a header of *consumed_r bytes; *salen_r is the
 * length of the client address written to sa, or 0 for LOCAL/UNKNOWN.
 * 0: need more bytes. -1: not a valid PROXY header.
 */
int proxyproto_parse(const unsigned char *buf, size_t len,
                     struct sockaddr_storage *sa, socklen_t *salen_r,
                     size_t *consumed_r);

#endif
