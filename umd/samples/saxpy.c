/* SPDX-License-Identifier: MIT */
/*
 * saxpy - y = alpha * x + y on a created stream: asynchronous copies, and
 * two events around the kernel to time it on the device clock.
 *
 *   saxpy [-n N (default 65536)] [-d DEV]
 */
#include <math.h>

#include "common.h"

static const char usage[] = "saxpy [-n N (default 65536)] [-d DEV]";

int main(int argc, char **argv)
{
	unsigned long long nn = 65536;
	int dev = 0;
	const float alpha = 2.5f;
	aiStream_t stream;
	aiEvent_t start, stop;
	float *x, *y, *out, ms = 0;
	void *dx, *dy;
	size_t n, bytes, bad = 0;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-n", usage)))
			nn = opt_number("-n", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (nn == 0 || nn > UINT32_MAX)
		die_usage(usage, "N must be 1 .. 2^32-1");
	n = (size_t)nn;
	bytes = n * sizeof(float);

	select_device(dev);
	aiModule_t mod = load_kernel("saxpy.aimod");
	aiFunction_t fn = get_function(mod, "saxpy");

	x = xmalloc(bytes);
	y = xmalloc(bytes);
	out = xmalloc(bytes);
	for (size_t i = 0; i < n; i++) {
		/* few significant bits: alpha * x + y is exact, fused or not */
		x[i] = (float)(i % 200) * 0.5f;
		y[i] = (float)((i * 3) % 1000) - 500.0f;
	}

	CHECK(aiStreamCreate(&stream));
	CHECK(aiEventCreate(&start));
	CHECK(aiEventCreate(&stop));
	CHECK(aiMalloc(&dx, bytes));
	CHECK(aiMalloc(&dy, bytes));

	CHECK(aiMemcpyAsync(dx, x, bytes, aiMemcpyHostToDevice, stream));
	CHECK(aiMemcpyAsync(dy, y, bytes, aiMemcpyHostToDevice, stream));
	CHECK(aiEventRecord(start, stream));
	{
		unsigned n32 = (unsigned)n;
		void *args[] = { &n32, (void *)&alpha, &dx, &dy };
		aiDim3 grid = { blocks_for(n, 256), 1, 1 };
		aiDim3 block = { 256, 1, 1 };

		CHECK(aiLaunchKernel(fn, grid, block, args, 0, stream));
	}
	CHECK(aiEventRecord(stop, stream));
	CHECK(aiMemcpyAsync(out, dy, bytes, aiMemcpyDeviceToHost, stream));
	CHECK(aiStreamSynchronize(stream));
	CHECK(aiStreamQuery(stream));
	CHECK(aiEventSynchronize(stop));
	CHECK(aiEventElapsedTime(&ms, start, stop));

	for (size_t i = 0; i < n; i++) {
		float want = alpha * x[i] + y[i];

		if (!(fabsf(out[i] - want) <= 1e-6f * fabsf(want))) {
			if (bad < 5)
				fprintf(stderr, "saxpy: y[%zu] = %g, expected %g\n",
					i, (double)out[i], (double)want);
			bad++;
		}
	}

	CHECK(aiFree(dy));
	CHECK(aiFree(dx));
	CHECK(aiEventDestroy(stop));
	CHECK(aiEventDestroy(start));
	CHECK(aiStreamDestroy(stream));
	CHECK(aiModuleUnload(mod));
	free(x);
	free(y);
	free(out);

	if (bad) {
		printf("saxpy FAILED: %zu of %zu elements wrong, dev_num %d\n",
		       bad, n, dev);
		return EXIT_FAIL;
	}
	if (ms < 0) {
		printf("saxpy FAILED: negative elapsed time %.6f ms\n",
		       (double)ms);
		return EXIT_FAIL;
	}
	printf("saxpy passed: n %zu, alpha %g, kernel %.6f ms (device clock), "
	       "dev_num %d\n", n, (double)alpha, (double)ms, dev);
	return EXIT_PASS;
}
