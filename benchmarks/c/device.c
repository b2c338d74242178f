/*
 * device - device-side measurements through the runtime, each with its
 * baseline measured in the same run.
 *   device copies MAX_BYTES     per size: HtoD, DtoH, DtoD and host memcpy GB/s
 *   device launches N           empty-kernel launch + sync rate
 *   device mapped BYTES         mapped write -> kernel read, no copy ioctl
 *   device startup              time to the first answered device query
 * Needs AICARD_KERNELS.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "aicard.h"
#include "aicard_uapi.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define CK(x) do { aiError_t e_ = (x); if (e_) { fprintf(stderr, "%s: %s\n", #x, aiGetErrorName(e_)); exit(1); } } while (0)

static aiFunction_t kernel(const char *file, const char *name)
{
	char path[4096];
	aiModule_t m;
	aiFunction_t f;
	snprintf(path, sizeof(path), "%s/%s", getenv("AICARD_KERNELS"), file);
	CK(aiModuleLoad(&m, path));
	CK(aiModuleGetFunction(&f, m, name));
	return f;
}

static double best_of(int reps, void (*fn)(void *, void *, size_t), void *d, void *s, size_t n)
{
	double best = 1e30;
	for (int r = 0; r < reps; r++) {
		double t = now();
		fn(d, s, n);
		t = now() - t;
		if (t < best)
			best = t;
	}
	return best;
}

static void host_memcpy(void *d, void *s, size_t n) { memcpy(d, s, n); }
static void htod(void *d, void *s, size_t n) { CK(aiMemcpy(d, s, n, aiMemcpyHostToDevice)); }
static void dtoh(void *d, void *s, size_t n) { CK(aiMemcpy(d, s, n, aiMemcpyDeviceToHost)); }
static void dtod(void *d, void *s, size_t n) { CK(aiMemcpy(d, s, n, aiMemcpyDeviceToDevice)); }

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	if (!strcmp(what, "startup")) {
		double t = now();
		int fd = open("/dev/aicard0", O_RDWR);
		struct aicard_device_info info;
		struct aicard_dev_query q = { .type = AICARD_QUERY_DEVICE_INFO, .size = sizeof(info),
					      .pointer = (uintptr_t)&info };
		int r = fd >= 0 ? ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q) : -1;
		printf("%.6f %d\n", now() - t, r);
		return 0;
	}
	if (!strcmp(what, "copies")) {
		size_t max = argc > 2 ? strtoull(argv[2], NULL, 0) : (256u << 20);
		char *h1 = malloc(max), *h2 = malloc(max);
		void *d1, *d2;
		memset(h1, 1, max), memset(h2, 2, max);
		CK(aiMalloc(&d1, max));
		CK(aiMalloc(&d2, max));
		CK(aiMemcpy(d1, h1, max, aiMemcpyHostToDevice));	/* touch every page once */
		CK(aiMemcpy(d2, h1, max, aiMemcpyHostToDevice));
		for (size_t n = 4096; n <= max; n *= 4) {
			/* best of many: on a shared 2-core VM single copies vary 2x */
			int reps = n < (1u << 20) ? 50 : n <= (16u << 20) ? 20 : 5;
			printf("%zu %.6g %.6g %.6g %.6g\n", n, n / best_of(reps, host_memcpy, h2, h1, n) / 1e9,
			       n / best_of(reps, htod, d1, h1, n) / 1e9, n / best_of(reps, dtoh, h2, d1, n) / 1e9,
			       n / best_of(reps, dtod, d2, d1, n) / 1e9);
		}
		return 0;
	}
	if (!strcmp(what, "launches")) {
		int n = argc > 2 ? atoi(argv[2]) : 2000;
		aiFunction_t f = kernel("empty.aimod", "empty");
		aiDim3 one = { 1, 1, 1 };
		CK(aiLaunchKernel(f, one, one, NULL, 0, NULL));
		CK(aiDeviceSynchronize());
		double t = now();
		for (int i = 0; i < n; i++) {
			CK(aiLaunchKernel(f, one, one, NULL, 0, NULL));
			CK(aiDeviceSynchronize());
		}
		printf("%.1f\n", n / (now() - t));
		return 0;
	}
	if (!strcmp(what, "mapped")) {
		size_t bytes = argc > 2 ? strtoull(argv[2], NULL, 0) : (16u << 20);
		unsigned n = (unsigned)(bytes / 4);
		void *da, *db, *dc;
		float *ha, *hb, *hc;
		CK(aiMallocMapped(&da, (void **)&ha, bytes));
		CK(aiMallocMapped(&db, (void **)&hb, bytes));
		CK(aiMallocMapped(&dc, (void **)&hc, bytes));
		for (unsigned i = 0; i < n; i++)
			ha[i] = (float)i, hb[i] = 1.0f;
		aiFunction_t f = kernel("vecadd.aimod", "vecadd");
		void *args[] = { &da, &db, &dc, &n };
		aiDim3 grid = { (n + 255) / 256, 1, 1 }, block = { 256, 1, 1 };
		/* Once untimed: the first launch loads the executor (and numpy). */
		CK(aiLaunchKernel(f, grid, block, args, 0, NULL));
		CK(aiDeviceSynchronize());
		for (unsigned i = 0; i < n; i++)
			hc[i] = 0.0f;
		double t = now();
		CK(aiLaunchKernel(f, grid, block, args, 0, NULL));
		CK(aiDeviceSynchronize());
		t = now() - t;
		for (unsigned i = 0; i < n; i++)
			if (hc[i] != (float)i + 1.0f) {
				fprintf(stderr, "mapped result wrong at %u\n", i);
				return 1;
			}
		/* Prove the host pointer is the device's page: find its mapping. */
		char line[512], want[32];
		snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)hc);
		FILE *maps = fopen("/proc/self/maps", "r");
		const char *backing = "?";
		static char found[512];
		while (maps && fgets(line, sizeof(line), maps))
			if (!strncmp(line, want, strlen(want))) {
				strcpy(found, line);
				backing = strchr(found, '/') ? strchr(found, '/') : found;
				found[strcspn(found, "\n")] = 0;
			}
		printf("%.6f %s\n", t, backing);
		return 0;
	}
	fprintf(stderr, "usage: device copies|launches|mapped|startup\n");
	return 2;
}
