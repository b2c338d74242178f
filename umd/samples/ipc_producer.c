/* SPDX-License-Identifier: MIT */
/*
 * ipc_producer - shares a device buffer through an IPC memory handle.
 *
 *   ipc_producer [-n N]                      two contexts of this process
 *   ipc_producer [-n N] CONSUMER [ARGS...]   another process (ipc_consumer)
 *
 * The buffer is allocated mapped (aiMallocMapped) and filled through its
 * host pointer; its handle goes to the other side.
 *
 * With CONSUMER, the program is started with the handle on its stdin (a
 * pipe: "HANDLE_HEX N"); it checks the bytes and runs saxpy on them in
 * place.  Back here the result is read through the host mapping - the same
 * pages, no copy.  Then the buffer is freed and the consumer is run again
 * with "-refused": the handle must now be refused.  Under the shim the two
 * processes must share the device: aishim serve, and aishim run --connect.
 *
 * Without CONSUMER the same happens between the primary context and a
 * second one (aiCtxCreate); in addition the importer keeps the memory
 * alive after the exporter freed it, and a handle cannot be opened in the
 * context that exported it.
 */
#include <spawn.h>
#include <sys/wait.h>

#include "ipc_common.h"

extern char **environ;

static const char usage[] = "ipc_producer [-n N (default 65536)] [CONSUMER [ARGS...]]";

/* Runs argv with line on its stdin; its exit status (or 128 + signal). */
static int run_consumer(char **argv, const char *line)
{
	posix_spawn_file_actions_t fa;
	int fds[2], status;
	pid_t pid;
	int err;

	if (pipe(fds) != 0) {
		perror("ipc_producer: pipe");
		exit(EXIT_FAIL);
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	posix_spawn_file_actions_addclose(&fa, fds[1]);
	err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[0]);
	if (err) {
		fprintf(stderr, "ipc_producer: %s: %s\n", argv[0], strerror(err));
		exit(EXIT_FAIL);
	}
	if (write(fds[1], line, strlen(line)) != (ssize_t)strlen(line))
		perror("ipc_producer: write to the consumer");
	close(fds[1]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("ipc_producer: waitpid");
			exit(EXIT_FAIL);
		}
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int across_processes(char **cargv, int cargc, size_t n)
{
	size_t bytes = n * sizeof(float), bad;
	char **argv = calloc((size_t)cargc + 2, sizeof(*argv));
	aiIpcMemHandle_t h, h2;
	char line[256];
	void *dy, *host;
	float *y, *out;
	int rc;

	if (!argv)
		return EXIT_FAIL;
	memcpy(argv, cargv, (size_t)cargc * sizeof(*argv));
	CHECK(aiMallocMapped(&dy, &host, bytes));
	y = host;
	for (size_t i = 0; i < n; i++)
		y[i] = ipc_y0(i);
	CHECK(aiIpcGetMemHandle(&h, dy));
	CHECK(aiIpcGetMemHandle(&h2, dy));
	if (memcmp(&h, &h2, sizeof(h)) != 0) {
		fprintf(stderr, "ipc_producer: two handles for one buffer\n");
		return EXIT_FAIL;
	}
	ipc_format(line, sizeof(line), &h, n);

	rc = run_consumer(argv, line);
	if (rc != 0) {
		fprintf(stderr, "ipc_producer: the consumer failed (exit %d)\n", rc);
		return EXIT_FAIL;
	}
	/* The consumer's kernel wrote these pages: read them as they are. */
	bad = ipc_check(y, n, 1, "ipc_producer (host mapping)");
	out = xmalloc(bytes);
	CHECK(aiMemcpy(out, dy, bytes, aiMemcpyDeviceToHost));
	bad += ipc_check(out, n, 1, "ipc_producer (device copy)");
	free(out);
	CHECK(aiFree(dy));

	argv[cargc] = "-refused";
	rc = run_consumer(argv, line);
	if (rc != 0) {
		fprintf(stderr, "ipc_producer: the handle of a freed buffer was "
			"not refused (consumer exit %d)\n", rc);
		return EXIT_FAIL;
	}
	free(argv);
	if (bad) {
		printf("ipc_producer FAILED: %zu elements wrong\n", bad);
		return EXIT_FAIL;
	}
	printf("ipc_producer passed: %zu floats shared with another process, "
	       "handle refused after the free\n", n);
	return EXIT_PASS;
}

static int across_contexts(size_t n)
{
	size_t bytes = n * sizeof(float), bad = 0;
	aiIpcMemHandle_t h;
	aiCtx_t second, third;
	void *dy, *host, *p, *q, *dx;
	float *y, *out = xmalloc(bytes);
	aiError_t e;

	CHECK(aiMallocMapped(&dy, &host, bytes));
	y = host;
	for (size_t i = 0; i < n; i++)
		y[i] = ipc_y0(i);
	CHECK(aiIpcGetMemHandle(&h, dy));
	e = aiIpcOpenMemHandle(&p, h);
	(void)aiGetLastError();
	if (e != aiErrorInvalidValue) {
		fprintf(stderr, "ipc_producer: opening a handle in its own "
			"context gave %s\n", aiGetErrorName(e));
		bad++;
	}

	CHECK(aiCtxCreate(&second, 0));		/* now the current context */
	CHECK(aiIpcOpenMemHandle(&p, h));
	CHECK(aiMemcpy(out, p, bytes, aiMemcpyDeviceToHost));
	bad += ipc_check(out, n, 0, "ipc_producer (second context)");
	dx = ipc_upload_x(n);
	ipc_saxpy(dx, p, n);
	CHECK(aiFree(dx));

	CHECK(aiCtxSetCurrent(NULL));		/* back to the primary context */
	bad += ipc_check(y, n, 1, "ipc_producer (host mapping)");
	CHECK(aiFree(dy));

	CHECK(aiCtxSetCurrent(second));		/* the import keeps the memory */
	memset(out, 0, bytes);
	CHECK(aiMemcpy(out, p, bytes, aiMemcpyDeviceToHost));
	bad += ipc_check(out, n, 1, "ipc_producer (after the exporter's free)");

	CHECK(aiCtxCreate(&third, 0));		/* but nobody can open it again */
	e = aiIpcOpenMemHandle(&q, h);
	(void)aiGetLastError();
	if (e != aiErrorInvalidHandle) {
		fprintf(stderr, "ipc_producer: a handle of freed memory gave "
			"%s, expected aiErrorInvalidHandle\n", aiGetErrorName(e));
		bad++;
	}
	CHECK(aiCtxDestroy(third));
	CHECK(aiCtxSetCurrent(second));
	CHECK(aiIpcCloseMemHandle(p));
	CHECK(aiCtxDestroy(second));
	free(out);
	if (bad) {
		printf("ipc_producer FAILED: %zu checks failed\n", bad);
		return EXIT_FAIL;
	}
	printf("ipc_producer passed: %zu floats shared between two contexts\n", n);
	return EXIT_PASS;
}

int main(int argc, char **argv)
{
	unsigned long long n = 65536;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *v;

		check_help(argv[i], usage);
		if ((v = opt_value(argc, argv, &i, "-n", usage)))
			n = opt_number("-n", v, usage);
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	if (n == 0 || n > UINT32_MAX)
		die_usage(usage, "N must be 1 .. 2^32-1");
	select_device(0);
	if (i < argc)
		return across_processes(argv + i, argc - i, (size_t)n);
	return across_contexts((size_t)n);
}
