/*
 * chain.h - the ordered list of plugin instances and the running of a stage
 * through it.
 *
 * chain_run() calls, in configuration order, every instance that has a hook
 * for the stage, until one returns a verdict other than SUBM_CONTINUE. It
 * applies ARCHITECTURE.md's rules: ACCEPT ends the stage (and, at HEADER and
 * BODY, the stage for the rest of the message), REJECT/TEMPFAIL carry a
 * reply (the plugin's, checked and sanitised, or the stage's default),
 * DISCARD marks the transaction. Non-CONTINUE verdicts are logged once here.
 * It knows nothing of SMTP or milter wire formats: front-ends turn the
 * verdict and reply into their own answer.
 */
#ifndef SUBM_CHAIN_H
#define SUBM_CHAIN_H

#include <stddef.h>
#include <submilter/plugin.h>

struct session;
struct plugin_so;

/* One plugin instance in a chain. */
struct chain_link {
    char                *name;      /* instance name (the block's title) */
    const subm_plugin_t *desc;
    void                *conf;      /* conf_size bytes: the instance */
    struct plugin_so    *so;
    int                  line;      /* where its block ends, for messages */
    int                  inited;
    unsigned             stage_mask; /* stages it is called for */
};

/* A reply to a client: code, enhanced code, text ('\n' between lines). */
#define REPLY_TEXT_MAX 2048
struct reply {
    int  code;                      /* 0: none set */
    char ecode[12];                 /* "" if none */
    char text[REPLY_TEXT_MAX];
};

struct chain {
    struct chain_link *links;
    size_t             nlinks;
    unsigned           stage_mask;  /* bit per stage some link hooks */
    unsigned           flags;       /* union of the links' SUBM_PLUGIN_* flags */
};

struct chain *chain_new(void);
/* chain_free - fini every initialised link, close the objects. */
void          chain_free(struct chain **chp);
/* chain_hook - a link's hook for a stage, or NULL. */
subm_hook_t   chain_hook(const subm_plugin_t *desc, subm_stage_t stage);
int           chain_uses_stage(const struct chain *ch, subm_stage_t stage);
/* chain_empty - no link hooks a stage or asks for anything (NULL too). */
int           chain_empty(const struct chain *ch);
const char   *chain_stage_name(subm_stage_t stage);

/*
 * chain_run - run stage for session s (s->txn must exist for transaction
 * stages). arg may be NULL for stages that carry nothing. On REJECT and
 * TEMPFAIL, and on an ACCEPT that set a reply, *reply_r is filled (code != 0);
 * otherwise reply_r->code is 0.
 */
subm_verdict_t chain_run(struct session *s, subm_stage_t stage,
                         const subm_arg_t *arg, struct reply *reply_r);

/* chain_default_reply - the reply a REJECT/TEMPFAIL at stage gets by default. */
void chain_default_reply(subm_stage_t stage, subm_verdict_t v, struct reply *r);
/* reply_set - fill r, sanitising text (CR/LF/controls, length) and checking
 * that code and ecode agree. Returns 0, or -1 if code/ecode are unusable. */
int  reply_set(struct reply *r, int code, const char *ecode, const char *text);
const char *verdict_name(subm_verdict_t v);

#endif
