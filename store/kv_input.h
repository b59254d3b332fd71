/* Input files for preload and join: transparent gzip/zstd decompression (detected by magic
 * bytes) and record parsing of CSV, TSV (libcsv) and JSON lines (jansson).
 * Records come out as fields tagged with a column index; column names are the CSV/TSV header
 * or, for JSON lines, the object keys in order of first appearance. */
#ifndef KV_INPUT_H
#define KV_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "store/kv.h"

struct kv_input;

struct kv_record {
	size_t line;          /* 1-based record number (the header of CSV/TSV is line 1) */
	size_t n;             /* fields in this record */
	const uint32_t *col;  /* column index of each field */
	const char *const *f; /* field bytes (not NUL-terminated) */
	const size_t *len;
	const char *bad;      /* non-NULL: the record is malformed (reason); fields are unusable */
};

/* Called for each data record (the CSV/TSV header is consumed by the reader). A non-zero
 * return stops the run and is returned by kv_input_run. */
typedef int (*kv_record_cb)(void *arg, struct kv_input *in, const struct kv_record *rec);

/* Opens path; fmt AUTO picks from the extension (".csv", ".tsv", ".jsonl"/".json"/".ndjson",
 * before an optional ".gz"/".zst"). */
int kv_input_open(const char *path, enum kv_format fmt, struct kv_input **out,
		  struct st_error *err);
/* Same over a memory buffer (borrowed until close); `name` is used in messages. */
int kv_input_open_mem(const void *data, size_t len, const char *name, enum kv_format fmt,
		      struct kv_input **out, struct st_error *err);
void kv_input_close(struct kv_input *in);

/* Reads the whole input, calling cb per record. Parse errors are reported as
 * "path:line: reason" through err. */
int kv_input_run(struct kv_input *in, kv_record_cb cb, void *arg, struct st_error *err);

size_t kv_input_ncols(const struct kv_input *in);
const char *kv_input_colname(const struct kv_input *in, size_t i);
enum kv_format kv_input_format(const struct kv_input *in);
const char *kv_input_path(const struct kv_input *in);
/* Compressed bytes read so far and the file's size. */
int64_t kv_input_bytes_read(const struct kv_input *in);
int64_t kv_input_bytes_total(const struct kv_input *in);

#endif
