/* SPDX-License-Identifier: MIT */
/*
 * faults - device faults seen from a program: each case runs in a context
 * of its own, faults it, and checks what the runtime reports, that the
 * faulted context refuses more work, and that another context of the same
 * device and another device keep working (a vecadd on each).
 *
 *   faults [-c CASE] [-d DEV]
 *
 * CASE: oob_load, oob_store, misaligned, illegal, timeout, or all (the
 * default).  The timeout case waits for the device watchdog (under the
 * shim: AISHIM_WATCHDOG seconds, e.g. AISHIM_WATCHDOG=0.5).  Needs two
 * devices.  One line per case:
 *   oob_load: sync=aiErrorLaunchFailure again=aiErrorLaunchFailure
 *             copy=aiErrorLaunchFailure same_device=ok other_device=ok
 */
#include "common.h"

static const char usage[] =
	"faults [-c oob_load|oob_store|misaligned|illegal|timeout|all] [-d DEV]";

#define SMALL 1024u		/* u32 elements of the small buffer (4 KiB) */

struct fault_case {
	const char *name;
	const char *kernel;
	aiError_t expect;	/* what synchronizing reports */
};

static const struct fault_case cases[] = {
	{ "oob_load", "copy_u32", aiErrorLaunchFailure },
	{ "oob_store", "copy_u32", aiErrorLaunchFailure },
	{ "misaligned", "load_misaligned", aiErrorLaunchFailure },
	{ "illegal", "illegal", aiErrorLaunchFailure },
	{ "timeout", "spin", aiErrorLaunchTimeout },
};

/* A vecadd of n elements in the current context: "ok", or what failed. */
static const char *vecadd_works(size_t n)
{
	static char why[128];
	size_t size = n * sizeof(float);
	float *a = xmalloc(size), *b = xmalloc(size), *c = xmalloc(size);
	void *da = NULL, *db = NULL, *dc = NULL;
	aiModule_t mod = NULL;
	aiFunction_t fn;
	aiError_t e;

	vecadd_inputs(a, b, n, 3);
	memset(c, 0, size);
	snprintf(why, sizeof(why), "ok");
#define TRY(call) do { e = (call); if (e) { snprintf(why, sizeof(why), \
		"%s failed: %s", #call, aiGetErrorName(e)); goto out; } } while (0)
	{
		char path[PATH_MAX + 64];

		kernel_path(path, sizeof(path), "vecadd.aimod");
		TRY(aiModuleLoad(&mod, path));
	}
	TRY(aiModuleGetFunction(&fn, mod, "vecadd"));
	TRY(aiMalloc(&da, size));
	TRY(aiMalloc(&db, size));
	TRY(aiMalloc(&dc, size));
	TRY(aiMemcpy(da, a, size, aiMemcpyHostToDevice));
	TRY(aiMemcpy(db, b, size, aiMemcpyHostToDevice));
	TRY(launch_vecadd(fn, da, db, dc, n, NULL));
	TRY(aiDeviceSynchronize());
	TRY(aiMemcpy(c, dc, size, aiMemcpyDeviceToHost));
	if (vecadd_check(a, b, c, n, "vecadd"))
		snprintf(why, sizeof(why), "wrong results");
#undef TRY
out:
	aiFree(da);
	aiFree(db);
	aiFree(dc);
	if (mod)
		aiModuleUnload(mod);
	(void)aiGetLastError();
	free(a);
	free(b);
	free(c);
	return why;
}

