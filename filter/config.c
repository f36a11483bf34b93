/*
 * config.c - load submilter.conf into an immutable, reference-counted
 * snapshot: root options, the smtp {} and milter {} blocks, and the chain.
 *
 * libconfuse does the parsing. Pass one reads the file loosely to learn
 * the plugin blocks (title, optional path) so each plugin can be loaded and
 * its option table joined to the schema; pass two parses with the full
 * schema, every value checked by option.c as it is read, so an unknown key
 * or a bad value is reported with the file and line of that key. Then each
 * plugin's block is filled and its init called. Every problem reaches the
 * caller's report function as "FILE:LINE: message"; a snapshot is returned
 * only if there were none. Publishing and acquiring snapshots is at the end.
 */
#include <confuse.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain.h"
#include "config.h"
#include "frontend.h"
#include "loader.h"
#include "log.h"
#include "option.h"
#include "pool.h"

#ifndef PLUGIN_DIR
#define PLUGIN_DIR "/usr/local/lib/submilter"
#endif

#define O(f) offsetof(struct root_conf, f)
const subm_option_t root_options[] = {
    { "user", SUBM_OPT_STR, "", O(user), 0, 0, NULL, "drop privileges to this user" },
    { "group", SUBM_OPT_STR, "", O(group), 0, 0, NULL, NULL },
    { "hostname", SUBM_OPT_STR, "", O(hostname), 0, 0, NULL, "default: the system's name" },
    { "plugin_dir", SUBM_OPT_PATH, "", O(plugin_dir), 0, 0, NULL,
      "where `plugin NAME` finds NAME.so" },
    { "pid_file", SUBM_OPT_PATH, "", O(pid_file), 0, 0, NULL, NULL },
    { "spool_dir", SUBM_OPT_PATH, "/var/tmp", O(spool_dir), 0, 0, NULL,
      "unlinked temporary files for big messages" },
    { "spool_memory", SUBM_OPT_SIZE, "256K", O(spool_memory), 4096, 1LL << 30, NULL,
      "bytes of a message body held in memory before spooling to a file" },
    { "plugin_timeout", SUBM_OPT_TIME, "10s", O(plugin_timeout), 100, 600000, NULL,
      "deadline the chain gets for one stage" },
    { "shutdown_grace", SUBM_OPT_TIME, "30s", O(shutdown_grace), 0, 3600000, NULL, NULL },
    SUBM_OPT_END
};
#undef O

/* One plugin block found by pass one. */
struct found {
    char             *title;
    char             *path;
    int               line;
    struct plugin_so *so;
};

/* The state of one load; reached by libconfuse callbacks through `loading`. */
struct load {
    const char       *file;
    config_report_fn  report;
    void             *report_arg;
    int               problems;
    int               quiet;          /* pass one: swallow libconfuse errors */
    struct found     *found;
    size_t            nfound;
};

static __thread struct load *loading;

