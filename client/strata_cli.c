/* `strata`: the command-line client. Like redis-cli it talks to a server by default
 * (--addr, STRATA_ADDR, the config file, else 127.0.0.1:7070); --data-dir opens a store
 * in-process instead. The same commands and output either way. */
#include "client/cli.h"
#include "common/st_version.h"

#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLI_DEFAULT_ADDR "127.0.0.1:7070"

static const char usage_head[] =
	"usage: strata [--addr HOST:PORT [--token-file F] | --data-dir DIR] [--ts-unit s|ms|us]\n"
	"              [--allow-any-ts] [--json] <command> [args]\n"
	"       strata --version | strata [<command>] --help\n"
	"\n"
	"Target: --addr, else $STRATA_ADDR, else addr= in $STRATA_CONFIG, ~/.config/strata/config\n"
	"or /etc/strata/strata.conf, else the server at " CLI_DEFAULT_ADDR ". --data-dir DIR\n"
	"opens the store in DIR in this process instead (no server may have it open).\n"
	"Global options may come before or after the command.\n\n";

static const char usage_tail[] =
	"\n"
	"TS: ISO-8601 (2026-11-01T10:00:00Z, fractions and offsets allowed), 'now', or an integer\n"
	"in --ts-unit (default ms). Integers outside 1990-2200 in that unit are refused (a unit\n"
	"mistake) unless --allow-any-ts. DUR: 30d, 12h, 15m, 90s, 0 (none).\n";

static const char help_table[] =
	"  table create NAME --feature NAME:TYPE[:ttl=DUR]... [--ttl DUR] [--retention DUR]\n"
	"               [--max-versions N] [--entity-column COL]\n"
	"               TYPE: i64 f64 f32 str bytes f32[N] i64[]\n"
	"               --ttl: freshness at each read's own time (hides, deletes nothing)\n"
	"               --retention: history kept; reads before now-retention are refused\n"
	"  table list [--json] | table show NAME [--json]\n"
	"  table drop NAME [--yes]          (asks for confirmation on a terminal)\n"
	"  table alter NAME [--feature NAME:TYPE[:ttl=DUR]]... [--ttl DUR] [--retention DUR]\n"
	"               [--max-versions N]\n";
static const char help_apply[] =
	"  apply FILE.yaml|FILE.json [--dry-run] [--prune] [--force]\n"
	"               make the tables match FILE: prints the plan, then executes it;\n"
	"               --prune drops tables not in FILE, --force allows changes that lose data\n"
	"  export [--format yaml|json] [--out FILE] [TABLE...]   the tables in apply's format\n";
static const char help_put[] =
	"  put TABLE ENTITY FEATURE=VALUE... [--ts TS]      (default ts: now)\n"
	"               VALUE: text; FEATURE=@FILE reads it from FILE; bytes: 0xHEX or base64:B64\n";
static const char help_delete[] =
	"  delete TABLE ENTITY [FEATURE...] [--ts TS]       (default ts: now)\n";
static const char help_get[] =
	"  get TABLE ENTITY [FEATURE...] [--as-of TS] [--known-at TS] [--json [--with-status]]\n"
	"               [--replica-ok [--max-lag-ms N]]   cluster: a replica may answer, if it\n"
	"               holds every write older than N ms (else the primary answers)\n";
static const char help_history[] =
	"  history TABLE ENTITY FEATURE [--from TS] [--to TS] [--limit N] [--known-at TS] [--json]\n";
static const char help_join[] =
	"  join TABLE --samples FILE|- --features A,B [--out FILE] [--ts-column ts]\n"
	"             [--entity-column COL] [--known-at TS] [--with-status]\n"
	"             [--before-horizon error|skip] [--format csv|tsv]\n";
static const char help_preload[] =
	"  preload TABLE FILE|- [--format csv|tsv|jsonl] [--skip-bad-rows] [--ts-column ts]\n"
	"                     [--wait] [--json]     (FILE - reads stdin and waits)\n";
static const char help_cluster[] =
	"  cluster                the layout a replicated cluster routes with (JSON; --addr)\n";
static const char help_jobs[] =
	"  jobs [ID [--wait]] [--json] | jobs cancel ID | jobs resume    (resume: embedded mode)\n";

