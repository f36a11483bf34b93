/*
 * rx.h - the regex plugin's internal interfaces (not installed).
 *
 *   regex.c        the plugin: options, stage hooks, matching, actions
 *   regex_rules.c  the rules file: parsing, PCRE2 compilation, templates
 *   regex_mime.c   body lines, optionally MIME-decoded (QP / base64 text)
 */
#ifndef SUBM_RX_H
#define SUBM_RX_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>
#include <submilter/plugin.h>

/* Where a rule applies. */
enum rx_stage {
    RX_CONNECT, RX_HELO, RX_AUTH, RX_MAIL, RX_RCPT, RX_HEADER, RX_BODY,
    RX_NSTAGES
};

enum rx_action {
    RX_ACCEPT, RX_REJECT, RX_TEMPFAIL, RX_DISCARD, RX_ADD_HEADER, RX_LOG
};

/* One line of the rules file, compiled. */
struct rx_rule {
    int          stage;      /* enum rx_stage */
    int          action;     /* enum rx_action */
    int          negate;     /* !/.../: applies when the pattern does not match */
    int          line;       /* logical line in the rules file */
    pcre2_code  *re;
    int          jit;        /* 1 if JIT-compiled */
    int          counted;    /* interpreted, with auto-callouts counting steps */
    int          code;       /* REJECT/TEMPFAIL reply code, 0 = default */
    char         ecode[12];  /* "" = default */
    char        *text;       /* reply / log template, header value template */
    char        *hdr_name;   /* ADD_HEADER: field name */
};

/* The set of rules of one rules file. */
struct rx_rules {
    struct rx_rule  *rule;
    size_t           nrules;
    struct rx_rule **stage_rule[RX_NSTAGES];   /* per stage, in file order */
    size_t           nstage[RX_NSTAGES];
    uint32_t         max_groups;               /* largest capture count + 1 */
    size_t           njit;
};

/*
 * rx_rules_load - parse and compile file; use_jit asks for JIT. Returns 0,
 * or -1 with "FILE:LINE: message" in err (nothing left allocated).
 */
int  rx_rules_load(const char *file, int use_jit, struct rx_rules *rules,
                   subm_error_t *err);
void rx_rules_free(struct rx_rules *rules);
const char *rx_stage_name(int stage);

/*
 * rx_expand - write template t into out (outlen > 0, always terminated),
 * replacing $N, ${N} and ${name} by the captured text of the last match of
 * re in subject (control characters become '?') and $$ by '$'. Returns the
 * length written (truncated to fit).
 */
size_t rx_expand(const char *t, const pcre2_code *re, pcre2_match_data *md,
                 const char *subject, char *out, size_t outlen);

/* ---- body lines -------------------------------------------------------- */

/* mime_line_fn - gets each line to match (no line end); nonzero stops. */
typedef int (*mime_line_fn)(void *arg, const char *line, size_t len);

struct mime;

/*
 * mime_new - a body reader. With decode = 0 every raw line is passed on.
 * With decode = 1, content_type and cte (the message's own header values,
 * NULL if absent) start a MIME walk: part headers are passed on as lines,
 * text parts are decoded from quoted-printable or base64 and passed on line
 * by line, the content of non-text parts is skipped. Lines longer than
 * line_max are cut to line_max. NULL on allocation failure.
 */
struct mime *mime_new(int decode, const char *content_type, const char *cte,
                      size_t line_max);
void mime_free(struct mime **mp);
/* mime_feed - body bytes (CRLF lines, any chunking). Returns fn's nonzero. */
int  mime_feed(struct mime *m, const unsigned char *data, size_t len,
               mime_line_fn fn, void *arg);
/* mime_finish - the last unterminated line and decoder remainders. */
int  mime_finish(struct mime *m, mime_line_fn fn, void *arg);

#endif
