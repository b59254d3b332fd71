/* Placeholder until libstrata lands (owned by the server work): remote mode reports that it
 * is not part of this build. Replaced entirely by the libstrata-based backend. */
#include "client/cli_backend.h"

int cli_remote_open(const char *addr, const char *token, struct cli_backend *out,
		    struct st_error *err)
{
	return st_error_set(err, ST_EINVAL, "--addr: this build has no network client yet");
}
