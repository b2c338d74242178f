/* SPDX-License-Identifier: MIT */
/*
 * ipc_consumer - the other half of ipc_producer: reads "HANDLE_HEX N" on
 * stdin, opens the IPC handle, checks the producer's bytes, adds
 * IPC_ALPHA * x to them with the saxpy kernel (in place, in the producer's
 * memory), and closes the handle.  With -refused it checks instead that the
 * handle is refused (the producer freed the buffer): aiErrorInvalidHandle.
 *
 *   ipc_consumer [-refused] < handle
 *
 * Two processes share device memory only when they share the device: under
 * the shim that is a daemon both are connected to (aishim run --connect).
 */
#include "ipc_common.h"

static const char usage[] = "ipc_consumer [-refused] < handle";

int main(int argc, char **argv)
{
	int expect_refused = 0;
	aiIpcMemHandle_t h;
	char line[256];
	size_t n, bad;
	void *dy, *dx;
	float *y;
	aiError_t e;

	for (int i = 1; i < argc; i++) {
		check_help(argv[i], usage);
		if (strcmp(argv[i], "-refused") == 0)
			expect_refused = 1;
		else
			die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	select_device(0);
	if (!fgets(line, sizeof(line), stdin) || !ipc_parse(line, &h, &n))
		die_usage(usage, "stdin: expected a line \"HANDLE_HEX N\"");

	e = aiIpcOpenMemHandle(&dy, h);
	if (expect_refused) {
		if (e != aiErrorInvalidHandle) {
			fprintf(stderr, "ipc_consumer: a handle to freed memory "
				"gave %s, expected aiErrorInvalidHandle\n",
				aiGetErrorName(e));
			return EXIT_FAIL;
		}
		printf("ipc_consumer: handle refused after the free, as "
		       "expected\n");
		return EXIT_PASS;
	}
	if (e == aiErrorInvalidHandle) {
		fprintf(stderr, "ipc_consumer: the handle is not valid on this "
			"device (two processes share memory only through a "
			"shared device: aishim run --connect)\n");
		return EXIT_FAIL;
	}
	CHECK(e);

	y = xmalloc(n * sizeof(float));
	CHECK(aiMemcpy(y, dy, n * sizeof(float), aiMemcpyDeviceToHost));
	bad = ipc_check(y, n, 0, "ipc_consumer (producer's bytes)");
	dx = ipc_upload_x(n);
	ipc_saxpy(dx, dy, n);
	CHECK(aiMemcpy(y, dy, n * sizeof(float), aiMemcpyDeviceToHost));
	bad += ipc_check(y, n, 1, "ipc_consumer (after saxpy)");
	CHECK(aiFree(dx));
	if (aiFree(dy) != aiErrorInvalidValue) {
		fprintf(stderr, "ipc_consumer: aiFree of IPC memory must be "
			"refused\n");
		bad++;
	}
	(void)aiGetLastError();
	CHECK(aiIpcCloseMemHandle(dy));
	free(y);
	if (bad) {
		printf("ipc_consumer FAILED: %zu elements wrong\n", bad);
		return EXIT_FAIL;
	}
	printf("ipc_consumer: read %zu elements of the producer's buffer, "
	       "saxpy in place\n", n);
	return EXIT_PASS;
}
