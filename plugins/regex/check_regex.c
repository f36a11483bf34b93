/*
 * check_regex.c - the regex plugin through the fake host: rules file errors
 * named by file:line, each stage's subject and each action, captures in
 * replies and headers, MIME decoding of body text, actions that act once
 * per message, and runaway patterns on a 1 MB line stopped by the match
 * limit (JIT and interpreter) instead of hanging.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "subm_test.h"

static char rules_path[64];

/* write_rules - a temporary rules file; its name in rules_path. */
static void write_rules(const char *text)
{
    int fd;

    snprintf(rules_path, sizeof(rules_path), "/tmp/check_regex.XXXXXX");
    fd = mkstemp(rules_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    close(fd);
}

/* host_root - a host with root options and a regex plugin on these rules
 * and options. The file is removed at once: the rules are compiled at load. */
static struct st_host *host_root(const char *root, const char *rules, const char *opts)
{
    char conf[512];
    struct st_host *h;

    write_rules(rules);
    snprintf(conf, sizeof(conf), "%s\nplugin regex { rules = \"%s\" %s }", root,
             rules_path, opts ? opts : "");
    h = st_host_new(conf);
    unlink(rules_path);
    return h;
}

/* host - host_root without root options. */
static struct st_host *host(const char *rules, const char *opts)
{
    return host_root("", rules, opts);
}

/* ---- errors in the rules file ------------------------------------------ */

struct bad {
    const char *rules;
    const char *want;       /* after the file name */
};

static const struct bad bads[] = {
    { "bogus /x/ reject\n", ":1: unknown stage `bogus`" },
    { "mail /a/ reject\n\n# comment\nmail /(/ reject\n", ":4: bad pattern at offset 1:" },
    { "mail /x/q reject\n", ":1: unknown flag `q`" },
    { "mail /x/ explode\n", ":1: unknown action `explode`" },
    { "mail /x/\n", ":1: no action after the pattern" },
    { "mail x reject\n", ":1: a pattern starts with a delimiter" },
    { "mail /abc reject\n", ":1: the pattern has no closing `/`" },
    { "mail /x/y reject\n", ":1: unknown flag `y`" },
    { "mail /x/i, reject\n", ":1: unexpected text after the pattern" },
    { "connect /x/ discard\n", ":1: discard needs a message" },
    { "mail /x/ reject 450 no\n", ":1: reject needs a 5xx reply code" },
    { "mail /x/ tempfail 550 no\n", ":1: tempfail needs a 4xx reply code" },
    { "mail /x/ reject 550 4.7.1 text\n", ":1: enhanced code 4.7.1 does not match" },
    { "mail /(?<a>x)/ reject ${b}\n", ":1: ${b}: the pattern has no group of that name" },
    { "mail /(?<a>x)|(?<a>y)/J reject\n", ":1: unknown flag `J`" },
    { "mail /(?J)(?<a>x)|(?<a>y)/ reject ${a}\n", ":1: ${a}: group name used more than once" },
    { "mail /(x)/ reject $2\n", ":1: $2: the pattern has no such group" },
    { "mail !/(x)/ reject $1\n", ":1: a rule with !/.../ has no captures" },
    { "mail /x/ add-header novalue\n", ":1: add-header needs \"Name: value\"" },
    { "mail /x/ add-header \"Bad Name: v\"\n", ":1: bad character in header name" },
    { "mail /x/ accept now\n", ":1: accept takes no argument" },
    { "  mail /x/ reject\n", ":1: a continuation line without a rule" },
    { "mail /a/ reject\nrcpt /b/ reject\n\nheader /c/\n  bad-action\n",
      ":4: unknown action `bad-action`" },
};

START_TEST(test_bad_rules)
{
    const struct bad *b = &bads[_i];
    char conf[256], err[2048], want[300];
    struct st_host *h;

    write_rules(b->rules);
    snprintf(conf, sizeof(conf), "plugin regex { rules = \"%s\" }", rules_path);
    h = st_host_try(conf, err, sizeof(err));
    unlink(rules_path);
    ck_assert_msg(h == NULL, "loaded: %s", b->rules);
    snprintf(want, sizeof(want), "%s%s", rules_path, b->want);
    ck_assert_msg(strstr(err, want) != NULL, "want \"%s\" in \"%s\"", want, err);
}
END_TEST

START_TEST(test_rules_missing)
{
    char err[2048];

    ck_assert_ptr_null(st_host_try("plugin regex { }", err, sizeof(err)));
    ck_assert_msg(strstr(err, "`rules` is not set") != NULL, "%s", err);
    ck_assert_ptr_null(st_host_try("plugin regex { rules = \"/nonexistent/rules\" }",
                                   err, sizeof(err)));
    ck_assert_msg(strstr(err, "/nonexistent/rules: No such file") != NULL, "%s", err);
}
END_TEST

/* ---- a whole session, one case per line ---------------------------------- */

struct scase {
    const char     *label;
    const char     *rules;
    const char     *opts;
    /* the session; NULL fields get a neutral default */
    const char     *addr, *name, *helo, *login, *sender, *rcpt, *message;
    size_t          chunk;
    /* the first stage that did not pass, or EOM */
    subm_stage_t    stage;
    subm_verdict_t  verdict;
    int             code;
    const char     *ecode;
    const char     *text;
};

#define PLAIN "Subject: hello\n\nnothing to see\n"

#define B64_SECRET \
    "Subject: b64\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n" \
    "Content-Transfer-Encoding: base64\n\n" \
    "aGVsbG8KdGhlIHNlY3JldCB3b3JkCmJ5ZQo=\n"          /* hello\nthe secret word\nbye\n */

#define QP_SECRET \
    "Subject: qp\nMIME-Version: 1.0\nContent-Type: text/plain\n" \
    "Content-Transfer-Encoding: quoted-printable\n\n" \
    "the sec=\nret w=6Frd is here\n"

#define MULTI_ATTACH \
    "Subject: parts\nMIME-Version: 1.0\n" \
    "Content-Type: multipart/mixed; boundary=\"=_outer\"\n\n" \
    "preamble secret word\n" \
    "--=_outer\nContent-Type: text/plain\n\nplain text part\n" \
    "--=_outer\nContent-Type: application/octet-stream\n" \
    "Content-Disposition: attachment; filename=\"report.pdf\"\n" \
    "Content-Transfer-Encoding: base64\n\n" \
    "dGhlIHNlY3JldCB3b3JkCg==\n" \
    "--=_outer--\nepilogue secret word\n"

#define MULTI_NESTED \
    "Subject: nested\nMIME-Version: 1.0\n" \
    "Content-Type: multipart/mixed; boundary=outer\n\n" \
    "--outer\nContent-Type: multipart/alternative;\n boundary=\"inner\"\n\n" \
    "--inner\nContent-Type: text/plain\n\nplain\n" \
    "--inner\nContent-Type: text/html; charset=us-ascii\n" \
    "Content-Transfer-Encoding: base64\n\n" \
    "PHA+dGhlIHNlY3Jl\ndCB3b3JkPC9wPgo=\n" \
    "--inner--\n" \
    "--outer\nContent-Type: application/zip\n" \
    "Content-Disposition: attachment; filename=\"invoice.exe\"\n\nUEsDBA==\n" \
    "--outer--\n"

#define RFC822_INSIDE \
    "Subject: fwd\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b1\n\n" \
    "--b1\nContent-Type: text/plain\n\nsee attached\n" \
    "--b1\nContent-Type: message/rfc822\n\n" \
    "Subject: inner\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n" \
    "the secret=20word\n" \
    "--b1--\n"

#define NEAR_BOUNDARY \
    "Subject: near\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"abc\"\n\n" \
    "--abc\nContent-Type: text/plain\n\n--abcdef is not a boundary\n--abc  \n" \
    "Content-Type: image/png\nContent-Transfer-Encoding: base64\n\nc2VjcmV0\n--abc--\n"

static const struct scase scases[] = {
    { "connect: no reverse name, capture",
      "connect /^unknown\\[(?<ip>[^]]+)\\]$/ reject 554 5.7.1 no reverse name for ${ip}\n",
      NULL, "192.0.2.9", "unknown", NULL, NULL, NULL, NULL, NULL, 0,
      SUBM_STAGE_CONNECT, SUBM_REJECT, 554, "5.7.1", "no reverse name for 192.0.2.9" },
    { "connect: default reply",
      "connect /\\[192\\.0\\.2\\.66\\]$/ reject\n",
      NULL, "192.0.2.66", NULL, NULL, NULL, NULL, NULL, NULL, 0,
      SUBM_STAGE_CONNECT, SUBM_REJECT, 554, "5.7.1", "Rejected by policy" },
    { "connect: other client passes",
      "connect /\\[192\\.0\\.2\\.66\\]$/ reject\n",
      NULL, "192.0.2.67", NULL, NULL, NULL, NULL, NULL, NULL, 0,
      SUBM_STAGE_EOM, SUBM_CONTINUE, 0, NULL, NULL },
    { "helo: caseless, numbered capture",
      "helo /^(localhost|\\[127\\.0\\.0\\.1\\])$/i reject 550 5.7.1 You are not $1\n",
      NULL, NULL, NULL, "LOCALHOST", NULL, NULL, NULL, NULL, 0,
      SUBM_STAGE_HELO, SUBM_REJECT, 550, "5.7.1", "You are not LOCALHOST" },
    { "helo: case-sensitive without i",
      "helo /^localhost$/ reject\n",
      NULL, NULL, NULL, "LOCALHOST", NULL, NULL, NULL, NULL, 0,
      SUBM_STAGE_EOM, SUBM_CONTINUE, 0, NULL, NULL },
    { "auth: login",
      "auth /^guest$/ tempfail 454 4.7.0 guest logins are off\n",
      NULL, NULL, NULL, NULL, "guest", NULL, NULL, NULL, 0,
      SUBM_STAGE_AUTH, SUBM_TEMPFAIL, 454, "4.7.0", "guest logins are off" },
    { "mail: named capture in reply",
      "mail /@(?<dom>spam\\.example)$/ reject 550 5.7.1 Domain ${dom} refused, $$5 fee\n",
      NULL, NULL, NULL, NULL, NULL, "x@spam.example", NULL, NULL, 0,
      SUBM_STAGE_MAIL, SUBM_REJECT, 550, "5.7.1", "Domain spam.example refused, $5 fee" },
    { "mail: negated rule applies",
      "mail !/@example\\.org$/ reject 553 5.7.1 only example.org\n",
      NULL, NULL, NULL, NULL, NULL, "a@other.test", NULL, NULL, 0,
      SUBM_STAGE_MAIL, SUBM_REJECT, 553, "5.7.1", "only example.org" },
    { "mail: negated rule does not",
      "mail !/@example\\.org$/ reject 553 5.7.1 only example.org\n",
      NULL, NULL, NULL, NULL, NULL, "a@example.org", NULL, NULL, 0,
      SUBM_STAGE_EOM, SUBM_CONTINUE, 0, NULL, NULL },
    { "mail: null sender",
      "mail /^$/ reject 550 5.7.1 no bounces here\n",
      NULL, NULL, NULL, NULL, NULL, "", NULL, NULL, 0,
      SUBM_STAGE_MAIL, SUBM_REJECT, 550, "5.7.1", "no bounces here" },
    { "mail: other delimiter, escaped delimiter",
      "mail |^a/b@| reject 550 5.7.1 pipe\nmail /^c\\/d@/ reject 550 5.7.1 slash\n",
      NULL, NULL, NULL, NULL, NULL, "c/d@example.org", NULL, NULL, 0,
      SUBM_STAGE_MAIL, SUBM_REJECT, 550, "5.7.1", "slash" },
    { "mail: accept ends the stage",
      "mail /^vip@/ accept\nmail /./ reject\n",
      NULL, NULL, NULL, NULL, NULL, "vip@example.org", NULL, NULL, 0,
      SUBM_STAGE_EOM, SUBM_CONTINUE, 0, NULL, NULL },
    { "mail: the rule after accept",
      "mail /^vip@/ accept\nmail /./ reject\n",
      NULL, NULL, NULL, NULL, NULL, "joe@example.org", NULL, NULL, 0,
      SUBM_STAGE_MAIL, SUBM_REJECT, 550, "5.7.1", NULL },
    { "mail: continuation line, milter-regex reply",
      "mail /@bad\\.example$/\n    reject \"551 5.7.1 go away\"\n",
      NULL, NULL, NULL, NULL, NULL, "x@bad.example", NULL, NULL, 0,
      SUBM_STAGE_MAIL, SUBM_REJECT, 551, "5.7.1", "go away" },
    { "rcpt: per recipient",
      "rcpt /^postmaster@/i accept\nrcpt /@/ reject 550 5.7.1 no $0\n",
      NULL, NULL, NULL, NULL, NULL, NULL, "joe@example.net", NULL, 0,
      SUBM_STAGE_RCPT, SUBM_REJECT, 550, "5.7.1", "no @" },
    { "rcpt: accepted",
      "rcpt /^postmaster@/i accept\nrcpt /@/ reject 550 5.7.1 no $0\n",
      NULL, NULL, NULL, NULL, NULL, NULL, "PostMaster@example.net", NULL, 0,
      SUBM_STAGE_EOM, SUBM_CONTINUE, 0, NULL, NULL },
    { "header: discard",
      "header /^Subject:.*\\bviagra\\b/i discard\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, "Subject: cheap VIAGRA now\n\nbody\n", 0,
      SUBM_STAGE_HEADER, SUBM_DISCARD, 0, NULL, NULL },
    { "header: unfolded",
      "header /^Subject: hello viagra deal$/ discard\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, "Subject: hello\n viagra deal\n\nbody\n", 0,
      SUBM_STAGE_HEADER, SUBM_DISCARD, 0, NULL, NULL },
    { "header: u flag, invalid UTF-8 in the subject tolerated",
      "header /^Subject: caf\xc3\xa9\\b/u reject 550 5.7.1 utf\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, "Subject: caf\xc3\xa9 \xff\xfe bad\n\nbody\n", 0,
      SUBM_STAGE_HEADER, SUBM_REJECT, 550, "5.7.1", "utf" },
    { "header: tempfail default reply",
      "header /^X-Hold: yes$/ tempfail\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, "X-Hold: yes\n\nbody\n", 0,
      SUBM_STAGE_HEADER, SUBM_TEMPFAIL, 451, "4.7.1", "Try again later" },
    { "body: line in one chunk",
      "body /click here/i reject 550 5.7.1 no \"$0\"\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, "Subject: x\n\nplease\nCLICK HERE now\n", 0,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "no \"CLICK HERE\"" },
    { "body: line across 3-octet chunks",
      "body /^please click here now$/ reject\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, "Subject: x\n\nhi\nplease click here now\nbye\n", 3,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, NULL, NULL },
    { "body: last line without line end, at EOM",
      "body /^the end$/ reject 550 5.7.1 caught at the end\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, "Subject: x\n\nline\nthe end", 0,
      SUBM_STAGE_EOM, SUBM_REJECT, 550, "5.7.1", "caught at the end" },
    { "body: base64 not decoded by default",
      "body /secret word/ reject\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, B64_SECRET, 0,
      SUBM_STAGE_EOM, SUBM_CONTINUE, 0, NULL, NULL },
    { "body: base64 decoded",
      "body /^the secret word$/ reject 550 5.7.1 decoded\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, B64_SECRET, 7,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "decoded" },
    { "body: quoted-printable not decoded by default",
      "body /secret word/ reject\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, QP_SECRET, 0,
      SUBM_STAGE_EOM, SUBM_CONTINUE, 0, NULL, NULL },
    { "body: quoted-printable decoded, soft break",
      "body /^the secret word is here$/ reject 550 5.7.1 decoded\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, QP_SECRET, 0,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "decoded" },
    { "body: attachment content, preamble, epilogue skipped",
      "body /secret/ reject\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, MULTI_ATTACH, 0,
      SUBM_STAGE_EOM, SUBM_CONTINUE, 0, NULL, NULL },
    { "body: text part of multipart",
      "body /^plain text part$/ reject 550 5.7.1 text part\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, MULTI_ATTACH, 0,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "text part" },
    { "body: part headers are lines",
      "body /^Content-Disposition:.*filename=\"[^\"]+\\.pdf\"/i reject 550 5.7.1 no pdf\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, MULTI_ATTACH, 0,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "no pdf" },
    { "body: nested multipart, base64 html",
      "body /<p>the secret word<\\/p>/ reject 550 5.7.1 nested\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, MULTI_NESTED, 0,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "nested" },
    { "body: nested, attachment name",
      "body /filename=\"[^\"]*\\.exe\"/ reject 550 5.7.1 no exe\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, MULTI_NESTED, 5,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "no exe" },
    { "body: message/rfc822 inside multipart, decoded",
      "body /^the secret word$/ reject 550 5.7.1 inner\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, RFC822_INSIDE, 0,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "inner" },
    { "body: inner message header lines",
      "body /^Subject: inner$/ reject 550 5.7.1 inner header\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, RFC822_INSIDE, 0,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "inner header" },
    { "body: a longer dash line is text, not a boundary",
      "body /^--abcdef is not a boundary$/ reject 550 5.7.1 text\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, NEAR_BOUNDARY, 0,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "text" },
    { "body: boundary with trailing blanks ends the part",
      "body /secret/ reject\n",
      "body_decode = yes", NULL, NULL, NULL, NULL, NULL, NULL, NEAR_BOUNDARY, 0,
      SUBM_STAGE_EOM, SUBM_CONTINUE, 0, NULL, NULL },
    { "body: raw lines without decoding",
      "body /^dGhlIHNlY3JldCB3b3JkCg==$/ reject 550 5.7.1 raw\n",
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, MULTI_ATTACH, 0,
      SUBM_STAGE_BODY, SUBM_REJECT, 550, "5.7.1", "raw" },
};

/* step - run one stage; 1 if the session goes on. */
static int step(st_result_t r, subm_stage_t stage, st_result_t *out, subm_stage_t *at)
{
    *out = r;
    *at = stage;
    return r.verdict == SUBM_CONTINUE || r.verdict == SUBM_ACCEPT;
}

/* run_message - DATA, header fields, EOH, body chunks, EOM, as st_message
 * does, but telling at which stage it stopped. LF lines become CRLF. */
static st_result_t run_message(struct st_host *h, const char *text, size_t chunk,
                               subm_stage_t *at)
{
    size_t len = strlen(text), i, o = 0, pos = 0;
    char *m = malloc(2 * len + 1);
    st_result_t r;

    for (i = 0; i < len; i++) {
        if (text[i] == '\n')
            m[o++] = '\r';
        m[o++] = text[i];
    }
    m[o] = 0;
    len = o;
    if (!step(st_data(h), SUBM_STAGE_DATA, &r, at))
        goto out;
    while (pos < len && strncmp(m + pos, "\r\n", 2) != 0) {
        size_t end = pos;
        char *field;

        do {
            char *nl = strstr(m + end, "\r\n");
            end = nl ? (size_t) (nl - m) + 2 : len;
        } while (end < len && (m[end] == ' ' || m[end] == '\t'));
        field = strndup(m + pos, end - pos);
        i = step(st_header(h, field), SUBM_STAGE_HEADER, &r, at);
        free(field);
        if (!i)
            goto out;
        pos = end;
    }
    pos += pos < len ? 2 : 0;
    if (!step(st_eoh(h), SUBM_STAGE_EOH, &r, at))
        goto out;
    while (pos < len) {
        size_t take = chunk == 0 || len - pos < chunk ? len - pos : chunk;

        if (!step(st_body(h, m + pos, take), SUBM_STAGE_BODY, &r, at))
            goto out;
        pos += take;
    }
    step(st_eom(h), SUBM_STAGE_EOM, &r, at);
out:
    free(m);
    return r;
}

START_TEST(test_session)
{
    const struct scase *c = &scases[_i];
    struct st_host *h = host(c->rules, c->opts);
    st_result_t r;
    subm_stage_t at;

    if (step(st_connect(h, c->addr ? c->addr : "192.0.2.1",
                        c->name ? c->name : "client.example"), SUBM_STAGE_CONNECT, &r, &at) &&
        step(st_helo(h, c->helo ? c->helo : "client.example", 1), SUBM_STAGE_HELO, &r, &at) &&
        (c->login == NULL || step(st_auth(h, c->login, "PLAIN"), SUBM_STAGE_AUTH, &r, &at)) &&
        step(st_mail(h, c->sender ? c->sender : "a@example.org", NULL), SUBM_STAGE_MAIL, &r, &at) &&
        step(st_rcpt(h, c->rcpt ? c->rcpt : "b@example.org", NULL), SUBM_STAGE_RCPT, &r, &at)) {
        r = run_message(h, c->message ? c->message : PLAIN, c->chunk, &at);
    }
    ck_assert_msg(at == c->stage, "%s: stopped at stage %d, want %d (%d %d %s)",
                  c->label, at, c->stage, r.verdict, r.code, r.text);
    ck_assert_msg(r.verdict == c->verdict, "%s: verdict %d, want %d",
                  c->label, r.verdict, c->verdict);
    if (c->code)
        ck_assert_msg(r.code == c->code, "%s: code %d, want %d", c->label, r.code, c->code);
    if (c->ecode)
        ck_assert_msg(strcmp(r.ecode, c->ecode) == 0, "%s: ecode %s, want %s",
                      c->label, r.ecode, c->ecode);
    if (c->text)
        ck_assert_msg(strcmp(r.text, c->text) == 0, "%s: text \"%s\", want \"%s\"",
                      c->label, r.text, c->text);
    st_host_free(&h);
}
END_TEST

/* ---- actions that add or log ---------------------------------------------- */

START_TEST(test_add_header_capture)
{
    struct st_host *h = host(
        "header /^X-Mailer: (?<mailer>.*)$/ add-header \"X-Mailer-Seen: ${mailer} (${mailer})\"\n"
        "mail /@(.*)$/ add-header X-Sender-Domain: $1\n", NULL);

    st_connect(h, "192.0.2.1", "client.example");
    st_mail(h, "a@example.org", NULL);
    st_rcpt(h, "b@example.org", NULL);
    ck_assert_int_eq(st_message(h, "X-Mailer: Foo 1.0\nSubject: x\n\nbody\n", 0).verdict,
                     SUBM_CONTINUE);
    ck_assert_str_eq(st_header_after_mods(h, "X-Mailer-Seen", 1), "Foo 1.0 (Foo 1.0)");
    ck_assert_str_eq(st_header_after_mods(h, "X-Sender-Domain", 1), "example.org");
    st_host_free(&h);
}
END_TEST

/* count - occurrences of needle in s. */
static int count(const char *s, const char *needle)
{
    int n = 0;

    while ((s = strstr(s, needle)) != NULL) {
        n++;
        s += strlen(needle);
    }
    return n;
}

START_TEST(test_once_per_message)
{
    struct st_host *h = host("body /x/ add-header X-Has-X: yes\nbody /x/ log an x line\n", NULL);
    char *m = malloc(20000), *p;
    int i;

    p = m + sprintf(m, "Subject: many\n\n");
    for (i = 0; i < 1000; i++)
        p += sprintf(p, "x%d\n", i);
    st_mail(h, "a@example.org", NULL);
    st_rcpt(h, "b@example.org", NULL);
    ck_assert_int_eq(st_message(h, m, 100).verdict, SUBM_CONTINUE);
    ck_assert_str_eq(st_header_after_mods(h, "X-Has-X", 1), "yes");
    ck_assert_ptr_null(st_header_after_mods(h, "X-Has-X", 2));
    ck_assert_int_eq(count(st_log(h), "an x line"), 1);
    /* the next message acts again */
    st_rset(h);
    st_mail(h, "a@example.org", NULL);
    st_rcpt(h, "b@example.org", NULL);
    st_message(h, "Subject: again\n\nx\n", 0);
    ck_assert_int_eq(count(st_log(h), "an x line"), 2);
    free(m);
    st_host_free(&h);
}
END_TEST

START_TEST(test_session_headers)
{
    struct st_host *h = host(
        "connect /\\[192\\.0\\.2\\.1\\]$/ add-header X-Client-Tag: lan\n"
        "helo /^(?<h>.+)$/ add-header \"X-Helo: ${h}\"\n"
        "auth /^(.+)$/ log login $1\n", NULL);

    st_connect(h, "192.0.2.1", "client.example");
    st_helo(h, "first.example", 1);
    st_helo(h, "second.example", 1);         /* replaces, does not add */
    st_auth(h, "alice", "PLAIN");
    ck_assert(st_log_contains(h, "login alice"));
    st_mail(h, "a@example.org", NULL);
    ck_assert_str_eq(st_header_after_mods(h, "X-Client-Tag", 1), "lan");
    ck_assert_str_eq(st_header_after_mods(h, "X-Helo", 1), "second.example");
    ck_assert_ptr_null(st_header_after_mods(h, "X-Helo", 2));
    st_rset(h);
    st_mail(h, "a@example.org", NULL);     /* every message of the session */
    ck_assert_str_eq(st_header_after_mods(h, "X-Client-Tag", 1), "lan");
    st_host_free(&h);
}
END_TEST

START_TEST(test_capture_sanitised)
{
    /* a capture with a control character does not break the header */
    struct st_host *h = host("header /^X-In: (.*)$/ add-header X-Out: [$1]\n", NULL);

    st_mail(h, "a@example.org", NULL);
    st_rcpt(h, "b@example.org", NULL);
    st_message(h, "X-In: a\tb\001c\n\nbody\n", 0);
    ck_assert_str_eq(st_header_after_mods(h, "X-Out", 1), "[a?b?c]");
    st_host_free(&h);
}
END_TEST

/* ---- runaway patterns ----------------------------------------------------- */

struct runaway {
    const char     *label;
    const char     *rules;
    const char     *opts;
    int             where;          /* 0 body, 1 header, 2 helo */
    const char     *tail;           /* after the megabyte of 'a' */
    subm_verdict_t  verdict;
    int             must_hit;       /* the log must show a limit */
    size_t          len;            /* of the 'a' run; 0: 1 MB */
};

static const struct runaway runaways[] = {
    { "(a+)+$ body, JIT", "body /(a+)+$/ reject\n", "jit = yes", 0, "!",
      SUBM_TEMPFAIL, 1, 0 },
    { "(a+)+$ body, interpreter", "body /(a+)+$/ reject\n", "jit = no", 0, "!",
      SUBM_TEMPFAIL, 1, 0 },
    { "(\\w+\\s?)*$ header, JIT", "header /^X-Long: (\\w+\\s?)*$/ reject\n", "jit = yes", 1, "!",
      SUBM_TEMPFAIL, 1, 0 },
    { "(\\w+\\s?)*$ header, interpreter", "header /^X-Long: (\\w+\\s?)*$/ reject\n", "jit = no",
      1, "!", SUBM_TEMPFAIL, 1, 0 },
    { "(a|aa)+$ helo, JIT", "helo /^(a|aa)+$/ reject\n", "jit = yes", 2, "!",
      SUBM_TEMPFAIL, 1, 0 },
    { "(a|aa)+$ helo, interpreter", "helo /^(a|aa)+$/ reject\n", "jit = no", 2, "!",
      SUBM_TEMPFAIL, 1, 0 },
    /* quadratic: the interpreter's own limit restarts at each position, so
     * on 100 KB no single position reaches it (PCRE2 alone: ~40 s) */
    { "a.*[^a] body, interpreter", "body /a.*[^a]/ reject\n", "jit = no", 0, "",
      SUBM_TEMPFAIL, 1, 0 },
    { "a.*[^a] body 100K, interpreter", "body /a.*[^a]/ reject\n", "jit = no", 0, "",
      SUBM_TEMPFAIL, 1, 100000 },
    { "a.*[^a] header 100K, interpreter", "header /a.*[^a]/ reject\n", "jit = no", 1, "",
      SUBM_TEMPFAIL, 1, 100000 },
    { "a.*[^a] body, JIT", "body /a.*[^a]/ reject\n", "jit = yes", 0, "",
      SUBM_TEMPFAIL, 1, 0 },
    { "on_limit = continue", "body /(a+)+$/ reject\n", "on_limit = continue", 0, "!",
      SUBM_CONTINUE, 1, 0 },
    { "on_limit = reject", "body /(a+)+$/ reject\n", "on_limit = reject", 0, "!",
      SUBM_REJECT, 1, 0 },
};

/* now_s - monotonic seconds. */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

START_TEST(test_runaway)
{
    const struct runaway *c = &runaways[_i];
    size_t mb = c->len ? c->len : 1 << 20, tl = strlen(c->tail);
    char opts[128], *line = malloc(mb + 64);
    struct st_host *h;
    st_result_t r;
    double t0;

    snprintf(opts, sizeof(opts), "%s body_line_max = 2M", c->opts);
    h = host(c->rules, opts);
    memset(line, 'a', mb);
    memcpy(line + mb, c->tail, tl + 1);
    t0 = now_s();
    if (c->where == 2) {
        r = st_helo(h, line, 1);
    } else {
        st_mail(h, "a@example.org", NULL);
        st_rcpt(h, "b@example.org", NULL);
        st_data(h);
        if (c->where == 1) {
            char *hdr = malloc(mb + 80);

            snprintf(hdr, mb + 80, "X-Long: %s", line);
            r = st_header(h, hdr);
            free(hdr);
        } else {
            st_header(h, "Subject: long line");
            st_eoh(h);
            memcpy(line + mb + tl, "\r\n", 3);
            r = st_body(h, line, mb + tl + 2);
        }
    }
    ck_assert_msg(now_s() - t0 < 3.0, "%s: took %.1f s", c->label, now_s() - t0);
    ck_assert_msg(r.verdict == c->verdict, "%s: verdict %d, want %d (%s)", c->label,
                  r.verdict, c->verdict, st_log(h));
    if (c->verdict == SUBM_TEMPFAIL)
        ck_assert_msg(r.code == 451 && strcmp(r.ecode, "4.3.0") == 0, "%s: %d %s",
                      c->label, r.code, r.ecode);
    if (c->must_hit)
        ck_assert_msg(st_log_contains(h, "limit"), "%s: no limit logged: %s", c->label,
                      st_log(h));
    free(line);
    st_host_free(&h);
}
END_TEST

/* A normal pattern on a long line still matches, within the limits. */
START_TEST(test_long_line_matches)
{
    static const char *const opts[] = { "jit = yes", "jit = no" };
    size_t mb = 1 << 20;
    char *line = malloc(mb + 64), o[64];
    int i;

    for (i = 0; i < 2; i++) {
        struct st_host *h;
        st_result_t r;

        snprintf(o, sizeof(o), "%s body_line_max = 2M", opts[i]);
        h = host("body /needle/ reject 550 5.7.1 found\n", o);
        memset(line, 'a', mb);
        memcpy(line + mb - 20, "needle", 6);
        memcpy(line + mb, "\r\n", 3);
        st_mail(h, "a@example.org", NULL);
        st_rcpt(h, "b@example.org", NULL);
        st_data(h);
        st_eoh(h);
        r = st_body(h, line, mb + 2);
        ck_assert_msg(r.verdict == SUBM_REJECT && strcmp(r.text, "found") == 0,
                      "%s: %d %s", opts[i], r.verdict, st_log(h));
        st_host_free(&h);
    }
    free(line);
}
END_TEST

/* A line over body_line_max is cut, and memory stays bounded. */
START_TEST(test_line_cut)
{
    struct st_host *h = host("body /b$/ reject\nbody /^a{1024}$/ log cut at 1K\n",
                             "body_line_max = 1K");
    size_t n = 300000;
    char *line = malloc(n + 3);
    st_result_t r;

    memset(line, 'a', n);
    memcpy(line + n - 1, "b\r\n", 4);
    st_mail(h, "a@example.org", NULL);
    st_rcpt(h, "b@example.org", NULL);
    st_data(h);
    st_eoh(h);
    r = st_body(h, line, n + 2);
    ck_assert_int_eq(r.verdict, SUBM_CONTINUE);       /* the 'b' was cut off */
    ck_assert(st_log_contains(h, "cut at 1K"));
    free(line);
    st_host_free(&h);
}
END_TEST

/* The stage deadline stops a body of many slow lines. */
START_TEST(test_deadline)
{
    struct st_host *h = host_root("plugin_timeout = 100ms", "body /a.*[^a]/ reject\n",
                                  "jit = no");
    size_t lines = 300, i;
    char *body = malloc(lines * 1002);
    st_result_t r;
    double t0;

    for (i = 0; i < lines; i++) {
        memset(body + i * 1002, 'a', 1000);
        memcpy(body + i * 1002 + 1000, "\r\n", 2);
    }
    st_mail(h, "a@example.org", NULL);
    st_rcpt(h, "b@example.org", NULL);
    st_data(h);
    st_eoh(h);
    t0 = now_s();
    r = st_body(h, body, lines * 1002);
    ck_assert_msg(now_s() - t0 < 1.0, "took %.2f s", now_s() - t0);
    ck_assert_int_eq(r.verdict, SUBM_TEMPFAIL);
    ck_assert_int_eq(r.code, 451);
    ck_assert(st_log_contains(h, "deadline passed"));
    free(body);
    st_host_free(&h);
}
END_TEST

/* Random bytes as a MIME body, in random chunks: no crash, bounded, and the
 * message passes (ASan/UBSan builds make this a memory check). */
START_TEST(test_random_mime)
{
    static const char *const heads[] = {
        "Content-Type: multipart/mixed; boundary=\"zz\"",
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64",
        "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable",
        "Content-Type: message/rfc822",
    };
    static const char alphabet[] = "ab=\r\n-z+/09 \t\"AZ:;";
    size_t n = 1 << 20, i, pos;
    char *body = malloc(n);
    int k;

    srand(4242);
    for (k = 0; k < 4; k++) {
        struct st_host *h = host("body /(x+x+)+y/ reject\nbody /^--zz/ log boundary seen\n",
                                 "body_decode = yes body_line_max = 1K");
        char hdr[128];
        st_result_t r = { SUBM_CONTINUE, 0, "", "" };

        for (i = 0; i < n; i++)
            body[i] = (i % 97 == 0) ? '\n' : (rand() % 5 == 0 ? (char) (rand() & 0xff)
                      : alphabet[rand() % (sizeof(alphabet) - 1)]);
        {
            static const char part[] = "\r\n--zz\r\nContent-Type: text/plain\r\n\r\n";

            memcpy(body + 1000, part, sizeof(part) - 1);
        }
        st_mail(h, "a@example.org", NULL);
        st_rcpt(h, "b@example.org", NULL);
        st_data(h);
        snprintf(hdr, sizeof(hdr), "%s", heads[k]);
        if (strchr(hdr, '\n')) {
            *strchr(hdr, '\n') = 0;
            st_header(h, hdr);
            st_header(h, strchr(heads[k], '\n') + 1);
        } else {
            st_header(h, hdr);
        }
        st_eoh(h);
        for (pos = 0; pos < n && r.verdict == SUBM_CONTINUE; ) {
            size_t take = 1 + (size_t) rand() % 5000;

            if (take > n - pos)
                take = n - pos;
            r = st_body(h, body + pos, take);
            pos += take;
        }
        ck_assert_msg(r.verdict == SUBM_CONTINUE, "%s: verdict %d", heads[k], r.verdict);
        ck_assert_int_eq(st_eom(h).verdict, SUBM_CONTINUE);
        st_host_free(&h);
    }
    free(body);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("regex");
    TCase *tc = tcase_create("regex");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_bad_rules, 0, (int) (sizeof(bads) / sizeof(bads[0])));
    tcase_add_test(tc, test_rules_missing);
    tcase_add_loop_test(tc, test_session, 0, (int) (sizeof(scases) / sizeof(scases[0])));
    tcase_add_test(tc, test_add_header_capture);
    tcase_add_test(tc, test_once_per_message);
    tcase_add_test(tc, test_session_headers);
    tcase_add_test(tc, test_capture_sanitised);
    tcase_add_loop_test(tc, test_runaway, 0, (int) (sizeof(runaways) / sizeof(runaways[0])));
    tcase_add_test(tc, test_long_line_matches);
    tcase_add_test(tc, test_line_cut);
    tcase_add_test(tc, test_deadline);
    tcase_add_test(tc, test_random_mime);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
