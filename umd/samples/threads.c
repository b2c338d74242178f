/* SPDX-License-Identifier: MIT */
/*
 * threads - N threads, each with its own context (aiCtxCreate on device
 * i % count), each looping alloc / copy / launch(vecadd) / sync / check /
 * free; then aiMemGetInfo must show every byte back.
 *
 *   threads [-t N (default 8)] [-i ITERS (default 10)]
 */
#include <pthread.h>

#include "common.h"

#define AI_MAX_DEV 16	/* as many as the runtime probes */

static const char usage[] = "threads [-t N (default 8)] [-i ITERS (default 10)]";

struct worker {
	pthread_t tid;
	int idx, dev, iters;
	size_t bad;		/* wrong elements seen */
	int launches;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	aiCtx_t ctx, cur;
	char who[48];

	CHECK(aiCtxCreate(&ctx, w->dev));
	CHECK(aiCtxGetCurrent(&cur));
	if (cur != ctx) {
		fprintf(stderr, "thread %d: aiCtxCreate did not make its "
			"context current\n", w->idx);
		w->bad++;
	}
	aiModule_t mod = load_kernel("vecadd.aimod");
	aiFunction_t fn = get_function(mod, "vecadd");

	for (int it = 0; it < w->iters; it++) {
		size_t n = 1000 + (size_t)w->idx * 37 + (size_t)it * 513;
		size_t bytes = n * sizeof(float);
		float *a = xmalloc(bytes), *b = xmalloc(bytes),
		      *c = xmalloc(bytes);
		void *da, *db, *dc;

		vecadd_inputs(a, b, n, (unsigned)(w->idx * 1000 + it));
		memset(c, 0xff, bytes);
		CHECK(aiMalloc(&da, bytes));
		CHECK(aiMalloc(&db, bytes));
		CHECK(aiMalloc(&dc, bytes));
		CHECK(aiMemcpy(da, a, bytes, aiMemcpyHostToDevice));
		CHECK(aiMemcpy(db, b, bytes, aiMemcpyHostToDevice));
		CHECK(launch_vecadd(fn, da, db, dc, n, NULL));
		CHECK(aiStreamSynchronize(NULL));
		CHECK(aiMemcpy(c, dc, bytes, aiMemcpyDeviceToHost));
		snprintf(who, sizeof(who), "thread %d iter %d", w->idx, it);
		w->bad += vecadd_check(a, b, c, n, who);
		w->launches++;
		CHECK(aiFree(da));
		CHECK(aiFree(db));
		CHECK(aiFree(dc));
		free(a);
		free(b);
		free(c);
	}

	CHECK(aiModuleUnload(mod));
	CHECK(aiCtxDestroy(ctx));
	CHECK(aiPeekAtLastError());	/* nothing failed in this thread */
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long long nthreads = 8, iters = 10;
	size_t free_before[AI_MAX_DEV], free_after, total, bad = 0;
	struct worker *w;
	int count, used, launches = 0, leaks = 0;
	double t0;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-t", usage)))
			nthreads = opt_number("-t", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-i", usage)))
			iters = opt_number("-i", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (nthreads == 0 || nthreads > 256 || iters > 1000000)
		die_usage(usage, "N must be 1 .. 256, ITERS at most 10^6");

	count = device_count_or_exit();
	if (count > AI_MAX_DEV)
		count = AI_MAX_DEV;
	used = (int)nthreads < count ? (int)nthreads : count;
	for (int d = 0; d < used; d++) {
		CHECK(aiSetDevice(d));
		CHECK(aiMemGetInfo(&free_before[d], &total));
	}

	w = calloc(nthreads, sizeof(*w));
	if (!w)
		return EXIT_FAIL;
	t0 = now_ms();
	for (int i = 0; i < (int)nthreads; i++) {
		w[i].idx = i;
		w[i].dev = i % count;
		w[i].iters = (int)iters;
		if (pthread_create(&w[i].tid, NULL, work, &w[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return EXIT_FAIL;
		}
	}
	for (int i = 0; i < (int)nthreads; i++) {
		pthread_join(w[i].tid, NULL);
		bad += w[i].bad;
		launches += w[i].launches;
	}

	for (int d = 0; d < used; d++) {
		CHECK(aiSetDevice(d));
		CHECK(aiMemGetInfo(&free_after, &total));
		if (free_after != free_before[d]) {
			printf("dev %d: %zu bytes free before, %zu after: "
			       "leak\n", d, free_before[d], free_after);
			leaks++;
		}
	}
	free(w);

	if (bad || leaks) {
		printf("threads FAILED: %zu wrong elements, %d device%s "
		       "leaking\n", bad, leaks, leaks == 1 ? "" : "s");
		return EXIT_FAIL;
	}
	printf("threads passed: %llu threads x %llu iterations (%d launches) "
	       "on %d device%s in %.1f ms, no memory leaked\n", nthreads,
	       iters, launches, used, used == 1 ? "" : "s", now_ms() - t0);
	return EXIT_PASS;
}
