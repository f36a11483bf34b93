/*
 * check_loader.c - plugin loading: a good plugin, a missing file, another
 * ABI version, a wrong descriptor size, a missing descriptor symbol; and the
 * same failures reported through the configuration with file and line.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "loader.h"

static const char *tp_dir(void)
{
    const char *d = getenv("T_PLUGINS");

    ck_assert_msg(d != NULL, "T_PLUGINS is not set (run through make check)");
    return d;
}

static const struct {
    const char *label, *name;
    int ok;
    const char *want1, *want2;
} cases[] = {
    { "good", "testplug", 1, NULL, NULL },
    { "missing file", "nothere", 0, "no such file", "nothere.so" },
    { "other ABI", "badabi", 0, "plugin built for ABI version 999", "this submilter has ABI version 1" },
    { "descriptor size", "smallsize", 0, "descriptor is 16 bytes", "smallsize.so" },
    { "no descriptor", "nosym", 0, "no symbol 'subm_plugin'", "nosym.so" },
};

START_TEST(test_open)
{
    struct plugin_so *so = NULL;
    char err[1024] = "";
    int r = loader_open(cases[_i].name, NULL, tp_dir(), &so, err, sizeof(err));

    ck_assert_msg((r == 0) == cases[_i].ok, "%s: got %d (%s)", cases[_i].label, r, err);
    if (cases[_i].ok) {
        ck_assert_ptr_nonnull(so);
        ck_assert_str_eq(so->desc->name, cases[_i].name);
        loader_close(&so);
        ck_assert_ptr_null(so);
        return;
    }
    ck_assert_ptr_null(so);
    ck_assert_msg(strstr(err, cases[_i].want1) != NULL, "%s: '%s' lacks '%s'",
                  cases[_i].label, err, cases[_i].want1);
    ck_assert_msg(strstr(err, cases[_i].want2) != NULL, "%s: '%s' lacks '%s'",
                  cases[_i].label, err, cases[_i].want2);
}
END_TEST

START_TEST(test_by_path)
{
    struct plugin_so *so = NULL;
    char err[1024] = "", path[2048];

    snprintf(path, sizeof(path), "%s/testplug.so", tp_dir());
    ck_assert_msg(loader_open("anyname", path, "/nonexistent", &so, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(so->path, path);
    loader_close(&so);
}
END_TEST

static void collect(void *arg, const char *line)
{
    snprintf(arg, 2048, "%s", line);
}

START_TEST(test_abi_through_config)
{
    char text[2048], err[2048] = "";
    struct config *cfg;

    snprintf(text, sizeof(text), "plugin_dir = \"%s\"\n\nplugin badabi {\n}\n", tp_dir());
    cfg = config_load_string(text, "abi.conf", NULL, collect, err);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(err, "abi.conf:4:") == err, "no file:line in '%s'", err);
    ck_assert_msg(strstr(err, "badabi.so") && strstr(err, "ABI version 999"), "%s", err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("open");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_open, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, test_by_path);
    tcase_add_test(tc, test_abi_through_config);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
