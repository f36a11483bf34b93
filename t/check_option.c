/*
 * check_option.c - typed option values: sizes, times, booleans, enums,
 * bounds, lists and defaults.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "option.h"
#include "pool.h"

struct blk {
    uint64_t size;
    long     time, num;
    int      flag, choice;
    const char *str;
    const char *const *list;
};

static const char *const colours[] = { "red", "green", NULL };
static const subm_option_t table[] = {
    { "size", SUBM_OPT_SIZE, "25M", offsetof(struct blk, size), 0, 0, NULL, NULL },
    { "time", SUBM_OPT_TIME, "5m", offsetof(struct blk, time), 0, 0, NULL, NULL },
    { "num", SUBM_OPT_INT, "7", offsetof(struct blk, num), 1, 100, NULL, NULL },
    { "flag", SUBM_OPT_BOOL, "yes", offsetof(struct blk, flag), 0, 0, NULL, NULL },
    { "choice", SUBM_OPT_ENUM, "green", offsetof(struct blk, choice), 0, 0, colours, NULL },
    { "str", SUBM_OPT_STR, NULL, offsetof(struct blk, str), 0, 0, NULL, NULL },
    { "list", SUBM_OPT_LIST, "{\"a\", \"b c\"}", offsetof(struct blk, list), 0, 0, NULL, NULL },
    SUBM_OPT_END
};

static const struct { const char *label, *text; int ok; uint64_t want; } sizes[] = {
    { "bytes", "100", 1, 100 },
    { "K", "4K", 1, 4096 },
    { "M lower", "25m", 1, 25ULL << 20 },
    { "MB", "2MB", 1, 2ULL << 20 },
    { "G", "1G", 1, 1ULL << 30 },
    { "space", "3 K", 1, 3072 },
    { "empty", "", 0, 0 },
    { "negative", "-1", 0, 0 },
    { "unit only", "K", 0, 0 },
    { "junk", "12Q", 0, 0 },
    { "overflow", "99999999999999999999G", 0, 0 },
    { "overflow after scale", "17179869184G", 0, 0 },
};

START_TEST(test_sizes)
{
    uint64_t got = 0;
    int r = option_parse_size(sizes[_i].text, &got);

    ck_assert_msg((r == 0) == sizes[_i].ok, "%s: parse returned %d", sizes[_i].label, r);
    if (sizes[_i].ok)
        ck_assert_msg(got == sizes[_i].want, "%s: got %llu, want %llu", sizes[_i].label,
                      (unsigned long long)got, (unsigned long long)sizes[_i].want);
}
END_TEST

static const struct { const char *label, *text; int ok; long want; } times[] = {
    { "bare is seconds", "30", 1, 30000 },
    { "ms", "250ms", 1, 250 },
    { "s", "10s", 1, 10000 },
    { "m", "5m", 1, 300000 },
    { "h", "2h", 1, 7200000 },
    { "d", "1d", 1, 86400000 },
    { "bad unit", "5w", 0, 0 },
    { "empty", "", 0, 0 },
};

START_TEST(test_times)
{
    long got = 0;
    int r = option_parse_time_ms(times[_i].text, &got);

    ck_assert_msg((r == 0) == times[_i].ok, "%s: parse returned %d", times[_i].label, r);
    if (times[_i].ok)
        ck_assert_msg(got == times[_i].want, "%s: got %ld, want %ld", times[_i].label,
                      got, times[_i].want);
}
END_TEST

START_TEST(test_bools)
{
    static const char *const yes[] = { "yes", "TRUE", "on", "1" };
    static const char *const no[] = { "no", "false", "Off", "0" };
    int v, i;

    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(option_parse_bool(yes[i], &v), 0);
        ck_assert_msg(v == 1, "%s: got %d, want 1", yes[i], v);
        ck_assert_int_eq(option_parse_bool(no[i], &v), 0);
        ck_assert_msg(v == 0, "%s: got %d, want 0", no[i], v);
    }
    ck_assert_int_eq(option_parse_bool("maybe", &v), -1);
}
END_TEST

START_TEST(test_defaults)
{
    struct pool *p = pool_new(1024);
    struct blk b = { 0 };
    char err[256] = "";

    ck_assert_msg(option_set_defaults(table, &b, p, err, sizeof(err)) == 0, "%s", err);
    ck_assert(b.size == 25ULL << 20);
    ck_assert_int_eq(b.time, 300000);
    ck_assert_int_eq(b.num, 7);
    ck_assert_int_eq(b.flag, 1);
    ck_assert_int_eq(b.choice, 1);
    ck_assert_ptr_null(b.str);
    ck_assert_str_eq(b.list[0], "a");
    ck_assert_str_eq(b.list[1], "b c");
    ck_assert_ptr_null(b.list[2]);
    pool_free(&p);
}
END_TEST

static const struct { const char *label, *opt, *value; int ok; const char *msg; } values[] = {
    { "int in range", "num", "100", 1, NULL },
    { "int above max", "num", "101", 0, "outside 1..100" },
    { "int below min", "num", "0", 0, "outside 1..100" },
    { "int junk", "num", "7x", 0, "not a whole number" },
    { "enum", "choice", "RED", 1, NULL },
    { "enum unknown", "choice", "blue", 0, "not one of: red, green" },
    { "bool junk", "flag", "sure", 0, "not yes or no" },
    { "size junk", "size", "big", 0, "not a size" },
    { "time junk", "time", "soon", 0, "not a time" },
};

START_TEST(test_values)
{
    const subm_option_t *o = option_find(table, values[_i].opt);
    char err[256] = "";
    const char *v = values[_i].value;
    int r;

    ck_assert_ptr_nonnull(o);
    r = option_parse(o, &v, 1, NULL, NULL, err, sizeof(err));
    ck_assert_msg((r == 0) == values[_i].ok, "%s: got %d (%s)", values[_i].label, r, err);
    if (!values[_i].ok)
        ck_assert_msg(strstr(err, values[_i].msg) != NULL, "%s: message '%s' lacks '%s'",
                      values[_i].label, err, values[_i].msg);
}
END_TEST

START_TEST(test_scalar_takes_one_value)
{
    const char *two[] = { "1", "2" };
    char err[256] = "";

    ck_assert_int_eq(option_parse(option_find(table, "num"), two, 2, NULL, NULL,
                                  err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "takes one value"));
    ck_assert_ptr_null(option_find(table, "nope"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("option");
    TCase *tc = tcase_create("parse");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_sizes, 0, sizeof(sizes) / sizeof(sizes[0]));
    tcase_add_loop_test(tc, test_times, 0, sizeof(times) / sizeof(times[0]));
    tcase_add_test(tc, test_bools);
    tcase_add_test(tc, test_defaults);
    tcase_add_loop_test(tc, test_values, 0, sizeof(values) / sizeof(values[0]));
    tcase_add_test(tc, test_scalar_takes_one_value);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
