/* Growable byte buffers: a connection's unparsed input and the replies being built. */
#include "server/srv_buf.h"

#include <stdlib.h>
#include <string.h>

#include "common/st_err.h"

int srv_buf_reserve(struct srv_buf *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	/* small replies stay small; input buffers grow to their first chunk at once */
	size_t cap = b->cap ? b->cap : 128;
	while (cap - b->len < extra)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return ST_ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int srv_buf_append(struct srv_buf *b, const void *p, size_t n)
{
	if (srv_buf_reserve(b, n))
		return ST_ENOMEM;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

void srv_buf_consume(struct srv_buf *b, size_t n)
{
	ST_ASSERT(n <= b->len);
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	/* Give back memory after a large frame so idle connections stay small. */
	if (b->len == 0 && b->cap > (1u << 20)) {
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
}

void srv_buf_release(struct srv_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
