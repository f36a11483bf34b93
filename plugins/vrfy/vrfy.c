/*
 * vrfy.c - the VRFY / EXPN / HELP policy plugin.
 *
 * VRFY and EXPN are the seed commands of address harvesting: VRFY confirms
 * one mailbox, EXPN lists a whole alias or mailing list. For each command
 * this plugin answers one of
 *   reject               502 5.5.1 (command disabled) or 550 5.7.1 (policy)
 *   ambiguous            252 2.5.0 "Cannot VRFY user, but will accept
 *                        message and attempt delivery" (RFC 5321 3.5.3)
 *   allow                no reply of ours: the smtp front-end relays the
 *                        command to the backend and passes its reply back
 *   allow_authenticated  allow for AUTH clients, 530 5.7.0 for others
 * Allowed lookups are rate limited per client address (rate_limit lookups
 * per rate_window); over the limit a client gets the `over_rate` answer.
 * HELP, answered by the front-end, can be refused or answered with our own
 * text.
 *
 * The per-client counters are the only state shared between sessions: they
 * live in the instance behind a mutex, in a table of at most `rate_clients`
 * entries (the oldest window is evicted when it is full), so memory stays
 * bounded whatever the clients do.
 *
 * It does not apply to the milter front-end: Postfix and Sendmail answer
 * VRFY themselves and never pass it to a milter (see README).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <submilter/plugin.h>

enum vrfy_policy { P_REJECT, P_AMBIGUOUS, P_ALLOW, P_ALLOW_AUTH };
enum vrfy_code { C_502, C_550 };
enum vrfy_over { O_AMBIGUOUS, O_REJECT, O_TEMPFAIL };
enum vrfy_help { H_ALLOW, H_REJECT };

/* One client's window in the rate table. */
struct rate_entry {
    char     addr[48];          /* INET6_ADDRSTRLEN + slack; "" = free */
    int64_t  start_ms;          /* start of the current window */
    long     count;             /* lookups allowed in it */
};

struct rate_table {
    pthread_mutex_t    lock;
    struct rate_entry *e;
    size_t             n;       /* capacity */
};

struct vrfy_conf {
    int                vrfy;            /* enum vrfy_policy */
    int                expn;
    int                reject_code;     /* enum vrfy_code */
    long               rate_limit;      /* allowed lookups per window, 0 = none */
    long               rate_window;     /* ms */
    long               rate_clients;    /* table size */
    int                over_rate;       /* enum vrfy_over */
    int                help;            /* enum vrfy_help */
    const char        *help_text;
    /* derived in init */
    struct rate_table *rate;
};

static const char *const policy_choices[] = {
    "reject", "ambiguous", "allow", "allow_authenticated", NULL };
static const char *const code_choices[] = { "502", "550", NULL };
static const char *const over_choices[] = {
    "ambiguous", "reject", "tempfail", NULL };
static const char *const help_choices[] = { "allow", "reject", NULL };

#define O(f) offsetof(struct vrfy_conf, f)
static const subm_option_t vrfy_options[] = {
    { "vrfy", SUBM_OPT_ENUM, "ambiguous", O(vrfy), 0, 0, policy_choices,
      "VRFY: reject, ambiguous (252), allow (relay to backend), allow_authenticated" },
    { "expn", SUBM_OPT_ENUM, "reject", O(expn), 0, 0, policy_choices,
      "EXPN: reject, ambiguous (252), allow (relay to backend), allow_authenticated" },
    { "reject_code", SUBM_OPT_ENUM, "502", O(reject_code), 0, 0, code_choices,
      "reply of `reject`: 502 (5.5.1 command disabled) or 550 (5.7.1 policy)" },
    { "rate_limit", SUBM_OPT_INT, "10", O(rate_limit), 0, 1000000, NULL,
      "allowed lookups per client address per rate_window; 0 = no limit" },
    { "rate_window", SUBM_OPT_TIME, "1m", O(rate_window), 1000, 86400000, NULL,
      "length of the rate window" },
    { "rate_clients", SUBM_OPT_INT, "10000", O(rate_clients), 16, 10000000, NULL,
      "client addresses tracked at once (bounded memory)" },
    { "over_rate", SUBM_OPT_ENUM, "ambiguous", O(over_rate), 0, 0, over_choices,
      "answer past the rate limit: ambiguous (252), reject (550 5.7.1), tempfail (450 4.7.1)" },
    { "help", SUBM_OPT_ENUM, "allow", O(help), 0, 0, help_choices,
      "HELP: allow (the front-end answers) or reject (502 5.5.1)" },
    { "help_text", SUBM_OPT_STR, "", O(help_text), 0, 0, NULL,
      "with help = allow, answer HELP with 214 and this text instead" },
    SUBM_OPT_END
};
#undef O

