/* Helpers shared by the CLI commands: errors, options, timestamps, value output. */
#include "client/cli.h"
#include "store/kv_value.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const struct st_error *err)
{
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
	return 0;
}

/* The double nearest to the shortest decimal that reads back as f, so JSON shows 0.1 and
 * not 0.10000000149011612. */
static double f32_shortest(float f)
{
	char buf[32];
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, f);
		if ((float)strtod(buf, NULL) == f)
			break;
	}
	return strtod(buf, NULL);
}

json_t *cli_value_json(const struct kv_value *v)
{
	json_t *a;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	switch (v->type) {
	case KV_I64:
		return json_integer(v->i64);
	case KV_F64:
		return json_real(v->f64);
	case KV_F32:
		return json_real(f32_shortest(v->f32));
	case KV_STR:
		return json_stringn(v->ptr, v->len);
	case KV_BYTES:
		if (kv_value_format(v, &buf, &n, &cap))
			return json_null();
		a = json_stringn(buf, n);
		free(buf);
		return a;
	case KV_F32VEC:
		a = json_array();
		for (uint32_t i = 0; i < v->len; i++)
			json_array_append_new(a, json_real(f32_shortest(((float *)v->ptr)[i])));
		return a;
	case KV_I64LIST:
		a = json_array();
		for (uint32_t i = 0; i < v->len; i++)
			json_array_append_new(a, json_integer(((int64_t *)v->ptr)[i]));
		return a;
	default:
		return json_null();
	}
}

void cli_value_print(FILE *f, const struct kv_value *v)
{
	char *buf = NULL;
	size_t n = 0, cap = 0;
	if (kv_value_format(v, &buf, &n, &cap) == 0)
		fwrite(buf, 1, n, f);
	free(buf);
}

void cli_csv_field(FILE *f, const char *s, size_t len)
{
	int quote = 0;
	for (size_t i = 0; i < len && !quote; i++)
		quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
	if (!quote) {
		fwrite(s, 1, len, f);
		return;
	}
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			fputc('"', f);
		fputc(s[i], f);
	}
	fputc('"', f);
}
