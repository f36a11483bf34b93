/*
 * version.c - the version report of `submilter -V`.
 */
#include <sys/types.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>

#include <confuse.h>
#include <libmilter/mfapi.h>
#include <openssl/crypto.h>
#include <opendkim/dkim.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <spf2/spf.h>

#include "autoconf.h"
#include "version.h"
#include <submilter/plugin.h>

/* version_print - one line per component. */
void version_print(FILE *out)
{
    unsigned int mj = 0, mn = 0, pl = 0;
    int spf_mj = 0, spf_mn = 0, spf_pl = 0;
    uint32_t dk = dkim_libversion();
    char pcre[64] = "?";

    smfi_version(&mj, &mn, &pl);
    SPF_get_lib_version(&spf_mj, &spf_mn, &spf_pl);
    pcre2_config(PCRE2_CONFIG_VERSION, pcre);
    fprintf(out, "submilter %s\n", PACKAGE_VERSION);
    fprintf(out, "plugin ABI %u\n", SUBM_PLUGIN_ABI);
    fprintf(out, "libmilter %u.%u.%u\n", mj, mn, pl);
    fprintf(out, "libspf2 %d.%d.%d\n", spf_mj, spf_mn, spf_pl);
    fprintf(out, "libopendkim %u.%u.%u\n", (unsigned)(dk >> 24),
            (unsigned)((dk >> 16) & 0xff), (unsigned)((dk >> 8) & 0xff));
    fprintf(out, "PCRE2 %s\n", pcre);
    fprintf(out, "libconfuse %s\n", confuse_version);
#ifdef OPENSSL_VERSION_STRING
    fprintf(out, "OpenSSL %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
#else
    fprintf(out, "%s\n", OpenSSL_version(OPENSSL_VERSION));
#endif
}