/* Launches the faulting kernel of c in the current context. */
static aiError_t launch_fault(const struct fault_case *c, aiFunction_t fn,
			      void *small, void *big)
{
	aiDim3 one = { 1, 1, 1 };
	unsigned n = 2 * SMALL;
	void *copy_load[] = { &small, &big, &n };
	void *copy_store[] = { &big, &small, &n };
	void *p_args[] = { &small };

	if (strcmp(c->name, "oob_load") == 0)
		return aiLaunchKernel(fn, (aiDim3){ n / 256, 1, 1 },
				      (aiDim3){ 256, 1, 1 }, copy_load, 0, NULL);
	if (strcmp(c->name, "oob_store") == 0)
		return aiLaunchKernel(fn, (aiDim3){ n / 256, 1, 1 },
				      (aiDim3){ 256, 1, 1 }, copy_store, 0, NULL);
	if (strcmp(c->name, "misaligned") == 0)
		return aiLaunchKernel(fn, one, (aiDim3){ 32, 1, 1 }, p_args, 0,
				      NULL);
	return aiLaunchKernel(fn, one, (aiDim3){ 32, 1, 1 }, NULL, 0, NULL);
}

static int run_case(const struct fault_case *c, int dev, int other)
{
	aiCtx_t bad;
	aiModule_t mod;
	aiFunction_t fn;
	void *small, *big;
	unsigned *host = xmalloc(2 * SMALL * sizeof(unsigned));
	aiError_t e_sync, e_again, e_copy, e_destroy;
	const char *same, *far;
	int ok;

	for (unsigned i = 0; i < 2 * SMALL; i++)
		host[i] = i;
	CHECK(aiCtxCreate(&bad, dev));		/* now the current context */
	mod = load_kernel("faults.aimod");
	fn = get_function(mod, c->kernel);
	CHECK(aiMalloc(&small, SMALL * sizeof(unsigned)));
	CHECK(aiMalloc(&big, 2 * SMALL * sizeof(unsigned)));
	CHECK(aiMemcpy(small, host, SMALL * sizeof(unsigned),
		       aiMemcpyHostToDevice));
	CHECK(aiMemcpy(big, host, 2 * SMALL * sizeof(unsigned),
		       aiMemcpyHostToDevice));

	CHECK(launch_fault(c, fn, small, big));	/* queued: fine so far */
	e_sync = aiDeviceSynchronize();
	/* the context is lost: more work is refused */
	e_again = launch_fault(c, fn, small, big);
	e_copy = aiMemcpy(host, big, 16, aiMemcpyDeviceToHost);
	(void)aiGetLastError();

	CHECK(aiCtxSetCurrent(NULL));		/* the device's primary context */
	same = vecadd_works(4096);
	CHECK(aiSetDevice(other));
	far = vecadd_works(4096);
	CHECK(aiSetDevice(dev));

	e_destroy = aiCtxDestroy(bad);
	(void)aiGetLastError();
	free(host);

	printf("%s: sync=%s again=%s copy=%s same_device=%s other_device=%s "
	       "destroy=%s\n", c->name, aiGetErrorName(e_sync),
	       aiGetErrorName(e_again), aiGetErrorName(e_copy), same, far,
	       aiGetErrorName(e_destroy));
	ok = e_sync == c->expect && e_again == aiErrorLaunchFailure &&
	     e_copy == aiErrorLaunchFailure && strcmp(same, "ok") == 0 &&
	     strcmp(far, "ok") == 0;
	if (!ok)
		printf("%s: expected sync=%s, again and copy "
		       "aiErrorLaunchFailure, vecadds ok\n", c->name,
		       aiGetErrorName(c->expect));
	return ok;
}

int main(int argc, char **argv)
{
	const char *which = "all";
	int dev = 0, count, failed = 0, ran = 0;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-c", usage)))
			which = v;
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	count = select_device(dev);
	if (count < 2) {
		fprintf(stderr, "faults needs two devices (found %d)\n", count);
		return EXIT_FAIL;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(which, "all") != 0 && strcmp(which, cases[i].name))
			continue;
		ran++;
		failed += !run_case(&cases[i], dev, (dev + 1) % count);
		fflush(stdout);
	}
	if (!ran)
		die_usage(usage, "unknown case '%s'", which);
	if (failed) {
		printf("Test FAILED: %d of %d cases\n", failed, ran);
		return EXIT_FAIL;
	}
	printf("Test passed\n");
	return EXIT_PASS;
}
