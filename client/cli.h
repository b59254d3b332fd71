/* Internals of the `strata` CLI: the command context and the per-command entry points.
 * Each cli_*.c file implements one group of commands against a cli_backend. */
#ifndef CLI_H
#define CLI_H

#include <jansson.h>
#include <stdio.h>

#include "client/cli_backend.h"
#include "common/st_csv.h"

struct cli {
	struct cli_backend be;
	enum st_ts_unit ts_unit; /* for integer timestamps on the command line and in files */
	int remote;              /* talking to stratad (jobs run there) */
	int allow_any_ts;        /* --allow-any-ts: no 1990..2200 guard on integer timestamps */
};

/* Commands: argv[0] is the command name. Return the process exit code (0, 1 error, 2 usage);
 * errors are printed to stderr. */
int cli_cmd_table(struct cli *c, int argc, char **argv);
int cli_cmd_put(struct cli *c, int argc, char **argv);
int cli_cmd_delete(struct cli *c, int argc, char **argv);
int cli_cmd_get(struct cli *c, int argc, char **argv);
int cli_cmd_history(struct cli *c, int argc, char **argv);
int cli_cmd_cluster(struct cli *c, int argc, char **argv);
int cli_cmd_join(struct cli *c, int argc, char **argv);
int cli_cmd_preload(struct cli *c, int argc, char **argv);
int cli_cmd_jobs(struct cli *c, int argc, char **argv);
int cli_cmd_apply(struct cli *c, int argc, char **argv);
int cli_cmd_export(struct cli *c, int argc, char **argv);

/* ---- shared helpers (cli_util.c) ---- */

/* Prints "strata: <msg>" to stderr and returns 1. */
int cli_fail(const struct st_error *err);
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* If argv[*i] is `name`, stores the next argument in *val, advances *i and returns 1;
 * returns -1 when the value is missing. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* Parses a timestamp argument per c->ts_unit; prints an error and returns non-zero on failure. */
int cli_ts(const struct cli *c, const char *what, const char *s, int64_t *out);

/* "s" unless n == 1, for "%lld row%s". */
#define CLI_S(n) ((n) == 1 ? "" : "s")

/* Asks "QUESTION [y/N] " when stdin and stderr are a terminal; returns 1 for yes, 0 for no.
 * Without a terminal there is nobody to ask: returns 1. */
int cli_confirm(const char *question);

/* Reads all of a file ("-": stdin) into *out (NUL-terminated, free()); returns 0 or prints
 * an error and returns 1. */
int cli_read_file(const char *path, char **out, size_t *len);

/* Parses a FEATURE=VALUE argument's value for feature f: "@FILE" reads the value from FILE
 * (raw bytes for bytes features, text otherwise), "base64:..." is accepted for bytes.
 * Returns 0 or an st_error code with err set. */
int cli_value_arg(const char *s, const struct kv_feature_def *f, struct kv_value *out,
		  struct st_error *err);

/* Writes a value as JSON text: i64 -> integer, floats -> the shortest decimal that reads
 * back exactly (jansson would print 0.1f as 0.10000000149011612), str -> string,
 * bytes -> "0x..", vectors -> arrays, KV_NONE and non-finite floats -> null. */
void cli_value_json(FILE *f, const struct kv_value *v);

/* Writes s as a JSON string literal. */
void cli_json_string(FILE *f, const char *s, size_t len);

/* Prints the text form of v to f. */
void cli_value_print(FILE *f, const struct kv_value *v);

/* Prints v as one CSV field (strings quoted as needed, lists in quotes). */
void cli_value_csv(FILE *f, const struct kv_value *v);

#endif
