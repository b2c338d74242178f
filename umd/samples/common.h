/* SPDX-License-Identifier: MIT */
/*
 * common.h - small helpers shared by the aicard samples (header only).
 *
 * Exit codes of every sample: 0 passed, 1 wrong results or a runtime error,
 * 2 no aicard device (stderr then says exactly "no aicard device").
 *
 * Kernel modules are looked up in $AICARD_KERNELS, else in
 * <directory of the executable>/../kernels/.
 */
#ifndef AICARD_SAMPLES_COMMON_H
#define AICARD_SAMPLES_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aicard.h"

#define EXIT_PASS	0
#define EXIT_FAIL	1
#define EXIT_NODEV	2

/* Every runtime call of a sample goes through CHECK: on error, say where
 * and what, and exit 1. */
#define CHECK(call)							\
	do {								\
		aiError_t check_e_ = (call);				\
		if (check_e_ != aiSuccess) {				\
			fprintf(stderr, "%s:%d: %s: %s (%s)\n",		\
				__FILE__, __LINE__, #call,		\
				aiGetErrorName(check_e_),		\
				aiGetErrorString(check_e_));		\
			exit(EXIT_FAIL);				\
		}							\
	} while (0)

static inline void __attribute__((noreturn, format(printf, 2, 3)))
die_usage(const char *usage, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	exit(EXIT_FAIL);
}

/* "123", "0x10000", "64K", "256M", "1G" -> bytes/count; false if malformed */
static inline int parse_u64(const char *s, unsigned long long *out)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!s || !*s || *s == '-')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return 0;
	switch (*end) {
	case 0:			break;
	case 'k': case 'K':	mul = 1ull << 10; end++; break;
	case 'm': case 'M':	mul = 1ull << 20; end++; break;
	case 'g': case 'G':	mul = 1ull << 30; end++; break;
	default:		return 0;
	}
	if (*end && strcmp(end, "iB") != 0 && strcmp(end, "B") != 0)
		return 0;
	if (mul > 1 && v > ULLONG_MAX / mul)
		return 0;
	*out = v * mul;
	return 1;
}

/* Options are single-dash words taking one value: "-s 0x10000",
 * "-max 1G"; one-letter ones also glue: "-s0x10000".  Returns the value of
 * option name at argv[*i] (advancing *i), or NULL if argv[*i] is not it. */
static inline const char *opt_value(int argc, char **argv, int *i,
				    const char *name, const char *usage)
{
	const char *a = argv[*i];
	size_t n = strlen(name);

	if (strcmp(a, name) == 0) {
		if (*i + 1 >= argc)
			die_usage(usage, "%s needs a value", name);
		return argv[++*i];
	}
	if (n == 2 && strncmp(a, name, 2) == 0 && a[2])
		return a + 2;
	return NULL;
}

static inline unsigned long long opt_number(const char *name, const char *v,
					    const char *usage)
{
	unsigned long long x;

	if (!parse_u64(v, &x))
		die_usage(usage, "bad value for %s: '%s'", name, v);
	return x;
}

static inline void check_help(const char *arg, const char *usage)
{
	if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
		printf("usage: %s\n", usage);
		exit(EXIT_PASS);
	}
}

/* Number of devices; exits 2 with "no aicard device" when there is none. */
static inline int device_count_or_exit(void)
{
	int count = 0;
	aiError_t e = aiGetDeviceCount(&count);

	if (e == aiErrorNoDevice || (e == aiSuccess && count == 0)) {
		fprintf(stderr, "no aicard device\n");
		exit(EXIT_NODEV);
	}
	CHECK(e);
	(void)aiGetLastError();
	return count;
}

/* Checks dev exists and makes it the thread's current device. */
static inline int select_device(int dev)
{
	int count = device_count_or_exit();

	if (dev < 0 || dev >= count) {
		fprintf(stderr, "device %d does not exist (%d aicard device%s)\n",
			dev, count, count == 1 ? "" : "s");
		exit(EXIT_FAIL);
	}
	CHECK(aiSetDevice(dev));
	return count;
}

