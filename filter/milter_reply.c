/*
 * milter_reply.c - a chain verdict as libmilter's answer.
 *
 *   CONTINUE, ACCEPT   SMFIS_CONTINUE. A plugin's ACCEPT means "this stage
 *                      passes"; SMFIS_ACCEPT would accept the whole message
 *                      (or connection) and hide every later stage from the
 *                      rest of the chain, and at RCPT all recipients.
 *   REJECT             SMFIS_REJECT with the reply (5xx).
 *   TEMPFAIL           SMFIS_TEMPFAIL with the reply (4xx).
 *   DISCARD            SMFIS_DISCARD (the MTA accepts, then drops the message).
 *
 * Replies follow libmilter's rules: code and enhanced code of the verdict's
 * class (chain.c already settled that), no CR/LF, '%' doubled, at most 32
 * lines of at most 980 octets (smfi_setmlreply for more than one).
 * It does not decide verdicts; chain.c does.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "milter_int.h"
#include "session.h"

#define REPLY_MAX_LINES 32
#define REPLY_LINE_MAX  980

/* escape_line - copy len octets of src into dst, '%' doubled, bounded. */
static void escape_line(char *dst, size_t dstlen, const char *src, size_t len)
{
    size_t o = 0, i;

    for (i = 0; i < len && o + 1 < dstlen; i++) {
        if (src[i] == '%') {
            if (o + 2 >= dstlen)
                break;
            dst[o++] = '%';
        }
        dst[o++] = src[i];
    }
    dst[o] = '\0';
}

/* milter_setreply - hand r to libmilter. */
int milter_setreply(SMFICTX *ctx, const struct session *s, const struct reply *r)
{
    char buf[REPLY_MAX_LINES][REPLY_LINE_MAX + 1];
    char *l[REPLY_MAX_LINES + 1];
    char rcode[8], xcode[sizeof(r->ecode)];
    const char *p = r->text;
    size_t n = 0;
    int rc;

    snprintf(rcode, sizeof(rcode), "%03d", r->code);
    snprintf(xcode, sizeof(xcode), "%s", r->ecode);
    while (n < REPLY_MAX_LINES) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        escape_line(buf[n], sizeof(buf[n]), p, len);
        l[n] = buf[n];
        n++;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    for (size_t i = n; i <= REPLY_MAX_LINES; i++)
        l[i] = NULL;
    if (n == 1)
        rc = smfi_setreply(ctx, rcode, xcode[0] ? xcode : NULL, l[0]);
    else
        rc = smfi_setmlreply(ctx, rcode, xcode[0] ? xcode : NULL,
                             l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7],
                             l[8], l[9], l[10], l[11], l[12], l[13], l[14], l[15],
                             l[16], l[17], l[18], l[19], l[20], l[21], l[22], l[23],
                             l[24], l[25], l[26], l[27], l[28], l[29], l[30], l[31],
                             (char *)NULL);
    if (rc != MI_SUCCESS) {
        log_warn("%s: milter: reply %s %s refused by libmilter; the MTA gives its own",
                 s->id, rcode, xcode);
        return -1;
    }
    return 0;
}

/* milter_verdict - the answer to the MTA for verdict v at stage. */
sfsistat milter_verdict(SMFICTX *ctx, const struct session *s,
                        subm_stage_t stage, subm_verdict_t v,
                        const struct reply *r)
{
    switch (v) {
    case SUBM_REJECT:
    case SUBM_TEMPFAIL:
        if (r != NULL && r->code != 0)
            (void)milter_setreply(ctx, s, r);
        return v == SUBM_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
    case SUBM_DISCARD:
        if (s->txn != NULL)
            return SMFIS_DISCARD;
        log_warn("%s: milter: discard at %s outside a message; continuing",
                 s->id, chain_stage_name(stage));
        return SMFIS_CONTINUE;
    case SUBM_CONTINUE:
    case SUBM_ACCEPT:
    default:
        return SMFIS_CONTINUE;
    }
}
