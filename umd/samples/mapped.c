/* SPDX-License-Identifier: MIT */
/*
 * mapped - zero copy: data goes in and out only through aiMallocMapped
 * buffers (host writes the inputs through its pointers, the device adds
 * them, the host reads the sum after aiDeviceSynchronize).  No memcpy.
 * A second round changes the inputs in place and launches again, so a
 * stale copy anywhere would show.
 *
 *   mapped [-n ELEMENTS (default 16384)] [-d DEV]
 */
#include "common.h"

static const char usage[] = "mapped [-n ELEMENTS (default 16384)] [-d DEV]";

int main(int argc, char **argv)
{
	unsigned long long nn = 16384;
	int dev = 0;
	float *a, *b, *c, *ref_a, *ref_b;
	void *da, *db, *dc;
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
	if (nn == 0 || nn > (1u << 28))
		die_usage(usage, "ELEMENTS must be 1 .. 2^28");
	n = (size_t)nn;
	bytes = n * sizeof(float);

	select_device(dev);
	aiModule_t mod = load_kernel("vecadd.aimod");
	aiFunction_t fn = get_function(mod, "vecadd");

	CHECK(aiMallocMapped(&da, (void **)&a, bytes));
	CHECK(aiMallocMapped(&db, (void **)&b, bytes));
	CHECK(aiMallocMapped(&dc, (void **)&c, bytes));
	ref_a = xmalloc(bytes);
	ref_b = xmalloc(bytes);

	for (int round = 0; round < 2; round++) {
		char who[32];

		snprintf(who, sizeof(who), "mapped round %d", round);
		vecadd_inputs(ref_a, ref_b, n, 7u + (unsigned)round * 3);
		memcpy(a, ref_a, bytes);	/* host-side stores only */
		memcpy(b, ref_b, bytes);
		memset(c, 0xff, bytes);
		CHECK(launch_vecadd(fn, da, db, dc, n, NULL));
		CHECK(aiDeviceSynchronize());
		bad += vecadd_check(ref_a, ref_b, c, n, who);
	}

	CHECK(aiFree(dc));
	CHECK(aiFree(db));
	CHECK(aiFree(da));
	CHECK(aiModuleUnload(mod));
	free(ref_a);
	free(ref_b);

	if (bad) {
		printf("mapped FAILED: %zu wrong elements, dev_num %d\n", bad,
		       dev);
		return EXIT_FAIL;
	}
	printf("mapped passed: %zu elements, 2 rounds, zero copy, dev_num %d\n",
	       n, dev);
	return EXIT_PASS;
}
