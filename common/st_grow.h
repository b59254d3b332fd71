/* The one growable-array helper: doubles an array's capacity until it holds `need` elements. */
#ifndef ST_GROW_H
#define ST_GROW_H

#include <stddef.h>

/* Makes *arr (of *cap elements of `elem` bytes, malloc'ed or NULL) hold at least `need`
 * elements, doubling from `first`. On failure *arr and *cap are unchanged. Returns 0 or -1. */
int st_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first);

#endif
