/* Fault injection points (see st_fault.h). The spec is parsed once; hits are counted per
 * name under a lock (fault points sit on rare, slow paths). */
#include "common/st_fault.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAULTS 16

static struct {
	char name[48];
	long at, hits;
} faults[MAX_FAULTS];
static int nfaults = -1;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
int st_faults_armed;

__attribute__((constructor)) static void fault_init(void)
{
	st_faults_armed = getenv("STRATA_FAULTS") != NULL;
}

static void parse_spec(void)
{
	nfaults = 0;
	st_faults_armed = 0;
	const char *spec = getenv("STRATA_FAULTS");
	if (!spec)
		return;
	char buf[512];
	strncpy(buf, spec, sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	char *save;
	for (char *tok = strtok_r(buf, ",", &save); tok && nfaults < MAX_FAULTS;
	     tok = strtok_r(NULL, ",", &save)) {
		char *at = strchr(tok, '@');
		if (at)
			*at++ = '\0';
		strncpy(faults[nfaults].name, tok, sizeof(faults[nfaults].name) - 1);
		faults[nfaults].at = at ? atol(at) : 1;
		faults[nfaults].hits = 0;
		nfaults++;
	}
	st_faults_armed = nfaults > 0;
}

int st_fault(const char *name)
{
	int fire = 0;
	pthread_mutex_lock(&fault_lock);
	if (nfaults < 0)
		parse_spec();
	for (int i = 0; i < nfaults; i++)
		if (!strcmp(faults[i].name, name) && ++faults[i].hits == faults[i].at)
			fire = 1;
	pthread_mutex_unlock(&fault_lock);
	return fire;
}

void st_fault_reset(void)
{
	pthread_mutex_lock(&fault_lock);
	parse_spec();
	pthread_mutex_unlock(&fault_lock);
}
