/* The control channel of a live stratafs (the transport of fs_cmd_run, fs_cmd.h): one JSON
 * request line and one JSON response line per connection, over an abstract unix socket
 * named after the backing directory (fs_ctl_addr). The daemon authenticates callers with
 * SO_PEERCRED.
 * Requests: {"op":"ping"} {"op":"rmr","path":P,"via_trash":B} {"op":"rmr_status"}
 *           {"op":"trash_list","uid":U,"path":P,"fold":B} (path: only entries at or
 *           below P; fold: an rm -rf'd tree as one entry, see fs_trash_list_fold)
 *           {"op":"trash_restore","what":W,"to":T}
 *           {"op":"trash_purge","ids":[...],"older_than_us":N,"all":B} {"op":"status"}
 * Responses: {"ok":true,...} or {"ok":false,"errno":E,"error":MSG}. */
#ifndef FS_CTLMSG_H
#define FS_CTLMSG_H

#include <jansson.h>
#include <stddef.h>

#include "common/st_err.h"

/* Writes msg as one line. Returns 0 or -errno. */
int fs_ctl_send(int fd, json_t *msg);
/* Reads one line (up to 1 GiB) and parses it. Returns a new reference or NULL (err set). */
json_t *fs_ctl_recv(int fd, struct st_error *err);

/* Connects to the daemon serving backing_real. Returns an fd or -errno (-ECONNREFUSED or
 * -ENOENT when no daemon is running). */
int fs_ctl_connect(const char *backing_real);

/* One round trip. Returns 0 with *resp (new reference) or an error code with err set. */
int fs_ctl_call(const char *backing_real, json_t *req, json_t **resp, struct st_error *err);

/* Finds the stratafs mount that contains `path` (an existing path; not resolved through a
 * final symlink): fills mnt (its mount point) and backing (from the mount source).
 * path NULL: the only stratafs mount, if exactly one. Returns 0 or ST_ENOTFOUND/ST_EINVAL. */
int fs_find_mount(const char *path, char *mnt, size_t mlen, char *backing, size_t blen,
		  struct st_error *err);

struct fs_rmr_jobinfo;
struct fs_trash_entry;
/* JSON objects (new references) describing an rmr job and a trash entry. */
json_t *fs_rmr_job_json(const struct fs_rmr_jobinfo *j);
json_t *fs_trash_entry_json(const struct fs_trash_entry *e);

#endif
