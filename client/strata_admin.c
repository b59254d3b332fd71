/* libstrata's JSON-answered requests: the admin request (backup, stats and verify run by the
 * server on the store it has open, what strata-admin does offline on a data dir) and the
 * helper that strata_status shares. */
#include "client/strata.h"
#include "client/strata_impl.h"

#include <stdlib.h>
#include <string.h>

int strata_admin(strata *c, const char *action, const char *path, char **json,
		 struct strata_error *err)
{
	Strata__AdminReq a = STRATA__ADMIN_REQ__INIT;
	a.action = (char *)action;
	a.path = (char *)path;
	Strata__Request req = STRATA__REQUEST__INIT;
	req.op_case = STRATA__REQUEST__OP_ADMIN;
	req.admin = &a;
	/* a backup is not repeated behind the caller's back after a lost connection */
	return sc_call_json(c, &req, strcmp(action, "backup") != 0, json, err);
}

int sc_call_json(strata *c, Strata__Request *req, int idempotent, char **json,
		 struct strata_error *err)
{
	Strata__Response *r;
	int rc = sc_call(c, req, &r, idempotent, err);
	if (rc)
		return rc;
	*json = strdup(r->result_case == STRATA__RESPONSE__RESULT_STATUS_JSON && r->status_json
			       ? r->status_json
			       : "{}");
	strata__response__free_unpacked(r, NULL);
	return *json ? 0 : sc_error(err, STRATA_ENOMEM, "out of memory");
}
