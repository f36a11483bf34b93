/*
 * check_size.c - the size plugin through the fake host: the limit handed
 * to the front-end for EHLO SIZE, SIZE= at MAIL (limits from the global
 * option and the map, malformed and overflowing values, the storage check)
 * and the octets actually received (a lying SIZE= caught at end of data).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "subm_test.h"

static char map_path[64];

/* write_map - a temporary map file with text; its name in map_path. */
static void write_map(const char *text)
{
    int fd;

    snprintf(map_path, sizeof(map_path), "/tmp/check_size.XXXXXX");
    fd = mkstemp(map_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    close(fd);
}

/* host_with_map - a host whose size block is `opts` plus map = the map. */
static struct st_host *host_with_map(const char *opts, const char *map_text)
{
    char conf[512];

    write_map(map_text);
    snprintf(conf, sizeof(conf), "plugin size { %s map = \"%s\" }", opts, map_path);
    return st_host_new(conf);
}

static const char *const MAP =
    "# per-user and per-domain limits\n"
    "alice            100M\n"
    "bob@example.com  2K\n"
    "\n"
    "@small.example   1K\n"
    "@big.example     0     # no limit\n";

struct mcase {
    const char     *label;
    const char     *login;
    const char     *sender;
    const char     *params;
    subm_verdict_t  verdict;
    int             code;
    const char     *ecode;
};

/* limit = 10K, with MAP. */
static const struct mcase mcases[] = {
    { "no SIZE", NULL, "x@example.org", NULL, SUBM_CONTINUE, 0, NULL },
    { "under", NULL, "x@example.org", "SIZE=1000", SUBM_CONTINUE, 0, NULL },
    { "at the limit", NULL, "x@example.org", "SIZE=10240", SUBM_CONTINUE, 0, NULL },
    { "one over", NULL, "x@example.org", "SIZE=10241", SUBM_REJECT, 552, "5.3.4" },
    { "null sender over", NULL, "", "SIZE=20000", SUBM_REJECT, 552, "5.3.4" },
    { "2^64", NULL, "x@example.org", "SIZE=18446744073709551616", SUBM_REJECT, 552, "5.3.4" },
    { "2^64-1", NULL, "x@example.org", "SIZE=18446744073709551615", SUBM_REJECT, 552, "5.3.4" },
    { "40 digits", NULL, "x@example.org", "SIZE=9999999999999999999999999999999999999999",
      SUBM_REJECT, 552, "5.3.4" },
    { "leading zeros", NULL, "x@example.org", "SIZE=0000000000000000000000000100",
      SUBM_CONTINUE, 0, NULL },
    { "not a number", NULL, "x@example.org", "SIZE=abc", SUBM_REJECT, 501, "5.5.4" },
    { "negative", NULL, "x@example.org", "SIZE=-1", SUBM_REJECT, 501, "5.5.4" },
    { "trailing junk", NULL, "x@example.org", "SIZE=100k", SUBM_REJECT, 501, "5.5.4" },
    { "empty", NULL, "x@example.org", "SIZE=", SUBM_REJECT, 501, "5.5.4" },
    { "no value", NULL, "x@example.org", "SIZE", SUBM_REJECT, 501, "5.5.4" },
    { "user raises", "alice", "alice@example.org", "SIZE=50000000", SUBM_CONTINUE, 0, NULL },
    { "user raise, over", "alice", "alice@example.org", "SIZE=104857601",
      SUBM_REJECT, 552, "5.3.4" },
    { "user raise needs AUTH", NULL, "alice@example.org", "SIZE=50000000",
      SUBM_REJECT, 552, "5.3.4" },
    { "login with @", "bob@example.com", "bob@example.com", "SIZE=3000",
      SUBM_REJECT, 552, "5.3.4" },
    { "login case", "ALICE", "a@example.org", "SIZE=50000000", SUBM_CONTINUE, 0, NULL },
    { "domain lowers", NULL, "c@small.example", "SIZE=2000", SUBM_REJECT, 552, "5.3.4" },
    { "domain case", NULL, "c@SMALL.Example", "SIZE=2000", SUBM_REJECT, 552, "5.3.4" },
    { "domain under", NULL, "c@small.example", "SIZE=1000", SUBM_CONTINUE, 0, NULL },
    { "subdomain is not the domain", NULL, "c@x.small.example", "SIZE=2000",
      SUBM_CONTINUE, 0, NULL },
    { "user before domain", "alice", "alice@small.example", "SIZE=2000",
      SUBM_CONTINUE, 0, NULL },
    { "domain 0 = no limit", NULL, "d@big.example", "SIZE=99999999999", SUBM_CONTINUE, 0, NULL },
};

START_TEST(test_mail_size)
{
    const struct mcase *c = &mcases[_i];
    struct st_host *h = host_with_map("limit = 10K", MAP);
    st_result_t r;

    st_connect(h, "192.0.2.1", "client.example");
    st_helo(h, "client.example", 1);
    if (c->login)
        st_auth(h, c->login, "PLAIN");
    r = st_mail(h, c->sender, c->params);
    unlink(map_path);
    ck_assert_msg(r.verdict == c->verdict, "%s: verdict %d, want %d",
                  c->label, r.verdict, c->verdict);
    ck_assert_msg(r.code == c->code, "%s: code %d, want %d", c->label, r.code, c->code);
    if (c->ecode)
        ck_assert_msg(strcmp(r.ecode, c->ecode) == 0, "%s: ecode %s, want %s",
                      c->label, r.ecode, c->ecode);
    st_host_free(&h);
}
END_TEST

START_TEST(test_advertised_limit)
{
    struct st_host *h = st_host_new("plugin size { limit = 3M }");

    st_connect(h, "192.0.2.1", "client.example");
    ck_assert_uint_eq(st_session(h)->size_limit, 3u << 20);
    st_helo(h, "client.example", 1);
    ck_assert_uint_eq(st_session(h)->size_limit, 3u << 20);
    st_host_free(&h);
    h = st_host_new("plugin size { limit = 0 }");
    st_connect(h, "192.0.2.1", "client.example");
    st_helo(h, "client.example", 1);
    ck_assert_uint_eq(st_session(h)->size_limit, 0);
    ck_assert_int_eq(st_mail(h, "a@example.org", "SIZE=99999999999999").verdict, SUBM_CONTINUE);
    st_host_free(&h);
}
END_TEST

/* a message of about n octets: a header and body lines of 78 'x'. */
static char *message(size_t n)
{
    char *m = malloc(n + 200), *p;

    ck_assert_ptr_nonnull(m);
    p = m + snprintf(m, 200, "Subject: size test\n\n");
    while ((size_t) (p - m) + 80 < n) {
        memset(p, 'x', 78);
        p[78] = '\n';
        p += 79;
    }
    *p = 0;
    return m;
}

struct ecase {
    const char     *label;
    const char     *params;       /* the SIZE= the client announced */
    size_t          octets;       /* what it then sent (about) */
    size_t          chunk;
    subm_verdict_t  verdict;
};

/* limit = 4K: SIZE= told the truth, lied, or was absent. */
static const struct ecase ecases[] = {
    { "small, honest", "SIZE=1000", 1000, 0, SUBM_CONTINUE },
    { "small, no SIZE", NULL, 1000, 0, SUBM_CONTINUE },
    { "lied, one chunk", "SIZE=100", 20000, 0, SUBM_REJECT },
    { "lied, small chunks", "SIZE=100", 20000, 100, SUBM_REJECT },
    { "no SIZE, too big", NULL, 5000, 0, SUBM_REJECT },
    { "no SIZE, far too big", NULL, 1 << 20, 4096, SUBM_REJECT },
};

START_TEST(test_received_size)
{
    const struct ecase *c = &ecases[_i];
    struct st_host *h = st_host_new("plugin size { limit = 4K }");
    char *m = message(c->octets);
    st_result_t r;

    st_connect(h, "192.0.2.1", "client.example");
    ck_assert_int_eq(st_mail(h, "a@example.org", c->params).verdict, SUBM_CONTINUE);
    st_rcpt(h, "b@example.org", NULL);
    r = st_message(h, m, c->chunk);
    free(m);
    ck_assert_msg(r.verdict == c->verdict, "%s: verdict %d, want %d",
                  c->label, r.verdict, c->verdict);
    if (c->verdict == SUBM_REJECT) {
        ck_assert_msg(r.code == 552 && strcmp(r.ecode, "5.3.4") == 0,
                      "%s: %d %s", c->label, r.code, r.ecode);
        ck_assert(st_log_contains(h, "over the global limit 4096"));
    }
    st_host_free(&h);
}
END_TEST

/* The end-of-message check alone catches it (a front-end that gives the
 * body in one piece only at EOM, or a plugin before us that ended BODY). */
START_TEST(test_eom_catches_lie)
{
    struct st_host *h = st_host_new("plugin size { limit = 1K }");
    st_result_t r;

    st_connect(h, "192.0.2.1", "client.example");
    ck_assert_int_eq(st_mail(h, "a@example.org", "SIZE=10").verdict, SUBM_CONTINUE);
    st_rcpt(h, "b@example.org", NULL);
    st_data(h);
    st_header(h, "Subject: x");
    ck_assert_int_eq(st_eoh(h).verdict, SUBM_CONTINUE);
    st_session(h)->txn->size += 5000;    /* octets counted by the front-end */
    r = st_eom(h);
    ck_assert_int_eq(r.verdict, SUBM_REJECT);
    ck_assert_int_eq(r.code, 552);
    ck_assert_str_eq(r.ecode, "5.3.4");
    ck_assert(st_log_contains(h, "(SIZE=10)"));
    st_host_free(&h);
}
END_TEST

/* Per-user limit at the end of data too. */
START_TEST(test_received_per_user)
{
    struct st_host *h = host_with_map("limit = 100K", "carol 2K\n");
    char *m = message(5000);

    unlink(map_path);
    st_connect(h, "192.0.2.1", "client.example");
    st_auth(h, "carol", "PLAIN");
    st_mail(h, "carol@example.org", NULL);
    st_rcpt(h, "b@example.org", NULL);
    ck_assert_int_eq(st_message(h, m, 0).code, 552);
    ck_assert(st_log_contains(h, "over the user limit 2048"));
    free(m);
    st_host_free(&h);
}
END_TEST

START_TEST(test_storage_short)
{
    /* a reserve no disk has: every MAIL gets 452 4.3.1 */
    struct st_host *h = st_host_new(
        "plugin size { limit = 10M spool_dir = \"/tmp\" spool_reserve = 1000000000G }");
    st_result_t r = st_mail(h, "a@example.org", "SIZE=100");

    ck_assert_int_eq(r.verdict, SUBM_TEMPFAIL);
    ck_assert_int_eq(r.code, 452);
    ck_assert_str_eq(r.ecode, "4.3.1");
    st_host_free(&h);
    /* a small reserve: a small message fits */
    h = st_host_new("plugin size { limit = 10M spool_dir = \"/tmp\" spool_reserve = 1K }");
    ck_assert_int_eq(st_mail(h, "a@example.org", "SIZE=100").verdict, SUBM_CONTINUE);
    st_host_free(&h);
}
END_TEST

START_TEST(test_bad_map)
{
    static const struct { const char *text, *want; } t[] = {
        { "alice 10M\nbob\n", ":2: want `LOGIN SIZE`" },
        { "alice 10M extra\n", ":1: want `LOGIN SIZE`" },
        { "\n\nalice ten\n", ":3: malformed size `ten`" },
        { "alice 99999999999999999999\n", ":1: too large a size" },
        { "alice 20000000000000G\n", ":1: too large a size" },
        { "@ 1M\n", ":1: `@` without a domain" },
        { "alice 1M\nALICE 2M\n", "duplicate key `alice`" },
    };
    char err[2048], conf[256];
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        write_map(t[i].text);
        snprintf(conf, sizeof(conf), "plugin size { map = \"%s\" }", map_path);
        ck_assert_msg(st_host_try(conf, err, sizeof(err)) == NULL, "%s loaded", t[i].text);
        unlink(map_path);
        ck_assert_msg(strstr(err, t[i].want) != NULL && strstr(err, map_path) != NULL,
                      "%s: %s", t[i].want, err);
    }
    ck_assert_ptr_null(st_host_try("plugin size { map = \"/nonexistent/map\" }",
                                   err, sizeof(err)));
    ck_assert_msg(strstr(err, "/nonexistent/map: No such file") != NULL, "%s", err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("size");
    TCase *tc = tcase_create("size");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_mail_size, 0, (int) (sizeof(mcases) / sizeof(mcases[0])));
    tcase_add_test(tc, test_advertised_limit);
    tcase_add_loop_test(tc, test_received_size, 0, (int) (sizeof(ecases) / sizeof(ecases[0])));
    tcase_add_test(tc, test_eom_catches_lie);
    tcase_add_test(tc, test_received_per_user);
    tcase_add_test(tc, test_storage_short);
    tcase_add_test(tc, test_bad_map);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
