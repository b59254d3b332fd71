/* CSV output: one field, quoted only when it must be (RFC 4180). Input is parsed by libcsv. */
#ifndef ST_CSV_H
#define ST_CSV_H

#include <stddef.h>
#include <stdio.h>

void st_csv_field(FILE *f, const char *s, size_t len);

#endif
