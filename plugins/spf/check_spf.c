/*
 * check_spf.c - Check tests of the spf plugin through the fake host, with
 * libspf2's zone DNS layer (option test_zone) instead of a network: RFC 7208
 * results and our corrections of libspf2 (limits, "(invalid)"), the policy
 * table, skips, headers, forged Authentication-Results and the cache.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "subm_test.h"

static char zone_path[64];

static const char zone_text[] =
    "pass.example TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n"
    "fail.example TXT \"v=spf1 -all\"\n"
    "soft.example TXT \"v=spf1 ~all\"\n"
    "neutral.example TXT \"v=spf1 ?all\"\n"
    "none.example A 192.0.2.9\n"
    "broken.example TXT \"v=spf1 foo:bar -all\"\n"
    "badip.example TXT \"v=spf1 ip4:192.0.2.300 -all\"\n"
    "tempfail.example TXT !TRY_AGAIN\n"
    "inctemp.example TXT \"v=spf1 include:tempfail.example -all\"\n"
    "mx.example TXT \"v=spf1 mx -all\"\n"
    "mx.example MX mail.mx.example\n"
    "mail.mx.example A 192.0.2.1\n"
    "helo.example TXT \"v=spf1 ip4:192.0.2.1 -all\"\n"
    "badtop.example TXT \"v=spf1 a:foo -all\"\n"
    "twoexp.example TXT \"v=spf1 exp=a.example exp=b.example -all\"\n"
    "badmacro.example TXT \"v=spf1 exists:%{q}.example.net -all\"\n"
    "inctop.example TXT \"v=spf1 include:badtop.example -all\"\n"
    "macros.example TXT \"v=spf1 a:%{d}/24//64 exists:%{i}._spf.%{d} ~all "
        "x-note=%{l1r+-}%%%_%-\"\n"
    "192.0.2.1._spf.macros.example A 127.0.0.2\n"
    "ten.example TXT \"v=spf1 a:a1.example a:a2.example a:a3.example a:a4.example "
        "a:a5.example a:a6.example a:a7.example a:a8.example a:a9.example "
        "a:a10.example ip4:192.0.2.0/24 -all\"\n"
    "eleven.example TXT \"v=spf1 a:a1.example a:a2.example a:a3.example a:a4.example "
        "a:a5.example a:a6.example a:a7.example a:a8.example a:a9.example "
        "a:a10.example a:a11.example ip4:192.0.2.0/24 -all\"\n"
    "incs.example TXT \"v=spf1 include:i1.example include:i2.example include:i3.example "
        "include:i4.example include:i5.example include:i6.example include:i7.example "
        "include:i8.example include:i9.example include:i10.example include:i11.example -all\"\n"
    "twovoid.example TXT \"v=spf1 a:v1.example a:v2.example ip4:192.0.2.0/24 -all\"\n"
    "threevoid.example TXT \"v=spf1 a:v1.example a:v2.example a:v3.example "
        "ip4:192.0.2.0/24 -all\"\n"
    "a1.example A 198.51.100.1\n" "a2.example A 198.51.100.1\n"
    "a3.example A 198.51.100.1\n" "a4.example A 198.51.100.1\n"
    "a5.example A 198.51.100.1\n" "a6.example A 198.51.100.1\n"
    "a7.example A 198.51.100.1\n" "a8.example A 198.51.100.1\n"
    "a9.example A 198.51.100.1\n" "a10.example A 198.51.100.1\n"
    "a11.example A 198.51.100.1\n"
    "i1.example TXT \"v=spf1 -all\"\n" "i2.example TXT \"v=spf1 -all\"\n"
    "i3.example TXT \"v=spf1 -all\"\n" "i4.example TXT \"v=spf1 -all\"\n"
    "i5.example TXT \"v=spf1 -all\"\n" "i6.example TXT \"v=spf1 -all\"\n"
    "i7.example TXT \"v=spf1 -all\"\n" "i8.example TXT \"v=spf1 -all\"\n"
    "i9.example TXT \"v=spf1 -all\"\n" "i10.example TXT \"v=spf1 -all\"\n"
    "i11.example TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n";

static const char message[] =
    "From: a@example.org\r\nTo: b@example.net\r\nSubject: spf test\r\n\r\nbody\r\n";

/* zone_setup - write the zone file every test reads (unchecked fixture) */
static void zone_setup(void)
{
    int fd;
    FILE *fp;

    snprintf(zone_path, sizeof(zone_path), "/tmp/check_spf_zone.XXXXXX");
    fd = mkstemp(zone_path);
    ck_assert_int_ge(fd, 0);
    fp = fdopen(fd, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(zone_text, fp);
    fclose(fp);
}

static void zone_teardown(void)
{
    unlink(zone_path);
}

/* host_with - a chain of one spf plugin with extra options */
static struct st_host *host_with(const char *extra)
{
    char conf[1024];

    snprintf(conf, sizeof(conf),
             "plugin spf { test_zone = \"%s\" authserv_id = \"mx.test\" %s }",
             zone_path, extra ? extra : "");
    return st_host_new(conf);
}

/* run_mail - connect, HELO, MAIL; returns the MAIL result */
static st_result_t run_mail(struct st_host *h, const char *ip, const char *helo,
                            const char *sender)
{
    st_connect(h, ip, "client.example");
    st_helo(h, helo, 1);
    return st_mail(h, sender, NULL);
}

/* run_message - RCPT and the message; returns EOM's verdict */
static subm_verdict_t run_message(struct st_host *h, const char *text)
{
    st_rcpt(h, "rcpt@example.net", NULL);
    return st_message(h, text, 0).verdict;
}

/* ---- results: each zone case through the default policy ---- */

static const struct {
    const char    *label, *ip, *helo, *sender;
    subm_verdict_t verdict;
    int            code;
    const char    *ecode, *result;    /* result: Received-SPF's first word */
} results[] = {
    { "pass", "192.0.2.1", "c.example", "u@pass.example", SUBM_CONTINUE, 0, "", "pass" },
    { "fail", "192.0.2.1", "c.example", "u@fail.example", SUBM_REJECT, 550, "5.7.23", NULL },
    { "ip outside pass", "198.51.100.7", "c.example", "u@pass.example", SUBM_REJECT, 550, "5.7.23", NULL },
    { "softfail", "192.0.2.1", "c.example", "u@soft.example", SUBM_CONTINUE, 0, "", "softfail" },
    { "neutral", "192.0.2.1", "c.example", "u@neutral.example", SUBM_CONTINUE, 0, "", "neutral" },
    { "no record", "192.0.2.1", "c.example", "u@none.example", SUBM_CONTINUE, 0, "", "none" },
    { "no domain", "192.0.2.1", "c.example", "u@nx.example", SUBM_CONTINUE, 0, "", "none" },
    { "syntax error", "192.0.2.1", "c.example", "u@broken.example", SUBM_CONTINUE, 0, "", "permerror" },
    { "bad ip4 literal", "192.0.2.1", "c.example", "u@badip.example", SUBM_CONTINUE, 0, "", "permerror" },
    { "dns failure", "192.0.2.1", "c.example", "u@tempfail.example", SUBM_CONTINUE, 0, "", "temperror" },
    { "include dns failure", "192.0.2.1", "c.example", "u@inctemp.example", SUBM_CONTINUE, 0, "", "temperror" },
    { "mx", "192.0.2.1", "c.example", "u@mx.example", SUBM_CONTINUE, 0, "", "pass" },
    { "ten lookups", "192.0.2.1", "c.example", "u@ten.example", SUBM_CONTINUE, 0, "", "pass" },
    { "eleven lookups", "192.0.2.1", "c.example", "u@eleven.example", SUBM_CONTINUE, 0, "", "permerror" },
    { "eleven includes", "192.0.2.1", "c.example", "u@incs.example", SUBM_CONTINUE, 0, "", "permerror" },
    { "two void lookups", "192.0.2.1", "c.example", "u@twovoid.example", SUBM_CONTINUE, 0, "", "pass" },
    { "three void lookups", "192.0.2.1", "c.example", "u@threevoid.example", SUBM_CONTINUE, 0, "", "permerror" },
    { "null sender, helo pass", "192.0.2.1", "helo.example", "", SUBM_CONTINUE, 0, "", "pass" },
    { "null sender, helo fail", "192.0.2.2", "helo.example", "", SUBM_REJECT, 550, "5.7.23", NULL },
    { "ipv6 fail", "2001:db8::1", "c.example", "u@fail.example", SUBM_REJECT, 550, "5.7.23", NULL },
    { "bad toplabel (libspf2 accepts)", "192.0.2.1", "c.example", "u@badtop.example", SUBM_CONTINUE, 0, "", "permerror" },
    { "two exp= (libspf2 accepts)", "192.0.2.1", "c.example", "u@twoexp.example", SUBM_CONTINUE, 0, "", "permerror" },
    { "unknown macro letter", "192.0.2.1", "c.example", "u@badmacro.example", SUBM_CONTINUE, 0, "", "permerror" },
    { "bad record behind include", "192.0.2.1", "c.example", "u@inctop.example", SUBM_CONTINUE, 0, "", "permerror" },
    { "valid macros and cidrs", "192.0.2.1", "c.example", "u@macros.example", SUBM_CONTINUE, 0, "", "pass" },
};

START_TEST(test_results)
{
    struct st_host *h = host_with(NULL);
    st_result_t r = run_mail(h, results[_i].ip, results[_i].helo, results[_i].sender);
    const char *rs, *ar;
    char want[64];

    ck_assert_msg(r.verdict == results[_i].verdict, "%s: verdict %d, want %d (%d %s)",
                  results[_i].label, r.verdict, results[_i].verdict, r.code, r.text);
    if (results[_i].code) {
        ck_assert_msg(r.code == results[_i].code && strcmp(r.ecode, results[_i].ecode) == 0,
                      "%s: got %d %s, want %d %s", results[_i].label, r.code, r.ecode,
                      results[_i].code, results[_i].ecode);
    }
    if (results[_i].result) {
        ck_assert_int_eq(run_message(h, message), SUBM_CONTINUE);
        rs = st_header_after_mods(h, "Received-SPF", 1);
        ck_assert_msg(rs != NULL, "%s: no Received-SPF", results[_i].label);
        snprintf(want, sizeof(want), "%s ", results[_i].result);
        ck_assert_msg(strncmp(rs, want, strlen(want)) == 0, "%s: Received-SPF \"%s\", want %s",
                      results[_i].label, rs, results[_i].result);
        ar = st_header_after_mods(h, "Authentication-Results", 1);
        snprintf(want, sizeof(want), "spf=%s ", results[_i].result);
        ck_assert_msg(ar && strstr(ar, want) && strncmp(ar, "mx.test;", 8) == 0,
                      "%s: Authentication-Results \"%s\", want %s", results[_i].label,
                      ar ? ar : "(none)", want);
    }
    st_host_free(&h);
}
END_TEST

/* ---- policy table ---- */

static const struct {
    const char    *label, *options, *sender;
    subm_verdict_t verdict;
    int            code;
    const char    *ecode;
    int            header;         /* 1: a Received-SPF is added */
} policies[] = {
    { "softfail reject", "softfail = reject", "u@soft.example", SUBM_REJECT, 550, "5.7.23", 0 },
    { "fail tempfail", "fail = tempfail", "u@fail.example", SUBM_TEMPFAIL, 451, "4.7.24", 0 },
    { "fail tag", "fail = tag", "u@fail.example", SUBM_CONTINUE, 0, "", 1 },
    { "fail accept", "fail = accept", "u@fail.example", SUBM_CONTINUE, 0, "", 0 },
    { "temperror tempfail", "temperror = tempfail", "u@tempfail.example", SUBM_TEMPFAIL, 451, "4.7.24", 0 },
    { "permerror reject", "permerror = reject", "u@broken.example", SUBM_REJECT, 550, "5.7.24", 0 },
    { "pass accept", "pass = accept", "u@pass.example", SUBM_CONTINUE, 0, "", 0 },
    { "none reject", "none = reject", "u@none.example", SUBM_REJECT, 550, "5.7.23", 0 },
    { "neutral tempfail", "neutral = tempfail", "u@neutral.example", SUBM_TEMPFAIL, 451, "4.7.24", 0 },
};

START_TEST(test_policy)
{
    struct st_host *h = host_with(policies[_i].options);
    st_result_t r = run_mail(h, "192.0.2.1", "c.example", policies[_i].sender);

    ck_assert_msg(r.verdict == policies[_i].verdict && r.code == policies[_i].code,
                  "%s: got %d/%d, want %d/%d", policies[_i].label, r.verdict, r.code,
                  policies[_i].verdict, policies[_i].code);
    if (policies[_i].code)
        ck_assert_msg(strcmp(r.ecode, policies[_i].ecode) == 0, "%s: ecode %s, want %s",
                      policies[_i].label, r.ecode, policies[_i].ecode);
    else {
        ck_assert_int_eq(run_message(h, message), SUBM_CONTINUE);
        ck_assert_msg((st_header_after_mods(h, "Received-SPF", 1) != NULL) == policies[_i].header,
                      "%s: Received-SPF presence, want %d", policies[_i].label,
                      policies[_i].header);
    }
    st_host_free(&h);
}
END_TEST

/* ---- who is not checked ---- */

static const struct {
    const char *label, *options, *ip;
    int         auth;
    subm_verdict_t verdict;
} skips[] = {
    { "authenticated skipped", NULL, "192.0.2.1", 1, SUBM_CONTINUE },
    { "authenticated checked", "skip_authenticated = no", "192.0.2.1", 1, SUBM_REJECT },
    { "unauthenticated checked", NULL, "192.0.2.1", 0, SUBM_REJECT },
    { "skip network", "skip_networks = { \"192.0.2.64/26\" }", "192.0.2.77", 0, SUBM_CONTINUE },
    { "outside skip network", "skip_networks = { \"192.0.2.64/26\" }", "192.0.2.1", 0, SUBM_REJECT },
    { "loopback skipped by default", NULL, "127.0.0.1", 0, SUBM_CONTINUE },
    { "ipv6 skip network", "skip_networks = { \"2001:db8::/32\" }", "2001:db8::5", 0, SUBM_CONTINUE },
};

START_TEST(test_skips)
{
    struct st_host *h = host_with(skips[_i].options);
    st_result_t r;

    st_connect(h, skips[_i].ip, "client.example");
    st_helo(h, "c.example", 1);
    if (skips[_i].auth)
        st_auth(h, "alice", "PLAIN");
    r = st_mail(h, "u@fail.example", NULL);
    ck_assert_msg(r.verdict == skips[_i].verdict, "%s: got %d, want %d",
                  skips[_i].label, r.verdict, skips[_i].verdict);
    if (r.verdict == SUBM_CONTINUE) {
        ck_assert_int_eq(run_message(h, message), SUBM_CONTINUE);
        ck_assert_msg(st_header_after_mods(h, "Received-SPF", 1) == NULL,
                      "%s: a skipped session was tagged", skips[_i].label);
    }
    st_host_free(&h);
}
END_TEST

/* ---- which headers ---- */

static const struct {
    const char *label, *options;
    int         rspf, ar;
} headers[] = {
    { "both", NULL, 1, 1 },
    { "received-spf", "header = received-spf", 1, 0 },
    { "authentication-results", "header = authentication-results", 0, 1 },
    { "none", "header = none", 0, 0 },
};

START_TEST(test_headers)
{
    struct st_host *h = host_with(headers[_i].options);

    ck_assert_int_eq(run_mail(h, "192.0.2.1", "c.example", "u@pass.example").verdict,
                     SUBM_CONTINUE);
    ck_assert_int_eq(run_message(h, message), SUBM_CONTINUE);
    ck_assert_msg((st_header_after_mods(h, "Received-SPF", 1) != NULL) == headers[_i].rspf,
                  "%s: Received-SPF", headers[_i].label);
    ck_assert_msg((st_header_after_mods(h, "Authentication-Results", 1) != NULL) == headers[_i].ar,
                  "%s: Authentication-Results", headers[_i].label);
    if (headers[_i].ar) {
        const char *ar = st_header_after_mods(h, "Authentication-Results", 1);

        /* RFC 8601 pvalue: a plain address goes unquoted. */
        ck_assert_msg(strstr(ar, "spf=pass smtp.mailfrom=u@pass.example") != NULL,
                      "%s: %s", headers[_i].label, ar);
    }
    st_host_free(&h);
}
END_TEST

/* A forged Authentication-Results with our authserv-id is removed; one of
 * another authserv-id stays. */
START_TEST(test_forged_ar)
{
    struct st_host *h = host_with(NULL);
    const char *v;
    int n, ours = 0, other = 0, forged = 0;

    ck_assert_int_eq(run_mail(h, "192.0.2.1", "c.example", "u@soft.example").verdict,
                     SUBM_CONTINUE);
    ck_assert_int_eq(run_message(h,
        "Authentication-Results: mx.test; spf=pass smtp.mailfrom=forged@soft.example\r\n"
        "Authentication-Results: other.example; dkim=pass header.d=x.example\r\n"
        "Authentication-Results: (comment) MX.TEST;\r\n\tdkim=pass header.d=forged.example\r\n"
        "From: a@soft.example\r\nSubject: forged\r\n\r\nbody\r\n"), SUBM_CONTINUE);
    for (n = 1; (v = st_header_after_mods(h, "Authentication-Results", n)); n++) {
        if (strstr(v, "forged"))
            forged++;
        else if (strncmp(v, "mx.test;", 8) == 0 && strstr(v, "spf=softfail"))
            ours++;
        else if (strncmp(v, "other.example;", 14) == 0)
            other++;
    }
    ck_assert_msg(forged == 0 && ours == 1 && other == 1,
                  "forged %d (want 0), ours %d (want 1), other %d (want 1)", forged, ours, other);
    st_host_free(&h);
}
END_TEST

/* Hostile HELO and sender text ends up quoted, never as extra key=value. */
START_TEST(test_quoting)
{
    struct st_host *h = host_with("none = tag");
    const char *rs;

    ck_assert_int_eq(run_mail(h, "192.0.2.1", "evil\" receiver=x (y", "\"a b\"@none.example").verdict,
                     SUBM_CONTINUE);
    ck_assert_int_eq(run_message(h, message), SUBM_CONTINUE);
    rs = st_header_after_mods(h, "Received-SPF", 1);
    ck_assert_ptr_nonnull(rs);
    ck_assert_msg(strstr(rs, "helo=\"evil\\\" receiver=x (y\";") != NULL, "helo not quoted: %s", rs);
    ck_assert_msg(strstr(rs, "envelope-from=\"\\\"a b\\\"@none.example\";") != NULL,
                  "sender not quoted: %s", rs);
    rs = st_header_after_mods(h, "Authentication-Results", 1);
    ck_assert_msg(rs && strstr(rs, "smtp.mailfrom=\"\\\"a b\\\"@none.example\"") != NULL,
                  "A-R sender not quoted: %s", rs ? rs : "(none)");
    st_host_free(&h);
}
END_TEST

/* The second identical check comes from the cache; cache_size = 0 keeps none. */
START_TEST(test_cache)
{
    struct st_host *h = host_with(NULL);

    ck_assert_int_eq(run_mail(h, "192.0.2.1", "c.example", "u@pass.example").verdict, SUBM_CONTINUE);
    ck_assert_int_eq(st_log_contains(h, "(cached)"), 0);
    st_rset(h);
    ck_assert_int_eq(st_mail(h, "u@pass.example", NULL).verdict, SUBM_CONTINUE);
    ck_assert_int_eq(st_log_contains(h, "(cached)"), 1);
    st_host_free(&h);

    h = host_with("cache_size = 0");
    run_mail(h, "192.0.2.1", "c.example", "u@pass.example");
    st_rset(h);
    st_mail(h, "u@pass.example", NULL);
    ck_assert_int_eq(st_log_contains(h, "(cached)"), 0);
    st_host_free(&h);
}
END_TEST

/* A transaction that ends before EOM does not leave a tag for the next. */
START_TEST(test_rset_forgets)
{
    struct st_host *h = host_with("pass = accept");

    ck_assert_int_eq(run_mail(h, "192.0.2.1", "c.example", "u@soft.example").verdict, SUBM_CONTINUE);
    st_rset(h);
    ck_assert_int_eq(st_mail(h, "u@pass.example", NULL).verdict, SUBM_CONTINUE);
    ck_assert_int_eq(run_message(h, message), SUBM_CONTINUE);
    ck_assert_ptr_null(st_header_after_mods(h, "Received-SPF", 1));
    st_host_free(&h);
}
END_TEST

/* The limits are ours (libspf2 alone passes eleven terms): raising them
 * turns the permerror cases into passes. */
static const struct {
    const char *label, *options, *sender, *want;
} limits[] = {
    { "eleven terms allowed", "max_dns_terms = 11", "u@eleven.example", "pass" },
    { "eleven terms default", NULL, "u@eleven.example", "permerror" },
    { "three voids allowed", "max_void_lookups = 3", "u@threevoid.example", "pass" },
    { "two voids refused", "max_void_lookups = 1", "u@twovoid.example", "permerror" },
};

START_TEST(test_limits)
{
    struct st_host *h = host_with(limits[_i].options);
    const char *rs;

    ck_assert_int_eq(run_mail(h, "192.0.2.1", "c.example", limits[_i].sender).verdict,
                     SUBM_CONTINUE);
    ck_assert_int_eq(run_message(h, message), SUBM_CONTINUE);
    rs = st_header_after_mods(h, "Received-SPF", 1);
    ck_assert_msg(rs && strncmp(rs, limits[_i].want, strlen(limits[_i].want)) == 0,
                  "%s: got \"%s\", want %s", limits[_i].label, rs ? rs : "(none)",
                  limits[_i].want);
    st_host_free(&h);
}
END_TEST

/* The reply to a fail names the sender and address, nothing else's site. */
START_TEST(test_fail_text)
{
    struct st_host *h = host_with(NULL);
    st_result_t r = run_mail(h, "192.0.2.1", "c.example", "u@fail.example");

    ck_assert_int_eq(r.code, 550);
    ck_assert_msg(strstr(r.text, "fail.example does not designate 192.0.2.1") != NULL,
                  "reply text: %s", r.text);
    ck_assert_msg(strstr(r.text, "http") == NULL, "reply text: %s", r.text);
    st_host_free(&h);
}
END_TEST

/* check_helo: a failing HELO identity decides even when MAIL FROM passes. */
static const struct {
    const char    *label, *options, *ip, *helo, *sender;
    subm_verdict_t verdict;
    const char    *result;       /* Received-SPF's first word when accepted */
} helos[] = {
    { "helo not checked by default", NULL, "192.0.2.9", "helo.example", "u@pass.example",
      SUBM_CONTINUE, "pass" },
    { "helo fail decides", "check_helo = yes", "192.0.2.9", "helo.example", "u@pass.example",
      SUBM_REJECT, NULL },
    { "helo pass: MAIL FROM decides", "check_helo = yes", "192.0.2.1", "helo.example",
      "u@soft.example", SUBM_CONTINUE, "softfail" },
    { "helo without record: MAIL FROM decides", "check_helo = yes", "192.0.2.9", "c.example",
      "u@pass.example", SUBM_CONTINUE, "pass" },
};

START_TEST(test_check_helo)
{
    struct st_host *h = host_with(helos[_i].options);
    st_result_t r = run_mail(h, helos[_i].ip, helos[_i].helo, helos[_i].sender);
    const char *rs;

    ck_assert_msg(r.verdict == helos[_i].verdict, "%s: verdict %d, want %d (%d %s)",
                  helos[_i].label, r.verdict, helos[_i].verdict, r.code, r.text);
    if (r.verdict == SUBM_REJECT)
        ck_assert_msg(r.code == 550 && strstr(r.text, "postmaster@helo.example"),
                      "%s: %d %s", helos[_i].label, r.code, r.text);
    if (helos[_i].result) {
        ck_assert_int_eq(run_message(h, message), SUBM_CONTINUE);
        rs = st_header_after_mods(h, "Received-SPF", 1);
        ck_assert_msg(rs && strncmp(rs, helos[_i].result, strlen(helos[_i].result)) == 0
                      && strstr(rs, "identity=mailfrom"),
                      "%s: %s", helos[_i].label, rs ? rs : "(none)");
    }
    st_host_free(&h);
}
END_TEST

/* Bad configuration is refused at load with a message naming the problem. */
static const struct {
    const char *label, *conf, *needle;
} bad_confs[] = {
    { "missing zone", "plugin spf { test_zone = \"/nonexistent/zone\" }", "/nonexistent/zone" },
    { "bad network", "plugin spf { skip_networks = { \"192.0.2.0/33\" } }", "192.0.2.0/33" },
    { "bad action", "plugin spf { fail = explode }", "explode" },
};

START_TEST(test_bad_conf)
{
    char err[2048] = "";
    struct st_host *h = st_host_try(bad_confs[_i].conf, err, sizeof(err));

    ck_assert_msg(h == NULL, "%s: loaded", bad_confs[_i].label);
    ck_assert_msg(strstr(err, bad_confs[_i].needle) != NULL, "%s: error \"%s\" lacks \"%s\"",
                  bad_confs[_i].label, err, bad_confs[_i].needle);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *spf_suite(void)
{
    Suite *s = suite_create("spf");
    TCase *tc = tcase_create("plugin");

    tcase_add_checked_fixture(tc, zone_setup, zone_teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, test_results, 0, N(results));
    tcase_add_loop_test(tc, test_policy, 0, N(policies));
    tcase_add_loop_test(tc, test_skips, 0, N(skips));
    tcase_add_loop_test(tc, test_headers, 0, N(headers));
    tcase_add_loop_test(tc, test_limits, 0, N(limits));
    tcase_add_test(tc, test_fail_text);
    tcase_add_loop_test(tc, test_check_helo, 0, N(helos));
    tcase_add_test(tc, test_forged_ar);
    tcase_add_test(tc, test_quoting);
    tcase_add_test(tc, test_cache);
    tcase_add_test(tc, test_rset_forgets);
    tcase_add_loop_test(tc, test_bad_conf, 0, N(bad_confs));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(spf_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
