/* strata-admin fs status: how a live stratafs mount runs (passthrough, caches) and how many
 * requests of each kind the kernel has sent it. */
#include "tools/admin.h"

#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static void print_status(json_t *r)
{
	printf("mount        %s\n", json_string_value(json_object_get(r, "mount")));
	printf("backing      %s\n", json_string_value(json_object_get(r, "backing")));
	printf("pid          %d\n", (int)json_integer_value(json_object_get(r, "pid")));
	printf("passthrough  %s\n", json_is_true(json_object_get(r, "passthrough")) ? "on" : "off");
	printf("writeback    %s\n",
	       json_is_true(json_object_get(r, "writeback_cache")) ? "on" : "off");
	printf("attr timeout %.3g s\n", json_real_value(json_object_get(r, "attr_timeout")));
	printf("requests    ");
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(r, "requests"), k, v)
		printf(" %s=%lld", k, (long long)json_integer_value(v));
	printf("\n");
}

int admin_fs(int argc, char **argv)
{
	const char *mount = NULL;
	int json = 0;
	static const struct option lo[] = {
		{ "mount", required_argument, 0, 'm' },
		{ "json", no_argument, 0, 'j' },
		{ 0, 0, 0, 0 },
	};
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mount = optarg; break;
		case 'j': json = 1; break;
		default: return 2;
		}
	}
	if (argc - optind != 1 || strcmp(argv[optind], "status")) {
		fprintf(stderr, "usage: strata-admin fs status [--mount M] [--json]\n");
		return 2;
	}
	struct admin_target t;
	if (admin_target_resolve(mount, NULL, NULL, &t))
		return 1;
	json_t *req = json_pack("{s:s}", "op", "status");
	json_t *resp = admin_call(&t, req, NULL);
	json_decref(req);
	if (!resp)
		return 1;
	if (json) {
		json_object_del(resp, "ok");
		char *s = json_dumps(resp, JSON_COMPACT | JSON_SORT_KEYS);
		printf("%s\n", s);
		free(s);
	} else {
		print_status(resp);
	}
	json_decref(resp);
	return 0;
}
