/*
 * check_config.c - configuration loading: good and bad files, every error
 * with file and line, defaults, plugin option checking, chain order, the
 * shipped conf/submilter.conf, relative paths, snapshots.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain.h"
#include "config.h"
#include "frontend.h"

static char errs[8192];

static void collect(void *arg, const char *line)
{
    size_t used = strlen(errs);

    (void)arg;
    snprintf(errs + used, sizeof(errs) - used, "%s\n", line);
}

/* load - text with "@TP@" replaced by the test plugin folder. */
static struct config *load(const char *text)
{
    const char *dir = getenv("T_PLUGINS");
    char buf[8192];
    const char *at;
    size_t o = 0;

    ck_assert_ptr_nonnull(dir);
    for (; *text && o < sizeof(buf) - 512; text++) {
        if ((at = strstr(text, "@TP@")) == text) {
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s", dir);
            text += 3;
        } else {
            buf[o++] = *text;
        }
    }
    buf[o] = '\0';
    errs[0] = '\0';
    return config_load_string(buf, "test.conf", getenv("SUBM_TEST_PLUGIN_DIR"), collect, NULL);
}

static const struct { const char *label, *text, *want; } bad[] = {
    { "unknown top-level key", "hostname = x\nfrobnicate = 1\n",
      "test.conf:2: no such option 'frobnicate'" },
    { "unknown smtp key", "\nsmtp {\n  listen = \"127.0.0.1:1\"\n  colour = blue\n}\n",
      "test.conf:4: no such option 'colour'" },
    { "bad smtp number", "smtp {\n max_sessions = lots\n}\n",
      "test.conf:2: option 'max_sessions': 'lots' is not a whole number" },
    { "smtp number out of range", "smtp { max_sessions = 0 }\n",
      "test.conf:1: option 'max_sessions': 0 is outside" },
    { "bad time", "milter {\n\n timeout = soon\n}\n", "test.conf:3: option 'timeout'" },
    { "smtp twice", "smtp { }\nsmtp { }\n", "more than once" },
    { "syntax", "smtp {\n listen = \n", "test.conf:" },
    { "unknown plugin", "\nplugin nothere { }\n", "test.conf:2: plugin nothere:" },
    { "plugin option unknown", "plugin testplug {\n  mark = a\n  colour = red\n}\n",
      "test.conf:3: no such option 'colour'" },
    { "plugin option bad value", "plugin testplug {\n fail_init = perhaps\n}\n",
      "test.conf:2: option 'fail_init': 'perhaps' is not yes or no" },
    { "option of another plugin", "plugin testplug { }\nplugin example {\n mark = x\n}\n",
      "test.conf:3: plugin 'example' (example) has no option 'mark'" },
    { "plugin init fails", "plugin testplug {\n fail_init = yes\n mark = M\n}\n",
      "test.conf:4: plugin testplug: asked to fail (M)" },
    { "duplicate plugin", "plugin testplug { }\nplugin testplug { }\n", "duplicate title" },
    { "bad ABI", "plugin badabi { }\n", "ABI version 999" },
    { "two values for a scalar", "plugin testplug { mark = { a, b } }\n", "test.conf:1: unexpected token '{'" },
};

START_TEST(test_bad)
{
    struct config *cfg = load(bad[_i].text);

    ck_assert_msg(cfg == NULL, "%s: loaded", bad[_i].label);
    ck_assert_msg(strstr(errs, bad[_i].want) != NULL, "%s: got '%s', want '%s'",
                  bad[_i].label, errs, bad[_i].want);
}
END_TEST

START_TEST(test_defaults)
{
    struct config *cfg = load("");

    ck_assert_msg(cfg != NULL, "%s", errs);
    ck_assert_ptr_null(cfg->smtp);
    ck_assert_ptr_null(cfg->milter);
    ck_assert_int_eq(cfg->root.plugin_timeout, 10000);
    ck_assert(cfg->root.spool_memory == 256 * 1024);
    ck_assert_uint_eq(cfg->chain->nlinks, 0);
    ck_assert(cfg->root.hostname[0] != '\0');
    config_unref(&cfg);
    ck_assert_ptr_null(cfg);
}
END_TEST

