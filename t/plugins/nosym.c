/* nosym.c - a shared object without the `subm_plugin` descriptor. */
#include <submilter/plugin.h>

SUBM_EXPORT const char *not_a_plugin(void);
const char *not_a_plugin(void)
{
    return "nothing here";
}
