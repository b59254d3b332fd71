/* The filesystem commands of stratafs (rmr, rmr status, trash list/restore/purge, ping,
 * status), implemented once: the daemon's control channel (fs_ctl.c) and strata-admin's
 * offline path (tools/admin_*.c) both call fs_cmd_run, so the transport is the only thing
 * that differs. Requests and replies are the JSON objects of fs_ctlmsg.h.
 * Errors inside are project codes or -errno with a message (struct st_error); fs_cmd_fail
 * turns them into the reply's "errno" once, here at the boundary. */
#ifndef FS_CMD_H
#define FS_CMD_H

#include <jansson.h>
#include <sys/types.h>

#include "fuse/fs_rmr.h"
#include "fuse/fs_trash.h"

/* What a command runs against. Borrowed pointers; trash/rmr may be NULL (commands that
 * need them then fail with ENOTSUP). The hooks are what only a live mount does. */
struct fs_cmd_ctx {
	int bfd;               /* backing directory (rmr PATH) */
	struct fs_trash *trash;
	struct fs_rmr *rmr;
	/* live mount: invalidate the kernel's entry name in directory dev/ino (view
	 * FS_VIEW_LIVE 0 or FS_VIEW_TRASH 1); NULL offline */
	void (*notify)(dev_t dev, ino_t ino, int view, const char *name);
	/* live mount: a restored entry landed at dest (relative to the root); NULL offline */
	void (*restored)(const char *dest);
	/* live mount: the reply to "ping" (full = 0) or "status" (full = 1); NULL offline */
	json_t *(*info)(int full);
};

/* Runs one request for caller. Never NULL: {"ok":true,...} or {"ok":false,"errno":E,
 * "error":MSG}. Runs as root on return (it may act with the caller's credentials). */
json_t *fs_cmd_run(const struct fs_cmd_ctx *ctx, const struct fs_caller *caller, json_t *req);

/* {"ok":false,...} for an error code (project code or -errno) with its message. */
json_t *fs_cmd_fail(int code, const char *msg);

/* The errno a reply carries for code: -code for -errno, the nearest errno for a project
 * code, EIO for anything else. */
int fs_cmd_errno(int code);

#endif
