/* SPDX-License-Identifier: MIT */
/*
 * ipc_common.h - what ipc_producer and ipc_consumer agree on (header only):
 * the buffer's contents before and after the consumer's saxpy, and how the
 * handle travels (one text line: the handle in hex, a space, the element
 * count).
 */
#ifndef AICARD_SAMPLES_IPC_COMMON_H
#define AICARD_SAMPLES_IPC_COMMON_H

#include "common.h"

#define IPC_ALPHA 2.5f

/* few significant bits: alpha * x + y is exact, fused or not */
static inline float ipc_x(size_t i)
{
	return (float)(i % 200) * 0.5f;
}

static inline float ipc_y0(size_t i)
{
	return (float)((i * 3) % 1000) - 500.0f;
}

/* Wrong elements of y against want(i); prints the first few. */
static inline size_t ipc_check(const float *y, size_t n, int after_saxpy,
			       const char *who)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		float want = after_saxpy ? IPC_ALPHA * ipc_x(i) + ipc_y0(i)
					 : ipc_y0(i);

		if (y[i] != want) {
			if (bad < 5)
				fprintf(stderr, "%s: y[%zu] = %g, expected %g\n",
					who, i, (double)y[i], (double)want);
			bad++;
		}
	}
	return bad;
}

/* "HEX N\n" */
static inline void ipc_format(char *line, size_t size,
			      const aiIpcMemHandle_t *h, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < sizeof(h->reserved) && k + 3 < size; i++)
		k += (size_t)snprintf(line + k, size - k, "%02x",
				      h->reserved[i]);
	snprintf(line + k, size - k, " %zu\n", n);
}

static inline int ipc_parse(const char *line, aiIpcMemHandle_t *h, size_t *n)
{
	unsigned long long count;
	char *end;

	for (size_t i = 0; i < sizeof(h->reserved); i++) {
		unsigned v;

		if (sscanf(line + 2 * i, "%2x", &v) != 1)
			return 0;
		h->reserved[i] = (unsigned char)v;
	}
	line += 2 * sizeof(h->reserved);
	if (*line != ' ')
		return 0;
	count = strtoull(line + 1, &end, 10);
	if (count == 0 || count > UINT32_MAX || (*end && *end != '\n'))
		return 0;
	*n = (size_t)count;
	return 1;
}

/* saxpy(n, IPC_ALPHA, x, y) on the current context, waited for. */
static inline void ipc_saxpy(void *dx, void *dy, size_t n)
{
	aiModule_t mod = load_kernel("saxpy.aimod");
	aiFunction_t fn = get_function(mod, "saxpy");
	unsigned n32 = (unsigned)n;
	float alpha = IPC_ALPHA;
	void *args[] = { &n32, &alpha, &dx, &dy };
	aiDim3 grid = { blocks_for(n, 256), 1, 1 };
	aiDim3 block = { 256, 1, 1 };

	CHECK(aiLaunchKernel(fn, grid, block, args, 0, NULL));
	CHECK(aiDeviceSynchronize());
	CHECK(aiModuleUnload(mod));
}

/* A device buffer of the current context holding ipc_x. */
static inline void *ipc_upload_x(size_t n)
{
	float *x = xmalloc(n * sizeof(float));
	void *dx;

	for (size_t i = 0; i < n; i++)
		x[i] = ipc_x(i);
	CHECK(aiMalloc(&dx, n * sizeof(float)));
	CHECK(aiMemcpy(dx, x, n * sizeof(float), aiMemcpyHostToDevice));
	free(x);
	return dx;
}

#endif /* AICARD_SAMPLES_IPC_COMMON_H */
