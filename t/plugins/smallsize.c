/* smallsize.c - right ABI number, wrong descriptor size (built with another header). */
#include <submilter/plugin.h>

SUBM_PLUGIN(smallsize) = {
    .abi = SUBM_PLUGIN_ABI,
    .size = 16,
    .name = "smallsize",
};
