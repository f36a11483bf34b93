/*
 * check_smtp_syntax.c - table-driven unit tests of the smtp front-end's
 * parsers and encoder: PROXY protocol headers (proxyproto.c), MAIL/RCPT
 * paths and xtext (smtp_addr.c), and the DATA encoder that writes to the
 * backend (relay.c): CRLF only, dot-stuffed, our own terminator.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"
#include "relay.h"
#include "smtp_session.h"

#define V2SIG "\r\n\r\n\0\r\nQUIT\n"

static const struct pp_case {
    const char *label;
    const char *in;
    size_t      len;            /* 0: strlen(in) */
    int         want;           /* 1 done, 0 more, -1 bad */
    size_t      consumed;
    const char *addr;           /* NULL: no address (LOCAL/UNKNOWN) */
    int         port;
} pp_cases[] = {
    { "v1 tcp4", "PROXY TCP4 192.0.2.1 198.51.100.2 1234 25\r\nEHLO", 0, 1, 43, "192.0.2.1", 1234 },
    { "v1 tcp6", "PROXY TCP6 2001:db8::1 ::1 65535 25\r\n", 0, 1, 37, "2001:db8::1", 65535 },
    { "v1 unknown", "PROXY UNKNOWN\r\n", 0, 1, 15, NULL, 0 },
    { "v1 partial", "PROXY TCP4 192.0.2.1", 0, 0, 0, NULL, 0 },
    { "v1 prefix", "PRO", 0, 0, 0, NULL, 0 },
    { "v1 bad family", "PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n", 0, -1, 0, NULL, 0 },
    { "v1 bad address", "PROXY TCP4 192.0.2.300 192.0.2.2 1 2\r\n", 0, -1, 0, NULL, 0 },
    { "v1 v6 in tcp4", "PROXY TCP4 ::1 192.0.2.2 1 2\r\n", 0, -1, 0, NULL, 0 },
    { "v1 port too big", "PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n", 0, -1, 0, NULL, 0 },
    { "v1 port leading 0", "PROXY TCP4 192.0.2.1 192.0.2.2 025 2\r\n", 0, -1, 0, NULL, 0 },
    { "v1 missing field", "PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", 0, -1, 0, NULL, 0 },
    { "v1 bare LF", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n", 0, 0, 0, NULL, 0 },
    { "v1 CR not LF", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX", 0, -1, 0, NULL, 0 },
    { "not proxy", "EHLO client\r\n", 0, -1, 0, NULL, 0 },
    { "v2 tcp4", V2SIG "\x21\x11\x00\x0c" "\xc0\x00\x02\x07" "\x7f\x00\x00\x01" "\x04\xd2\x00\x19",
      28, 1, 28, "192.0.2.7", 1234 },
    { "v2 local", V2SIG "\x20\x00\x00\x00", 16, 1, 16, NULL, 0 },
    { "v2 tlv skipped", V2SIG "\x21\x11\x00\x10" "\xc0\x00\x02\x07" "\x7f\x00\x00\x01"
      "\x04\xd2\x00\x19" "\x04\x00\x01\x41", 32, 1, 32, "192.0.2.7", 1234 },
    { "v2 short body", V2SIG "\x21\x11\x00\x0c" "\xc0\x00", 18, 0, 0, NULL, 0 },
    { "v2 version 3", V2SIG "\x31\x11\x00\x00", 16, -1, 0, NULL, 0 },
    { "v2 too long", V2SIG "\x21\x11\xff\xff", 16, -1, 0, NULL, 0 },
    { "v2 tcp4 body short", V2SIG "\x21\x11\x00\x04" "\xc0\x00\x02\x07", 20, -1, 0, NULL, 0 },
};

START_TEST(test_proxyproto)
{
    const struct pp_case *c = &pp_cases[_i];
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    size_t used = 0, len = c->len ? c->len : strlen(c->in);
    char addr[64] = "";
    int rc, port = 0;

    memset(&sa, 0, sizeof(sa));
    rc = proxyproto_parse((const unsigned char *)c->in, len, &sa, &salen, &used);
    ck_assert_msg(rc == c->want, "%s: got %d, want %d", c->label, rc, c->want);
    if (rc != 1)
        return;
    ck_assert_msg(used == c->consumed, "%s: consumed %zu, want %zu", c->label, used,
                  c->consumed);
    if (c->addr == NULL) {
        ck_assert_msg(salen == 0, "%s: an address where none was given", c->label);
        return;
    }
    if (sa.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, addr, sizeof(addr));
        port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, addr, sizeof(addr));
        port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    }
    ck_assert_msg(strcmp(addr, c->addr) == 0, "%s: address %s, want %s", c->label, addr, c->addr);
    ck_assert_msg(port == c->port, "%s: port %d, want %d", c->label, port, c->port);
}
END_TEST

