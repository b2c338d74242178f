/* SPDX-License-Identifier: MIT */
/*
 * histogram - 256-bin histogram of n bytes (kernels/histogram.s: per-block
 * bins in shared memory with shared atomics, merged with global atomics),
 * checked exactly against a count on the host.
 *
 *   histogram [-n BYTES (default 1000000)] [-g BLOCKS (default 64)] [-d DEV]
 */
#include "common.h"

static const char usage[] =
	"histogram [-n BYTES (default 1000000)] [-g BLOCKS (default 64)] [-d DEV]";

int main(int argc, char **argv)
{
	unsigned long long n = 1000000, blocks = 64;
	unsigned got[256], want[256] = { 0 };
	int dev = 0, bad = 0;
	unsigned char *data;
	void *ddata, *dbins;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-n", usage)))
			n = opt_number("-n", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-g", usage)))
			blocks = opt_number("-g", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (!n || n > (1u << 30) || !blocks || blocks > 65535)
		die_usage(usage, "BYTES must be 1..2^30, BLOCKS 1..65535");

	select_device(dev);
	aiModule_t mod = load_kernel("histogram.aimod");
	aiFunction_t fn = get_function(mod, "histogram_u8");

	data = xmalloc(n);
	fill_pattern(data, n, 5);
	for (size_t i = 0; i < n / 3; i++)	/* not uniform: some hot bins */
		data[i * 3] = (unsigned char)(data[i * 3] % 7);
	for (size_t i = 0; i < n; i++)
		want[data[i]]++;

	CHECK(aiMalloc(&ddata, n));
	CHECK(aiMalloc(&dbins, sizeof(got)));
	CHECK(aiMemcpy(ddata, data, n, aiMemcpyHostToDevice));
	CHECK(aiMemset(dbins, 0, sizeof(got)));

	unsigned n32 = (unsigned)n;
	void *args[] = { &ddata, &n32, &dbins };
	aiDim3 grid = { (unsigned)blocks, 1, 1 }, block = { 256, 1, 1 };

	CHECK(aiLaunchKernel(fn, grid, block, args, 0, NULL));
	CHECK(aiMemcpy(got, dbins, sizeof(got), aiMemcpyDeviceToHost));
	for (int b = 0; b < 256; b++)
		if (got[b] != want[b]) {
			if (bad < 5)
				fprintf(stderr, "bin %d: %u, expected %u\n", b,
					got[b], want[b]);
			bad++;
		}

	CHECK(aiFree(ddata));
	CHECK(aiFree(dbins));
	CHECK(aiModuleUnload(mod));
	free(data);
	if (bad) {
		printf("Test FAILED: %d of 256 bins wrong\n", bad);
		return EXIT_FAIL;
	}
	printf("histogram of %llu bytes, bin 0: %u\n", n, got[0]);
	printf("Test passed\n");
	return EXIT_PASS;
}
