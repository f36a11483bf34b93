/*
 * milter_neg.c - per-connection negotiation with the MTA.
 *
 * At xxfi_negotiate the connection takes the configuration current now
 * (so a reload changes only new connections) and asks the MTA for:
 * - protocol steps: only those some plugin of *this* chain uses. A stage no
 *   plugin hooks and the front-end does not need is switched off (SMFIP_NO*:
 *   a chain that never reads the body costs no body transfer). With
 *   `no_reply_steps = yes`, a stage the front-end needs for the session
 *   model but no plugin answers (HELO for subm_helo(), RCPT for the
 *   recipient list, headers that a plugin reads only at EOM) is asked for
 *   without a reply (SMFIP_NR_*). The default, `auto`, does so on a unix
 *   socket only: measured with Postfix over TCP,
 *   a packet the MTA sends without awaiting a reply leaves its next write
 *   waiting on our delayed ACK (Postfix does not set TCP_NODELAY on milter
 *   sockets), ~40 ms a message, far more than the round trips saved.
 *   An empty chain (nothing reads the session at all) is negotiated like
 *   any other, but accepts the connection at CONNECT (milter_stage.c), so
 *   the MTA calls it no more. The steps stay those of a chain that reads the
 *   session: should the MTA reuse the connection after SMFIC_QUIT_NC (no
 *   new negotiation) under a reloaded, non-empty chain, that chain still
 *   gets the envelope.
 *   SMFIP_SKIP lets a plugin's ACCEPT at BODY end the body transfer;
 *   SMFIP_HDR_LEADSPC gives header fields exactly as sent.
 * - actions: every modification libmilter registered, among those offered;
 *   what the MTA does not offer is skipped at EOM with a warning.
 * - macros (smfi_setsymlist): the ones the session model reads, plus the
 *   `macros` option of the milter block, for plugins calling subm_macro().
 * Only steps and actions the MTA offered are ever asked for; an NR_* flag is
 * never asked where a plugin may reply.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "frontend.h"
#include "log.h"
#include "milter_int.h"
#include "session.h"

#define STAGE_USED(ch, st) ((ch) != NULL && chain_uses_stage((ch), (st)))

/* The macros the session model reads at each protocol step. */
static const char MACROS_CONNECT[] =
    "j _ {daemon_name} {daemon_addr} {client_addr} {client_port} {client_name} "
    "{client_ptr} v";
static const char MACROS_HELO[] =
    "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}";
static const char MACROS_ENVFROM[] =
    "i {auth_type} {auth_authen} {auth_author} {auth_ssf} {mail_addr} "
    "{mail_host} {mail_mailer} {tls_version} {cipher} {cipher_bits} "
    "{cert_subject} {cert_issuer}";
static const char MACROS_ENVRCPT[] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}";
static const char MACROS_EOM[] = "i {auth_authen} {auth_type}";

/* chain_flags - the union of the chain's plugin flags. */
static unsigned chain_flags(const struct chain *ch)
{
    return ch != NULL ? ch->flags : 0;
}

/* want - add flag to *w if the MTA offers it. */
static void want(unsigned long *w, unsigned long offered, unsigned long flag)
{
    if ((offered & flag) == flag)
        *w |= flag;
}

/* milter_neg_steps - the SMFIP_* flags for this chain (see the header). */
unsigned long milter_neg_steps(const struct chain *ch, unsigned long offered,
                               int no_reply)
{
    unsigned flags = chain_flags(ch);
    int headers = STAGE_USED(ch, SUBM_STAGE_HEADER);
    int body = STAGE_USED(ch, SUBM_STAGE_BODY);
    int need_headers = headers || (flags & SUBM_PLUGIN_NEEDS_HEADERS);
    int need_body = body || (flags & SUBM_PLUGIN_NEEDS_BODY);
    int mail_answers = STAGE_USED(ch, SUBM_STAGE_CONNECT) ||
                       STAGE_USED(ch, SUBM_STAGE_HELO) ||
                       STAGE_USED(ch, SUBM_STAGE_TLS) ||
                       STAGE_USED(ch, SUBM_STAGE_AUTH) ||
                       STAGE_USED(ch, SUBM_STAGE_MAIL);
    unsigned long w = 0;

    /* stages nobody needs. Not DATA: Postfix sends the DATA macros even
     * when told to skip DATA, and a packet left without a reply makes its
     * next write wait for our delayed ACK (~40 ms a message over TCP). */
    if (!STAGE_USED(ch, SUBM_STAGE_UNKNOWN) && !STAGE_USED(ch, SUBM_STAGE_EXPN))
        want(&w, offered, SMFIP_NOUNKNOWN);
    if (!STAGE_USED(ch, SUBM_STAGE_EOH))
        want(&w, offered, SMFIP_NOEOH);
    if (!need_headers)
        want(&w, offered, SMFIP_NOHDRS);
    if (!need_body)
        want(&w, offered, SMFIP_NOBODY);

    /* stages we read but no plugin answers: no reply needed (only when
     * asked for: the same delayed-ACK stall makes it a loss over TCP). A
     * refusal remembered from CONNECT/HELO/TLS/AUTH is given at MAIL, so
     * MAIL needs a reply whenever one of those is hooked. */
    if (no_reply) {
        if (!STAGE_USED(ch, SUBM_STAGE_CONNECT) && !chain_empty(ch))
            want(&w, offered, SMFIP_NR_CONN);   /* an empty chain answers ACCEPT there */
        if (!STAGE_USED(ch, SUBM_STAGE_HELO))
            want(&w, offered, SMFIP_NR_HELO);
        if (!mail_answers)
            want(&w, offered, SMFIP_NR_MAIL);
        if (!STAGE_USED(ch, SUBM_STAGE_RCPT))
            want(&w, offered, SMFIP_NR_RCPT);
        if (need_headers && !headers)
            want(&w, offered, SMFIP_NR_HDR);
        /* never SMFIP_NR_BODY: libmilter skips xxfi_eom when the last body
         * chunk arrives with end of message and xxfi_body says NOREPLY */
    }
    want(&w, offered, SMFIP_SKIP);
    want(&w, offered, SMFIP_HDR_LEADSPC);
    return w;
}

