/* SPDX-License-Identifier: MIT */
/*
 * memcpy_roundtrip - for sizes 1 B, odd sizes and powers of two up to MAX:
 * host -> device -> device -> host with a pseudo-random pattern, then
 * fills (byte fill, a fill inside the buffer, 32-bit fill) and a copy
 * between offsets inside buffers, each checked byte for byte.
 *
 *   memcpy_roundtrip [-max BYTES (default 256M)] [-d DEV] [-v]
 */
#include "common.h"

static const char usage[] =
	"memcpy_roundtrip [-max BYTES (default 256M)] [-d DEV] [-v]";

static int verbose;

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* 0 if equal, else prints the first difference and returns 1 */
static int compare(const char *what, size_t size, const unsigned char *got,
		   const unsigned char *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i]) {
			fprintf(stderr, "size %zu, %s: byte %zu is 0x%02x, "
				"expected 0x%02x\n", size, what, i, got[i],
				want[i]);
			return 1;
		}
	return 0;
}

static int check_bytes(const char *what, size_t size, const unsigned char *got,
		       unsigned char want, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (got[i] != want) {
			fprintf(stderr, "size %zu, %s: byte %zu is 0x%02x, "
				"expected 0x%02x\n", size, what, i, got[i],
				want);
			return 1;
		}
	return 0;
}

/* One size: returns the number of failed checks. */
static int roundtrip(size_t size, unsigned char *src, unsigned char *dst,
		     unsigned char *ref)
{
	unsigned char *d1, *d2;
	int fails = 0;

	fill_pattern(src, size, size);
	memset(dst, 0, size);
	CHECK(aiMalloc((void **)&d1, size));
	CHECK(aiMalloc((void **)&d2, size));

	/* HtoD, DtoD, DtoH */
	CHECK(aiMemcpy(d1, src, size, aiMemcpyHostToDevice));
	CHECK(aiMemcpy(d2, d1, size, aiMemcpyDeviceToDevice));
	CHECK(aiMemcpy(dst, d2, size, aiMemcpyDeviceToHost));
	fails += compare("HtoD+DtoD+DtoH", size, dst, src, size);

	/* byte fill of the whole buffer, then of its inside */
	CHECK(aiMemset(d2, 0xa5, size));
	if (size >= 3)
		CHECK(aiMemset(d2 + 1, 0x5a, size - 2));
	CHECK(aiMemcpy(dst, d2, size, aiMemcpyDeviceToHost));
	if (size >= 3) {
		fails += check_bytes("memset edges", size, dst, 0xa5, 0, 1);
		fails += check_bytes("memset inside", size, dst, 0x5a, 1,
				     size - 1);
		fails += check_bytes("memset edges", size, dst, 0xa5,
				     size - 1, size);
	} else {
		fails += check_bytes("memset", size, dst, 0xa5, 0, size);
	}

	/* 32-bit fill */
	if (size % 4 == 0) {
		const uint32_t word = 0xdeadbeefu;

		CHECK(aiMemsetD32(d1, word, size / 4));
		CHECK(aiMemcpy(dst, d1, size, aiMemcpyDeviceToHost));
		for (size_t i = 0; i < size; i += 4)
			memcpy(ref + i, &word, 4);
		fails += compare("memsetD32", size, dst, ref, size);
	}

	/* a copy between offsets inside the buffers: d2[3..] = src[5..] */
	if (size >= 16) {
		size_t n = size - 8;

		CHECK(aiMemcpy(d1, src, size, aiMemcpyHostToDevice));
		CHECK(aiMemset(d2, 0, size));
		CHECK(aiMemcpy(d2 + 3, d1 + 5, n, aiMemcpyDeviceToDevice));
		CHECK(aiMemcpy(dst, d2, size, aiMemcpyDeviceToHost));
		memset(ref, 0, size);
		memcpy(ref + 3, src + 5, n);
		fails += compare("DtoD at offsets", size, dst, ref, size);
	}

	CHECK(aiFree(d2));
	CHECK(aiFree(d1));
	return fails;
}

int main(int argc, char **argv)
{
	static const size_t odd[] = { 3, 5, 7, 4095, 4097, 65537, 1000003 };
	unsigned long long max = 256ull << 20;
	size_t sizes[128], nsizes = 0, free_b, total_b, moved = 0;
	int dev = 0, failed = 0;
	unsigned char *src, *dst, *ref;
	double t0, t;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-max", usage)))
			max = opt_number("-max", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else if (strcmp(argv[i], "-v") == 0)
			verbose = 1;
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (max == 0 || max > (1ull << 40))
		die_usage(usage, "-max must be 1 .. 1T");

	select_device(dev);
	/* two device buffers of the largest size must fit */
	CHECK(aiMemGetInfo(&free_b, &total_b));
	if (max > free_b / 2) {
		unsigned long long cap = 1;

		while (cap * 2 <= free_b / 2)
			cap *= 2;
		printf("note: -max %llu capped to %llu (device has %zu bytes "
		       "free)\n", max, cap, free_b);
		max = cap;
	}

	for (size_t s = 1; s <= max; s *= 2)
		sizes[nsizes++] = s;
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		if (odd[i] <= max)
			sizes[nsizes++] = odd[i];
	qsort(sizes, nsizes, sizeof(sizes[0]), cmp_size);

	src = xmalloc(max);
	dst = xmalloc(max);
	ref = xmalloc(max);

	t0 = now_ms();
	for (size_t i = 0; i < nsizes; i++) {
		double ts = now_ms();
		int f = roundtrip(sizes[i], src, dst, ref);

		failed += f != 0;
		moved += 3 * sizes[i];
		if (verbose || f)
			printf("%10zu B: %s (%.3f ms)\n", sizes[i],
			       f ? "FAILED" : "ok", now_ms() - ts);
	}
	t = now_ms() - t0;
	free(src);
	free(dst);
	free(ref);

	if (failed) {
		printf("memcpy_roundtrip FAILED: %d of %zu sizes wrong, "
		       "dev_num %d\n", failed, nsizes, dev);
		return EXIT_FAIL;
	}
	printf("memcpy_roundtrip passed: %zu sizes, 1 B .. %llu B, %.1f MiB "
	       "round-tripped in %.1f ms, dev_num %d\n", nsizes, max,
	       (double)moved / (1 << 20), t, dev);
	return EXIT_PASS;
}
