/* Deterministic fault injection for the places that must survive failure (preload ingestion,
 * WAL sync, journal append, replication stream, ...). Off unless the environment says:
 *   STRATA_FAULTS="name[@N][,name[@N]...]"   fire at the N-th hit of `name` (default 1st),
 * once. Tests set it for the process under test; production never does. */
#ifndef ST_FAULT_H
#define ST_FAULT_H

/* Returns 1 when the fault point `name` fires now, else 0. Thread-safe. */
int st_fault(const char *name);

/* Non-zero when STRATA_FAULTS names any fault point (read once at start and by
 * st_fault_reset). ST_FAULT costs one load on hot paths when no fault is configured. */
extern int st_faults_armed;
#define ST_FAULT(name) (__builtin_expect(st_faults_armed, 0) && st_fault(name))

/* Re-reads STRATA_FAULTS and zeroes the hit counts (for tests that set it at run time). */
void st_fault_reset(void);

#endif
