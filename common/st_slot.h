/* Entity placement, shared by the store (which shard holds an entity), replication (slot
 * digests) and libstrata (which node to ask): an entity hashes (xxh3) onto one of ST_SLOTS
 * fixed slots and slot s lives in shard s % nshards. One definition, so a client and the
 * store can never disagree on where an entity is. */
#ifndef ST_SLOT_H
#define ST_SLOT_H

#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#define ST_SLOTS 4096

static inline uint32_t st_slot_of(const void *entity, size_t len)
{
	return (uint32_t)(XXH3_64bits(entity, len) % ST_SLOTS);
}

static inline int st_shard_of_slot(uint32_t slot, int nshards)
{
	return (int)(slot % (uint32_t)nshards);
}

#endif
