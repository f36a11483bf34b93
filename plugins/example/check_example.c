/*
 * check_example.c - the example plugin through the fake host: listed
 * recipients refused one by one, the header added, the login tagged,
 * a bad option refused at load.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "subm_test.h"

START_TEST(test_rejects_listed_rcpt_only)
{
    struct st_host *h = st_host_new(
        "plugin example { reject_rcpt = { \"blocked@example.com\", \"x@y.example\" } }");
    st_result_t r;

    st_connect(h, "192.0.2.10", "client.example");
    ck_assert_int_eq(st_mail(h, "a@example.com", NULL).verdict, SUBM_CONTINUE);
    r = st_rcpt(h, "BLOCKED@example.com", NULL);
    ck_assert_int_eq(r.verdict, SUBM_REJECT);
    ck_assert_int_eq(r.code, 550);
    ck_assert_str_eq(r.ecode, "5.7.1");
    ck_assert_str_eq(r.text, "Recipient <BLOCKED@example.com> is not accepted here");
    ck_assert_int_eq(st_rcpt(h, "ok@example.com", NULL).verdict, SUBM_CONTINUE);
    st_host_free(&h);
}
END_TEST

START_TEST(test_adds_header_and_login)
{
    struct st_host *h = st_host_new("plugin example { header = \"X-Checked:  by test\" }");

    st_connect(h, "192.0.2.10", "client.example");
    st_auth(h, "alice", "PLAIN");
    st_mail(h, "alice@example.com", NULL);
    st_rcpt(h, "bob@example.com", NULL);
    ck_assert_int_eq(st_message(h, "Subject: hi\n\nhello\n", 0).verdict, SUBM_CONTINUE);
    ck_assert_str_eq(st_header_after_mods(h, "X-Checked", 1), "by test");
    ck_assert_str_eq(st_header_after_mods(h, "X-Submilter-Login", 1), "alice");
    st_host_free(&h);
}
END_TEST

START_TEST(test_no_login_tag_when_off_or_anonymous)
{
    struct st_host *h = st_host_new("plugin example { tag_login = no }");

    st_auth(h, "alice", "PLAIN");
    st_mail(h, "alice@example.com", NULL);
    st_rcpt(h, "bob@example.com", NULL);
    st_message(h, "Subject: hi\n\nhello\n", 0);
    ck_assert_ptr_null(st_header_after_mods(h, "X-Submilter-Login", 1));
    ck_assert_str_eq(st_header_after_mods(h, "X-Submilter-Example", 1), "yes");
    st_host_free(&h);
}
END_TEST

START_TEST(test_bad_header_option)
{
    char err[1024];
    struct st_host *h = st_host_try("plugin example {\n header = \"no colon here\"\n}\n",
                                    err, sizeof(err));

    ck_assert_ptr_null(h);
    ck_assert_msg(strstr(err, "test.conf:3: plugin example: header \"no colon here\" is not")
                  != NULL, "%s", err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("example");
    TCase *tc = tcase_create("example");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_rejects_listed_rcpt_only);
    tcase_add_test(tc, test_adds_header_and_login);
    tcase_add_test(tc, test_no_login_tag_when_off_or_anonymous);
    tcase_add_test(tc, test_bad_header_option);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