/* Full path of a kernel module file. */
static inline void kernel_path(char *buf, size_t n, const char *file)
{
	const char *dir = getenv("AICARD_KERNELS");
	char exe[PATH_MAX];
	ssize_t len;

	if (dir && *dir) {
		snprintf(buf, n, "%s/%s", dir, file);
		return;
	}
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		char *slash;

		exe[len] = 0;
		slash = strrchr(exe, '/');
		if (slash)
			*slash = 0;
		snprintf(buf, n, "%s/../kernels/%s", exe, file);
		return;
	}
	snprintf(buf, n, "kernels/%s", file);
}

/* Loads kernels/<file> into the current context, or exits 1 saying why. */
static inline aiModule_t load_kernel(const char *file)
{
	char path[PATH_MAX + 64];
	aiModule_t mod;
	aiError_t e;

	kernel_path(path, sizeof(path), file);
	e = aiModuleLoad(&mod, path);
	if (e != aiSuccess) {
		fprintf(stderr, "cannot load kernel module %s: %s (%s)%s\n",
			path, aiGetErrorName(e), aiGetErrorString(e),
			e == aiErrorFileNotFound ?
			"; build the kernels or set AICARD_KERNELS" : "");
		exit(EXIT_FAIL);
	}
	return mod;
}

static inline aiFunction_t get_function(aiModule_t mod, const char *name)
{
	aiFunction_t fn;

	CHECK(aiModuleGetFunction(&fn, mod, name));
	return fn;
}

static inline double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* xorshift64*: a reproducible pattern generator */
static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static inline void fill_pattern(void *buf, size_t n, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t st = seed * 0x9e3779b97f4a7c15ull + 1;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t v = rng_next(&st);
		memcpy(p + i, &v, 8);
	}
	if (i < n) {
		uint64_t v = rng_next(&st);
		memcpy(p + i, &v, n - i);
	}
}

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "out of host memory (%zu bytes)\n", n);
		exit(EXIT_FAIL);
	}
	return p;
}

static inline unsigned blocks_for(size_t n, unsigned block)
{
	return (unsigned)((n + block - 1) / block);
}

/* ---- vecadd, shared by several samples ---------------------------------- */

#define VECADD_BLOCK 256

/* Inputs whose float sums are exact, different for each seed. */
static inline void vecadd_inputs(float *a, float *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		a[i] = (float)((i + seed * 131u) % 4096u) * 0.5f;
		b[i] = (float)((i * 7u + seed * 17u) % 1000u) - 250.0f;
	}
}

/* Number of wrong elements of c = a + b; prints the first few. */
static inline size_t vecadd_check(const float *a, const float *b,
				  const float *c, size_t n, const char *who)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		float want = a[i] + b[i];

		if (c[i] != want) {
			if (bad < 5)
				fprintf(stderr, "%s: c[%zu] = %g, expected %g\n",
					who, i, (double)c[i], (double)want);
			bad++;
		}
	}
	if (bad)
		fprintf(stderr, "%s: %zu of %zu elements wrong\n", who, bad, n);
	return bad;
}

/* vecadd(ptr a, ptr b, ptr c, u32 n), one thread per element. */
static inline aiError_t launch_vecadd(aiFunction_t fn, void *a, void *b,
				      void *c, size_t n, aiStream_t stream)
{
	unsigned n32 = (unsigned)n;
	void *args[] = { &a, &b, &c, &n32 };
	aiDim3 grid = { blocks_for(n, VECADD_BLOCK), 1, 1 };
	aiDim3 block = { VECADD_BLOCK, 1, 1 };

	return aiLaunchKernel(fn, grid, block, args, 0, stream);
}

#endif /* AICARD_SAMPLES_COMMON_H */
