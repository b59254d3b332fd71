/* Build identity: the commit comes from a generated header rewritten only when it changes,
 * so a new commit recompiles this file alone. */
#include "common/st_version.h"

#include "st_build.h"

const char *st_build_commit(void) { return ST_BUILD_COMMIT; }

void st_version_print(FILE *f, const char *prog)
{
	fprintf(f, "%s %s (commit %s)\n", prog, ST_VERSION, ST_BUILD_COMMIT);
}
