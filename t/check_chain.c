/*
 * check_chain.c - running stages through the chain: order, each verdict,
 * default and sanitised replies, RCPT-scoped verdicts, stages closed by
 * ACCEPT, modifications recorded and applied to the outgoing header list.
 * Drives the chain through the fake host of t/harness with the scriptable
 * test plugin t/plugins/testplug.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "mods.h"
#include "pool.h"
#include "session.h"
#include "spool.h"
#include "subm_test.h"

/* spool_read_all - the outgoing body into buf. */
static long spool_read_all(struct session *s, char *buf, size_t len)
{
    return spool_read(mods_body(s), 0, buf, len);
}

/* two instances of testplug, A then B, with A's rules and mods given. */
static struct st_host *two(const char *rules_a, const char *mods_a)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "plugin A { path = \"%s/testplug.so\" mark = A rules = { %s } mods = { %s } }\n"
             "plugin B { path = \"%s/testplug.so\" mark = B }\n",
             getenv("T_PLUGINS"), rules_a, mods_a, getenv("T_PLUGINS"));
    return st_host_new(text);
}

START_TEST(test_order)
{
    struct st_host *h = two("", "");
    const char *log;

    ck_assert_int_eq(st_connect(h, "192.0.2.1", "c.example").verdict, SUBM_CONTINUE);
    ck_assert_int_eq(st_mail(h, "a@example.com", NULL).verdict, SUBM_CONTINUE);
    log = st_log(h);
    ck_assert_msg(strstr(log, "A mail a@example.com") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "A mail") < strstr(log, "B mail"), "B ran before A:\n%s", log);
    st_host_free(&h);
}
END_TEST

static const struct {
    const char *label, *rule;
    subm_verdict_t verdict;
    int code;
    const char *ecode, *text;
    int b_runs;
} verdicts[] = {
    { "continue", "\"mail:continue\"", SUBM_CONTINUE, 0, "", "", 1 },
    { "accept skips the rest", "\"mail:accept\"", SUBM_ACCEPT, 0, "", "", 0 },
    { "reject with reply", "\"mail:reject:553:5.1.8:bad sender domain\"", SUBM_REJECT,
      553, "5.1.8", "bad sender domain", 0 },
    { "reject default", "\"mail:reject\"", SUBM_REJECT, 550, "5.7.1",
      "Sender rejected by policy", 0 },
    { "tempfail default", "\"mail:tempfail\"", SUBM_TEMPFAIL, 451, "4.7.1",
      "Temporary failure, try again later", 0 },
    { "reject with a 4xx gets the default", "\"mail:reject:451:4.7.1:x\"", SUBM_REJECT,
      550, "5.7.1", "Sender rejected by policy", 0 },
    { "tempfail with a 5xx gets the default", "\"mail:tempfail:550::y\"", SUBM_TEMPFAIL,
      451, "4.7.1", "Temporary failure, try again later", 0 },
    { "missing enhanced code is filled", "\"mail:reject:554::no\"", SUBM_REJECT,
      554, "5.7.1", "no", 0 },
    { "enhanced code of the wrong class", "\"mail:reject:550:4.1.1:no\"", SUBM_REJECT,
      550, "5.7.1", "Sender rejected by policy", 0 },
    { "discard", "\"mail:discard\"", SUBM_DISCARD, 0, "", "", 0 },
    { "invalid verdict is tempfail", "\"mail:bogus\"", SUBM_TEMPFAIL, 451, "4.7.1",
      "Temporary failure, try again later", 0 },
};

