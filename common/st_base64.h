/* Standard base64 (RFC 4648): the store's "base64:" byte values and the etcd v3 JSON gateway's
 * keys and values. The one implementation of it in the tree. */
#ifndef ST_BASE64_H
#define ST_BASE64_H

#include <stddef.h>

/* Encodes n bytes with '=' padding into a new NUL-terminated string (caller frees).
 * Returns NULL when out of memory. */
char *st_base64_encode(const void *p, size_t n);
/* Decodes s[0..len) ('=' padding optional) into a new buffer with a NUL after the *out_len
 * bytes (caller frees). Returns 0, ST_EINVAL for a character or length that is not base64, or
 * ST_ENOMEM. */
int st_base64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len);

#endif
