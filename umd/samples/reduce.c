/* SPDX-License-Identifier: MIT */
/*
 * reduce - sum of n floats on the device (kernels/reduce.s: a tree in shared
 * memory with a barrier per level, then one global atomic add per block),
 * checked against a sum in double on the host.
 *
 *   reduce [-n ELEMENTS (default 1000003)] [-b THREADS (default 256)] [-d DEV]
 */
#include <math.h>

#include "common.h"

static const char usage[] =
	"reduce [-n ELEMENTS (default 1000003)] [-b THREADS, a power of two "
	"(default 256)] [-d DEV]";

int main(int argc, char **argv)
{
	unsigned long long n = 1000003, threads = 256;
	int dev = 0;
	double want = 0, scale = 0;
	float got = 0, *in;
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
	if (!n || n > (1u << 28) || !threads || threads > 1024 ||
	    (threads & (threads - 1)))
		die_usage(usage, "ELEMENTS must be 1..2^28, THREADS a power of "
			  "two up to 1024");

	select_device(dev);
	aiModule_t mod = load_kernel("reduce.aimod");
	aiFunction_t fn = get_function(mod, "reduce_sum_f32");

	in = xmalloc(n * sizeof(float));
	{
		uint64_t st = 42;

		for (size_t i = 0; i < n; i++) {
			in[i] = (float)(rng_next(&st) % 20001) / 1000.0f - 10.0f;
			want += in[i];
			scale += fabs(in[i]);
		}
	}
	CHECK(aiMalloc(&din, n * sizeof(float)));
	CHECK(aiMalloc(&dout, sizeof(float)));
	CHECK(aiMemcpy(din, in, n * sizeof(float), aiMemcpyHostToDevice));
	CHECK(aiMemset(dout, 0, sizeof(float)));

	unsigned n32 = (unsigned)n;
	void *args[] = { &din, &dout, &n32 };
	aiDim3 grid = { blocks_for(n, (unsigned)threads), 1, 1 };
	aiDim3 block = { (unsigned)threads, 1, 1 };

	CHECK(aiLaunchKernel(fn, grid, block, args, 0, NULL));
	CHECK(aiMemcpy(&got, dout, sizeof(float), aiMemcpyDeviceToHost));

	CHECK(aiFree(din));
	CHECK(aiFree(dout));
	CHECK(aiModuleUnload(mod));
	free(in);
	/* f32 partial sums: a few ulps of the magnitudes added, per level */
	if (fabs((double)got - want) > 1e-5 * scale + 1e-3) {
		printf("Test FAILED: sum %.6f, expected %.6f\n", (double)got, want);
		return EXIT_FAIL;
	}
	printf("sum of %llu floats: %.4f (host %.4f)\n", n, (double)got, want);
	printf("Test passed\n");
	return EXIT_PASS;
}