START_TEST(test_verdicts)
{
    struct st_host *h = two(verdicts[_i].rule, "");
    st_result_t r = st_mail(h, "s@example.com", NULL);

    ck_assert_msg(r.verdict == verdicts[_i].verdict, "%s: got %d, want %d",
                  verdicts[_i].label, r.verdict, verdicts[_i].verdict);
    ck_assert_msg(r.code == verdicts[_i].code, "%s: got code %d, want %d",
                  verdicts[_i].label, r.code, verdicts[_i].code);
    ck_assert_msg(strcmp(r.ecode, verdicts[_i].ecode) == 0, "%s: got %s, want %s",
                  verdicts[_i].label, r.ecode, verdicts[_i].ecode);
    ck_assert_msg(strcmp(r.text, verdicts[_i].text) == 0, "%s: got '%s', want '%s'",
                  verdicts[_i].label, r.text, verdicts[_i].text);
    ck_assert_msg((strstr(st_log(h), "B mail") != NULL) == verdicts[_i].b_runs,
                  "%s: B ran: %d", verdicts[_i].label, !verdicts[_i].b_runs);
    if (verdicts[_i].verdict == SUBM_DISCARD)
        ck_assert_int_eq(st_session(h)->txn->discard, 1);
    if (verdicts[_i].verdict == SUBM_REJECT || verdicts[_i].verdict == SUBM_TEMPFAIL)
        ck_assert_msg(strstr(st_log(h), verdict_name(verdicts[_i].verdict)) != NULL,
                      "%s: verdict not logged:\n%s", verdicts[_i].label, st_log(h));
    st_host_free(&h);
}
END_TEST

static const struct { subm_stage_t stage; subm_verdict_t v; int code; } defaults[] = {
    { SUBM_STAGE_CONNECT, SUBM_REJECT, 554 }, { SUBM_STAGE_CONNECT, SUBM_TEMPFAIL, 421 },
    { SUBM_STAGE_HELO, SUBM_REJECT, 550 }, { SUBM_STAGE_RCPT, SUBM_REJECT, 550 },
    { SUBM_STAGE_EOM, SUBM_REJECT, 550 }, { SUBM_STAGE_VRFY, SUBM_REJECT, 502 },
    { SUBM_STAGE_EOM, SUBM_TEMPFAIL, 451 },
};

START_TEST(test_default_replies)
{
    struct reply r;

    chain_default_reply(defaults[_i].stage, defaults[_i].v, &r);
    ck_assert_msg(r.code == defaults[_i].code, "%s %s: got %d, want %d",
                  chain_stage_name(defaults[_i].stage), verdict_name(defaults[_i].v),
                  r.code, defaults[_i].code);
    ck_assert_int_eq(r.ecode[0] - '0', r.code / 100);
}
END_TEST

START_TEST(test_reply_sanitised)
{
    struct reply r;
    char long_text[3000];

    ck_assert_int_eq(reply_set(&r, 550, "5.7.1", "a\r\nb\x01" "c\n\nd%s"), 0);
    ck_assert_str_eq(r.text, "a \nb c\nd%s");
    ck_assert_int_eq(reply_set(&r, 550, "4.7.1", "x"), -1);
    ck_assert_int_eq(reply_set(&r, 550, "5.7", "x"), -1);
    ck_assert_int_eq(reply_set(&r, 650, NULL, "x"), -1);
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    ck_assert_int_eq(reply_set(&r, 550, NULL, long_text), 0);
    ck_assert_uint_le(strlen(r.text), 900);
}
END_TEST

START_TEST(test_rcpt_scoped)
{
    struct st_host *h = two("\"rcpt@bad@example.com:reject:550:5.1.1:no such user\"", "");
    st_result_t r;

    st_mail(h, "s@example.com", NULL);
    ck_assert_int_eq(st_rcpt(h, "good@example.com", "NOTIFY=NEVER").verdict, SUBM_CONTINUE);
    r = st_rcpt(h, "bad@example.com", NULL);
    ck_assert_int_eq(r.verdict, SUBM_REJECT);
    ck_assert_int_eq(r.code, 550);
    ck_assert_str_eq(r.ecode, "5.1.1");
    ck_assert_int_eq(st_rcpt(h, "other@example.com", NULL).verdict, SUBM_CONTINUE);
    /* the transaction goes on with the two others */
    ck_assert_ptr_nonnull(st_session(h)->txn);
    ck_assert_uint_eq(st_session(h)->txn->nrcpts, 2);
    ck_assert_str_eq(st_session(h)->txn->rcpts[1].addr, "other@example.com");
    ck_assert_str_eq(st_session(h)->txn->rcpts[0].params[0].value, "NEVER");
    txn_drop_rcpt(st_session(h), 0);
    ck_assert_uint_eq(st_session(h)->txn->nrcpts, 1);
    ck_assert_str_eq(st_session(h)->txn->rcpts[0].addr, "other@example.com");
    txn_drop_rcpt(st_session(h), 5);          /* out of range: nothing */
    ck_assert_uint_eq(st_session(h)->txn->nrcpts, 1);
    st_host_free(&h);
}
END_TEST

