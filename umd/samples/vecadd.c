/* SPDX-License-Identifier: MIT */
/*
 * vecadd - the classic flow: three SIZE-byte buffers, c = a + b on the
 * device, every element checked.
 *
 *   vecadd [-s SIZE_BYTES (default 0x10000)] [-d DEV]
 */
#include "common.h"

static const char usage[] = "vecadd [-s SIZE_BYTES (default 0x10000)] [-d DEV]";

int main(int argc, char **argv)
{
	unsigned long long size = 0x10000;
	int dev = 0;
	aiDeviceProp prop;
	float *a, *b, *c;
	void *da, *db, *dc;
	double t0, t_launch;
	size_t n;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-s", usage)))
			size = opt_number("-s", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	n = size / sizeof(float);
	if (n == 0 || n > UINT32_MAX)
		die_usage(usage, "SIZE_BYTES must hold 1 .. 2^32-1 floats");

	select_device(dev);
	CHECK(aiGetDeviceProperties(&prop, dev));
	if (blocks_for(n, VECADD_BLOCK) > (unsigned)prop.maxGridSize[0]) {
		fprintf(stderr, "size 0x%llx needs %u blocks, device allows %d\n",
			size, blocks_for(n, VECADD_BLOCK), prop.maxGridSize[0]);
		return EXIT_FAIL;
	}
	aiModule_t mod = load_kernel("vecadd.aimod");
	aiFunction_t fn = get_function(mod, "vecadd");

	a = xmalloc(size);
	b = xmalloc(size);
	c = xmalloc(size);
	vecadd_inputs(a, b, n, (unsigned)dev);
	memset(c, 0xff, size);

	CHECK(aiMalloc(&da, size));
	CHECK(aiMalloc(&db, size));
	CHECK(aiMalloc(&dc, size));
	CHECK(aiMemcpy(da, a, size, aiMemcpyHostToDevice));
	CHECK(aiMemcpy(db, b, size, aiMemcpyHostToDevice));

	t0 = now_ms();
	CHECK(launch_vecadd(fn, da, db, dc, n, NULL));
	CHECK(aiDeviceSynchronize());
	t_launch = now_ms() - t0;

	CHECK(aiMemcpy(c, dc, size, aiMemcpyDeviceToHost));
	size_t bad = vecadd_check(a, b, c, n, "vecadd");

	CHECK(aiFree(dc));
	CHECK(aiFree(db));
	CHECK(aiFree(da));
	CHECK(aiModuleUnload(mod));
	free(a);
	free(b);
	free(c);

	if (bad) {
		printf("Test FAILED: size 0x%llx, dev_num %d\n", size, dev);
		return EXIT_FAIL;
	}
	printf("launch+sync %.3f ms on %s\n", t_launch, prop.name);
	printf("Test passed: size 0x%llx, dev_num %d\n", size, dev);
	return EXIT_PASS;
}
