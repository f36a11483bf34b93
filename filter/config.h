/*
 * config.h - the configuration snapshot: the daemon's own options, the
 * front-end blocks and the plugin chain built from one submilter.conf.
 *
 * config_load() parses the file with libconfuse (two passes: the first finds
 * the plugin blocks so their option tables can join the schema of the
 * second), loads and initialises every plugin, and returns a snapshot or
 * NULL with every problem reported as "FILE:LINE: message" (to the log and,
 * for -t, to stderr). A snapshot is immutable and reference counted: the
 * running one is published with config_publish() and taken by each session
 * with config_acquire(); a reload publishes a new one while old sessions
 * keep theirs. It does not start or stop front-ends.
 */
#ifndef SUBM_CONFIG_H
#define SUBM_CONFIG_H

#include <stdint.h>
#include <submilter/plugin.h>

struct pool;
struct chain;

/* The root options (see config.c's table for defaults). */
struct root_conf {
    const char *user;            /* drop privileges to this user ("" = stay) */
    const char *group;
    const char *hostname;        /* our name; default: gethostname() */
    const char *plugin_dir;      /* where plugins are found by name */
    const char *pid_file;
    const char *spool_dir;       /* temp files for big messages */
    uint64_t    spool_memory;    /* bytes of a message held in memory */
    long        plugin_timeout;  /* ms: the deadline plugins get per stage */
    long        shutdown_grace;  /* ms: drain time at SIGTERM */
};

struct config {
    int               refs;
    char             *file;
    struct pool      *pool;      /* owns every string below */
    struct root_conf  root;
    struct smtp_conf *smtp;      /* NULL: no smtp {} block */
    struct milter_conf *milter;  /* NULL: no milter {} block */
    struct chain     *chain;
};

/* The top-level options (the smtp and milter tables are in their modules). */
extern const subm_option_t root_options[];

/* A problem found while loading; config_load() reports each through this. */
typedef void (*config_report_fn)(void *arg, const char *line);

/*
 * config_load - load file. plugin_dir overrides the compiled-in default
 * when non-NULL (tests). report gets one line per problem (NULL: log only).
 * Returns a snapshot with one reference, or NULL.
 */
struct config *config_load(const char *file, const char *plugin_dir,
                           config_report_fn report, void *report_arg);
/* config_load_string - the same from text (tests); name shows in messages. */
struct config *config_load_string(const char *text, const char *name,
                                  const char *plugin_dir,
                                  config_report_fn report, void *report_arg);

void           config_ref(struct config *cfg);
void           config_unref(struct config **cfgp);

/* The published snapshot: publish takes over the caller's reference. */
void           config_publish(struct config *cfg);
struct config *config_acquire(void);               /* +1 ref, never NULL once published */
void           config_release(struct config **cfgp);

#endif
