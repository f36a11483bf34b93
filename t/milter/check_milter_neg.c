/*
 * check_milter_neg.c - the milter front-end's pure pieces, table-driven:
 * which protocol steps a chain asks the MTA for (milter_neg_steps), which
 * actions (milter_neg_actions), macro names (milter_macro_ok), and header
 * values as the MTA wants them (milter_header_value). The protocol itself
 * is tested against a running daemon by miltertest.sh and the MTA tests.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "chain.h"
#include "milter_int.h"
#include "pool.h"

#define B(st) (1u << (st))
#define ALL_STEPS 0x1fffffUL

/* The stages a chain hooks, its plugin flags, what the MTA offers and the
 * no_reply_steps option; the flags that must and must not be asked for. */
static const struct steps_case {
    const char   *label;
    unsigned      stages;
    unsigned      flags;
    unsigned long offered;
    int           no_reply;
    unsigned long want, not_want;
} steps_cases[] = {
    { "empty chain: no content, DATA kept", 0, 0, ALL_STEPS, 0,
      SMFIP_NOHDRS | SMFIP_NOBODY | SMFIP_NOEOH | SMFIP_NOUNKNOWN | SMFIP_SKIP | SMFIP_HDR_LEADSPC,
      SMFIP_NODATA | SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT |
      SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_HDR },
    { "empty chain: CONNECT always with a reply (it is answered ACCEPT)", 0, 0, ALL_STEPS, 1,
      SMFIP_NOHDRS | SMFIP_NOBODY, SMFIP_NOCONNECT | SMFIP_NR_CONN },
    { "a plugin with only a flag is not an empty chain", 0, SUBM_PLUGIN_NEEDS_HEADERS,
      ALL_STEPS, 1, SMFIP_NR_MAIL, SMFIP_NOMAIL | SMFIP_NOHDRS | SMFIP_NODATA },
    { "a chain without no_reply: DATA kept, every hooked step answered",
      B(SUBM_STAGE_EOM), 0, ALL_STEPS, 0, SMFIP_NOHDRS | SMFIP_NOBODY | SMFIP_NOEOH,
      SMFIP_NODATA | SMFIP_NOCONNECT | SMFIP_NOMAIL | SMFIP_NR_CONN | SMFIP_NR_MAIL },
    { "rcpt+eom (example): headers and body not sent", B(SUBM_STAGE_RCPT) | B(SUBM_STAGE_EOM), 0,
      ALL_STEPS, 0, SMFIP_NOHDRS | SMFIP_NOBODY, SMFIP_NODATA | SMFIP_NR_RCPT },
    { "a header hook: headers sent, with replies", B(SUBM_STAGE_HEADER), 0, ALL_STEPS, 1,
      SMFIP_NOBODY, SMFIP_NOHDRS | SMFIP_NR_HDR },
    { "a body hook: body sent", B(SUBM_STAGE_BODY), 0, ALL_STEPS, 0,
      SMFIP_NOHDRS, SMFIP_NOBODY | SMFIP_NR_BODY },
    { "NEEDS_HEADERS at EOM: headers sent, no reply with no_reply_steps",
      B(SUBM_STAGE_EOM), SUBM_PLUGIN_NEEDS_HEADERS, ALL_STEPS, 1,
      SMFIP_NR_HDR | SMFIP_NOBODY, SMFIP_NOHDRS },
    { "NEEDS_BODY at EOM: body sent, never NR_BODY",
      B(SUBM_STAGE_EOM), SUBM_PLUGIN_NEEDS_BODY, ALL_STEPS, 1,
      SMFIP_NOHDRS, SMFIP_NOBODY | SMFIP_NR_BODY },
    { "no_reply_steps: unhooked connect/helo/mail/rcpt without reply", B(SUBM_STAGE_EOM), 0,
      ALL_STEPS, 1, SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT, 0 },
    { "no_reply_steps: a HELO hook keeps HELO and MAIL replied", B(SUBM_STAGE_HELO), 0,
      ALL_STEPS, 1, SMFIP_NR_CONN | SMFIP_NR_RCPT, SMFIP_NR_HELO | SMFIP_NR_MAIL },
    { "no_reply_steps: an AUTH hook keeps MAIL replied (it runs there)", B(SUBM_STAGE_AUTH), 0,
      ALL_STEPS, 1, SMFIP_NR_HELO, SMFIP_NR_MAIL },
    { "no_reply_steps: a CONNECT hook keeps MAIL replied (refusal repeated there)",
      B(SUBM_STAGE_CONNECT), 0, ALL_STEPS, 1, SMFIP_NR_HELO, SMFIP_NR_CONN | SMFIP_NR_MAIL },
    { "EXPN hook: unknown commands sent", B(SUBM_STAGE_EXPN), 0, ALL_STEPS, 0, 0, SMFIP_NOUNKNOWN },
    { "EOH hook: EOH sent", B(SUBM_STAGE_EOH), 0, ALL_STEPS, 0, 0, SMFIP_NOEOH },
    { "old MTA offers nothing: nothing asked", 0, 0, 0, 1, 0, ~0UL },
    { "MTA without SKIP or LEADSPC", 0, 0, ALL_STEPS & ~(SMFIP_SKIP | SMFIP_HDR_LEADSPC), 0,
      SMFIP_NOBODY, SMFIP_SKIP | SMFIP_HDR_LEADSPC },
};