static const struct cli_command {
	const char *name;
	int (*fn)(struct cli *, int, char **);
	const char *help;
	const char *group; /* heading in the full usage, NULL: same as the previous one */
} commands[] = {
	{"table", cli_cmd_table, help_table, "tables:"},
	{"apply", cli_cmd_apply, help_apply, NULL},
	{"export", cli_cmd_export, help_apply, NULL},
	{"put", cli_cmd_put, help_put, "writes:"},
	{"delete", cli_cmd_delete, help_delete, NULL},
	{"get", cli_cmd_get, help_get, "reads:"},
	{"history", cli_cmd_history, help_history, NULL},
	{"join", cli_cmd_join, help_join, NULL},
	{"preload", cli_cmd_preload, help_preload, "jobs:"},
	{"jobs", cli_cmd_jobs, help_jobs, NULL},
	{"cluster", cli_cmd_cluster, help_cluster, "cluster:"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *f)
{
	fputs(usage_head, f);
	for (size_t k = 0; k < NCOMMANDS; k++) {
		if (commands[k].group)
			fprintf(f, "%s\n", commands[k].group);
		if (k == 0 || commands[k].help != commands[k - 1].help)
			fputs(commands[k].help, f);
	}
	fputs(usage_tail, f);
}

static const struct cli_command *find_command(const char *name)
{
	for (size_t k = 0; k < NCOMMANDS; k++)
		if (!strcmp(name, commands[k].name))
			return &commands[k];
	return NULL;
}

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

/* The options that apply to every command, wherever they appear on the line. */
struct globals {
	const char *dir, *addr, *token_file, *unit;
	int allow_any_ts, json;
	char cfg_addr[256], cfg_token[1024], cfg_unit[8], cfg_path[1024];
};

static int cfg_handler(void *arg, const char *section, const char *key, const char *value)
{
	struct globals *g = arg;
	if (section[0] && strcmp(section, "strata"))
		return 1; /* other sections belong to other tools */
	if (!strcmp(key, "addr"))
		snprintf(g->cfg_addr, sizeof(g->cfg_addr), "%s", value);
	else if (!strcmp(key, "token_file"))
		snprintf(g->cfg_token, sizeof(g->cfg_token), "%s", value);
	else if (!strcmp(key, "ts_unit"))
		snprintf(g->cfg_unit, sizeof(g->cfg_unit), "%s", value);
	else {
		fprintf(stderr, "strata: %s: unknown key '%s' (addr, token_file, ts_unit)\n",
			g->cfg_path, key);
		return 0;
	}
	return 1;
}

/* Reads the first config file that exists: $STRATA_CONFIG, ~/.config/strata/config,
 * /etc/strata/strata.conf. Returns 0, or 2 on a bad file. */
static int read_config(struct globals *g)
{
	const char *env = getenv("STRATA_CONFIG"), *home = getenv("HOME");
	char user[1024] = "";
	if (home)
		snprintf(user, sizeof(user), "%s/.config/strata/config", home);
	const char *paths[] = {env, user, "/etc/strata/strata.conf"};
	for (size_t i = 0; i < 3; i++) {
		if (!paths[i] || !paths[i][0] || (i > 0 && access(paths[i], R_OK)))
			continue;
		snprintf(g->cfg_path, sizeof(g->cfg_path), "%s", paths[i]);
		int line = ini_parse(paths[i], cfg_handler, g);
		if (line < 0) {
			fprintf(stderr, "strata: cannot read config file %s\n", paths[i]);
			return 2;
		}
		if (line > 0) {
			fprintf(stderr, "strata: %s:%d: bad line\n", paths[i], line);
			return 2;
		}
		return 0;
	}
	return 0;
}

/* Takes the global options out of argv (anywhere), leaving the command and its own
 * arguments in order in out[]; returns their count, or -1 after a usage error. */
static int split_globals(int argc, char **argv, struct globals *g, char **out)
{
	int n = 0;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = cli_opt(argc, argv, &i, "--data-dir", &g->dir)) ||
		    (r = cli_opt(argc, argv, &i, "--addr", &g->addr)) ||
		    (r = cli_opt(argc, argv, &i, "--token-file", &g->token_file)) ||
		    (r = cli_opt(argc, argv, &i, "--ts-unit", &g->unit))) {
			if (r < 0)
				return -1;
			continue;
		}
		if (!strcmp(argv[i], "--allow-any-ts")) {
			g->allow_any_ts = 1;
			continue;
		}
		if (!strcmp(argv[i], "--json") && n == 0) {
			g->json = 1; /* before the command: handed to it below */
			continue;
		}
		if (n == 0 && argv[i][0] == '-' && strcmp(argv[i], "--help") &&
		    strcmp(argv[i], "-h") && strcmp(argv[i], "--version")) {
			cli_usage("unknown option '%s'", argv[i]);
			return -1;
		}
		out[n++] = argv[i];
	}
	if (g->json)
		out[n++] = "--json";
	return n;
}

