/*
 * version.h - what `submilter -V` prints: our version, the plugin ABI and
 * the versions of the libraries actually linked (asked of the libraries at
 * run time where they can tell, else their headers at build time).
 */
#ifndef SUBM_VERSION_H
#define SUBM_VERSION_H

#include <stdio.h>

void version_print(FILE *out);

#endif