START_TEST(test_frontends)
{
    struct config *cfg = load("smtp {\n listen = { \"127.0.0.1:1\", \"[::1]:2 tls\" }\n"
                              " max_message_size = 10M\n timeout = 30s\n}\n"
                              "milter { listen = \"unix:/tmp/x.sock\" }\n");

    ck_assert_msg(cfg != NULL, "%s", errs);
    ck_assert_ptr_nonnull(cfg->smtp);
    ck_assert_str_eq(cfg->smtp->listen[0], "127.0.0.1:1");
    ck_assert_str_eq(cfg->smtp->listen[1], "[::1]:2 tls");
    ck_assert_ptr_null(cfg->smtp->listen[2]);
    ck_assert(cfg->smtp->max_message_size == 10 * 1024 * 1024);
    ck_assert_int_eq(cfg->smtp->timeout, 30000);
    ck_assert_int_eq(cfg->smtp->max_sessions, 1000);       /* default kept */
    ck_assert_str_eq(cfg->milter->listen, "unix:/tmp/x.sock");
    config_unref(&cfg);
}
END_TEST

START_TEST(test_chain_order_and_instances)
{
    struct config *cfg = load("plugin first { path = \"@TP@/testplug.so\" mark = one }\n"
                              "plugin example { }\n"
                              "plugin last { path = \"@TP@/testplug.so\" mark = two }\n");

    ck_assert_msg(cfg != NULL, "%s", errs);
    ck_assert_uint_eq(cfg->chain->nlinks, 3);
    ck_assert_str_eq(cfg->chain->links[0].name, "first");
    ck_assert_str_eq(cfg->chain->links[1].name, "example");
    ck_assert_str_eq(cfg->chain->links[2].name, "last");
    ck_assert(chain_uses_stage(cfg->chain, SUBM_STAGE_BODY));    /* testplug */
    config_unref(&cfg);
    cfg = load("plugin testplug { only = { mail, rcpt } }\n");
    ck_assert(chain_uses_stage(cfg->chain, SUBM_STAGE_MAIL));
    ck_assert(!chain_uses_stage(cfg->chain, SUBM_STAGE_BODY));     /* stages() said so */
    config_unref(&cfg);
    cfg = load("plugin example { }\n");
    ck_assert(chain_uses_stage(cfg->chain, SUBM_STAGE_RCPT));
    ck_assert(!chain_uses_stage(cfg->chain, SUBM_STAGE_BODY));
    config_unref(&cfg);
}
END_TEST

START_TEST(test_shipped_conf)
{
    char path[4096];
    const char *src = getenv("top_srcdir");
    struct config *cfg;

    ck_assert_ptr_nonnull(src);
    snprintf(path, sizeof(path), "%s/conf/submilter.conf", src);
    errs[0] = '\0';
    cfg = config_load(path, getenv("SUBM_TEST_PLUGIN_DIR"), collect, NULL);
    ck_assert_msg(cfg != NULL, "shipped configuration does not load:\n%s", errs);
    ck_assert_ptr_nonnull(cfg->smtp);
    config_unref(&cfg);
}
END_TEST

START_TEST(test_file_line_and_relative_path)
{
    char dir[] = "/tmp/check_config.XXXXXX", file[256];
    FILE *f;
    struct config *cfg;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/s.conf", dir);
    f = fopen(file, "w");
    fputs("spool_dir = spool\n\n\nbogus = 1\n", f);
    fclose(f);
    errs[0] = '\0';
    ck_assert_ptr_null(config_load(file, NULL, collect, NULL));
    ck_assert_msg(strncmp(errs, file, strlen(file)) == 0 && strstr(errs, ":4: ") != NULL,
                  "got '%s'", errs);
    f = fopen(file, "w");
    fputs("spool_dir = spool\n", f);
    fclose(f);
    cfg = config_load(file, NULL, collect, NULL);
    ck_assert_msg(cfg != NULL, "%s", errs);
    ck_assert_msg(strcmp(cfg->root.spool_dir + strlen(dir), "/spool") == 0,
                  "relative path not anchored: %s", cfg->root.spool_dir);
    config_unref(&cfg);
    unlink(file);
    ck_assert_ptr_null(config_load(file, NULL, collect, NULL));
    ck_assert_ptr_nonnull(strstr(errs, "cannot read"));
    rmdir(dir);
}
END_TEST

START_TEST(test_publish_acquire)
{
    struct config *a = load(""), *b = load(""), *got;

    ck_assert_ptr_null(config_acquire());
    config_publish(a);
    got = config_acquire();
    ck_assert_ptr_eq(got, a);
    ck_assert_int_eq(a->refs, 2);
    config_publish(b);               /* a lives on while `got` holds it */
    ck_assert_int_eq(a->refs, 1);
    config_release(&got);
    got = config_acquire();
    ck_assert_ptr_eq(got, b);
    config_release(&got);
    config_publish(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_bad, 0, sizeof(bad) / sizeof(bad[0]));
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_frontends);
    tcase_add_test(tc, test_chain_order_and_instances);
    tcase_add_test(tc, test_shipped_conf);
    tcase_add_test(tc, test_file_line_and_relative_path);
    tcase_add_test(tc, test_publish_acquire);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