/* A transport failure on the default or configured target: say where we looked and both
 * ways out, instead of a bare "connection refused". */
static int unreachable(const char *addr, const char *how, const struct st_error *err)
{
	fprintf(stderr,
		"strata: cannot reach stratad at %s (%s; %s)\n"
		"  start a server there (stratad --data-dir DIR, or `make run`), point at one with\n"
		"  --addr HOST:PORT or STRATA_ADDR, or open a local store with --data-dir DIR\n",
		addr, err->msg[0] ? err->msg : st_strerror(err->code), how);
	return 1;
}

static int open_backend(struct cli *c, struct globals *g)
{
	struct st_error err = {0};
	if (g->dir) {
		/* `jobs resume` runs interrupted jobs here; other commands leave them alone. */
		if (cli_embedded_open(g->dir, 0, &c->be, &err))
			return cli_fail(&err);
		return 0;
	}
	const char *addr = g->addr, *how = "from --addr", *env = getenv("STRATA_ADDR");
	if (!addr && env && env[0])
		addr = env, how = "from STRATA_ADDR";
	if (!addr && g->cfg_addr[0])
		addr = g->cfg_addr, how = g->cfg_path;
	if (!addr)
		addr = CLI_DEFAULT_ADDR, how = "the default";
	const char *tf = g->token_file ? g->token_file : g->cfg_token[0] ? g->cfg_token : NULL;
	char token[512] = "";
	if (tf && read_token(tf, token, sizeof(token)))
		return 1;
	int rc = cli_remote_open(addr, tf ? token : NULL, &c->be, &err);
	if (rc && rc < 0 && rc > -4096)
		return unreachable(addr, how, &err);
	if (rc)
		return cli_fail(&err);
	c->remote = 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct globals g = {0};
	struct cli c = {.ts_unit = ST_TS_MS};
	char **av = calloc((size_t)argc + 1, sizeof(*av));
	int rc = 2, n;
	if (!av)
		return 1;
	if ((n = split_globals(argc, argv, &g, av)) < 0)
		goto out;
	if (n == 0) {
		print_usage(stderr);
		goto out;
	}
	if (!strcmp(av[0], "--version")) {
		st_version_print(stdout, "strata");
		rc = 0;
		goto out;
	}
	int help = !strcmp(av[0], "--help") || !strcmp(av[0], "-h") || !strcmp(av[0], "help");
	const struct cli_command *cmd = find_command(help && n > 1 ? av[1] : av[0]);
	for (int i = 1; i < n && !help; i++)
		help = !strcmp(av[i], "--help") || !strcmp(av[i], "-h");
	if (help) {
		if (cmd)
			printf("usage:\n%s", cmd->help);
		else
			print_usage(stdout);
		rc = 0;
		goto out;
	}
	if (!cmd) {
		rc = cli_usage("unknown command '%s'", av[0]);
		goto out;
	}
	if ((rc = read_config(&g)))
		goto out;
	const char *unit = g.unit ? g.unit : g.cfg_unit[0] ? g.cfg_unit : NULL;
	if (unit && st_ts_unit_parse(unit, &c.ts_unit)) {
		rc = cli_usage("--ts-unit must be s, ms or us");
		goto out;
	}
	c.allow_any_ts = g.allow_any_ts;
	if (g.dir && g.addr) {
		rc = cli_usage("give --data-dir or --addr, not both");
		goto out;
	}
	if ((rc = open_backend(&c, &g)))
		goto out;
	rc = cmd->fn(&c, n, av);
	c.be.close(c.be.ctx);
out:
	free(av);
	return rc;
}
