/* Helpers shared by the CLI commands: errors, options, timestamps, value output. */
#include "client/cli.h"
#include "store/kv_value.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_fail(const struct st_error *err)
{
	fflush(stdout); /* what was printed before the error comes before it */
	fprintf(stderr, "strata: %s\n", err->msg[0] ? err->msg : st_strerror(err->code));
	return 1;
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("strata: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (see strata --help)\n", stderr);
	va_end(ap);
	return 2;
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	if (strcmp(argv[*i], name))
		return 0;
	if (*i + 1 >= argc) {
		cli_usage("%s needs a value", name);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}

int cli_ts(const struct cli *c, const char *what, const char *s, int64_t *out)
{
	if (!strcmp(s, "now")) {
		*out = st_now_us();
		return 0;
	}
	if (st_ts_parse(s, strlen(s), c->ts_unit, out)) {
		fprintf(stderr, "strata: bad %s timestamp '%s' (ISO-8601 like "
				"2026-11-01T10:00:00Z, or an integer in --ts-unit)\n",
			what, s);
		return 2;
	}
	char why[200];
	if (!c->allow_any_ts && st_ts_check_plausible(s, strlen(s), c->ts_unit, *out, why,
						     sizeof(why))) {
		fprintf(stderr, "strata: %s: %s (give --ts-unit, or --allow-any-ts)\n", what, why);
		return 2;
	}
	return 0;
}

void cli_json_string(FILE *f, const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	char *txt = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	fputs(txt ? txt : "null", f); /* invalid UTF-8 has no JSON string form */
	free(txt);
	json_decref(j);
}

static int finite_value(const struct kv_value *v)
{
	if (v->type == KV_F64)
		return isfinite(v->f64);
	if (v->type == KV_F32)
		return isfinite(v->f32);
	for (uint32_t i = 0; v->type == KV_F32VEC && i < v->len; i++)
		if (!isfinite(((float *)v->ptr)[i]))
			return 0;
	return 1;
}

void cli_value_json(FILE *f, const struct kv_value *v)
{
	char *buf = NULL;
	size_t n = 0, cap = 0;
	if (v->type == KV_NONE || !finite_value(v)) {
		fputs("null", f);
		return;
	}
	if (v->type == KV_STR) {
		cli_json_string(f, v->ptr, v->len);
		return;
	}
	if (kv_value_format(v, &buf, &n, &cap) == 0) {
		if (v->type == KV_BYTES)
			fputc('"', f);
		fwrite(buf, 1, n, f);
		if (v->type == KV_BYTES)
			fputc('"', f);
	}
	free(buf);
}

void cli_value_csv(FILE *f, const struct kv_value *v)
{
	if (v->type == KV_STR) {
		st_csv_field(f, v->ptr, v->len);
	} else if (v->type == KV_F32VEC || v->type == KV_I64LIST) {
		fputc('"', f); /* lists contain commas */
		cli_value_print(f, v);
		fputc('"', f);
	} else {
		cli_value_print(f, v);
	}
}

void cli_value_print(FILE *f, const struct kv_value *v)
{
	/* reused across calls: join output prints millions of values */
	static _Thread_local char *buf;
	static _Thread_local size_t cap;
	size_t n = 0;
	if (kv_value_format(v, &buf, &n, &cap) == 0)
		fwrite(buf, 1, n, f);
}

int cli_confirm(const char *question)
{
	if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO))
		return 1; /* scripts and pipes: nobody to ask, like rm without -i */
	fprintf(stderr, "%s [y/N] ", question);
	fflush(stderr);
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	return line[0] == 'y' || line[0] == 'Y';
}

int cli_read_file(const char *path, char **out, size_t *len)
{
	int is_stdin = !strcmp(path, "-");
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "strata: %s: %m\n", path);
		return 1;
	}
	char *buf = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&buf, &n);
	char chunk[65536];
	size_t got;
	while (m && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, got, m);
	int bad = ferror(f);
	if (!is_stdin)
		fclose(f);
	if (!m || fclose(m) || bad) {
		fprintf(stderr, "strata: reading %s failed\n", path);
		free(buf);
		return 1;
	}
	*out = buf;
	*len = n;
	return 0;
}

int cli_value_arg(const char *s, const struct kv_feature_def *f, struct kv_value *out,
		  struct st_error *err)
{
	if (s[0] != '@')
		return kv_value_parse(s, strlen(s), f, out, err);
	char *buf;
	size_t n;
	if (cli_read_file(s + 1, &buf, &n))
		return st_error_set(err, ST_EINVAL, "%s=%s: cannot read the file", f->name, s);
	int rc;
	if (f->type == KV_BYTES) { /* the file's bytes as they are */
		if (n > UINT32_MAX) {
			free(buf);
			return st_error_set(err, ST_ELIMIT, "%s: file too large", s + 1);
		}
		memset(out, 0, sizeof(*out));
		out->type = KV_BYTES;
		out->ptr = buf;
		out->len = (uint32_t)n;
		return 0;
	}
	if (f->type != KV_STR) /* numbers and vectors: the text, without a final newline */
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
	rc = kv_value_parse(buf, n, f, out, err);
	free(buf);
	return rc;
}