static const struct path_case {
    const char *label;
    const char *arg;
    int         allow_null, postmaster, utf8;
    int         want;
    const char *addr, *params;
} path_cases[] = {
    { "plain", "<a@example.com>", 0, 0, 0, ADDR_OK, "a@example.com", "" },
    { "params", "<a@example.com> SIZE=10  BODY=8BITMIME", 0, 0, 0, ADDR_OK, "a@example.com",
      "SIZE=10  BODY=8BITMIME" },
    { "space before", " <a@example.com>", 0, 0, 0, ADDR_OK, "a@example.com", "" },
    { "null sender", "<>", 1, 0, 0, ADDR_OK, "", "" },
    { "null refused", "<>", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "no brackets", "a@example.com", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "no domain", "<a@>", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "no local", "<@a>", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "no at", "<a>", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "postmaster", "<Postmaster>", 0, 1, 0, ADDR_OK, "Postmaster", "" },
    { "postmaster not for MAIL", "<postmaster>", 1, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "source route", "<@a.example,@b.example:c@d.example>", 0, 0, 0, ADDR_OK, "c@d.example", "" },
    { "quoted", "<\"a b>c\"@example.com>", 0, 0, 0, ADDR_OK, "\"a b>c\"@example.com", "" },
    { "quoted at", "<\"a@b\"@example.com>", 0, 0, 0, ADDR_OK, "\"a@b\"@example.com", "" },
    { "literal", "<a@[192.0.2.1]>", 0, 0, 0, ADDR_OK, "a@[192.0.2.1]", "" },
    { "literal v6", "<a@[IPv6:2001:db8::1]>", 0, 0, 0, ADDR_OK, "a@[IPv6:2001:db8::1]", "" },
    { "shell chars", "<a$(x)@example.com>", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "expansion chars", "<a${x}|`y`&z@example.com>", 0, 0, 0, ADDR_OK,
      "a${x}|`y`&z@example.com", "" },
    { "leading dot", "<.a@example.com>", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "label dash", "<a@-x.example>", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "empty label", "<a@x..example>", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "local 64", "<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.example>",
      0, 0, 0, ADDR_OK, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.example",
      "" },
    { "local 65", "<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.example>",
      0, 0, 0, ADDR_TOOLONG, NULL, NULL },
    { "utf8 refused", "<\xc3\xbc@example.com>", 0, 0, 0, ADDR_UTF8, NULL, NULL },
    { "utf8 allowed", "<\xc3\xbc@ex\xc3\xa4mple.com>", 0, 0, 1, ADDR_OK,
      "\xc3\xbc@ex\xc3\xa4mple.com", "" },
    { "unterminated", "<a@example.com", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "junk after", "<a@example.com>x", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
    { "control char", "<a\x01@example.com>", 0, 0, 0, ADDR_SYNTAX, NULL, NULL },
};

START_TEST(test_paths)
{
    const struct path_case *c = &path_cases[_i];
    char buf[512], *addr = NULL, *params = NULL;
    int rc;

    snprintf(buf, sizeof(buf), "%s", c->arg);
    rc = smtp_parse_path(buf, c->allow_null, c->postmaster, c->utf8, &addr, &params);
    ck_assert_msg(rc == c->want, "%s: got %d, want %d", c->label, rc, c->want);
    if (rc != ADDR_OK)
        return;
    ck_assert_msg(strcmp(addr, c->addr) == 0, "%s: address \"%s\", want \"%s\"", c->label,
                  addr, c->addr);
    ck_assert_msg(strcmp(params, c->params) == 0, "%s: params \"%s\", want \"%s\"", c->label,
                  params, c->params);
}
END_TEST

static const struct xtext_case {
    const char *label, *in;
    int         want;
} xtext_cases[] = {
    { "plain", "abc", 1 }, { "hex", "a+2Bb+3D", 1 }, { "empty", "", 1 },
    { "CR", "a+0Db", 0 }, { "LF", "a+0A", 0 }, { "NUL", "+00", 0 },
    { "lower hex", "a+2b", 0 }, { "short hex", "a+2", 0 }, { "raw equals", "a=b", 0 },
    { "space", "a b", 0 }, { "8bit", "\xc3\xbc", 0 },
};

START_TEST(test_xtext)
{
    const struct xtext_case *c = &xtext_cases[_i];
    int got = smtp_xtext_ok(c->in);

    ck_assert_msg(got == c->want, "%s: got %d, want %d", c->label, got, c->want);
}
END_TEST

static const struct enc_case {
    const char *label;
    const char *chunks[4];      /* fed one by one */
    const char *want;           /* on the wire, with the terminator */
} enc_cases[] = {
    { "plain", { "a\r\nb\r\n" }, "a\r\nb\r\n.\r\n" },
    { "dot stuffed", { ".a\r\n..b\r\n.\r\n" }, "..a\r\n...b\r\n..\r\n.\r\n" },
    { "first line dot", { "." }, "..\r\n.\r\n" },
    { "bare LF", { "a\nb\n" }, "a\r\nb\r\n.\r\n" },
    { "bare CR", { "a\rb\r" }, "a\r\nb\r\n.\r\n" },
    { "smuggle LF.LF", { "x\n.\nMAIL FROM:<a@b>\r\n" }, "x\r\n..\r\nMAIL FROM:<a@b>\r\n.\r\n" },
    { "smuggle CR.CR", { "x\r.\rQUIT" }, "x\r\n..\r\nQUIT\r\n.\r\n" },
    { "CRLF split", { "a\r", "\nb" }, "a\r\nb\r\n.\r\n" },
    { "dot after split", { "a\r\n", ".b" }, "a\r\n..b\r\n.\r\n" },
    { "no final CRLF", { "abc" }, "abc\r\n.\r\n" },
    { "empty", { "" }, ".\r\n" },
};

START_TEST(test_encoder)
{
    const struct enc_case *c = &enc_cases[_i];
    struct relay r;
    size_t i, n;

    memset(&r, 0, sizeof(r));
    sio_init(&r.io, -1, 1024, 65536);
    relay_data_start(&r);
    for (i = 0; i < 4 && c->chunks[i] != NULL; i++)
        relay_data_put(&r, c->chunks[i], strlen(c->chunks[i]));
    /* relay_data_end without a socket: the same closing steps by hand */
    if (r.cr) {
        sio_put(&r.io, "\r\n", 2);
        r.bol = 1;
    }
    if (!r.bol)
        sio_put(&r.io, "\r\n", 2);
    sio_put(&r.io, ".\r\n", 3);
    n = strlen(c->want);
    ck_assert_msg(r.io.out_len == n && memcmp(r.io.out, c->want, n) == 0,
                  "%s: got \"%.*s\"", c->label, (int)r.io.out_len, r.io.out);
    sio_fini(&r.io);
}
END_TEST

static Suite *smtp_syntax_suite(void)
{
    Suite *s = suite_create("smtp_syntax");
    TCase *tc = tcase_create("parsers");

    tcase_add_loop_test(tc, test_proxyproto, 0, sizeof(pp_cases) / sizeof(pp_cases[0]));
    tcase_add_loop_test(tc, test_paths, 0, sizeof(path_cases) / sizeof(path_cases[0]));
    tcase_add_loop_test(tc, test_xtext, 0, sizeof(xtext_cases) / sizeof(xtext_cases[0]));
    tcase_add_loop_test(tc, test_encoder, 0, sizeof(enc_cases) / sizeof(enc_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(smtp_syntax_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
