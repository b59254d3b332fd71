/* RESP framing: the incremental command parser and the reply writers (see srv_resp.h). */
#include "server/srv_resp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/st_err.h"
#include "common/st_num.h"

#define SRV_RESP_COUNT_MAX 24 /* bytes of a "*N" or "$N" line, CRLF excluded */

void srv_resp_parser_reset(struct srv_resp_parser *p)
{
	p->pos = 0;
	p->nargs = -1;
	p->argc = 0;
}

void srv_resp_parser_release(struct srv_resp_parser *p)
{
	free(p->argv);
	p->argv = NULL;
	p->cap = 0;
	srv_resp_parser_reset(p);
}

static int rp_error(char *err, size_t errn, const char *msg, int c)
{
	if (c >= 0)
		snprintf(err, errn, "Protocol error: %s, got '%c'", msg,
			 c >= 0x20 && c < 0x7f ? c : '?');
	else
		snprintf(err, errn, "Protocol error: %s", msg);
	return SRV_RESP_ERROR;
}

static int rp_push(struct srv_resp_parser *p, size_t off, size_t len)
{
	if (p->argc == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		struct srv_resp_arg *a = realloc(p->argv, cap * sizeof(*a));
		if (!a)
			return -1;
		p->argv = a;
		p->cap = cap;
	}
	p->argv[p->argc].off = off;
	p->argv[p->argc].len = len;
	p->argc++;
	return 0;
}

/* A count line "<prefix>N\r\n" at buf[from]: 1 with *n and *next set, 0 when incomplete,
 * -1 when malformed (not digits, too long, no CRLF). */
static int rp_count(const uint8_t *buf, size_t len, size_t from, long *n, size_t *next)
{
	size_t i = from + 1, end = len < from + 1 + SRV_RESP_COUNT_MAX + 2
					  ? len
					  : from + 1 + SRV_RESP_COUNT_MAX + 2;
	int neg = 0, digits = 0;
	long v = 0;
	if (i < end && buf[i] == '-') {
		neg = 1;
		i++;
	}
	for (; i < end && buf[i] >= '0' && buf[i] <= '9'; i++, digits++) {
		if (v > (INT32_MAX - 9) / 10)
			return -1;
		v = v * 10 + (buf[i] - '0');
	}
	if (i < end && buf[i] != '\r')
		return -1;
	if (i + 1 >= end)
		return end == len ? 0 : -1;
	if (!digits || buf[i + 1] != '\n')
		return -1;
	*n = neg ? -v : v;
	*next = i + 2;
	return 1;
}

static int rp_inline(struct srv_resp_parser *p, const uint8_t *buf, size_t len,
		     const struct srv_resp_limits *lim, size_t *used, char *err, size_t errn)
{
	const uint8_t *nl = p->pos < len ? memchr(buf + p->pos, '\n', len - p->pos) : NULL;
	if (!nl) {
		p->pos = len;
		if (len > lim->max_inline)
			return rp_error(err, errn, "too big inline request", -1);
		return SRV_RESP_PARTIAL;
	}
	size_t end = (size_t)(nl - buf);
	if (end > lim->max_inline)
		return rp_error(err, errn, "too big inline request", -1);
	*used = end + 1;
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	for (size_t i = 0; i < end;) {
		while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		size_t s = i;
		while (i < end && buf[i] != ' ' && buf[i] != '\t')
			i++;
		if (i == s)
			break;
		if (p->argc == lim->max_args)
			return rp_error(err, errn, "too many arguments in inline request", -1);
		if (rp_push(p, s, i - s))
			return rp_error(err, errn, "out of memory", -1);
	}
	return SRV_RESP_COMMAND;
}

