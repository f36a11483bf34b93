/*
 * authres.c - Authentication-Results hygiene and header value quoting
 * (see authres.h).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include "authres.h"

#define AR_NAME "Authentication-Results"
#define AR_MAX  64     /* fields of that name we look at */

/* authres_id - see authres.h */
const char *authres_id(subm_ctx_t *ctx, const char *option)
{
    const char *h;

    if (option && option[0])
        return option;
    h = subm_hostname(ctx);
    return h && h[0] ? h : "localhost";
}

/* skip_cfws - past blanks and (nested) comments */
static const char *skip_cfws(const char *p)
{
    int depth = 0;

    for (; *p; p++) {
        if (*p == '\\' && depth > 0 && p[1])
            p++;
        else if (*p == '(')
            depth++;
        else if (*p == ')' && depth > 0)
            depth--;
        else if (depth == 0 && !isspace((unsigned char)*p))
            break;
    }
    return p;
}

/* authres_has_id - see authres.h */
int authres_has_id(const char *value, const char *id)
{
    const char *p = skip_cfws(value), *end;
    size_t len;

    end = p + strcspn(p, "; \t\r\n(");
    len = (size_t)(end - p);
    if (len >= 2 && p[0] == '"' && end[-1] == '"') {
        p++;
        len -= 2;
    }
    return len == strlen(id) && strncasecmp(p, id, len) == 0;
}

/* authres_strip_forged - see authres.h */
int authres_strip_forged(subm_ctx_t *ctx, const char *id)
{
    int forged[AR_MAX], n, count = 0;
    const char *v;

    for (n = 1; n <= AR_MAX && (v = subm_txn_header_find(ctx, AR_NAME, n)); n++)
        if (authres_has_id(v, id))
            forged[count++] = n;
    /* Highest first, so each deletion leaves the lower indexes valid. */
    for (n = count - 1; n >= 0; n--)
        subm_txn_delete_header(ctx, AR_NAME, forged[n]);
    if (count > 0)
        subm_log(ctx, SUBM_LOG_INFO, "removed %d forged %s field(s) with authserv-id %s",
                 count, AR_NAME, id);
    return count;
}

/* is_atext - RFC 5322 atext */
static int is_atext(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* is_dot_atom - RFC 5322 dot-atom-text */
static int is_dot_atom(const char *s)
{
    const char *p;

    if (!*s || *s == '.')
        return 0;
    for (p = s; *p; p++) {
        if (*p == '.' ? (p[1] == '.' || p[1] == '\0') : !is_atext((unsigned char)*p))
            return 0;
    }
    return 1;
}

/* hdr_value - see authres.h */
void hdr_value(char *dst, size_t size, const char *src)
{
    size_t o = 0;

    if (size == 0)
        return;
    if (is_dot_atom(src) && strlen(src) < size) {
        memcpy(dst, src, strlen(src) + 1);
        return;
    }
    if (size < 3) {
        dst[0] = '\0';
        return;
    }
    dst[o++] = '"';
    for (; *src && o + 3 < size; src++) {
        unsigned char c = (unsigned char)*src;

        if (c < 0x20 || c == 0x7f)
            continue;
        if (c == '"' || c == '\\') {
            if (o + 4 >= size)
                break;
            dst[o++] = '\\';
        }
        dst[o++] = (char)c;
    }
    dst[o++] = '"';
    dst[o] = '\0';
}

/* hdr_addr - see authres.h */
void hdr_addr(char *dst, size_t size, const char *addr)
{
    const char *at = strrchr(addr, '@');
    char local[512];
    size_t ll;

    if (at && at > addr && (ll = (size_t)(at - addr)) < sizeof(local)) {
        memcpy(local, addr, ll);
        local[ll] = '\0';
        if (is_dot_atom(local) && is_dot_atom(at + 1) && strlen(addr) < size) {
            memcpy(dst, addr, strlen(addr) + 1);
            return;
        }
    }
    hdr_value(dst, size, addr);
}

/* hdr_comment - see authres.h */
void hdr_comment(char *dst, size_t size, const char *src)
{
    size_t o = 0;

    if (size == 0)
        return;
    for (; src && *src && o + 1 < size; src++) {
        unsigned char c = (unsigned char)*src;

        if (c < 0x20 || c == 0x7f)
            continue;
        dst[o++] = c == '(' ? '[' : c == ')' ? ']' : c == '\\' ? '/' : (char)c;
    }
    dst[o] = '\0';
}
