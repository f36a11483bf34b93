/*
 * check_vrfy.c - the vrfy plugin through the fake host: each policy of
 * VRFY and EXPN with and without AUTH, the reject codes, HELP, the
 * per-client rate limit (window, other clients, over_rate answers) and the
 * bounded client table.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "subm_test.h"

/* One command against one configuration. */
struct vcase {
    const char     *label;
    const char     *conf;
    const char     *login;        /* AUTH login, NULL: anonymous */
    subm_stage_t    stage;
    const char     *arg;
    subm_verdict_t  verdict;
    int             code;         /* 0: no reply (front-end default / relay) */
    const char     *ecode;
    const char     *text;         /* substring of the reply, or NULL */
};

static const struct vcase vcases[] = {
    { "default vrfy is ambiguous", "plugin vrfy {}", NULL,
      SUBM_STAGE_VRFY, "alice", SUBM_ACCEPT, 252, "2.5.0",
      "Cannot VRFY user, but will accept message and attempt delivery" },
    { "default expn is reject 502", "plugin vrfy {}", NULL,
      SUBM_STAGE_EXPN, "staff", SUBM_REJECT, 502, "5.5.1", "EXPN command is disabled" },
    { "vrfy reject 502", "plugin vrfy { vrfy = reject }", NULL,
      SUBM_STAGE_VRFY, "alice", SUBM_REJECT, 502, "5.5.1", "VRFY command is disabled" },
    { "vrfy reject 550", "plugin vrfy { vrfy = reject reject_code = 550 }", NULL,
      SUBM_STAGE_VRFY, "alice", SUBM_REJECT, 550, "5.7.1", "VRFY refused by policy" },
    { "expn reject 550", "plugin vrfy { reject_code = 550 }", NULL,
      SUBM_STAGE_EXPN, "staff", SUBM_REJECT, 550, "5.7.1", "EXPN refused" },
    { "expn ambiguous", "plugin vrfy { expn = ambiguous }", NULL,
      SUBM_STAGE_EXPN, "staff", SUBM_ACCEPT, 252, "2.5.0", "Cannot EXPN user" },
    { "vrfy allow relays", "plugin vrfy { vrfy = allow }", NULL,
      SUBM_STAGE_VRFY, "alice", SUBM_ACCEPT, 0, NULL, NULL },
    { "expn allow relays", "plugin vrfy { expn = allow }", NULL,
      SUBM_STAGE_EXPN, "staff", SUBM_ACCEPT, 0, NULL, NULL },
    { "allow_authenticated, anonymous", "plugin vrfy { vrfy = allow_authenticated }", NULL,
      SUBM_STAGE_VRFY, "alice", SUBM_REJECT, 530, "5.7.0", "Authentication required" },
    { "allow_authenticated, AUTH user", "plugin vrfy { vrfy = allow_authenticated }", "bob",
      SUBM_STAGE_VRFY, "alice", SUBM_ACCEPT, 0, NULL, NULL },
    { "expn allow_authenticated, anonymous", "plugin vrfy { expn = allow_authenticated }", NULL,
      SUBM_STAGE_EXPN, "staff", SUBM_REJECT, 530, "5.7.0", NULL },
    { "expn allow_authenticated, AUTH user", "plugin vrfy { expn = allow_authenticated }", "bob",
      SUBM_STAGE_EXPN, "staff", SUBM_ACCEPT, 0, NULL, NULL },
    { "reject even when authenticated", "plugin vrfy { vrfy = reject }", "bob",
      SUBM_STAGE_VRFY, "alice", SUBM_REJECT, 502, "5.5.1", NULL },
    { "empty argument", "plugin vrfy { vrfy = allow }", NULL,
      SUBM_STAGE_VRFY, "", SUBM_REJECT, 501, "5.5.4", "Syntax: VRFY address" },
    { "blank argument", "plugin vrfy { vrfy = ambiguous }", NULL,
      SUBM_STAGE_VRFY, "  ", SUBM_REJECT, 501, "5.5.4", NULL },
    { "help default: front-end answers", "plugin vrfy {}", NULL,
      SUBM_STAGE_HELP, "", SUBM_CONTINUE, 0, NULL, NULL },
    { "help reject", "plugin vrfy { help = reject }", NULL,
      SUBM_STAGE_HELP, "", SUBM_REJECT, 502, "5.5.1", "HELP command is disabled" },
    { "help text", "plugin vrfy { help_text = \"See https://example.org/help\" }", NULL,
      SUBM_STAGE_HELP, "MAIL", SUBM_ACCEPT, 214, "2.0.0", "See https://example.org/help" },
};

START_TEST(test_policies)
{
    const struct vcase *c = &vcases[_i];
    struct st_host *h = st_host_new(c->conf);
    st_result_t r;

    st_connect(h, "192.0.2.7", "client.example");
    st_helo(h, "client.example", 1);
    if (c->login)
        st_auth(h, c->login, "PLAIN");
    r = st_command(h, c->stage, c->arg);
    ck_assert_msg(r.verdict == c->verdict, "%s: verdict %d, want %d",
                  c->label, r.verdict, c->verdict);
    ck_assert_msg(r.code == c->code, "%s: code %d, want %d", c->label, r.code, c->code);
    if (c->ecode)
        ck_assert_msg(strcmp(r.ecode, c->ecode) == 0, "%s: ecode %s, want %s",
                      c->label, r.ecode, c->ecode);
    if (c->text)
        ck_assert_msg(strstr(r.text, c->text) != NULL, "%s: text \"%s\", want \"%s\"",
                      c->label, r.text, c->text);
    st_host_free(&h);
}
END_TEST

