/* SPDX-License-Identifier: MIT */
/*
 * multidevice - a vecadd on every device found, each with its own data,
 * all launched before any is waited for; then every result is checked.
 *
 *   multidevice [-n ELEMENTS (default 16384)]
 */
#include "common.h"

static const char usage[] = "multidevice [-n ELEMENTS (default 16384)]";

struct per_dev {
	aiModule_t mod;
	float *a, *b, *c;
	void *da, *db, *dc;
	size_t n;
	aiDeviceProp prop;
};

int main(int argc, char **argv)
{
	unsigned long long nn = 16384;
	struct per_dev *pd;
	int count, failed = 0;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-n", usage)))
			nn = opt_number("-n", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (nn == 0 || nn > (1u << 28))
		die_usage(usage, "ELEMENTS must be 1 .. 2^28");

	count = device_count_or_exit();
	pd = calloc((size_t)count, sizeof(*pd));
	if (!pd)
		return EXIT_FAIL;

	/* queue the work on every device ... */
	for (int d = 0; d < count; d++) {
		struct per_dev *p = &pd[d];
		size_t bytes;

		p->n = (size_t)nn + (size_t)d * 100;	/* sizes differ too */
		bytes = p->n * sizeof(float);
		CHECK(aiSetDevice(d));
		CHECK(aiGetDeviceProperties(&p->prop, d));
		p->mod = load_kernel("vecadd.aimod");
		p->a = xmalloc(bytes);
		p->b = xmalloc(bytes);
		p->c = xmalloc(bytes);
		vecadd_inputs(p->a, p->b, p->n, 1000u + (unsigned)d);
		memset(p->c, 0xff, bytes);
		CHECK(aiMalloc(&p->da, bytes));
		CHECK(aiMalloc(&p->db, bytes));
		CHECK(aiMalloc(&p->dc, bytes));
		CHECK(aiMemcpy(p->da, p->a, bytes, aiMemcpyHostToDevice));
		CHECK(aiMemcpy(p->db, p->b, bytes, aiMemcpyHostToDevice));
		CHECK(launch_vecadd(get_function(p->mod, "vecadd"), p->da,
				    p->db, p->dc, p->n, NULL));
	}

	/* ... then collect and check it */
	for (int d = 0; d < count; d++) {
		struct per_dev *p = &pd[d];
		char who[32];
		size_t bad;

		snprintf(who, sizeof(who), "dev %d", d);
		CHECK(aiSetDevice(d));
		CHECK(aiDeviceSynchronize());
		CHECK(aiMemcpy(p->c, p->dc, p->n * sizeof(float),
			       aiMemcpyDeviceToHost));
		bad = vecadd_check(p->a, p->b, p->c, p->n, who);
		failed += bad != 0;
		printf("dev %d (%s, minor %d): %zu elements %s\n", d,
		       p->prop.name, p->prop.minor, p->n,
		       bad ? "FAILED" : "ok");
		CHECK(aiFree(p->dc));
		CHECK(aiFree(p->db));
		CHECK(aiFree(p->da));
		CHECK(aiModuleUnload(p->mod));
		free(p->a);
		free(p->b);
		free(p->c);
	}
	free(pd);

	if (failed) {
		printf("multidevice FAILED: %d of %d devices wrong\n", failed,
		       count);
		return EXIT_FAIL;
	}
	printf("multidevice passed: %d device%s\n", count, count == 1 ? "" : "s");
	return EXIT_PASS;
}
