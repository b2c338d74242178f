/* SPDX-License-Identifier: MIT */
/*
 * hello - device printf: kernels print, the runtime writes their output
 * to stdout at the next synchronization, between the program's own lines.
 *
 *   hello [-g BLOCKS (default 2)] [-b THREADS (default 3)] [-d DEV]
 *
 * Prints (for the defaults):
 *   hello: launch 1 (2 x 3 threads)
 *   block 0 thread 0: n=1
 *   ...                         every thread, in thread order, then
 *   block 0 half=0.00           thread 0 of every block
 *   block 1 half=0.50
 *   hello: launch 2 on a stream
 *   block 0 thread 0: n=2
 *   block 0 thread 1: n=2
 *   block 0 half=0.00
 *   Test passed
 */
#include "common.h"

static const char usage[] =
	"hello [-g BLOCKS (default 2)] [-b THREADS (default 3)] [-d DEV]";

static void launch_hello(aiFunction_t fn, unsigned blocks, unsigned threads,
			 unsigned n, aiStream_t stream)
{
	void *args[] = { &n };
	aiDim3 grid = { blocks, 1, 1 }, block = { threads, 1, 1 };

	CHECK(aiLaunchKernel(fn, grid, block, args, 0, stream));
}

int main(int argc, char **argv)
{
	unsigned long long blocks = 2, threads = 3;
	int dev = 0;
	aiStream_t stream;

	for (int i = 1; i < argc; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-g", usage)))
			blocks = opt_number("-g", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-b", usage)))
			threads = opt_number("-b", v, usage);
		else if ((v = opt_value(argc, argv, &i, "-d", usage)))
			dev = (int)opt_number("-d", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (!blocks || blocks > 65535 || !threads || threads > 1024)
		die_usage(usage, "BLOCKS must be 1..65535, THREADS 1..1024");

	select_device(dev);
	aiModule_t mod = load_kernel("hello.aimod");
	aiFunction_t fn = get_function(mod, "hello");

	printf("hello: launch 1 (%llu x %llu threads)\n", blocks, threads);
	launch_hello(fn, (unsigned)blocks, (unsigned)threads, 1, NULL);
	CHECK(aiDeviceSynchronize());

	printf("hello: launch 2 on a stream\n");
	CHECK(aiStreamCreate(&stream));
	launch_hello(fn, 1, 2, 2, stream);
	CHECK(aiStreamSynchronize(stream));
	CHECK(aiStreamDestroy(stream));

	CHECK(aiModuleUnload(mod));
	printf("Test passed\n");
	return EXIT_PASS;
}
