/* SPDX-License-Identifier: MIT */
/*
 * scan - inclusive prefix sum of n u32 (kernels/scan.s: a Hillis-Steele
 * scan per block, double buffered in shared memory), then the whole-array
 * scan by adding each block's total to the blocks after it on the host;
 * both checked exactly against the host.
 *
 *   scan [-n ELEMENTS (default 100000)] [-b THREADS (default 512)] [-d DEV]
 */
#include "common.h"

static const char usage[] =
	"scan [-n ELEMENTS (default 100000)] [-b THREADS (default 512)] [-d DEV]";

int main(int argc, char **argv)
{
	unsigned long long n = 100000, threads = 512;
	unsigned *in, *out;
	int dev = 0;
	size_t bad = 0;
	void *din, *dout;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-n", usage)))
			n = opt_number("-n", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-b", usage)))
			threads = opt_number("-b", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (!n || n > (1u << 28) || !threads || threads > 1024)
		die_usage(usage, "ELEMENTS must be 1..2^28, THREADS 1..1024");

	select_device(dev);
	aiModule_t mod = load_kernel("scan.aimod");
	aiFunction_t fn = get_function(mod, "scan_u32");

	in = xmalloc(n * sizeof(unsigned));
	out = xmalloc(n * sizeof(unsigned));
	{
		uint64_t st = 11;

		for (size_t i = 0; i < n; i++)
			in[i] = (unsigned)(rng_next(&st) % 1000);
	}
	CHECK(aiMalloc(&din, n * sizeof(unsigned)));
	CHECK(aiMalloc(&dout, n * sizeof(unsigned)));
	CHECK(aiMemcpy(din, in, n * sizeof(unsigned), aiMemcpyHostToDevice));

	unsigned n32 = (unsigned)n;
	void *args[] = { &din, &dout, &n32 };
	aiDim3 grid = { blocks_for(n, (unsigned)threads), 1, 1 };
	aiDim3 block = { (unsigned)threads, 1, 1 };

	CHECK(aiLaunchKernel(fn, grid, block, args, 0, NULL));
	CHECK(aiMemcpy(out, dout, n * sizeof(unsigned), aiMemcpyDeviceToHost));

	/* per block, then the whole array (carry the totals of earlier blocks) */
	{
		unsigned block_sum = 0, carry = 0, total = 0;

		for (size_t i = 0; i < n; i++) {
			if (i % threads == 0) {
				carry += block_sum;
				block_sum = 0;
			}
			block_sum += in[i];
			total += in[i];
			if (out[i] != block_sum || out[i] + carry != total) {
				if (bad < 5)
					fprintf(stderr, "out[%zu] = %u, expected "
						"%u\n", i, out[i], block_sum);
				bad++;
			}
		}
		if (!bad)
			printf("scan of %llu: last prefix %u\n", n, total);
	}

	CHECK(aiFree(din));
	CHECK(aiFree(dout));
	CHECK(aiModuleUnload(mod));
	free(in);
	free(out);
	if (bad) {
		printf("Test FAILED: %zu of %llu elements wrong\n", bad, n);
		return EXIT_FAIL;
	}
	printf("Test passed\n");
	return EXIT_PASS;
}
