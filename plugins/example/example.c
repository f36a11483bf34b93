/*
 * example.c - the template for plugin authors: a whole, working submilter
 * plugin in one file.
 *
 * What it does:
 *   - refuses recipients listed in `reject_rcpt` (RCPT stage, one recipient
 *     only: the others of the same message are unaffected);
 *   - adds a header field (`header`, "Name: value") to every message;
 *   - adds "X-Submilter-Login: LOGIN" to mail of authenticated sessions
 *     when `tag_login` is on (showing how to read session facts).
 * What it does not: keep state across sessions, do I/O, or wait on anything.
 *
 * Build out of tree:
 *     cc -shared -fPIC $(pkg-config --cflags submilter) example.c -o example.so
 * and load it with:
 *     plugin example { path = /path/to/example.so  reject_rcpt = { "a@b.example" } }
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <submilter/plugin.h>

/*
 * The plugin's configuration block. The daemon allocates it (conf_size
 * bytes, zeroed), writes each option at its offset, then calls init. After
 * init it is shared read-only by all sessions and threads.
 */
struct example_conf {
    /* options, filled by the daemon */
    const char         *header;        /* "Name: value" */
    const char *const  *reject_rcpt;   /* NULL-terminated list */
    int                 tag_login;
    /* derived by init */
    char                header_name[128];
    const char         *header_value;
};

/* The option table: name, type, default (as written in the file), where it goes. */
static const subm_option_t example_options[] = {
    { "header", SUBM_OPT_STR, "X-Submilter-Example: yes",
      offsetof(struct example_conf, header), 0, 0, NULL,
      "header field added to every message; \"\" adds none" },
    { "reject_rcpt", SUBM_OPT_LIST, NULL,
      offsetof(struct example_conf, reject_rcpt), 0, 0, NULL,
      "recipients refused with 550 5.7.1" },
    { "tag_login", SUBM_OPT_BOOL, "yes",
      offsetof(struct example_conf, tag_login), 0, 0, NULL,
      "add X-Submilter-Login for authenticated sessions" },
    SUBM_OPT_END
};

/* example_init - split "Name: value" once, so hooks do no parsing. */
static int example_init(void *conf, subm_error_t *err)
{
    struct example_conf *c = conf;
    const char *colon;
    size_t len;

    if (c->header == NULL || *c->header == '\0')
        return 0;
    colon = strchr(c->header, ':');
    if (colon == NULL || colon == c->header)
        return subm_error(err, "header \"%s\" is not \"Name: value\"", c->header);
    len = (size_t)(colon - c->header);
    if (len >= sizeof(c->header_name))
        return subm_error(err, "header name is longer than %zu characters",
                          sizeof(c->header_name) - 1);
    memcpy(c->header_name, c->header, len);
    c->header_name[len] = '\0';
    c->header_value = colon + 1;
    while (*c->header_value == ' ')
        c->header_value++;
    return 0;
}

/* example_rcpt - refuse a listed recipient (just this one). */
static subm_verdict_t example_rcpt(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct example_conf *c = subm_instance(ctx);
    const char *const *r;

    for (r = c->reject_rcpt; r != NULL && *r != NULL; r++)
        if (strcasecmp(*r, arg->text) == 0)
            return subm_reject(ctx, 550, "5.7.1",
                               "Recipient <%s> is not accepted here", arg->text);
    return SUBM_CONTINUE;
}

/*
 * example_eom - record the header modifications. They are applied by the
 * front-end after the whole chain has accepted the message, the same way on
 * the smtp and the milter front-end.
 */
static subm_verdict_t example_eom(subm_ctx_t *ctx, const subm_arg_t *arg)
{
    const struct example_conf *c = subm_instance(ctx);
    const char *login = subm_auth_login(ctx);

    (void)arg;
    if (c->header_name[0] != '\0' &&
        subm_txn_add_header(ctx, c->header_name, c->header_value) < 0)
        subm_log(ctx, SUBM_LOG_WARN, "cannot add header %s", c->header_name);
    if (c->tag_login && login != NULL &&
        subm_txn_add_header(ctx, "X-Submilter-Login", login) < 0)
        subm_log(ctx, SUBM_LOG_WARN, "login %s cannot go in a header", login);
    return SUBM_CONTINUE;
}

/* The exported descriptor: the only symbol the daemon looks for. */
SUBM_PLUGIN(example) = {
    SUBM_PLUGIN_HEAD,
    .name        = "example",
    .version     = "1.0",
    .description = "adds a header, refuses listed recipients",
    .options     = example_options,
    .conf_size   = sizeof(struct example_conf),
    .init        = example_init,
    .on_rcpt     = example_rcpt,
    .on_eom      = example_eom,
};
