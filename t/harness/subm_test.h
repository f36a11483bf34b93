/*
 * subm_test.h - a fake host for testing plugins without a network.
 *
 * It loads a chain from configuration text (the same parser as the daemon),
 * makes a session as a front-end would, and drives stages one call at a
 * time, returning each stage's verdict and reply. Modifications recorded by
 * plugins and lines logged are kept for inspection. Plugins are found by
 * name in $SUBM_TEST_PLUGIN_DIR (set by `make check`; see t/harness/) or by
 * `path = ...` in the text. For Check tests; fork mode is fine.
 *
 *     struct st_host *h = st_host_new("plugin example { header = \"X-T: 1\" }");
 *     st_connect(h, "192.0.2.1", "client.example");
 *     ck_assert_int_eq(st_mail(h, "a@example.com", NULL).verdict, SUBM_CONTINUE);
 *     st_result_t r = st_rcpt(h, "blocked@example.com", NULL);
 *     ck_assert_int_eq(r.code, 550);
 *     st_host_free(&h);
 */
#ifndef SUBM_TEST_H
#define SUBM_TEST_H

#include <stddef.h>
#include <submilter/plugin.h>

struct session;
struct mod;

typedef struct st_result {
    subm_verdict_t verdict;
    int            code;          /* 0 if no reply */
    char           ecode[12];
    char           text[2048];
} st_result_t;

struct st_host;

/* st_host_new - chain from text; aborts the test with the problems if the
 * text does not load. frontend is "smtp" unless st_host_new_frontend. */
struct st_host *st_host_new(const char *conf_text);
struct st_host *st_host_new_frontend(const char *conf_text, const char *frontend);
/* st_host_try - the same, but returns NULL and the problems ('\n'-joined)
 * in err for tests of bad configuration. */
struct st_host *st_host_try(const char *conf_text, char *err, size_t errlen);
void            st_host_free(struct st_host **hp);
struct session *st_session(struct st_host *h);

/* Session facts (set before the stage that needs them). */
void st_set_tls(struct st_host *h, const char *version, const char *cipher);
void st_set_auth(struct st_host *h, const char *login, const char *mech);
/* st_set_macro - a milter macro answered by subm_macro(). */
void st_set_macro(struct st_host *h, const char *name, const char *value);

/* Stages. Each returns the chain's verdict and reply. params is ESMTP text
 * ("SIZE=10 BODY=8BITMIME") or NULL. st_rcpt records the recipient as
 * accepted when the verdict allows it, as a front-end would. */
st_result_t st_connect(struct st_host *h, const char *addr, const char *name);
st_result_t st_helo(struct st_host *h, const char *name, int esmtp);
st_result_t st_auth(struct st_host *h, const char *login, const char *mech);
st_result_t st_mail(struct st_host *h, const char *sender, const char *params);
st_result_t st_rcpt(struct st_host *h, const char *rcpt, const char *params);
st_result_t st_data(struct st_host *h);
st_result_t st_header(struct st_host *h, const char *raw);   /* "Name: value" */
st_result_t st_eoh(struct st_host *h);
st_result_t st_body(struct st_host *h, const void *data, size_t len);
st_result_t st_eom(struct st_host *h);
st_result_t st_rset(struct st_host *h);
/* st_command - VRFY, EXPN, HELP, NOOP or UNKNOWN with its argument. */
st_result_t st_command(struct st_host *h, subm_stage_t stage, const char *arg);
/* st_message - DATA, every header of text (CRLF or LF lines; folding
 * kept), EOH, the body in chunks of `chunk` bytes (0: one chunk), EOM.
 * Stops at the first verdict that is not CONTINUE/ACCEPT and returns it. */
st_result_t st_message(struct st_host *h, const char *text, size_t chunk);

/* The modifications recorded in the open transaction, in call order. */
const struct mod *st_mods(struct st_host *h);
size_t            st_mod_count(struct st_host *h);
/* st_header_after_mods - the value of the n-th header `name` as the message
 * would leave with modifications applied (NULL if absent). */
const char       *st_header_after_mods(struct st_host *h, const char *name, int n);

/* Log capture: lines logged since the host was made. */
int         st_log_contains(struct st_host *h, const char *needle);
const char *st_log(struct st_host *h);       /* all lines, '\n'-joined */

#endif
