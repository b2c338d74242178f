/* SPDX-License-Identifier: MIT */
/*
 * workers - N worker processes launching kernels on one device at the same
 * time, each checking its own results (vecadd on inputs of its own).
 *
 *   workers [-n N (default 4)] [-i ITERS (default 5)] [-s ELEMENTS (default 50000)] [-d DEV]
 *
 * The parent forks the workers before touching any device, lets them all
 * start at once (they wait on a pipe), and passes if every one of them
 * exits 0.  Under the shim each worker process is a client of its own: with
 * the embedded driver each has a device of its own, with a daemon (aishim
 * run --connect) they really share one, as processes share a GPU.
 */
#include <sys/wait.h>

#include "common.h"

static const char usage[] =
	"workers [-n N (default 4)] [-i ITERS (default 5)] [-s ELEMENTS (default 50000)] [-d DEV]";

static int work(int idx, int iters, size_t n, int dev)
{
	size_t bytes = n * sizeof(float), bad = 0;
	float *a = xmalloc(bytes), *b = xmalloc(bytes), *c = xmalloc(bytes);
	void *da, *db, *dc;
	char who[64];

	CHECK(aiSetDevice(dev));
	aiModule_t mod = load_kernel("vecadd.aimod");
	aiFunction_t fn = get_function(mod, "vecadd");

	CHECK(aiMalloc(&da, bytes));
	CHECK(aiMalloc(&db, bytes));
	CHECK(aiMalloc(&dc, bytes));
	for (int it = 0; it < iters; it++) {
		vecadd_inputs(a, b, n, (unsigned)(idx * 7919 + it));
		memset(c, 0xff, bytes);
		CHECK(aiMemcpy(da, a, bytes, aiMemcpyHostToDevice));
		CHECK(aiMemcpy(db, b, bytes, aiMemcpyHostToDevice));
		CHECK(launch_vecadd(fn, da, db, dc, n, NULL));
		CHECK(aiStreamSynchronize(NULL));
		CHECK(aiMemcpy(c, dc, bytes, aiMemcpyDeviceToHost));
		snprintf(who, sizeof(who), "worker %d (pid %d) iter %d", idx,
			 (int)getpid(), it);
		bad += vecadd_check(a, b, c, n, who);
	}
	CHECK(aiFree(dc));
	CHECK(aiFree(db));
	CHECK(aiFree(da));
	CHECK(aiModuleUnload(mod));
	free(a);
	free(b);
	free(c);
	printf("worker %d (pid %d): %d launches, %s\n", idx, (int)getpid(),
	       iters, bad ? "WRONG RESULTS" : "all correct");
	fflush(stdout);
	return bad ? EXIT_FAIL : EXIT_PASS;
}

int main(int argc, char **argv)
{
	unsigned long long nworkers = 4, iters = 5, n = 50000, dev = 0;
	int start[2], failed = 0;
	pid_t *pids;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-n", usage)))
			nworkers = opt_number("-n", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-i", usage)))
			iters = opt_number("-i", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-s", usage)))
			n = opt_number("-s", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (nworkers < 1 || nworkers > 64 || iters < 1 || iters > 100000 ||
	    n < 1 || n > (1u << 26))
		die_usage(usage, "N 1..64, ITERS 1..100000, ELEMENTS 1..2^26");
	/* only stat()s the nodes: no device is open when the workers fork */
	if ((int)dev >= device_count_or_exit()) {
		fprintf(stderr, "device %llu does not exist\n", dev);
		return EXIT_FAIL;
	}
	pids = calloc(nworkers, sizeof(*pids));
	if (!pids || pipe(start) != 0) {
		perror("workers");
		return EXIT_FAIL;
	}
	fflush(stdout);
	for (unsigned k = 0; k < nworkers; k++) {
		pids[k] = fork();
		if (pids[k] < 0) {
			perror("workers: fork");
			return EXIT_FAIL;
		}
		if (pids[k] == 0) {
			char c;

			close(start[1]);
			/* wait for the start: the parent closes its end */
			while (read(start[0], &c, 1) < 0 && errno == EINTR)
				;
			close(start[0]);
			exit(work((int)k, (int)iters, (size_t)n, (int)dev));
		}
	}
	close(start[0]);
	close(start[1]);		/* go */
	for (unsigned k = 0; k < nworkers; k++) {
		int status;

		while (waitpid(pids[k], &status, 0) < 0) {
			if (errno != EINTR) {
				perror("workers: waitpid");
				return EXIT_FAIL;
			}
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "worker %u (pid %d) failed: %s %d\n", k,
				(int)pids[k], WIFEXITED(status) ? "exit" : "signal",
				WIFEXITED(status) ? WEXITSTATUS(status) :
						    WTERMSIG(status));
			failed++;
		}
	}
	free(pids);
	if (failed) {
		printf("workers FAILED: %d of %llu workers\n", failed, nworkers);
		return EXIT_FAIL;
	}
	printf("workers passed: %llu processes x %llu launches on device %llu\n",
	       nworkers, iters, dev);
	return EXIT_PASS;
}
