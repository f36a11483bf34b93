/*
 * spfrun.c - run SPF checks through a chain in the fake host, for the DNS
 * test scripts: `spfrun CONF < cases`, one case a line, "IP HELO SENDER"
 * separated by tabs (SENDER may be empty: the null sender). For each case a
 * new host runs CONNECT, HELO, MAIL and, if MAIL passes, a message, and one
 * line is printed:
 *     VERDICT CODE ECODE<TAB>RESULT<TAB>MS<TAB>TEXT
 * RESULT is the first word of the Received-SPF field added ("-" if none),
 * MS how long MAIL took. An IP of "=" continues the previous case's session
 * (RSET, then MAIL with this SENDER): the same plugin instance, so its
 * cache. Not a test itself; it runs as a one-test Check
 * suite because the fake host reports through Check.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "subm_test.h"

static const char *g_conf_path;
static struct st_host *g_host;      /* the last case's, for "=" */

/* now_ms - monotonic milliseconds */
static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* read_conf - the whole configuration file */
static char *read_conf(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = malloc(65536);
    size_t n;

    ck_assert_msg(fp && buf, "%s: cannot read", path);
    n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* run_case - one line of input */
static void run_case(const char *conf, char *line)
{
    char *ip = line, *helo, *sender, err[4096], first[32] = "-";
    struct st_host *h;
    st_result_t r;
    const char *rs;
    long t0, ms;

    line[strcspn(line, "\r\n")] = '\0';
    if (!(helo = strchr(ip, '\t')) || !(sender = strchr(helo + 1, '\t'))) {
        printf("BAD-INPUT\n");
        return;
    }
    *helo++ = '\0';
    *sender++ = '\0';
    if (strcmp(ip, "=") == 0 && g_host) {
        h = g_host;
        st_rset(h);
    } else {
        if (g_host)
            st_host_free(&g_host);
        h = st_host_try(conf, err, sizeof(err));
        ck_assert_msg(h != NULL, "configuration did not load: %s", err);
        st_connect(h, ip, "client.example");
        st_helo(h, helo, 1);
    }
    t0 = now_ms();
    r = st_mail(h, sender, NULL);
    ms = now_ms() - t0;
    if (r.verdict == SUBM_CONTINUE) {
        st_rcpt(h, "rcpt@example.net", NULL);
        st_message(h, "From: a@example.org\r\nSubject: t\r\n\r\nbody\r\n", 0);
        if ((rs = st_header_after_mods(h, "Received-SPF", 1)))
            snprintf(first, sizeof(first), "%.*s", (int)strcspn(rs, " "), rs);
    }
    printf("%d %d %s\t%s\t%ld\t%s\n", (int)r.verdict, r.code, r.ecode[0] ? r.ecode : "-",
           first, ms, r.text);
    fflush(stdout);
    g_host = h;
}

START_TEST(run)
{
    char *conf = read_conf(g_conf_path);
    char line[4096];

    while (fgets(line, sizeof(line), stdin))
        run_case(conf, line);
    if (g_host)
        st_host_free(&g_host);
    free(conf);
}
END_TEST

int main(int argc, char **argv)
{
    Suite *s = suite_create("spfrun");
    TCase *tc = tcase_create("run");
    SRunner *sr;
    int failed;

    if (argc != 2) {
        fprintf(stderr, "usage: spfrun CONF < cases\n");
        return 64;
    }
    g_conf_path = argv[1];
    tcase_add_test(tc, run);
    tcase_set_timeout(tc, 0);
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
