/* `strata`: the command-line client. Embedded (--data-dir, the store in-process) or remote
 * (--addr, through libstrata); the same commands and output either way. */
#include "client/cli.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: strata [--data-dir DIR | --addr HOST:PORT [--token-file F]] [--ts-unit s|ms|us]\n"
	"              <command> [args]\n"
	"\n"
	"tables:\n"
	"  table create NAME --feature NAME:TYPE[:ttl=DUR]... [--ttl DUR] [--retention DUR]\n"
	"               [--max-versions N] [--entity-column COL]\n"
	"               TYPE: i64 f64 f32 str bytes f32[N] i64[]\n"
	"               --ttl: freshness at each read's own time (hides, deletes nothing)\n"
	"               --retention: history kept; reads before now-retention are refused\n"
	"  table list [--json] | table show NAME [--json] | table drop NAME\n"
	"  table alter NAME [--feature NAME:TYPE[:ttl=DUR]]... [--ttl DUR] [--retention DUR]\n"
	"               [--max-versions N]\n"
	"writes:\n"
	"  put TABLE ENTITY FEATURE=VALUE... [--ts TS]      (default ts: now)\n"
	"  delete TABLE ENTITY [FEATURE...] --ts TS\n"
	"reads:\n"
	"  get TABLE ENTITY [FEATURE...] [--as-of TS] [--known-at TS] [--json [--with-status]]\n"
	"  history TABLE ENTITY FEATURE [--from TS] [--to TS] [--limit N] [--known-at TS] [--json]\n"
	"  join TABLE --samples FILE --features A,B [--out FILE] [--ts-column ts] [--known-at TS]\n"
	"             [--with-status] [--before-horizon error|skip]\n"
	"jobs:\n"
	"  preload TABLE FILE [--format csv|tsv|jsonl] [--skip-bad-rows] [--ts-column ts]\n"
	"                     [--wait] [--json]\n"
	"  jobs [ID] [--json] | jobs cancel ID | jobs resume    (resume: embedded mode)\n"
	"\n"
	"TS: ISO-8601 (2026-11-01T10:00:00Z, fractions and offsets allowed), 'now', or an integer\n"
	"in --ts-unit (default ms). DUR: 30d, 12h, 15m, 90s, 0 (none).\n";

static const struct {
	const char *name;
	int (*fn)(struct cli *, int, char **);
} commands[] = {
	{"table", cli_cmd_table},     {"put", cli_cmd_put},     {"delete", cli_cmd_delete},
	{"get", cli_cmd_get},         {"history", cli_cmd_history}, {"join", cli_cmd_join},
	{"preload", cli_cmd_preload}, {"jobs", cli_cmd_jobs},
};

static int read_token(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "strata: token file %s: %m\n", path);
		return -1;
	}
	size_t got = fread(buf, 1, n - 1, f);
	fclose(f);
	while (got && (buf[got - 1] == '\n' || buf[got - 1] == '\r' || buf[got - 1] == ' '))
		got--;
	buf[got] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *addr = NULL, *token_file = NULL, *unit = NULL;
	struct cli c = {.ts_unit = ST_TS_MS};
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		int r;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		}
		if ((r = cli_opt(argc, argv, &i, "--data-dir", &dir)) ||
		    (r = cli_opt(argc, argv, &i, "--addr", &addr)) ||
		    (r = cli_opt(argc, argv, &i, "--token-file", &token_file)) ||
		    (r = cli_opt(argc, argv, &i, "--ts-unit", &unit))) {
			if (r < 0)
				return 2;
			continue;
		}
		return cli_usage("unknown option '%s'", argv[i]);
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (unit && st_ts_unit_parse(unit, &c.ts_unit))
		return cli_usage("--ts-unit must be s, ms or us");
	if (dir && addr)
		return cli_usage("give --data-dir or --addr, not both");
	const char *cmd = argv[i];
	int (*fn)(struct cli *, int, char **) = NULL;
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (!strcmp(cmd, commands[k].name))
			fn = commands[k].fn;
	if (!fn)
		return cli_usage("unknown command '%s'", cmd);

	struct st_error err = {0};
	int rc;
	if (addr) {
		char token[512] = "";
		if (token_file && read_token(token_file, token, sizeof(token)))
			return 1;
		rc = cli_remote_open(addr, token_file ? token : NULL, &c.be, &err);
		c.remote = 1;
	} else {
		/* `jobs resume` runs interrupted jobs here; other commands leave them alone. */
		rc = cli_embedded_open(dir ? dir : "./data", 0, &c.be, &err);
	}
	if (rc)
		return cli_fail(&err);
	rc = fn(&c, argc - i, argv + i);
	c.be.close(c.be.ctx);
	return rc;
}
