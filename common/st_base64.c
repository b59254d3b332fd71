/* Base64 (see st_base64.h). */
#include "common/st_base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/st_err.h"

static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *st_base64_encode(const void *p, size_t n)
{
	const unsigned char *b = p;
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) |
			     (i + 2 < n ? b[i + 2] : 0);
		*o++ = abc[v >> 18 & 63];
		*o++ = abc[v >> 12 & 63];
		*o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? abc[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

int st_base64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
	while (len && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return ST_EINVAL;
	unsigned char *b = malloc(len * 3 / 4 + 1);
	if (!b)
		return ST_ENOMEM;
	uint32_t acc = 0;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		const char *p = s[i] ? strchr(abc, s[i]) : NULL;
		if (!p) {
			free(b);
			return ST_EINVAL;
		}
		acc = acc << 6 | (uint32_t)(p - abc);
		if (i % 4 == 3) {
			b[n++] = (unsigned char)(acc >> 16);
			b[n++] = (unsigned char)(acc >> 8);
			b[n++] = (unsigned char)acc;
			acc = 0;
		}
	}
	if (len % 4 == 2)
		b[n++] = (unsigned char)(acc >> 4);
	else if (len % 4 == 3) {
		b[n++] = (unsigned char)(acc >> 10);
		b[n++] = (unsigned char)(acc >> 2);
	}
	b[n] = 0;
	*out = b;
	*out_len = n;
	return 0;
}