/* lookups - n VRFYs from the current client; how many were let through. */
static int lookups(struct st_host *h, int n, st_result_t *last)
{
    int i, passed = 0;

    for (i = 0; i < n; i++) {
        *last = st_command(h, SUBM_STAGE_VRFY, "alice");
        if (last->verdict == SUBM_ACCEPT && last->code == 0)
            passed++;
    }
    return passed;
}

START_TEST(test_rate_limit)
{
    struct st_host *h = st_host_new(
        "plugin vrfy { vrfy = allow expn = allow rate_limit = 3 rate_window = 1s }");
    st_result_t r;

    st_connect(h, "192.0.2.1", "a.example");
    ck_assert_int_eq(lookups(h, 5, &r), 3);
    ck_assert_int_eq(r.code, 252);                  /* over_rate = ambiguous */
    /* EXPN shares the client's budget */
    r = st_command(h, SUBM_STAGE_EXPN, "staff");
    ck_assert_int_eq(r.code, 252);
    ck_assert(st_log_contains(h, "rate limit"));
    /* another client has its own budget */
    st_connect(h, "2001:db8::2", "b.example");
    ck_assert_int_eq(lookups(h, 4, &r), 3);
    /* a new window */
    st_connect(h, "192.0.2.1", "a.example");
    usleep(1100 * 1000);
    ck_assert_int_eq(lookups(h, 4, &r), 3);
    st_host_free(&h);
}
END_TEST

START_TEST(test_over_rate_answers)
{
    static const struct { const char *conf; subm_verdict_t v; int code; const char *ecode; } t[] = {
        { "plugin vrfy { vrfy = allow rate_limit = 1 over_rate = reject }",
          SUBM_REJECT, 550, "5.7.1" },
        { "plugin vrfy { vrfy = allow rate_limit = 1 over_rate = tempfail }",
          SUBM_TEMPFAIL, 450, "4.7.1" },
        { "plugin vrfy { vrfy = allow rate_limit = 1 over_rate = ambiguous }",
          SUBM_ACCEPT, 252, "2.5.0" },
        { "plugin vrfy { vrfy = allow_authenticated rate_limit = 1 over_rate = reject }",
          SUBM_REJECT, 550, "5.7.1" },
    };
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct st_host *h = st_host_new(t[i].conf);
        st_result_t r;

        st_connect(h, "198.51.100.9", "c.example");
        st_auth(h, "bob", "PLAIN");
        r = st_command(h, SUBM_STAGE_VRFY, "alice");
        ck_assert_msg(r.verdict == SUBM_ACCEPT && r.code == 0, "%s: first lookup", t[i].conf);
        r = st_command(h, SUBM_STAGE_VRFY, "alice");
        ck_assert_msg(r.verdict == t[i].v && r.code == t[i].code &&
                      strcmp(r.ecode, t[i].ecode) == 0,
                      "%s: got %d %d %s", t[i].conf, r.verdict, r.code, r.ecode);
        st_host_free(&h);
    }
}
END_TEST

START_TEST(test_rate_zero_is_unlimited)
{
    struct st_host *h = st_host_new("plugin vrfy { vrfy = allow rate_limit = 0 }");
    st_result_t r;

    st_connect(h, "192.0.2.1", "a.example");
    ck_assert_int_eq(lookups(h, 200, &r), 200);
    st_host_free(&h);
}
END_TEST

/* Many more clients than the table holds: memory stays bounded, clients
 * still get their budget, and nothing crashes. */
START_TEST(test_rate_table_bounded)
{
    struct st_host *h = st_host_new(
        "plugin vrfy { vrfy = allow rate_limit = 2 rate_clients = 16 }");
    st_result_t r;
    char addr[64];
    int i;

    for (i = 0; i < 5000; i++) {
        snprintf(addr, sizeof(addr), "2001:db8::%x", i);
        st_connect(h, addr, NULL);
        ck_assert_int_eq(lookups(h, 1, &r), 1);
    }
    st_connect(h, "192.0.2.200", NULL);
    ck_assert_int_eq(lookups(h, 3, &r), 2);
    st_host_free(&h);
}
END_TEST

/* A client key longer than a table slot is still counted. */
START_TEST(test_rate_long_key)
{
    struct st_host *h = st_host_new("plugin vrfy { vrfy = allow rate_limit = 2 }");
    st_result_t r;

    st_connect(h, "2001:0db8:0000:0000:0000:ff00:0042:8329%a-very-long-zone-name", NULL);
    ck_assert_int_eq(lookups(h, 5, &r), 2);
    st_host_free(&h);
}
END_TEST

START_TEST(test_bad_options)
{
    static const struct { const char *conf, *want; } t[] = {
        { "plugin vrfy {\n vrfy = maybe\n}\n", "test.conf:2" },
        { "plugin vrfy {\n reject_code = 551\n}\n", "test.conf:2" },
        { "plugin vrfy {\n rate_limit = -1\n}\n", "test.conf:2" },
        { "plugin vrfy {\n vrfy_limit = 3\n}\n", "test.conf:2" },
    };
    char err[2048];
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct st_host *h = st_host_try(t[i].conf, err, sizeof(err));

        ck_assert_msg(h == NULL, "%s: loaded", t[i].conf);
        ck_assert_msg(strstr(err, t[i].want) != NULL, "%s: %s", t[i].conf, err);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vrfy");
    TCase *tc = tcase_create("vrfy");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, test_policies, 0, (int) (sizeof(vcases) / sizeof(vcases[0])));
    tcase_add_test(tc, test_rate_limit);
    tcase_add_test(tc, test_over_rate_answers);
    tcase_add_test(tc, test_rate_zero_is_unlimited);
    tcase_add_test(tc, test_rate_table_bounded);
    tcase_add_test(tc, test_rate_long_key);
    tcase_add_test(tc, test_bad_options);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