START_TEST(test_header_accept_closes_stage)
{
    struct st_host *h = two("\"header:accept\"", "");
    st_result_t r;

    st_mail(h, "s@example.com", NULL);
    st_rcpt(h, "r@example.com", NULL);
    r = st_message(h, "Subject: one\nX-Two: two\n folded\n\nbody line\n", 0);
    ck_assert_int_eq(r.verdict, SUBM_CONTINUE);
    ck_assert_msg(strstr(st_log(h), "A header Subject") != NULL, "%s", st_log(h));
    ck_assert_msg(strstr(st_log(h), "A header X-Two") == NULL, "stage not closed:\n%s", st_log(h));
    ck_assert_msg(strstr(st_log(h), "B header") == NULL, "%s", st_log(h));
    ck_assert_msg(strstr(st_log(h), "A eom") != NULL, "%s", st_log(h));
    /* the folded field was recorded whole, and unfolded for plugins */
    ck_assert_uint_eq(st_session(h)->txn->nheaders, 2);
    ck_assert_str_eq(st_session(h)->txn->headers[1].raw, "X-Two: two\r\n folded");
    ck_assert_str_eq(st_session(h)->txn->headers[1].value, "two folded");
    st_host_free(&h);
}
END_TEST

START_TEST(test_mods_recorded_and_applied)
{
    struct st_host *h = two("",
        "\"add:X-Added:yes\", \"insert:0:X-First:1\", \"change:Subject:1:new subject\","
        "\"delete:X-Old:1\", \"sender:other@example.com\", \"addrcpt:added@example.com\","
        "\"delrcpt:r1@example.com\", \"body:replaced\r\n\", \"add:Bad Name:x\","
        "\"change:X-Missing:1:appended\"");
    struct header *hd;
    struct rcpt *rc;
    size_t n, nr;
    const char *sender, *sparams;
    const struct mod *m;
    char buf[64];
    long got;

    st_mail(h, "s@example.com", NULL);
    st_rcpt(h, "r1@example.com", NULL);
    st_rcpt(h, "r2@example.com", NULL);
    ck_assert_int_eq(st_message(h, "Subject: old\nX-Old: gone\nTo: x\n\nbody\n", 0).verdict,
                     SUBM_CONTINUE);
    ck_assert_msg(st_log_contains(h, "mod add:Bad Name:x -> -1"), "bad name accepted:\n%s",
                  st_log(h));
    ck_assert_uint_eq(st_mod_count(h), 9);
    m = st_mods(h);
    ck_assert_int_eq(m->type, MOD_ADD_HEADER);
    ck_assert_str_eq(m->plugin, "A");
    mods_headers(st_session(h), &hd, &n);
    ck_assert_uint_eq(n, 5);
    ck_assert_str_eq(hd[0].name, "X-First");
    ck_assert_str_eq(hd[1].raw, "Subject: new subject");
    ck_assert_str_eq(hd[2].name, "To");
    ck_assert_str_eq(hd[3].raw, "X-Added: yes");
    ck_assert_str_eq(hd[4].raw, "X-Missing: appended");
    ck_assert_str_eq(st_header_after_mods(h, "subject", 1), "new subject");
    ck_assert_ptr_null(st_header_after_mods(h, "X-Old", 1));
    mods_envelope(st_session(h), &sender, &sparams, &rc, &nr);
    ck_assert_str_eq(sender, "other@example.com");
    ck_assert_uint_eq(nr, 2);
    ck_assert_str_eq(rc[0].addr, "r2@example.com");
    ck_assert_str_eq(rc[1].addr, "added@example.com");
    got = spool_read_all(st_session(h), buf, sizeof(buf));
    ck_assert_int_eq(got, 10);
    ck_assert_int_eq(memcmp(buf, "replaced\r\n", 10), 0);
    st_host_free(&h);
}
END_TEST