/* now_ms - monotonic clock in milliseconds. */
static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* rate_new - an empty table of n entries, or NULL. */
static struct rate_table *rate_new(size_t n)
{
    struct rate_table *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->e = calloc(n, sizeof(*t->e));
    if (t->e == NULL || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t->e);
        free(t);
        return NULL;
    }
    t->n = n;
    return t;
}

/* rate_free - destroy the table. */
static void rate_free(struct rate_table **tp)
{
    if (*tp == NULL)
        return;
    pthread_mutex_destroy(&(*tp)->lock);
    free((*tp)->e);
    free(*tp);
    *tp = NULL;
}

/* rate_hash - FNV-1a of the address. */
static size_t rate_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char) *s) * 16777619u;
    return h;
}

/*
 * rate_slot - the entry for addr, or a free or reusable one, with the lock
 * held. Open addressing with a short probe; when the probe finds neither
 * the address nor a free slot, the entry with the oldest window among the
 * probed ones is taken over (an expired one first, by construction).
 */
#define RATE_PROBE 32
static struct rate_entry *rate_slot(struct rate_table *t, const char *addr)
{
    size_t h = rate_hash(addr), i, probe = t->n < RATE_PROBE ? t->n : RATE_PROBE;
    struct rate_entry *oldest = NULL;

    for (i = 0; i < probe; i++) {
        struct rate_entry *e = &t->e[(h + i) % t->n];

        if (e->addr[0] == 0 || strcmp(e->addr, addr) == 0)
            return e;
        if (oldest == NULL || e->start_ms < oldest->start_ms)
            oldest = e;
    }
    if (oldest == NULL)             /* n == 0: refused by vrfy_init */
        oldest = t->e;
    oldest->addr[0] = 0;
    return oldest;
}

/* rate_allow - count one lookup for addr; 1 if within the limit. */
static int rate_allow(struct vrfy_conf *c, const char *addr)
{
    struct rate_table *t = c->rate;
    struct rate_entry *e;
    int64_t now = now_ms();
    char key[sizeof(e->addr)];
    int ok;

    if (c->rate_limit <= 0 || t == NULL)
        return 1;
    /* a key longer than a slot (never an IP address) is cut: such clients
     * share one budget, which errs on the safe side */
    snprintf(key, sizeof(key), "%s", addr);
    pthread_mutex_lock(&t->lock);
    e = rate_slot(t, key);
    if (e->addr[0] == 0 || now - e->start_ms >= c->rate_window) {
        memcpy(e->addr, key, sizeof(key));
        e->start_ms = now;
        e->count = 0;
    }
    ok = e->count < c->rate_limit;
    if (ok)
        e->count++;
    pthread_mutex_unlock(&t->lock);
    return ok;
}

/* vrfy_init - make the rate table. */
static int vrfy_init(void *conf, subm_error_t *err)
{
    struct vrfy_conf *c = conf;

    if (c->rate_limit > 0) {
        if (c->rate_clients < 1)
            return subm_error(err, "rate_clients must be at least 1");
        c->rate = rate_new((size_t) c->rate_clients);
        if (c->rate == NULL)
            return subm_error(err, "out of memory for %ld rate_clients",
                              c->rate_clients);
    }
    return 0;
}

/* vrfy_fini - free the rate table. */
static void vrfy_fini(void *conf)
{
    struct vrfy_conf *c = conf;

    rate_free(&c->rate);
}

