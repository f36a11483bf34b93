/*
 * smtp_addr.c - the syntax of MAIL/RCPT paths (RFC 5321 4.1.2, RFC 6531)
 * and of ESMTP parameter values such as xtext (RFC 3461).
 *
 * Everything here only checks and splits text in place; nothing is ever
 * interpreted (shell or expansion characters are data). Limits follow RFC
 * 5321 4.5.3.1: local part 64 octets, domain 255, path 256.
 */
#include <string.h>
#include <strings.h>

#include "smtp_session.h"

/* is_atext - RFC 5322 atext, plus UTF-8 octets (checked by the caller). */
static int is_atext(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    if (c >= 0x80)
        return 1;
    return strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL && c != '\0';
}

/* local_ok - dot-atom or quoted-string, 1..64 octets. */
static int local_ok(const char *p, size_t n)
{
    size_t i;

    if (n == 0 || n > 64)
        return 0;
    if (p[0] == '"') {
        if (n < 2 || p[n - 1] != '"')
            return 0;
        for (i = 1; i < n - 1; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c == '\\') {
                if (++i >= n - 1 || (unsigned char)p[i] < 32 || p[i] == 127)
                    return 0;
            } else if (c == '"' || c < 32 || c == 127)
                return 0;
        }
        return 1;
    }
    if (p[0] == '.' || p[n - 1] == '.')
        return 0;
    for (i = 0; i < n; i++)
        if (p[i] != '.' && !is_atext((unsigned char)p[i]))
            return 0;
    return 1;
}

/* domain_ok - a domain name or an address literal, 1..255 octets. */
static int domain_ok(const char *p, size_t n)
{
    size_t i, label = 0;

    if (n == 0 || n > 255)
        return 0;
    if (p[0] == '[') {
        if (n < 3 || p[n - 1] != ']')
            return 0;
        for (i = 1; i < n - 1; i++)
            if ((unsigned char)p[i] < 33 || (unsigned char)p[i] > 126 ||
                p[i] == '[' || p[i] == ']' || p[i] == '\\')
                return 0;
        return 1;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '.') {
            if (label == 0 || p[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c >= 0x80))
            return 0;
        if (label == 0 && c == '-')
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0;
}

/* smtp_parse_path - see smtp_session.h. */
int smtp_parse_path(char *arg, int allow_null, int allow_postmaster,
                    int utf8, char **addr_r, char **params_r)
{
    char *p = arg, *start, *end, *at = NULL, *mbox;
    int quoted = 0, eight = 0;

    while (*p == ' ')
        p++;
    if (*p != '<')
        return ADDR_SYNTAX;
    start = ++p;
    for (; *p; p++) {
        if (quoted && *p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == '"')
            quoted = !quoted;
        else if (!quoted && *p == '>')
            break;
        if ((unsigned char)*p >= 0x80)
            eight = 1;
    }
    if (*p != '>' || (p[1] != '\0' && p[1] != ' '))
        return ADDR_SYNTAX;
    end = p;
    if (end - start > 256)
        return ADDR_TOOLONG;
    *end = '\0';
    p = end + 1;
    while (*p == ' ')
        p++;
    *params_r = p;
    if (eight && !utf8)
        return ADDR_UTF8;
    mbox = start;
    if (*mbox == '\0') {
        if (!allow_null)
            return ADDR_SYNTAX;
        *addr_r = mbox;
        return ADDR_OK;
    }
    if (*mbox == '@') {                 /* source route: accepted, ignored */
        char *colon = strchr(mbox, ':');
        if (colon == NULL)
            return ADDR_SYNTAX;
        mbox = colon + 1;
    }
    if (allow_postmaster && strcasecmp(mbox, "postmaster") == 0) {
        *addr_r = mbox;
        return ADDR_OK;
    }
    /* the last '@' outside quotes splits local part and domain */
    quoted = 0;
    for (p = mbox; *p; p++) {
        if (quoted && *p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == '"')
            quoted = !quoted;
        else if (!quoted && *p == '@')
            at = p;
    }
    if (at == NULL)
        return ADDR_SYNTAX;
    if ((size_t)(at - mbox) > 64 || strlen(at + 1) > 255)
        return ADDR_TOOLONG;
    if (!local_ok(mbox, (size_t)(at - mbox)) || !domain_ok(at + 1, strlen(at + 1)))
        return ADDR_SYNTAX;
    *addr_r = mbox;
    return ADDR_OK;
}

/* hexval - 0..15 for an uppercase hex digit, -1 otherwise. */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* smtp_xtext_ok - valid xtext whose decoding has no CR, LF or NUL. */
int smtp_xtext_ok(const char *v)
{
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (c == '+') {
            int h = hexval(v[1]), l = h < 0 ? -1 : hexval(v[2]);
            int d;
            if (h < 0 || l < 0)
                return 0;
            d = h * 16 + l;
            if (d == 0 || d == '\r' || d == '\n')
                return 0;
            v += 2;
        } else if (c < 33 || c > 126 || c == '=')
            return 0;
    }
    return 1;
}