START_TEST(test_rset_ends_transaction)
{
    struct st_host *h = two("", "");

    st_mail(h, "s@example.com", NULL);
    ck_assert_ptr_nonnull(st_session(h)->txn);
    st_rset(h);
    ck_assert_ptr_null(st_session(h)->txn);
    ck_assert_msg(st_log_contains(h, "A rset"), "%s", st_log(h));
    /* a stage with no hook in the chain is a cheap CONTINUE */
    st_host_free(&h);
    h = st_host_new("plugin example { }");
    ck_assert_int_eq(st_command(h, SUBM_STAGE_VRFY, "root").verdict, SUBM_CONTINUE);
    st_host_free(&h);
}
END_TEST

START_TEST(test_stages_mask)
{
    char text[1024];
    struct st_host *h;

    snprintf(text, sizeof(text), "plugin A { path = \"%s/testplug.so\" mark = A only = { mail } }",
             getenv("T_PLUGINS"));
    h = st_host_new(text);
    st_mail(h, "s@example.com", NULL);
    st_rcpt(h, "r@example.com", NULL);
    ck_assert_msg(st_log_contains(h, "A mail"), "%s", st_log(h));
    ck_assert_msg(!st_log_contains(h, "A rcpt"), "masked stage ran:\n%s", st_log(h));
    st_host_free(&h);
}
END_TEST

START_TEST(test_header_with_nul_kept_by_length)
{
    static const char raw[] = "X-A: a\0bc\r\n\tfolded";
    struct st_host *h = two("", "");
    const struct header *hd;

    st_mail(h, "s@example.com", NULL);
    ck_assert_int_eq(txn_add_header(st_session(h), raw, sizeof(raw) - 1, &hd), 0);
    ck_assert_uint_eq(hd->raw_len, sizeof(raw) - 1);
    ck_assert_int_eq(memcmp(hd->raw, raw, sizeof(raw) - 1), 0);
    ck_assert_str_eq(hd->name, "X-A");
    ck_assert_int_eq(txn_add_header(st_session(h), "no colon", 8, &hd), -1);
    ck_assert_int_eq(txn_add_header(st_session(h), ": empty name", 12, &hd), -1);
    st_host_free(&h);
}
END_TEST

START_TEST(test_repeated_helo_bounded)
{
    struct st_host *h = st_host_new("plugin example { }");
    size_t before, i;

    st_helo(h, "first.example", 1);
    st_auth(h, "alice", "PLAIN");
    before = pool_used(st_session(h)->pool);
    for (i = 0; i < 10000; i++) {
        st_helo(h, i % 2 ? "client.example.com" : "c.example", 1);
        st_auth(h, "alice", "LOGIN");
    }
    ck_assert_str_eq(st_session(h)->helo, "client.example.com");
    ck_assert_msg(pool_used(st_session(h)->pool) == before,
                  "session pool grew from %zu to %zu", before, pool_used(st_session(h)->pool));
    st_host_free(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chain");
    TCase *tc = tcase_create("run");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_order);
    tcase_add_loop_test(tc, test_verdicts, 0, sizeof(verdicts) / sizeof(verdicts[0]));
    tcase_add_loop_test(tc, test_default_replies, 0, sizeof(defaults) / sizeof(defaults[0]));
    tcase_add_test(tc, test_reply_sanitised);
    tcase_add_test(tc, test_rcpt_scoped);
    tcase_add_test(tc, test_header_accept_closes_stage);
    tcase_add_test(tc, test_mods_recorded_and_applied);
    tcase_add_test(tc, test_rset_ends_transaction);
    tcase_add_test(tc, test_stages_mask);
    tcase_add_test(tc, test_header_with_nul_kept_by_length);
    tcase_add_test(tc, test_repeated_helo_bounded);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
