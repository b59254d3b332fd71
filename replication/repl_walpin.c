/* WAL retention on a primary, beyond --wal-ttl: a replica resumes by streaming only while
 * the WAL still reaches its position, so the primary pins a shard's WAL (kv_wal_pin) while
 *   - a connected replica of the shard has not applied everything yet, or
 *   - a replica of the shard was connected less than --wal-pin-max ago (it may come back),
 * and releases it when neither holds for a few seconds, when a replica has been gone longer
 * than --wal-pin-max (it will resync) or when the shard's WAL grows past --wal-pin-mb (the
 * replicas behind then resync, and do not pin again until they are back). The time of a
 * replica that has not been seen since this process started counts from the start.
 * Evaluated every 200 ms by the listener thread (repl_primary.c). */
#include "replication/repl_int.h"

#include <stdio.h>
#include <string.h>

#include "common/st_log.h"

#define PIN_LINGER_US (2 * 1000000LL) /* keep a pin this long after the last need */

/* Whether shard s needs its WAL kept now (mu held). Names the replica that needs it. */
static int pin_wanted(struct repl *r, struct repl_shard *sh, int64_t now, const char **who)
{
	uint64_t latest = kv_shard_latest_seq(r->db, sh->shard);
	const struct repl_shard_map *m = &r->layout.shards[sh->shard];
	int want = 0;
	for (int k = 0; k < m->nreplicas; k++) {
		int n = m->replicas[k];
		if (n == r->self)
			continue;
		int connected = 0;
		uint64_t acked = 0;
		for (struct repl_peer *p = r->peers; p; p = p->next)
			if (!p->done && p->shard == sh->shard &&
			    !strcmp(p->node, r->layout.nodes[n].name)) {
				connected = 1;
				if (p->acked_next > acked)
					acked = p->acked_next;
			}
		if (connected)
			sh->wal_seen_us[n] = now;
		else if (!sh->wal_seen_us[n])
			sh->wal_seen_us[n] = now;
		if ((connected && acked <= latest) ||
		    (!connected && now - sh->wal_seen_us[n] <= r->o.wal_pin_max_us)) {
			want = 1;
			*who = r->layout.nodes[n].name;
		}
	}
	return want;
}

/* The replicas behind lose their claim (mu held): they resync and pin again once back. */
static void pin_expire(struct repl *r, struct repl_shard *sh, int64_t now)
{
	for (int n = 0; n < r->layout.nnodes; n++)
		if (now - sh->wal_seen_us[n] <= r->o.wal_pin_max_us)
			sh->wal_seen_us[n] = now - r->o.wal_pin_max_us - 1;
}

void repl_wal_retain(struct repl *r)
{
	if (r->o.wal_pin_max_us <= 0)
		return;
	int64_t now = repl_now_us();
	uint64_t cap = r->o.wal_pin_mb << 20;
	for (int s = 0; s < r->layout.nshards; s++) {
		struct repl_shard *sh = &r->shards[s];
		const char *who = "";
		pthread_mutex_lock(&r->mu);
		int primary = sh->state == REPL_S_PRIMARY;
		if (primary && pin_wanted(r, sh, now, &who))
			sh->wal_want_us = now;
		int want = primary && sh->wal_want_us && now - sh->wal_want_us < PIN_LINGER_US;
		int was = sh->wal_pinned;
		char name[REPL_NAME_MAX];
		snprintf(name, sizeof(name), "%s", who);
		pthread_mutex_unlock(&r->mu);
		if (!want && !was)
			continue;
		uint64_t bytes = 0;
		struct st_error err;
		if (kv_wal_pin(r->db, s, want, &bytes, &err)) {
			st_errlog("replication: shard %d: %s", s, err.msg);
			continue;
		}
		pthread_mutex_lock(&r->mu);
		if (want && bytes > cap) {
			pin_expire(r, sh, now);
			sh->wal_want_us = 0;
			want = 0;
		}
		sh->wal_pinned = want;
		pthread_mutex_unlock(&r->mu);
		if (want != was && want)
			st_info("replication: shard %d: WAL pinned for replica %s (%llu bytes)", s,
				name, (unsigned long long)bytes);
		if (!want && bytes > cap) {
			kv_wal_pin(r->db, s, 0, NULL, &err);
			st_warn("replication: shard %d: WAL of %llu bytes exceeds --wal-pin-mb %llu: "
				"released (replicas behind will resync)", s,
				(unsigned long long)bytes, (unsigned long long)r->o.wal_pin_mb);
		} else if (!want && was) {
			st_info("replication: shard %d: WAL pin released (no replica needs it within "
				"--wal-pin-max %lld s)", s,
				(long long)(r->o.wal_pin_max_us / 1000000));
		}
	}
}
