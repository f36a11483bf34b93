/*
 * loader.c - find, dlopen and check plugin shared objects.
 *
 * A plugin is found by path, or as NAME.so in the plugin folder. The
 * descriptor `subm_plugin` is checked (ABI version first, then its size,
 * then a name and the hooks' sanity) before any of the plugin's functions
 * is called. RTLD_LOCAL keeps plugins from seeing each other's symbols;
 * RTLD_NOW makes a missing symbol an error at load, not at the first call.
 * Loading has no side effect beyond the plugin's own constructors.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader.h"
#include "pool.h"

/* plugin_path - the file to open for a plugin. */
static int plugin_path(const char *name, const char *path, const char *dir,
                       char *out, size_t outlen)
{
    int n;

    if (path != NULL && *path != '\0')
        n = snprintf(out, outlen, "%s", path);
    else
        n = snprintf(out, outlen, "%s/%s.so", dir, name);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* check_descriptor - refuse a descriptor this daemon cannot use. */
static int check_descriptor(const char *file, const subm_plugin_t *d,
                            char *err, size_t errlen)
{
    if (d->abi != SUBM_PLUGIN_ABI) {
        snprintf(err, errlen, "%s: plugin built for ABI version %u, this submilter "
                 "has ABI version %u: rebuild the plugin against this submilter's "
                 "<submilter/plugin.h>", file, (unsigned)d->abi, SUBM_PLUGIN_ABI);
        return -1;
    }
    if (d->size != sizeof(subm_plugin_t)) {
        snprintf(err, errlen, "%s: descriptor is %u bytes, ABI version %u has %zu: "
                 "the plugin was built with a different header", file,
                 (unsigned)d->size, SUBM_PLUGIN_ABI, sizeof(subm_plugin_t));
        return -1;
    }
    if (d->name == NULL || *d->name == '\0') {
        snprintf(err, errlen, "%s: descriptor has no name", file);
        return -1;
    }
    if (d->options != NULL && d->conf_size == 0 && d->options[0].name != NULL) {
        snprintf(err, errlen, "%s: plugin %s declares options but conf_size is 0",
                 file, d->name);
        return -1;
    }
    return 0;
}

/* loader_open - open and check one plugin. */
int loader_open(const char *name, const char *path, const char *plugin_dir,
                struct plugin_so **so_r, char *err, size_t errlen)
{
    char file[4096];
    struct stat st;
    void *h;
    const subm_plugin_t *d;
    struct plugin_so *so;

    *so_r = NULL;
    if (plugin_path(name, path, plugin_dir, file, sizeof(file)) < 0) {
        snprintf(err, errlen, "plugin %s: path too long", name);
        return -1;
    }
    if (stat(file, &st) < 0) {
        snprintf(err, errlen, "plugin %s: %s: no such file (set path = ... or "
                 "plugin_dir)", name, file);
        return -1;
    }
    if ((h = dlopen(file, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        snprintf(err, errlen, "plugin %s: cannot load: %s", name, dlerror());
        return -1;
    }
    if ((d = dlsym(h, "subm_plugin")) == NULL) {
        snprintf(err, errlen, "%s: not a submilter plugin: no symbol 'subm_plugin' "
                 "(define it with SUBM_PLUGIN())", file);
        dlclose(h);
        return -1;
    }
    if (check_descriptor(file, d, err, errlen) < 0) {
        dlclose(h);
        return -1;
    }
    so = xcalloc(1, sizeof(*so));
    so->handle = h;
    so->desc = d;
    so->path = xstrdup(file);
    *so_r = so;
    return 0;
}

/* loader_close - dlclose and free; *sop becomes NULL. */
void loader_close(struct plugin_so **sop)
{
    struct plugin_so *so = *sop;

    if (so == NULL)
        return;
    dlclose(so->handle);
    free(so->path);
    free(so);
    *sop = NULL;
}
