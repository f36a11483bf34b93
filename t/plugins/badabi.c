/* badabi.c - a plugin that claims another ABI version: the loader must refuse it. */
#include <submilter/plugin.h>

SUBM_PLUGIN(badabi) = {
    .abi = SUBM_PLUGIN_ABI + 998,
    .size = sizeof(subm_plugin_t),
    .name = "badabi",
};
