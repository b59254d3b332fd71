/* libstrata's timestamp helper: the same parser and plausibility guard as the CLI and the
 * preload jobs (common/st_time.c), so every entry point refuses the same unit mistakes. */
#include "client/strata.h"
#include "client/strata_impl.h"
#include "common/st_time.h"

#include <string.h>

int strata_ts_parse(const char *s, enum strata_ts_unit unit, int allow_any, int64_t *out_us,
		    struct strata_error *err)
{
	struct strata_error scratch;
	if (!err)
		err = &scratch;
	if (!s || !out_us || unit > STRATA_TS_US)
		return sc_error(err, STRATA_EINVAL, "strata_ts_parse: bad argument");
	if (!strcmp(s, "now")) {
		*out_us = st_now_us();
		return 0;
	}
	enum st_ts_unit u = (enum st_ts_unit)unit;
	size_t len = strlen(s);
	int64_t us;
	if (st_ts_parse(s, len, u, &us))
		return sc_error(err, STRATA_EINVAL,
				"bad timestamp '%.40s' (ISO-8601 like 2026-11-01T10:00:00Z, 'now', "
				"or an integer in %s)", s, st_ts_unit_name(u));
	char why[200];
	if (!allow_any && st_ts_check_plausible(s, len, u, us, why, sizeof(why)))
		return sc_error(err, STRATA_EINVAL, "%s", why);
	*out_us = us;
	return 0;
}