/* problem - report one "FILE:LINE: message" (line 0: no line). */
static void problem(struct load *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct load *ld, int line, const char *fmt, ...)
{
    char msg[1024], out[1200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(out, sizeof(out), "%s:%d: %s", ld->file, line, msg);
    else
        snprintf(out, sizeof(out), "%s: %s", ld->file, msg);
    ld->problems++;
    if (ld->report != NULL)
        ld->report(ld->report_arg, out);
    else
        log_error("%s", out);
}

/* confuse_error - libconfuse's error callback: one problem with its line. */
static void confuse_error(cfg_t *cfg, const char *fmt, va_list ap)
{
    char msg[1024];

    if (loading == NULL || loading->quiet)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    problem(loading, cfg ? cfg->line : 0, "%s", msg);
}

/* ---- schema ------------------------------------------------------------- */

/* table_for - the option table of a section, or NULL. */
static const subm_option_t *table_for(cfg_t *sec, const struct found **f_r)
{
    size_t i;

    *f_r = NULL;
    if (strcmp(sec->name, "smtp") == 0)
        return smtp_options;
    if (strcmp(sec->name, "milter") == 0)
        return milter_options;
    if (strcmp(sec->name, "plugin") == 0) {
        const char *title = cfg_title(sec);

        for (i = 0; loading && title && i < loading->nfound; i++) {
            if (strcmp(loading->found[i].title, title) == 0) {
                *f_r = &loading->found[i];
                return loading->found[i].so ? loading->found[i].so->desc->options : NULL;
            }
        }
        return NULL;
    }
    return root_options;
}

/* validate_opt - libconfuse's callback after a value is read: check it. */
static int validate_opt(cfg_t *sec, cfg_opt_t *opt)
{
    const struct found *f;
    const subm_option_t *table = table_for(sec, &f);
    const subm_option_t *o;
    const char *values[256];
    char err[512];
    size_t n = cfg_opt_size(opt), i;

    if (strcmp(sec->name, "plugin") == 0) {
        if (strcmp(opt->name, "path") == 0)
            return 0;
        if (f == NULL || f->so == NULL)
            return 0;                  /* a plugin that did not load: reported */
    }
    if ((o = option_find(table, opt->name)) == NULL) {
        if (f != NULL)
            cfg_error(sec, "plugin '%s' (%s) has no option '%s'", f->title,
                      f->so->desc->name, opt->name);
        else
            cfg_error(sec, "no such option '%s' in %s", opt->name,
                      strcmp(sec->name, "root") ? sec->name : "the top level");
        return -1;
    }
    if (n > sizeof(values) / sizeof(values[0])) {
        cfg_error(sec, "option '%s': too many values", opt->name);
        return -1;
    }
    for (i = 0; i < n; i++)
        values[i] = cfg_opt_getnstr(opt, (unsigned)i);
    if (option_parse(o, values, n, NULL, NULL, err, sizeof(err)) < 0) {
        cfg_error(sec, "%s", err);
        return -1;
    }
    return 0;
}

/* validate_once - a front-end block may appear once. */
static int validate_once(cfg_t *parent, cfg_opt_t *opt)
{
    if (cfg_opt_size(opt) > 1) {
        cfg_error(parent, "%s {} given more than once", opt->name);
        return -1;
    }
    return 0;
}

/* opts_add - append one string (or list) option to a growing schema. */
static void opts_add(cfg_opt_t **opts, size_t *n, const char *name, int list,
                     cfg_validate_callback_t cb)
{
    cfg_opt_t one = CFG_STR(name, NULL, CFGF_NODEFAULT);
    cfg_opt_t lst = CFG_STR_LIST(name, NULL, CFGF_NODEFAULT);
    size_t i;

    for (i = 0; i < *n; i++) {
        if (strcmp((*opts)[i].name, name) == 0) {
            if (list && !((*opts)[i].flags & CFGF_LIST)) {
                /* two plugins disagree; a list also takes one value */
                (*opts)[i].flags |= CFGF_LIST;
            }
            return;
        }
    }
    *opts = xrealloc(*opts, (*n + 2) * sizeof(cfg_opt_t));
    (*opts)[*n] = list ? lst : one;
    (*opts)[*n].validcb = cb;
    (*n)++;
    memset(&(*opts)[*n], 0, sizeof(cfg_opt_t));   /* CFG_END() */
}

/* opts_from_table - schema entries for a subm_option_t table. */
static void opts_from_table(cfg_opt_t **opts, size_t *n, const subm_option_t *t,
                            cfg_validate_callback_t cb)
{
    for (; t != NULL && t->name != NULL; t++)
        opts_add(opts, n, t->name, t->type == SUBM_OPT_LIST, cb);
}

/* opt_sec - a section entry (libconfuse copies opts at cfg_init). */
static cfg_opt_t opt_sec(const char *name, cfg_opt_t *opts, int flags)
{
    cfg_opt_t sec = CFG_SEC(name, opts, flags);

    return sec;
}

/* The schema of one pass, with the arrays to free after cfg_init. */
struct schema {
    cfg_opt_t *root, *smtp, *milter, *plugin;
    size_t     nroot, nsmtp, nmilter, nplugin;
};

static void schema_free(struct schema *sc)
{
    free(sc->root);
    free(sc->smtp);
    free(sc->milter);
    free(sc->plugin);
    memset(sc, 0, sizeof(*sc));
}

/* schema_build - pass one (loose) or pass two (full, checked). */
static cfg_t *schema_build(struct schema *sc, struct load *ld, int loose)
{
    cfg_validate_callback_t cb = loose ? NULL : validate_opt;
    size_t i;
    cfg_opt_t *root_sec;
    cfg_t *cfg;

    memset(sc, 0, sizeof(*sc));
    opts_from_table(&sc->smtp, &sc->nsmtp, smtp_options, cb);
    opts_from_table(&sc->milter, &sc->nmilter, milter_options, cb);
    opts_add(&sc->plugin, &sc->nplugin, "path", 0, NULL);
    if (loose) {
        opts_add(&sc->smtp, &sc->nsmtp, "__unknown", 1, NULL);
        opts_add(&sc->milter, &sc->nmilter, "__unknown", 1, NULL);
        opts_add(&sc->plugin, &sc->nplugin, "__unknown", 1, NULL);
    }
    for (i = 0; !loose && i < ld->nfound; i++)
        if (ld->found[i].so != NULL)
            opts_from_table(&sc->plugin, &sc->nplugin, ld->found[i].so->desc->options, cb);
    opts_from_table(&sc->root, &sc->nroot, root_options, cb);
    if (loose)
        opts_add(&sc->root, &sc->nroot, "__unknown", 1, NULL);
    /* the three sections go in front of the root options */
    root_sec = xcalloc(sc->nroot + 4, sizeof(cfg_opt_t));
    root_sec[0] = opt_sec("smtp", sc->smtp, CFGF_MULTI);
    root_sec[1] = opt_sec("milter", sc->milter, CFGF_MULTI);
    root_sec[2] = opt_sec("plugin", sc->plugin, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES);
    if (!loose)
        root_sec[0].validcb = root_sec[1].validcb = validate_once;
    memcpy(root_sec + 3, sc->root, (sc->nroot + 1) * sizeof(cfg_opt_t));
    free(sc->root);
    sc->root = root_sec;
    cfg = cfg_init(sc->root, loose ? CFGF_IGNORE_UNKNOWN : CFGF_NONE);
    cfg_set_error_function(cfg, confuse_error);
    return cfg;
}

/* parse - run libconfuse on the file or text. 0 or -1. */
static int parse(cfg_t *cfg, const char *file, const char *text)
{
    int r;

    if (text != NULL)
        r = cfg_parse_buf(cfg, text);
    else
        r = cfg_parse(cfg, file);
    if (r == CFG_FILE_ERROR && !loading->quiet)
        problem(loading, 0, "cannot read: %s", strerror(errno));
    return r == CFG_SUCCESS ? 0 : -1;
}

/* ---- pass one: the plugin blocks ---------------------------------------- */

/* find_plugins - titles and paths of the plugin blocks, loaded and checked. */
static void find_plugins(struct load *ld, cfg_t *cfg, const char *dir)
{
    size_t n = cfg_size(cfg, "plugin"), i;

    ld->found = xcalloc(n ? n : 1, sizeof(*ld->found));
    for (i = 0; i < n; i++) {
        cfg_t *sec = cfg_getnsec(cfg, "plugin", (unsigned)i);
        struct found *f = &ld->found[ld->nfound++];
        const char *path = cfg_getstr(sec, "path");
        char err[1024];

        f->title = xstrdup(cfg_title(sec));
        f->path = path ? xstrdup(path) : NULL;
        f->line = sec->line;
        if (loader_open(f->title, f->path, dir, &f->so, err, sizeof(err)) < 0)
            problem(ld, f->line, "%s", err);
    }
}

/* found_free - close what the chain did not take over. */
static void found_free(struct load *ld)
{
    size_t i;

    for (i = 0; i < ld->nfound; i++) {
        loader_close(&ld->found[i].so);
        free(ld->found[i].title);
        free(ld->found[i].path);
    }
    free(ld->found);
    ld->found = NULL;
    ld->nfound = 0;
}

/* ---- filling blocks -------------------------------------------------------- */

/* anchor_path - a relative path is relative to the configuration's folder. */
static void anchor_path(const struct load *ld, const char **path, struct pool *pool)
{
    const char *slash = strrchr(ld->file, '/');

    if (*path == NULL || **path == '\0' || **path == '/' || slash == NULL)
        return;
    *path = pool_printf(pool, "%.*s/%s", (int)(slash - ld->file), ld->file, *path);
}

/* fill_block - defaults, then the values set in sec, into block. */
static int fill_block(struct load *ld, cfg_t *sec, const subm_option_t *table,
                      void *block, struct pool *pool)
{
    const subm_option_t *o;
    const char *values[256];
    char err[512];
    size_t n, i;

    if (option_set_defaults(table, block, pool, err, sizeof(err)) < 0) {
        problem(ld, sec->line, "bad default: %s", err);
        return -1;
    }
    for (o = table; o != NULL && o->name != NULL; o++) {
        n = cfg_size(sec, o->name);
        if (n == 0)
            continue;
        if (n > sizeof(values) / sizeof(values[0]))
            n = sizeof(values) / sizeof(values[0]);
        for (i = 0; i < n; i++)
            values[i] = cfg_getnstr(sec, o->name, (unsigned)i);
        if (option_parse(o, values, n, block, pool, err, sizeof(err)) < 0) {
            problem(ld, sec->line, "%s", err);
            return -1;
        }
        if (o->type == SUBM_OPT_PATH)
            anchor_path(ld, (const char **)((char *)block + o->offset), pool);
    }
    return 0;
}

/* build_chain - one link per plugin block, in file order, each initialised. */
static struct chain *build_chain(struct load *ld, cfg_t *cfg, struct pool *pool)
{
    struct chain *ch = chain_new();
    size_t n = cfg_size(cfg, "plugin"), i;
    int st;

    ch->links = xcalloc(n ? n : 1, sizeof(*ch->links));
    for (i = 0; i < n && i < ld->nfound; i++) {
        cfg_t *sec = cfg_getnsec(cfg, "plugin", (unsigned)i);
        struct found *f = &ld->found[i];
        struct chain_link *l = &ch->links[ch->nlinks];
        subm_error_t err;

        if (f->so == NULL)
            continue;
        l->name = xstrdup(f->title);
        l->desc = f->so->desc;
        l->so = f->so;
        f->so = NULL;
        l->line = sec->line;
        l->conf = xcalloc(1, l->desc->conf_size ? l->desc->conf_size : 1);
        ch->nlinks++;
        if (fill_block(ld, sec, l->desc->options, l->conf, pool) < 0)
            continue;
        memset(&err, 0, sizeof(err));
        if (l->desc->init != NULL && l->desc->init(l->conf, &err) != 0) {
            problem(ld, l->line, "plugin %s: %s", l->name,
                    err.text[0] ? err.text : "init failed");
            continue;
        }
        l->inited = 1;
        for (st = 0; st < SUBM_STAGE_COUNT; st++)
            if (chain_hook(l->desc, (subm_stage_t)st) != NULL)
                l->stage_mask |= SUBM_STAGE_BIT(st);
        if (l->desc->stages != NULL)
            l->stage_mask &= l->desc->stages(l->conf);
        ch->stage_mask |= l->stage_mask;
        ch->flags |= l->desc->flags;
    }
    return ch;
}

/* fill_frontend - a front-end block, if present, into a fresh struct. */
static void *fill_frontend(struct load *ld, cfg_t *cfg, const char *name,
                           const subm_option_t *table, size_t size, struct pool *pool)
{
    void *block;

    if (cfg_size(cfg, name) == 0)
        return NULL;
    block = pool_alloc(pool, size);
    if (fill_block(ld, cfg_getnsec(cfg, name, 0), table, block, pool) < 0)
        return NULL;
    return block;
}

/* default_hostname - the system's name when none is configured. */
static const char *default_hostname(struct pool *pool)
{
    char name[256];

    if (gethostname(name, sizeof(name) - 1) < 0)
        return "localhost";
    name[sizeof(name) - 1] = '\0';
    return pool_strdup(pool, name);
}

/* plugin_dir_for - the folder plugins are found in by name. */
static const char *plugin_dir_for(const char *arg, const char *file_opt)
{
    const char *env = getenv("SUBMILTER_PLUGIN_DIR");

    if (file_opt != NULL && *file_opt != '\0')
        return file_opt;
    if (arg != NULL && *arg != '\0')
        return arg;
    if (env != NULL && *env != '\0')
        return env;
    return PLUGIN_DIR;
}

/* load - both passes and the build, from file or text. */
static struct config *load(const char *file, const char *text, const char *plugin_dir,
                           config_report_fn report, void *report_arg)
{
    struct load ld = { .file = file, .report = report, .report_arg = report_arg };
    struct schema sc;
    struct config *cfg = NULL;
    const char *dir;
    cfg_t *c;
    int ok;

    loading = &ld;
    /* pass one: which plugins, where from, and the plugin_dir option */
    ld.quiet = 1;
    c = schema_build(&sc, &ld, 1);
    ok = parse(c, file, text) == 0;
    ld.quiet = 0;
    if (ok) {
        const char *pd = cfg_getstr(c, "plugin_dir");
        const char *slash = strrchr(file, '/');
        char anchored[4096];

        if (pd != NULL && *pd != '\0' && *pd != '/' && slash != NULL &&
            snprintf(anchored, sizeof(anchored), "%.*s/%s", (int)(slash - file),
                     file, pd) < (int)sizeof(anchored))
            pd = anchored;
        dir = plugin_dir_for(plugin_dir, pd);
        find_plugins(&ld, c, dir);
    }
    cfg_free(c);
    schema_free(&sc);

    /* pass two: everything checked, with the plugins' options */
    c = schema_build(&sc, &ld, 0);
    if (parse(c, file, text) == 0 && ld.problems == 0) {
        cfg = xcalloc(1, sizeof(*cfg));
        cfg->refs = 1;
        cfg->file = xstrdup(file);
        cfg->pool = pool_new(4096);
        if (fill_block(&ld, c, root_options, &cfg->root, cfg->pool) == 0) {
            if (*cfg->root.hostname == '\0')
                cfg->root.hostname = default_hostname(cfg->pool);
            cfg->smtp = fill_frontend(&ld, c, "smtp", smtp_options,
                                      sizeof(struct smtp_conf), cfg->pool);
            cfg->milter = fill_frontend(&ld, c, "milter", milter_options,
                                        sizeof(struct milter_conf), cfg->pool);
            cfg->chain = build_chain(&ld, c, cfg->pool);
        }
        if (ld.problems > 0)
            config_unref(&cfg);
    }
    cfg_free(c);
    schema_free(&sc);
    found_free(&ld);
    loading = NULL;
    return cfg;
}

/* config_load - load a configuration file. */
struct config *config_load(const char *file, const char *plugin_dir,
                           config_report_fn report, void *report_arg)
{
    return load(file, NULL, plugin_dir, report, report_arg);
}

/* config_load_string - load configuration text; name is shown as the file. */
struct config *config_load_string(const char *text, const char *name,
                                  const char *plugin_dir,
                                  config_report_fn report, void *report_arg)
{
    return load(name, text, plugin_dir, report, report_arg);
}

/* ---- references and the published snapshot -------------------------------- */

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config *current;

/* config_ref - one more reference. */
void config_ref(struct config *cfg)
{
    __atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
}

/* config_unref - one reference less; the last frees the snapshot. */
void config_unref(struct config **cfgp)
{
    struct config *cfg = *cfgp;

    if (cfg == NULL)
        return;
    *cfgp = NULL;
    if (__atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    chain_free(&cfg->chain);
    pool_free(&cfg->pool);
    free(cfg->file);
    free(cfg);
}

/* config_publish - make cfg the snapshot new sessions get. */
void config_publish(struct config *cfg)
{
    struct config *old;

    pthread_mutex_lock(&current_lock);
    old = current;
    current = cfg;
    pthread_mutex_unlock(&current_lock);
    config_unref(&old);
}

/* config_acquire - a reference to the published snapshot. */
struct config *config_acquire(void)
{
    struct config *cfg;

    pthread_mutex_lock(&current_lock);
    cfg = current;
    if (cfg != NULL)
        config_ref(cfg);
    pthread_mutex_unlock(&current_lock);
    return cfg;
}

/* config_release - drop a reference taken with config_acquire. */
void config_release(struct config **cfgp)
{
    config_unref(cfgp);
}
