/*
 * dkimrun.c - run one message through a chain in the fake host, for the
 * interop scripts: `dkimrun CONF sign|verify IP [LOGIN] < message`.
 *   sign    prints the DKIM-Signature fields the chain added, then the
 *           message as read (so the output is the signed message);
 *   verify  prints the Authentication-Results value the chain added.
 * CONF is a file of configuration text. Exit 0, or 1 (with the verdict on
 * stderr) if the chain did not let the message through. Not a test itself;
 * it runs as a one-test Check suite because the fake host reports through
 * Check.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "subm_test.h"

/* slurp - all of fp into a malloc'd NUL-terminated buffer */
static char *slurp(FILE *fp)
{
    size_t len = 0, cap = 65536, got;
    char *buf = malloc(cap + 1);

    while (buf && (got = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += got;
        if (len == cap && !(buf = realloc(buf, (cap *= 2) + 1)))
            break;
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

static int    g_argc;
static char **g_argv;

START_TEST(run)
{
    int argc = g_argc;
    char **argv = g_argv;
    FILE *fp;
    char *conf, *msg, err[4096];
    struct st_host *h;
    st_result_t r;
    const char *v;
    int n;

    fp = fopen(argv[1], "r");
    ck_assert_msg(fp != NULL, "%s: cannot open", argv[1]);
    conf = slurp(fp);
    msg = slurp(stdin);
    ck_assert(conf && msg);
    fclose(fp);
    h = st_host_try(conf, err, sizeof(err));
    ck_assert_msg(h != NULL, "configuration did not load: %s", err);
    st_connect(h, argv[3], "client.example");
    st_helo(h, "client.example", 1);
    if (argc > 4)
        st_auth(h, argv[4], "PLAIN");
    r = st_mail(h, "sender@example.com", NULL);
    if (r.verdict == SUBM_CONTINUE || r.verdict == SUBM_ACCEPT) {
        st_rcpt(h, "rcpt@example.net", NULL);
        r = st_message(h, msg, 4096);
    }
    ck_assert_msg(r.verdict == SUBM_CONTINUE || r.verdict == SUBM_ACCEPT,
                  "verdict %d: %d %s %s", r.verdict, r.code, r.ecode, r.text);
    if (strcmp(argv[2], "sign") == 0) {
        for (n = 1; (v = st_header_after_mods(h, "DKIM-Signature", n)); n++)
            printf("DKIM-Signature: %s\r\n", v);
        fputs(msg, stdout);
    } else {
        v = st_header_after_mods(h, "Authentication-Results", 1);
        printf("%s\n", v ? v : "(none)");
    }
    fflush(stdout);
    st_host_free(&h);
    free(msg);
    free(conf);
}
END_TEST

int main(int argc, char **argv)
{
    Suite *s = suite_create("dkimrun");
    TCase *tc = tcase_create("run");
    SRunner *sr;
    int failed;

    if (argc < 4 || (strcmp(argv[2], "sign") != 0 && strcmp(argv[2], "verify") != 0)) {
        fprintf(stderr, "usage: dkimrun CONF sign|verify IP [LOGIN] < message\n");
        return 64;
    }
    g_argc = argc;
    g_argv = argv;
    tcase_add_test(tc, run);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_SILENT);
    failed = srunner_ntests_failed(sr);
    if (failed)
        srunner_print(sr, CK_NORMAL);
    srunner_free(sr);
    return failed ? 1 : 0;
}
