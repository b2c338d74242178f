/* SPDX-License-Identifier: MIT */
/*
 * clock - the device clock seen through events.
 *
 *   clock [-n ELEMENTS (default 1M)] [-d DEV]
 *
 * ordered:      events recorded back to back, and around kernels on two
 *               streams, have non-decreasing timestamps (end >= start).
 * proportional: the elapsed time of a vecadd of 4n elements is about 4x
 *               that of n.  Both run back to back on a stream held by a
 *               host function until everything is queued, so the device is
 *               never idle waiting for the host between the events.
 * Prints "ordered: ok" and "proportional: 1x X ms, 4x Y ms, ratio R".
 */
#include <pthread.h>

#include "common.h"

static const char usage[] = "clock [-n ELEMENTS (default 1M)] [-d DEV]";

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int open;
};

static void gate_fn(void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->lock);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static unsigned long long stamp(aiEvent_t e)
{
	unsigned long long t;

	CHECK(aiEventGetTimestamp(&t, e));
	return t;
}

int main(int argc, char **argv)
{
	unsigned long long n = 1 << 20;
	int dev = 0, bad = 0;
	aiStream_t s[2];
	aiEvent_t ev[16];
	void *a, *b, *c;
	float ms1, ms4;
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			  0 };

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-n", usage)))
			n = opt_number("-n", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (n < 256 || n > (64u << 20))
		die_usage(usage, "ELEMENTS must be 256..64M");

	select_device(dev);
	aiModule_t mod = load_kernel("vecadd.aimod");
	aiFunction_t fn = get_function(mod, "vecadd");

	CHECK(aiMalloc(&a, 4 * n * sizeof(float)));
	CHECK(aiMalloc(&b, 4 * n * sizeof(float)));
	CHECK(aiMalloc(&c, 4 * n * sizeof(float)));
	CHECK(aiStreamCreate(&s[0]));
	CHECK(aiStreamCreate(&s[1]));
	for (int i = 0; i < 16; i++)
		CHECK(aiEventCreate(&ev[i]));

	/* ordered: three back to back, then events around small kernels
	 * alternating between two streams */
	CHECK(aiEventRecord(ev[0], s[0]));
	CHECK(aiEventRecord(ev[1], s[0]));
	CHECK(aiEventRecord(ev[2], s[0]));
	for (int i = 3; i < 16; i++) {
		CHECK(launch_vecadd(fn, a, b, c, 4096, s[i & 1]));
		CHECK(aiEventRecord(ev[i], s[i & 1]));
		CHECK(aiEventSynchronize(ev[i]));
	}
	for (int i = 1; i < 16; i++) {
		float ms;

		CHECK(aiEventElapsedTime(&ms, ev[i - 1], ev[i]));
		if (stamp(ev[i]) < stamp(ev[i - 1]) || ms < 0) {
			printf("event %d at %llu is before event %d at %llu\n", i,
			       stamp(ev[i]), i - 1, stamp(ev[i - 1]));
			bad++;
		}
	}
	printf("ordered: %s\n", bad ? "FAILED" : "ok");

	/* proportional: held back by a host function until all is queued */
	CHECK(aiLaunchHostFunc(s[0], gate_fn, &g));
	CHECK(aiEventRecord(ev[0], s[0]));
	CHECK(launch_vecadd(fn, a, b, c, n, s[0]));
	CHECK(aiEventRecord(ev[1], s[0]));
	CHECK(aiEventRecord(ev[2], s[0]));
	CHECK(launch_vecadd(fn, a, b, c, 4 * n, s[0]));
	CHECK(aiEventRecord(ev[3], s[0]));
	pthread_mutex_lock(&g.lock);
	g.open = 1;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	CHECK(aiStreamSynchronize(s[0]));
	CHECK(aiEventElapsedTime(&ms1, ev[0], ev[1]));
	CHECK(aiEventElapsedTime(&ms4, ev[2], ev[3]));
	printf("proportional: 1x %.4f ms, 4x %.4f ms, ratio %.3f\n",
	       (double)ms1, (double)ms4, ms1 > 0 ? (double)(ms4 / ms1) : 0.0);
	if (ms1 <= 0 || ms4 < 3 * ms1 || ms4 > 5 * ms1)
		bad++;

	for (int i = 0; i < 16; i++)
		CHECK(aiEventDestroy(ev[i]));
	CHECK(aiStreamDestroy(s[0]));
	CHECK(aiStreamDestroy(s[1]));
	CHECK(aiFree(a));
	CHECK(aiFree(b));
	CHECK(aiFree(c));
	CHECK(aiModuleUnload(mod));
	if (bad) {
		printf("Test FAILED\n");
		return EXIT_FAIL;
	}
	printf("Test passed\n");
	return EXIT_PASS;
}
