/*
 * measure.h - timing for the benchmark programs: MEASURE(name, n, call)
 * runs call n times (after n/10 warm-up calls) and prints
 * "name p50_ns p99_ns mean_ns".
 */
#ifndef AICARD_BENCH_MEASURE_H
#define AICARD_BENCH_MEASURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t *samples;

static void report(const char *name, int n)
{
	uint64_t sum = 0;
	for (int i = 0; i < n; i++)
		sum += samples[i];
	qsort(samples, (size_t)n, sizeof(*samples), cmp_u64);
	printf("%s %llu %llu %llu\n", name, (unsigned long long)samples[n / 2],
	       (unsigned long long)samples[n * 99 / 100], (unsigned long long)(sum / (uint64_t)n));
}

#define MEASURE(name, n, call)                          \
	do {                                            \
		for (int i_ = 0; i_ < (n) / 10; i_++)   \
			(void)(call);                   \
		for (int i_ = 0; i_ < (n); i_++) {      \
			uint64_t t0_ = now_ns();        \
			(void)(call);                   \
			samples[i_] = now_ns() - t0_;   \
		}                                       \
		report(name, n);                        \
	} while (0)

#endif