START_TEST(test_steps)
{
    const struct steps_case *c = &steps_cases[_i];
    struct chain ch;
    unsigned long got;

    memset(&ch, 0, sizeof(ch));
    ch.stage_mask = c->stages;
    ch.flags = c->flags;
    got = milter_neg_steps(&ch, c->offered, c->no_reply);
    ck_assert_msg((got & c->want) == c->want, "%s: got 0x%lx, want 0x%lx set",
                  c->label, got, c->want);
    ck_assert_msg((got & c->not_want) == 0, "%s: got 0x%lx, want 0x%lx clear",
                  c->label, got, c->not_want);
    ck_assert_msg((got & ~c->offered) == 0, "%s: got 0x%lx, asks beyond offered 0x%lx",
                  c->label, got, c->offered);
}
END_TEST

START_TEST(test_steps_null_chain)
{
    unsigned long got = milter_neg_steps(NULL, ALL_STEPS, 0);

    ck_assert_msg((got & (SMFIP_NOHDRS | SMFIP_NOBODY)) == (SMFIP_NOHDRS | SMFIP_NOBODY) &&
                  !(got & (SMFIP_NOCONNECT | SMFIP_NR_CONN)), "no chain: got 0x%lx", got);
}
END_TEST

static const struct actions_case {
    const char   *label;
    unsigned long offered, want;
} actions_cases[] = {
    { "everything offered: every modification, no quarantine", 0x1ff,
      SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | SMFIF_ADDRCPT_PAR |
      SMFIF_DELRCPT | SMFIF_CHGFROM | SMFIF_SETSYMLIST },
    { "old MTA: only what it offers", SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_QUARANTINE,
      SMFIF_ADDHDRS | SMFIF_CHGBODY },
    { "nothing offered", 0, 0 },
};

START_TEST(test_actions)
{
    const struct actions_case *c = &actions_cases[_i];
    unsigned long got = milter_neg_actions(c->offered);

    ck_assert_msg(got == c->want, "%s: got 0x%lx, want 0x%lx", c->label, got, c->want);
}
END_TEST

static const struct { const char *name; int ok; } macro_cases[] = {
    { "j", 1 }, { "_", 1 }, { "i", 1 }, { "{auth_authen}", 1 }, { "{daemon_name}", 1 },
    { "{client-addr}", 1 }, { "", 0 }, { "{", 0 }, { "{}", 0 }, { "auth_authen", 0 },
    { "{auth authen}", 0 }, { "{a}b", 0 }, { "{x\n}", 0 }, { " ", 0 },
    { "{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}", 0 },
};

START_TEST(test_macro_names)
{
    int got = milter_macro_ok(macro_cases[_i].name);

    ck_assert_msg(got == macro_cases[_i].ok, "\"%s\": got %d, want %d",
                  macro_cases[_i].name, got, macro_cases[_i].ok);
}
END_TEST

static const struct hv_case {
    const char *label, *in;
    int         leadspc;
    const char *want;
} hv_cases[] = {
    { "plain", "yes", 0, "yes" },
    { "leading space for LEADSPC", "yes", 1, " yes" },
    { "CRLF folding to LF", "first\r\n\tsecond", 0, "first\n\tsecond" },
    { "LF folding kept", "first\n second", 1, " first\n second" },
    { "empty", "", 0, "" },
    { "lone CR kept (not folding)", "a\rb", 0, "a\rb" },
};

START_TEST(test_header_value)
{
    const struct hv_case *c = &hv_cases[_i];
    struct pool *p = pool_new(256);
    const char *got = milter_header_value(p, c->in, c->leadspc);

    ck_assert_msg(strcmp(got, c->want) == 0, "%s: got \"%s\", want \"%s\"",
                  c->label, got, c->want);
    pool_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("milter_neg");
    TCase *tc = tcase_create("pure");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, test_steps, 0, sizeof(steps_cases) / sizeof(steps_cases[0]));
    tcase_add_test(tc, test_steps_null_chain);
    tcase_add_loop_test(tc, test_actions, 0, sizeof(actions_cases) / sizeof(actions_cases[0]));
    tcase_add_loop_test(tc, test_macro_names, 0, sizeof(macro_cases) / sizeof(macro_cases[0]));
    tcase_add_loop_test(tc, test_header_value, 0, sizeof(hv_cases) / sizeof(hv_cases[0]));
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
