/* SPDX-License-Identifier: MIT */
/*
 * printf.c - device printf: what kernels printed reaches the program's
 * stdout at synchronization points, as with CUDA.
 *
 * The device collects a launch's output in the context's print buffer and
 * sends it to the driver when the launch is done; PRINTF_READ takes it from
 * the driver, oldest first.  The drain writes through stdio, so device
 * output and the program's own printf()s keep their order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

#define DRAIN_CHUNK (64u << 10)

void aicrt_printf_drain(struct aiCtx *ctx)
{
	struct aicard_printf_read r;
	unsigned long long dropped;
	bool wrote = false;
	char *buf;
	int ret;

	/* no kernel launched yet: nothing can have been printed */
	if (!__atomic_load_n(&ctx->launched, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&ctx->printf_lock);
	/* size 0 asks how much is pending (the common answer: nothing) */
	memset(&r, 0, sizeof(r));
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_PRINTF_READ, &r);
	dropped = ret == 0 ? r.dropped : 0;
	buf = ret == 0 && r.pending ? malloc(DRAIN_CHUNK) : NULL;
	if (!buf) {
		/* nothing there (or no memory: it stays for the next drain) */
		pthread_mutex_unlock(&ctx->printf_lock);
		goto out;
	}
	do {
		memset(&r, 0, sizeof(r));
		r.pointer = (uintptr_t)buf;
		r.size = DRAIN_CHUNK;
		ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_PRINTF_READ, &r);
		if (ret < 0)
			break;
		dropped += r.dropped;
		if (r.size) {
			wrote = true;
			if (fwrite(buf, 1, r.size, stdout) != r.size)
				break;
		}
	} while (r.pending);
	if (wrote)
		fflush(stdout);
	pthread_mutex_unlock(&ctx->printf_lock);
	free(buf);
out:
	if (dropped)
		fprintf(stderr, "[aicard] %llu bytes of device printf output "
			"were lost (driver buffer full)\n", dropped);
}