/* milter_neg_actions - every registered action the MTA offers. */
unsigned long milter_neg_actions(unsigned long offered)
{
    unsigned long mine = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY |
                         SMFIF_ADDRCPT | SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT |
                         SMFIF_CHGFROM | SMFIF_SETSYMLIST;

    return offered & mine;
}

/* milter_macro_ok - "x" or "{name}" with a sane name. */
int milter_macro_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0, i;

    if (len == 1)
        return name[0] > ' ' && name[0] < 127 && name[0] != '{' && name[0] != '}';
    if (len < 3 || len > 64 || name[0] != '{' || name[len - 1] != '}')
        return 0;
    for (i = 1; i + 1 < len; i++)
        if (!(name[i] == '_' || name[i] == '-' || (name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9')))
            return 0;
    return 1;
}

/* list_with_extras - base plus the configured macros, space-separated.
 * Returns 0, or -1 if it does not fit. */
static int list_with_extras(char *buf, size_t len, const char *base,
                            const struct milter_conf *mc)
{
    size_t used;
    int n;

    n = snprintf(buf, len, "%s", base);
    if (n < 0 || (size_t)n >= len)
        return -1;
    used = (size_t)n;
    if (mc == NULL || mc->macros == NULL)
        return 0;
    for (const char *const *m = mc->macros; *m != NULL; m++) {
        if (!milter_macro_ok(*m))
            continue;                  /* refused by milter_frontend_init */
        n = snprintf(buf + used, len - used, " %s", *m);
        if (n < 0 || (size_t)n >= len - used)
            return -1;
        used += (size_t)n;
    }
    return 0;
}

/* setsym - one smfi_setsymlist call; 0 or -1 (logged). */
static int setsym(SMFICTX *ctx, int where, const char *base,
                  const struct milter_conf *mc, int extras)
{
    char buf[2048];

    if (list_with_extras(buf, sizeof(buf), base, extras ? mc : NULL) != 0) {
        log_warn("milter: macro list too long; asking for the defaults only");
        snprintf(buf, sizeof(buf), "%s", base);
    }
    if (smfi_setsymlist(ctx, where, buf) != MI_SUCCESS) {
        log_warn("milter: smfi_setsymlist(%d) refused", where);
        return -1;
    }
    return 0;
}

/* milter_neg_macros - ask for the macros of every step. */
int milter_neg_macros(SMFICTX *ctx, const struct config *cfg)
{
    const struct milter_conf *mc = cfg->milter;
    int r = 0;

    r |= setsym(ctx, SMFIM_CONNECT, MACROS_CONNECT, mc, 1);
    r |= setsym(ctx, SMFIM_HELO, MACROS_HELO, mc, 0);
    r |= setsym(ctx, SMFIM_ENVFROM, MACROS_ENVFROM, mc, 1);
    r |= setsym(ctx, SMFIM_ENVRCPT, MACROS_ENVRCPT, mc, 1);
    r |= setsym(ctx, SMFIM_EOM, MACROS_EOM, mc, 1);
    return r;
}

/* no_reply_wanted - no_reply_steps, with auto resolved by the socket. */
static int no_reply_wanted(const struct milter_conf *mc)
{
    if (mc == NULL)
        return 0;
    if (mc->no_reply_steps == MILTER_NR_AUTO)
        return mc->listen != NULL && strncmp(mc->listen, "inet", 4) != 0;
    return mc->no_reply_steps == MILTER_NR_YES ||
           (mc->no_reply_steps > MILTER_NR_AUTO && mc->no_reply_steps % 2 == 0);
}

/* milter_negotiate - xxfi_negotiate: f0 actions and f1 steps offered. */
sfsistat milter_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                          unsigned long f2, unsigned long f3,
                          unsigned long *pf0, unsigned long *pf1,
                          unsigned long *pf2, unsigned long *pf3)
{
    struct milter_conn *c = smfi_getpriv(ctx);

    milter_touch();
    if (c == NULL && (c = milter_conn_new(ctx)) == NULL)
        return SMFIS_TEMPFAIL;
    c->actions = milter_neg_actions(f0);
    c->steps = milter_neg_steps(c->cfg->chain, f1, no_reply_wanted(c->cfg->milter));
    c->negotiated = 1;
    if (c->actions & SMFIF_SETSYMLIST)
        (void)milter_neg_macros(ctx, c->cfg);   /* failures logged; the MTA's
                                                   own lists still apply */
    *pf0 = c->actions;
    *pf1 = c->steps;
    *pf2 = 0;
    *pf3 = 0;
    log_debug("milter: negotiated actions 0x%lx of 0x%lx, steps 0x%lx of 0x%lx",
              c->actions, f0, c->steps, f1);
    return SMFIS_CONTINUE;
}
