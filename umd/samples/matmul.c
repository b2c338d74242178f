/* SPDX-License-Identifier: MIT */
/*
 * matmul - C = A * B on f32 with the tiled kernel (kernels/matmul.s: 16 x 16
 * tiles of A and B staged through shared memory, a barrier per tile),
 * checked against a product computed in double on the host.
 *
 *   matmul [-m ROWS (default 100)] [-n COLS (default 70)] [-k INNER (default 45)] [-d DEV]
 */
#include <math.h>

#include "common.h"

static const char usage[] =
	"matmul [-m ROWS (default 100)] [-n COLS (default 70)] "
	"[-k INNER (default 45)] [-d DEV]";

int main(int argc, char **argv)
{
	unsigned long long m = 100, n = 70, k = 45;
	int dev = 0;
	float *a, *b, *c;
	void *da, *db, *dc;
	size_t bad = 0;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-m", usage)))
			m = opt_number("-m", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-n", usage)))
			n = opt_number("-n", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-k", usage)))
			k = opt_number("-k", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (!m || !n || !k || m > 4096 || n > 4096 || k > 4096)
		die_usage(usage, "every dimension must be 1..4096");

	select_device(dev);
	aiModule_t mod = load_kernel("matmul.aimod");
	aiFunction_t fn = get_function(mod, "matmul_f32");

	a = xmalloc(m * k * sizeof(float));
	b = xmalloc(k * n * sizeof(float));
	c = xmalloc(m * n * sizeof(float));
	{
		uint64_t st = 7;

		for (size_t i = 0; i < m * k; i++)
			a[i] = (float)(rng_next(&st) % 2001) / 1000.0f - 1.0f;
		for (size_t i = 0; i < k * n; i++)
			b[i] = (float)(rng_next(&st) % 2001) / 1000.0f - 1.0f;
	}
	CHECK(aiMalloc(&da, m * k * sizeof(float)));
	CHECK(aiMalloc(&db, k * n * sizeof(float)));
	CHECK(aiMalloc(&dc, m * n * sizeof(float)));
	CHECK(aiMemcpy(da, a, m * k * sizeof(float), aiMemcpyHostToDevice));
	CHECK(aiMemcpy(db, b, k * n * sizeof(float), aiMemcpyHostToDevice));

	unsigned m32 = (unsigned)m, n32 = (unsigned)n, k32 = (unsigned)k;
	void *args[] = { &da, &db, &dc, &m32, &n32, &k32 };
	aiDim3 grid = { blocks_for(n, 16), blocks_for(m, 16), 1 };
	aiDim3 block = { 16, 16, 1 };

	CHECK(aiLaunchKernel(fn, grid, block, args, 0, NULL));
	CHECK(aiMemcpy(c, dc, m * n * sizeof(float), aiMemcpyDeviceToHost));

	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++) {
			double want = 0, mag = 0;

			for (size_t l = 0; l < k; l++) {
				want += (double)a[i * k + l] * b[l * n + j];
				mag += fabs((double)a[i * k + l] * b[l * n + j]);
			}
			if (fabs(c[i * n + j] - want) > 1e-6 * mag + 1e-6) {
				if (bad < 5)
					fprintf(stderr, "c[%zu][%zu] = %g, "
						"expected %g\n", i, j,
						(double)c[i * n + j], want);
				bad++;
			}
		}

	CHECK(aiFree(da));
	CHECK(aiFree(db));
	CHECK(aiFree(dc));
	CHECK(aiModuleUnload(mod));
	free(a);
	free(b);
	free(c);
	if (bad) {
		printf("Test FAILED: %zu of %llu elements wrong\n", bad, m * n);
		return EXIT_FAIL;
	}
	printf("%llu x %llu times %llu x %llu\n", m, k, k, n);
	printf("Test passed\n");
	return EXIT_PASS;
}
