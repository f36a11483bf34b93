/*
 * loader.h - find, dlopen and check a plugin shared object.
 *
 * loader_open() takes a plugin by name (NAME.so in the plugin folder) or by
 * path, looks up the `subm_plugin` descriptor and checks its ABI version and
 * size before anything of the plugin runs (dlopen with RTLD_NOW; a plugin
 * has no constructors of ours to run). Errors name the file and, for an ABI
 * mismatch, both versions. It does not parse options or call init.
 */
#ifndef SUBM_LOADER_H
#define SUBM_LOADER_H

#include <stddef.h>
#include <submilter/plugin.h>

struct plugin_so {
    void                *handle;
    const subm_plugin_t *desc;
    char                *path;
};

int  loader_open(const char *name, const char *path, const char *plugin_dir,
                 struct plugin_so **so_r, char *err, size_t errlen);
void loader_close(struct plugin_so **sop);

#endif