/* answer_ambiguous - 252 2.5.0, RFC 5321 3.5.3. */
static subm_verdict_t answer_ambiguous(subm_ctx_t *ctx, const char *cmd)
{
    subm_reply(ctx, 252, "2.5.0",
               "Cannot %s user, but will accept message and attempt delivery",
               cmd);
    return SUBM_ACCEPT;
}

/* answer_reject - the configured refusal. */
static subm_verdict_t answer_reject(subm_ctx_t *ctx, const struct vrfy_conf *c,
                                    const char *cmd)
{
    if (c->reject_code == C_550)
        return subm_reject(ctx, 550, "5.7.1", "%s refused by policy", cmd);
    return subm_reject(ctx, 502, "5.5.1", "%s command is disabled", cmd);
}

/* answer_allowed - an allowed lookup: relay it, within the rate limit. */
static subm_verdict_t answer_allowed(subm_ctx_t *ctx, struct vrfy_conf *c,
                                     const char *cmd)
{
    const char *addr = subm_client_addr(ctx);

    if (rate_allow(c, addr ? addr : "unknown"))
        return SUBM_ACCEPT;            /* no reply: the front-end relays */
    subm_log(ctx, SUBM_LOG_INFO, "%s rate limit (%ld per %ld s) reached for %s",
             cmd, c->rate_limit, c->rate_window / 1000, addr ? addr : "unknown");
    switch (c->over_rate) {
    case O_REJECT:
        return subm_reject(ctx, 550, "5.7.1", "Too many %s requests", cmd);
    case O_TEMPFAIL:
        return subm_tempfail(ctx, 450, "4.7.1",
                             "Too many %s requests, try again later", cmd);
    default:
        return answer_ambiguous(ctx, cmd);
    }
}

/* vrfy_decide - apply one command's policy. */
static subm_verdict_t vrfy_decide(subm_ctx_t *ctx, const subm_arg_t *arg,
                                  int policy, const char *cmd)
{
    struct vrfy_conf *c = subm_instance(ctx);
    const char *text = arg->text;

    if (policy == P_REJECT)
        return answer_reject(ctx, c, cmd);
    if (text == NULL || text[strspn(text, " \t")] == 0)
        return subm_reject(ctx, 501, "5.5.4", "Syntax: %s address", cmd);
    switch (policy) {
    case P_AMBIGUOUS:
        return answer_ambiguous(ctx, cmd);
    case P_ALLOW_AUTH:
        if (subm_auth_login(ctx) == NULL)
            return subm_reject(ctx, 530, "5.7.0",
                               "Authentication required for %s", cmd);
        return answer_allowed(ctx, c, cmd);
    default:
        return answer_allowed(ctx, c, cmd);
    }
}

/* vrfy_vrfy - the VRFY stage. */
static subm_verdict_t vrfy_vrfy(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct vrfy_conf *c = subm_instance(ctx);

    return vrfy_decide(ctx, arg, c->vrfy, "VRFY");
}

/* vrfy_expn - the EXPN stage. */
static subm_verdict_t vrfy_expn(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct vrfy_conf *c = subm_instance(ctx);

    return vrfy_decide(ctx, arg, c->expn, "EXPN");
}

/* vrfy_help - the HELP stage. */
static subm_verdict_t vrfy_help(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct vrfy_conf *c = subm_instance(ctx);

    if (c->help == H_REJECT)
        return subm_reject(ctx, 502, "5.5.1", "HELP command is disabled");
    if (c->help_text != NULL && c->help_text[0] != 0) {
        subm_reply(ctx, 214, "2.0.0", "%s", c->help_text);
        return SUBM_ACCEPT;
    }
    return SUBM_CONTINUE;
}

SUBM_PLUGIN(vrfy) = {
    SUBM_PLUGIN_HEAD,
    .name        = "vrfy",
    .version     = "1.0",
    .description = "VRFY/EXPN/HELP policy with a per-client rate limit",
    .options     = vrfy_options,
    .conf_size   = sizeof(struct vrfy_conf),
    .init        = vrfy_init,
    .fini        = vrfy_fini,
    .on_vrfy     = vrfy_vrfy,
    .on_expn     = vrfy_expn,
    .on_help     = vrfy_help,
};
