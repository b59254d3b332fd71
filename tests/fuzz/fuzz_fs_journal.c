/* libFuzzer target: the SSD journal record parser on arbitrary bytes (what a torn or
 * corrupted journal device could hold). Records it accepts must re-encode to the same
 * bytes; the walk over a buffer of records must never read past it. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuse/fs_journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;
	while (pos < size) {
		struct fs_jrec r;
		const unsigned char *d;
		size_t total;
		enum fs_jparse p = fs_jrec_parse(data + pos, size - pos, &r, &d, &total);
		if (p != FS_JP_OK)
			break;
		unsigned char hdr[FS_JREC_HDR];
		fs_jrec_encode(&r, d, hdr);
		if (total != FS_JREC_HDR + r.len || d != data + pos + FS_JREC_HDR ||
		    memcmp(hdr, data + pos, FS_JREC_HDR) != 0)
			__builtin_trap();
		pos += total;
	}
	return 0;
}
