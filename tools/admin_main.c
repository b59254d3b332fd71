/* strata-admin: operator tool; dispatches to the subcommands in tools/admin_*.c. */
#include "tools/admin.h"
#include "fuse/fs_ctlmsg.h"
#include "common/st_version.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct admin_cmd cmds[] = {
	{ "trash", admin_trash,
	  "  strata-admin trash list [--mount M | --backing DIR] [--user U] [--flat] [--json] [PATH]\n"
	  "                      (an rm -rf'd tree is one entry; --flat lists every object;\n"
	  "                      PATH: only entries at or below it)\n"
	  "  strata-admin trash restore [--mount M | --backing DIR] ID|PATH [--to PATH]\n"
	  "                      [--overwrite] [--json]\n"
	  "  strata-admin trash purge [--mount M | --backing DIR] [--older-than D] [--all-users]"
	  " [ID...]\n" },
	{ "rmr", admin_rmr,
	  "  strata-admin rmr [--via-trash] [--json] PATH\n"
	  "  strata-admin rmr status [--mount M | --backing DIR] [--json] [--wait]\n"
	  "                      (--wait: progress until the queue is empty, then the files and\n"
	  "                      bytes reclaimed and their rates)\n"
	  "  strata-admin rmr drain --backing DIR [--json]   (offline: reclaim the queue now)\n" },
	{ "fs", admin_fs,
	  "  strata-admin fs status [--mount M] [--json]   (mode, metrics address, journal fill,\n"
	  "                      dirty bytes, writeback rate, request counts of a mount)\n" },
	{ "journal", admin_journal,
	  "  strata-admin journal inspect SSD_DIR [--json]   (segments, records, dirty bytes)\n"
	  "  strata-admin journal replay SSD_DIR BACKING_DIR [--json]   (offline recovery)\n" },
	{ "backup", admin_backup,
	  "  strata-admin backup  [--data-dir D | --addr A] [--json] DEST  (a consistent checkpoint;\n"
	  "                       with --addr the running server writes it on its machine)\n" },
	{ "restore", admin_restore,
	  "  strata-admin restore [--data-dir D] [--force] [--json] BACKUP\n" },
	{ "verify", admin_verify,
	  "  strata-admin verify  [--data-dir D | --addr A] [--json]  (read and check every version)\n" },
	{ "compact", admin_compact,
	  "  strata-admin compact [--data-dir D] [--json]           (applies max-versions/retention removal)\n" },
	{ "stats", admin_stats, "  strata-admin stats   [--data-dir D | --addr A] [--json]\n" },
	{ "dump", admin_dump,
	  "  strata-admin dump    [--data-dir D] [--out F] [--all-versions] [--json] TABLE\n"
	  "                       (CSV in the preload format; latest values unless --all-versions)\n" },
	{ "cluster", admin_cluster,
	  "  strata-admin cluster status  --cluster FILE [--json]   (roles, sequences, lag, resyncs)\n"
	  "  strata-admin cluster promote --cluster FILE [--graceful] [--timeout DUR] [--json] NODE SHARD\n"
	  "  strata-admin cluster resync  --cluster FILE [--wait [--json] [--timeout DUR]] NODE SHARD\n"
	  "  strata-admin cluster verify  --cluster FILE --shard S [--json]  (primary vs replicas)\n"
	  "  (FILE may be etcd://HOST:PORT/PREFIX; the layout edits below need it)\n"
	  "  strata-admin cluster init        --cluster etcd://... LAYOUT.ini\n"
	  "  strata-admin cluster add-node    --cluster etcd://... NAME HOST:PORT REPL_HOST:PORT\n"
	  "  strata-admin cluster remove-node --cluster etcd://... NAME\n"
	  "  strata-admin cluster move-slots  --cluster etcd://... SHARD NODE[,NODE...]\n" },
};

/* Prints the usage of `strata-admin cmd sub` alone: its "  strata-admin CMD SUB" line and
 * the continuation lines under it; the whole usage of cmd when sub matches no line. */
static void usage_of(const struct admin_cmd *c, const char *sub)
{
	char head[96];
	int n = snprintf(head, sizeof(head), "  strata-admin %s %s", c->name, sub ? sub : "");
	const char *u = c->usage, *out_start = NULL;
	printf("usage:\n");
	for (const char *l = u; sub && *sub != '-' && *l;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l + 1) : strlen(l);
		int is_head = !strncmp(l, "  strata-admin ", 15);
		if (is_head)
			out_start = (!strncmp(l, head, (size_t)n) &&
				     (l[n] == ' ' || l[n] == '\n' || l[n] == '[')) ? l : NULL;
		if (out_start) {
			fwrite(l, 1, len, stdout);
			u = NULL; /* something matched */
		}
		l += len;
	}
	if (u)
		fputs(c->usage, stdout);
}

static void usage(FILE *f)
{
	fprintf(f, "usage:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fputs(cmds[i].usage, f);
}

int admin_target_resolve(const char *mount, const char *backing, const char *path,
			 struct admin_target *t)
{
	memset(t, 0, sizeof(*t));
	struct st_error err = { 0 };
	if (backing) {
		if (!realpath(backing, t->backing)) {
			fprintf(stderr, "strata-admin: %s: %s\n", backing, strerror(errno));
			return -1;
		}
		int fd = fs_ctl_connect(t->backing);
		if (fd >= 0) {
			close(fd);
			t->live = 1;
			/* a live mount: find its mount point for path translation */
			char b2[PATH_MAX];
			if (fs_find_mount(NULL, t->mnt, sizeof(t->mnt), b2, sizeof(b2), &err) != 0 ||
			    strcmp(b2, t->backing) != 0)
				t->mnt[0] = 0;
		}
		return 0;
	}
	const char *where = mount ? mount : path;
	char cwd[PATH_MAX];
	if (!where && getcwd(cwd, sizeof(cwd))) {
		if (fs_find_mount(cwd, t->mnt, sizeof(t->mnt), t->backing, sizeof(t->backing),
				  &err) == 0)
			goto found;
	}
	if (fs_find_mount(where, t->mnt, sizeof(t->mnt), t->backing, sizeof(t->backing), &err)) {
		fprintf(stderr, "strata-admin: %s\n", err.msg);
		return -1;
	}
found:
	t->live = 1;
	return 0;
}

json_t *admin_call(const struct admin_target *t, json_t *req, int *errno_out)
{
	struct st_error err = { 0 };
	json_t *resp;
	if (fs_ctl_call(t->backing, req, &resp, &err) != 0) {
		fprintf(stderr, "strata-admin: %s\n", err.msg);
		if (errno_out)
			*errno_out = err.code < 0 && err.code > -4096 ? -err.code : EIO;
		return NULL;
	}
	if (!json_is_true(json_object_get(resp, "ok"))) {
		fprintf(stderr, "strata-admin: %s\n",
			json_string_value(json_object_get(resp, "error")) ?: "request failed");
		if (errno_out)
			*errno_out = (int)json_integer_value(json_object_get(resp, "errno"));
		json_decref(resp);
		return NULL;
	}
	return resp;
}

const char *admin_bytes(int64_t n, char *buf)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, 32, i ? "%.1f %s" : "%.0f %s", v, u[i]);
	return buf;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		st_version_print(stdout, "strata-admin");
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		for (int k = 2; k < argc; k++) /* `strata-admin CMD ... --help`: that command's usage */
			if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
				usage_of(&cmds[i], k > 2 ? argv[2] : NULL);
				return 0;
			}
		return cmds[i].run(argc - 1, argv + 1);
	}
	fprintf(stderr, "strata-admin: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
