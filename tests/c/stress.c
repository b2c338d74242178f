/*
 * stress.c - 8 threads (by default) doing alloc / copy / launch / sync / free
 * for a few seconds, half on the shared primary context of a device, half
 * on contexts of their own; every result is checked, and at the end the
 * device memory in use must be back where it started.
 *
 *   stress [SECONDS (default 2)] [THREADS (default 8)]
 * Needs AICARD_KERNELS (the directory of vecadd.aimod).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aicard.h"

static double seconds = 2.0;
static atomic_long launches, failures;
static int ndev;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define CHECK(call)                                                          \
	do {                                                                 \
		aiError_t e_ = (call);                                       \
		if (e_ != aiSuccess) {                                       \
			fprintf(stderr, "thread %d: %s: %s\n", id, #call,    \
				aiGetErrorName(e_));                         \
			atomic_fetch_add(&failures, 1);                      \
			goto out;                                            \
		}                                                            \
	} while (0)

static void *worker(void *arg)
{
	int id = (int)(long)arg;
	aiCtx_t own = NULL;
	aiModule_t mod = NULL;
	aiFunction_t fn;
	char path[4096];
	unsigned seed = 1234u + (unsigned)id;
	float *a = NULL, *b = NULL, *c = NULL;

	if (id % 2)
		CHECK(aiCtxCreate(&own, id % ndev));	/* a context of its own */
	else
		CHECK(aiSetDevice(id % ndev));		/* the shared primary one */
	snprintf(path, sizeof(path), "%s/vecadd.aimod", getenv("AICARD_KERNELS"));
	CHECK(aiModuleLoad(&mod, path));
	CHECK(aiModuleGetFunction(&fn, mod, "vecadd"));
	double end = now() + seconds;
	while (now() < end) {
		unsigned n = 1024u + rand_r(&seed) % 65536u;
		size_t bytes = n * sizeof(float);
		void *da, *db, *dc;
		a = malloc(bytes), b = malloc(bytes), c = malloc(bytes);
		for (unsigned i = 0; i < n; i++) {
			a[i] = (float)(i % 97) + (float)id;
			b[i] = (float)(i % 13);
		}
		CHECK(aiMalloc(&da, bytes));
		CHECK(aiMalloc(&db, bytes));
		CHECK(aiMalloc(&dc, bytes));
		CHECK(aiMemcpy(da, a, bytes, aiMemcpyHostToDevice));
		CHECK(aiMemcpy(db, b, bytes, aiMemcpyHostToDevice));
		void *args[] = { &da, &db, &dc, &n };
		aiDim3 grid = { (n + 255) / 256, 1, 1 }, block = { 256, 1, 1 };
		CHECK(aiLaunchKernel(fn, grid, block, args, 0, NULL));
		CHECK(aiDeviceSynchronize());
		CHECK(aiMemcpy(c, dc, bytes, aiMemcpyDeviceToHost));
		for (unsigned i = 0; i < n; i++) {
			if (c[i] != a[i] + b[i]) {
				fprintf(stderr, "thread %d: c[%u] = %g, want %g\n", id, i, c[i], a[i] + b[i]);
				atomic_fetch_add(&failures, 1);
				break;
			}
		}
		CHECK(aiFree(da));
		CHECK(aiFree(db));
		CHECK(aiFree(dc));
		free(a), free(b), free(c);
		a = b = c = NULL;
		atomic_fetch_add(&launches, 1);
	}
out:
	free(a), free(b), free(c);
	if (mod)
		aiModuleUnload(mod);
	if (own)
		aiCtxDestroy(own);
	return NULL;
}

static size_t used_everywhere(void)
{
	size_t sum = 0;
	for (int d = 0; d < ndev; d++) {
		size_t free_b, total;
		aiSetDevice(d);
		if (aiMemGetInfo(&free_b, &total) == aiSuccess)
			sum += total - free_b;
	}
	return sum;
}

int main(int argc, char **argv)
{
	int nthreads = 8;
	if (argc > 1)
		seconds = atof(argv[1]);
	if (argc > 2)
		nthreads = atoi(argv[2]);
	if (aiGetDeviceCount(&ndev) != aiSuccess) {
		fprintf(stderr, "no aicard device\n");
		return 2;
	}
	size_t before = used_everywhere();
	pthread_t t[64];
	for (int i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(long)i);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	size_t after = used_everywhere();
	printf("threads %d launches %ld failures %ld used before %zu after %zu\n", nthreads,
	       atomic_load(&launches), atomic_load(&failures), before, after);
	return atomic_load(&failures) || after != before || !atomic_load(&launches);
}
