/* The software version and the git commit it was built from, for `--version`, /status and
 * the strata_build_info metric (the protocol version is a separate number). */
#ifndef ST_VERSION_H
#define ST_VERSION_H

#include <stdio.h>

#define ST_VERSION "0.15.0"

/* The short git commit of the build ("unknown" outside a git checkout). Static storage. */
const char *st_build_commit(void);

/* Prints "PROG VERSION (commit C)" and a newline to f. */
void st_version_print(FILE *f, const char *prog);

#endif