int srv_resp_parse(struct srv_resp_parser *p, const uint8_t *buf, size_t len,
		   const struct srv_resp_limits *lim, size_t *used, char *err, size_t errn)
{
	if (len == 0)
		return SRV_RESP_PARTIAL;
	if (buf[0] != '*')
		return rp_inline(p, buf, len, lim, used, err, errn);
	if (p->nargs < 0) {
		long n;
		size_t next;
		int rc = rp_count(buf, len, 0, &n, &next);
		if (rc < 0)
			return rp_error(err, errn, "invalid multibulk length", -1);
		if (rc == 0)
			return SRV_RESP_PARTIAL;
		if (n > (long)lim->max_args)
			return rp_error(err, errn, "invalid multibulk length", -1);
		if (n <= 0) { /* "*0" and "*-1": an empty command, skipped as Redis does */
			*used = next;
			return SRV_RESP_COMMAND;
		}
		p->nargs = n;
		p->pos = next;
	}
	while (p->argc < (size_t)p->nargs) {
		if (p->pos >= len)
			return SRV_RESP_PARTIAL;
		if (buf[p->pos] != '$')
			return rp_error(err, errn, "expected '$'", buf[p->pos]);
		long n;
		size_t data;
		int rc = rp_count(buf, len, p->pos, &n, &data);
		if (rc < 0 || (rc > 0 && (n < 0 || (size_t)n > lim->max_bulk)))
			return rp_error(err, errn, "invalid bulk length", -1);
		if (rc == 0)
			return SRV_RESP_PARTIAL;
		if (data + (size_t)n + 2 > lim->max_command)
			return rp_error(err, errn, "command too large", -1);
		if (len < data + (size_t)n + 2)
			return SRV_RESP_PARTIAL;
		if (buf[data + n] != '\r' || buf[data + n + 1] != '\n')
			return rp_error(err, errn, "bulk string not terminated by CRLF", -1);
		if (rp_push(p, data, (size_t)n))
			return rp_error(err, errn, "out of memory", -1);
		p->pos = data + (size_t)n + 2;
	}
	*used = p->pos;
	return SRV_RESP_COMMAND;
}

/* ---- writers ---- */

int srv_resp_w_simple(struct srv_buf *b, char type, const char *s)
{
	size_t n = strlen(s);
	if (srv_buf_reserve(b, n + 3))
		return ST_ENOMEM;
	uint8_t *o = b->p + b->len;
	*o++ = (uint8_t)type;
	for (size_t i = 0; i < n; i++)
		*o++ = s[i] == '\r' || s[i] == '\n' ? ' ' : (uint8_t)s[i];
	*o++ = '\r';
	*o++ = '\n';
	b->len = (size_t)(o - b->p);
	return 0;
}

/* Writes "<type><v>\r\n" at p (at most 23 bytes); returns the end. Hand-rolled: snprintf was
 * a visible share of encoding small replies. */
static uint8_t *rp_put_line(uint8_t *p, char type, long long v)
{
	char tmp[24];
	int n = 0;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	*p++ = (uint8_t)type;
	if (v < 0)
		*p++ = '-';
	while (n)
		*p++ = (uint8_t)tmp[--n];
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

static int rp_line(struct srv_buf *b, char type, long long v)
{
	if (srv_buf_reserve(b, 32))
		return ST_ENOMEM;
	b->len = (size_t)(rp_put_line(b->p + b->len, type, v) - b->p);
	return 0;
}

int srv_resp_w_int(struct srv_buf *b, int64_t v)
{
	return rp_line(b, ':', (long long)v);
}

int srv_resp_w_bulk(struct srv_buf *b, const void *p, size_t n)
{
	if (srv_buf_reserve(b, n + 32))
		return ST_ENOMEM;
	uint8_t *o = rp_put_line(b->p + b->len, '$', (long long)n);
	if (n)
		memcpy(o, p, n);
	o += n;
	*o++ = '\r';
	*o++ = '\n';
	b->len = (size_t)(o - b->p);
	return 0;
}

int srv_resp_w_nil(struct srv_buf *b, int resp3)
{
	return resp3 ? srv_buf_append(b, "_\r\n", 3) : srv_buf_append(b, "$-1\r\n", 5);
}

int srv_resp_w_agg(struct srv_buf *b, char type, size_t n)
{
	return rp_line(b, type, (long long)n);
}

int srv_resp_w_double(struct srv_buf *b, double d, int is_float, int resp3)
{
	char t[ST_F64_BUFLEN + 2];
	int n;
	if (isinf(d))
		n = snprintf(t, sizeof(t), "%s", d > 0 ? "inf" : "-inf");
	else if (isnan(d))
		n = snprintf(t, sizeof(t), "nan");
	else
		n = st_format_f64(t, d, is_float);
	if (!resp3)
		return srv_resp_w_bulk(b, t, (size_t)n);
	if (srv_buf_reserve(b, (size_t)n + 3))
		return ST_ENOMEM;
	b->p[b->len++] = ',';
	memcpy(b->p + b->len, t, (size_t)n);
	b->len += (size_t)n;
	b->p[b->len++] = '\r';
	b->p[b->len++] = '\n';
	return 0;
}
