/* SPDX-License-Identifier: MIT */
/*
 * memory.c - device allocations (buffer objects), mapped buffers, copies
 * and fills.
 *
 * Each context keeps its allocations in an array sorted by device address:
 * va -> (BO handle, size, host mapping).  A device pointer is the BO's
 * gpu_va; copies and fills pass device addresses straight to the driver,
 * which checks them against the context's VM.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rt.h"

/* ---- the allocation table (ctx->lock held) ------------------------------- */

/* index of the first entry with va >= key */
static size_t lower_bound(const struct aiCtx *ctx, uint64_t key)
{
	size_t lo = 0, hi = ctx->nallocs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ctx->allocs[mid].va < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool table_insert(struct aiCtx *ctx, const struct aicrt_alloc *a)
{
	size_t i;

	if (ctx->nallocs == ctx->cap_allocs) {
		size_t ncap = ctx->cap_allocs ? ctx->cap_allocs * 2 : 16;
		struct aicrt_alloc *n = realloc(ctx->allocs,
						ncap * sizeof(*n));

		if (!n)
			return false;
		ctx->allocs = n;
		ctx->cap_allocs = ncap;
	}
	i = lower_bound(ctx, a->va);
	memmove(&ctx->allocs[i + 1], &ctx->allocs[i],
		(ctx->nallocs - i) * sizeof(*a));
	ctx->allocs[i] = *a;
	ctx->nallocs++;
	return true;
}

/* Removes the allocation starting exactly at va into *out. */
static bool table_take(struct aiCtx *ctx, uint64_t va, struct aicrt_alloc *out)
{
	size_t i = lower_bound(ctx, va);

	if (i == ctx->nallocs || ctx->allocs[i].va != va)
		return false;
	*out = ctx->allocs[i];
	memmove(&ctx->allocs[i], &ctx->allocs[i + 1],
		(ctx->nallocs - i - 1) * sizeof(*out));
	ctx->nallocs--;
	return true;
}

/* ---- buffer objects ------------------------------------------------------ */

static size_t host_page(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > AICARD_PAGE_SIZE ? (size_t)p : AICARD_PAGE_SIZE;
}

static int bo_destroy(struct aiCtx *ctx, uint32_t handle)
{
	struct aicard_bo_destroy d;

	memset(&d, 0, sizeof(d));
	d.handle = handle;
	return aicrt_ioctl(ctx->fd, AICARD_IOCTL_BO_DESTROY, &d);
}

static void unmap(struct aicrt_alloc *a)
{
	if (a->host) {
		int ret = munmap(a->host, a->map_size);

		AICRT_DBG("munmap %p size=0x%zx -> %d", a->host, a->map_size,
			  ret);
		a->host = NULL;
	}
}

/* BO_CREATE (+ mmap when host != NULL) and record the allocation. */
static aiError_t alloc(struct aiCtx *ctx, size_t size, void **dev, void **host)
{
	struct aicard_bo_create c;
	struct aicrt_alloc a;
	int ret;

	memset(&c, 0, sizeof(c));
	c.size = size;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_BO_CREATE, &c);
	if (ret < 0)
		return aicrt_from_errno(-ret, aiErrorInvalidValue);

	memset(&a, 0, sizeof(a));
	a.va = c.gpu_va;
	a.size = size;
	a.handle = c.handle;

	if (host) {
		struct aicard_bo_mmap_offset mo;
		size_t page = host_page();
		void *p;

		memset(&mo, 0, sizeof(mo));
		mo.handle = c.handle;
		ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_BO_MMAP_OFFSET, &mo);
		if (ret < 0) {
			bo_destroy(ctx, c.handle);
			return aicrt_from_errno(-ret, aiErrorInvalidValue);
		}
		a.map_size = (size + page - 1) / page * page;
		p = mmap(NULL, a.map_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 ctx->fd, (off_t)mo.offset);
		ret = p == MAP_FAILED ? errno : 0;
		AICRT_DBG("mmap fd=%d offset=0x%llx size=0x%zx -> %p%s%s",
			  ctx->fd, (unsigned long long)mo.offset, a.map_size,
			  p, ret ? " " : "", ret ? aicrt_errno_name(ret) : "");
		if (p == MAP_FAILED) {
			bo_destroy(ctx, c.handle);
			return ret == ENOMEM ? aiErrorOutOfMemory :
					       aiErrorOperatingSystem;
		}
		a.host = p;
	}

	pthread_mutex_lock(&ctx->lock);
	ret = table_insert(ctx, &a);
	pthread_mutex_unlock(&ctx->lock);
	if (!ret) {
		unmap(&a);
		bo_destroy(ctx, c.handle);
		return aiErrorOutOfMemory;
	}
	*dev = (void *)(uintptr_t)a.va;
	if (host)
		*host = a.host;
	return aiSuccess;
}

aiError_t aiMalloc(void **devPtr, size_t size)
{
	struct aiCtx *ctx;
	aiError_t e;

	if (!devPtr)
		return aicrt_ret(aiErrorInvalidValue);
	if (size == 0) {
		*devPtr = NULL;
		return aiSuccess;
	}
	e = aicrt_current_ctx(&ctx);
	if (!e)
		e = alloc(ctx, size, devPtr, NULL);
	return aicrt_ret(e);
}

aiError_t aiMallocMapped(void **devPtr, void **hostPtr, size_t size)
{
	struct aiCtx *ctx;
	aiError_t e;

	if (!devPtr || !hostPtr)
		return aicrt_ret(aiErrorInvalidValue);
	if (size == 0) {
		*devPtr = *hostPtr = NULL;
		return aiSuccess;
	}
	e = aicrt_current_ctx(&ctx);
	if (!e)
		e = alloc(ctx, size, devPtr, hostPtr);
	return aicrt_ret(e);
}

aiError_t aiFree(void *devPtr)
{
	struct aicrt_alloc a;
	struct aiCtx *ctx;
	bool found, imported;
	aiError_t e;
	size_t i;
	int ret;

	if (!devPtr)
		return aiSuccess;
	e = aicrt_current_ctx(&ctx);
	if (e)
		return aicrt_ret(e);
	pthread_mutex_lock(&ctx->lock);
	i = lower_bound(ctx, (uintptr_t)devPtr);
	imported = i < ctx->nallocs && ctx->allocs[i].va == (uintptr_t)devPtr &&
		   ctx->allocs[i].imported;
	found = !imported && table_take(ctx, (uintptr_t)devPtr, &a);
	pthread_mutex_unlock(&ctx->lock);
	if (imported) {
		AICRT_DBG("free %p: opened from an IPC handle, close it with "
			  "aiIpcCloseMemHandle", devPtr);
		return aicrt_ret(aiErrorInvalidValue);
	}
	if (!found) {
		AICRT_DBG("free %p: not an allocation of this context", devPtr);
		return aicrt_ret(aiErrorInvalidDevicePointer);
	}
	/* like cudaFree: work queued before the free may still use it */
	aicrt_ctx_wait(ctx, false);
	unmap(&a);
	ret = bo_destroy(ctx, a.handle);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret,
						  aiErrorInvalidDevicePointer));
	return aiSuccess;
}

aiError_t aicrt_free_all(struct aiCtx *ctx)
{
	aiError_t first = aiSuccess;

	pthread_mutex_lock(&ctx->lock);
	while (ctx->nallocs) {
		struct aicrt_alloc a = ctx->allocs[--ctx->nallocs];
		int ret;

		pthread_mutex_unlock(&ctx->lock);
		unmap(&a);
		ret = bo_destroy(ctx, a.handle);
		if (ret < 0 && !first)
			first = aicrt_from_errno(-ret,
						 aiErrorInvalidDevicePointer);
		pthread_mutex_lock(&ctx->lock);
	}
	pthread_mutex_unlock(&ctx->lock);
	return first;
}

aiError_t aiMemGetInfo(size_t *free_bytes, size_t *total)
{
	struct aicard_mem_info mi;
	struct aiCtx *ctx;
	aiError_t e;
	int ret;

	if (!free_bytes || !total)
		return aicrt_ret(aiErrorInvalidValue);
	e = aicrt_current_ctx(&ctx);
	if (e)
		return aicrt_ret(e);
	ret = aicrt_query(ctx->fd, AICARD_QUERY_MEM_INFO, &mi, sizeof(mi),
			  NULL);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidValue));
	*total = mi.vram_size;
	*free_bytes = mi.vram_used < mi.vram_size ?
		mi.vram_size - mi.vram_used : 0;
	return aiSuccess;
}

/* ---- copies and fills ---------------------------------------------------- */

/* Driver errors of COPY / MEMSET: everything but the addresses is ours and
 * checked, so EINVAL means a device address outside the context's VM (or
 * misaligned), EFAULT a bad host pointer. */
static aiError_t copy_errno(int err)
{
	return aicrt_from_errno(err, aiErrorInvalidDevicePointer);
}

static aiError_t copy(struct aiStream *s, void *dst, const void *src,
		      size_t n, aiMemcpyKind kind, bool sync)
{
	struct aicard_copy c;
	int ret;

	memset(&c, 0, sizeof(c));
	switch (kind) {
	case aiMemcpyHostToDevice:	c.kind = AICARD_COPY_HTOD; break;
	case aiMemcpyDeviceToHost:	c.kind = AICARD_COPY_DTOH; break;
	case aiMemcpyDeviceToDevice:	c.kind = AICARD_COPY_DTOD; break;
	default:			return aiErrorInvalidValue;
	}
	c.queue_id = s->queue_id;
	c.dst = (uintptr_t)dst;
	c.src = (uintptr_t)src;
	c.size = n;
	c.flags = sync ? AICARD_COPY_SYNC : 0;
	ret = aicrt_ioctl(s->ctx->fd, AICARD_IOCTL_COPY, &c);
	if (ret < 0)
		return copy_errno(-ret);
	if (sync)
		return aicrt_stream_sync_done(s, c.fence);
	aicrt_stream_queued(s, c.fence, true);
	return aiSuccess;
}

static aiError_t fill(struct aiStream *s, void *dst, uint32_t elem_size,
		      uint32_t value, size_t count, bool sync)
{
	struct aicard_memset m;
	int ret;

	memset(&m, 0, sizeof(m));
	m.queue_id = s->queue_id;
	m.elem_size = elem_size;
	m.dst = (uintptr_t)dst;
	m.count = count;
	m.value = value;
	m.flags = sync ? AICARD_COPY_SYNC : 0;
	ret = aicrt_ioctl(s->ctx->fd, AICARD_IOCTL_MEMSET, &m);
	if (ret < 0)
		return copy_errno(-ret);
	if (sync)
		return aicrt_stream_sync_done(s, m.fence);
	aicrt_stream_queued(s, m.fence, true);
	return aiSuccess;
}

aiError_t aiMemcpy(void *dst, const void *src, size_t n, aiMemcpyKind kind)
{
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(NULL, &ctx, &s);

	if (!e) {
		e = copy(s, dst, src, n, kind, true);
		aicrt_printf_drain(ctx);
	}
	return aicrt_ret(e);
}

aiError_t aiMemcpyAsync(void *dst, const void *src, size_t n,
			aiMemcpyKind kind, aiStream_t stream)
{
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(stream, &ctx, &s);

	if (!e)
		e = copy(s, dst, src, n, kind, false);
	return aicrt_ret(e);
}

aiError_t aiMemset(void *devPtr, int value, size_t n)
{
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(NULL, &ctx, &s);

	if (!e)
		e = fill(s, devPtr, 1, (uint8_t)value, n, true);
	return aicrt_ret(e);
}

aiError_t aiMemsetAsync(void *devPtr, int value, size_t n, aiStream_t stream)
{
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(stream, &ctx, &s);

	if (!e)
		e = fill(s, devPtr, 1, (uint8_t)value, n, false);
	return aicrt_ret(e);
}

aiError_t aiMemsetD32(void *devPtr, unsigned value, size_t count)
{
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(NULL, &ctx, &s);

	if (!e && ((uintptr_t)devPtr & 3))
		e = aiErrorInvalidValue;
	if (!e)
		e = fill(s, devPtr, 4, value, count, true);
	return aicrt_ret(e);
}

/* ---- IPC memory handles -------------------------------------------------- */

/* The handle's bytes: the driver's token, then zeros (room to grow). */
aiError_t aiIpcGetMemHandle(aiIpcMemHandle_t *handle, void *devPtr)
{
	struct aicard_ipc_export x;
	struct aiCtx *ctx;
	uint32_t bo = 0;
	bool found = false;
	aiError_t e;
	size_t i;
	int ret;

	if (!handle || !devPtr)
		return aicrt_ret(aiErrorInvalidValue);
	e = aicrt_current_ctx(&ctx);
	if (e)
		return aicrt_ret(e);
	pthread_mutex_lock(&ctx->lock);
	i = lower_bound(ctx, (uintptr_t)devPtr);
	if (i < ctx->nallocs && ctx->allocs[i].va == (uintptr_t)devPtr) {
		bo = ctx->allocs[i].handle;
		found = true;
	}
	pthread_mutex_unlock(&ctx->lock);
	if (!found)
		return aicrt_ret(aiErrorInvalidDevicePointer);
	memset(&x, 0, sizeof(x));
	x.handle = bo;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_IPC_EXPORT, &x);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret,
						  aiErrorInvalidDevicePointer));
	memset(handle, 0, sizeof(*handle));
	memcpy(handle->reserved, x.token, sizeof(x.token));
	return aiSuccess;
}

aiError_t aiIpcOpenMemHandle(void **devPtr, aiIpcMemHandle_t handle)
{
	struct aicard_ipc_import m;
	struct aicrt_alloc a;
	struct aiCtx *ctx;
	aiError_t e;
	int ret;

	if (!devPtr)
		return aicrt_ret(aiErrorInvalidValue);
	e = aicrt_current_ctx(&ctx);
	if (e)
		return aicrt_ret(e);
	memset(&m, 0, sizeof(m));
	memcpy(m.token, handle.reserved, sizeof(m.token));
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_IPC_IMPORT, &m);
	if (ret == -ENOENT)
		return aicrt_ret(aiErrorInvalidHandle);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidValue));
	memset(&a, 0, sizeof(a));
	a.va = m.gpu_va;
	a.size = m.size;
	a.handle = m.handle;
	a.imported = true;
	pthread_mutex_lock(&ctx->lock);
	ret = table_insert(ctx, &a);
	pthread_mutex_unlock(&ctx->lock);
	if (!ret) {
		bo_destroy(ctx, m.handle);
		return aicrt_ret(aiErrorOutOfMemory);
	}
	*devPtr = (void *)(uintptr_t)a.va;
	return aiSuccess;
}

aiError_t aiIpcCloseMemHandle(void *devPtr)
{
	struct aicrt_alloc a;
	struct aiCtx *ctx;
	bool found = false;
	aiError_t e;
	size_t i;
	int ret;

	if (!devPtr)
		return aicrt_ret(aiErrorInvalidDevicePointer);
	e = aicrt_current_ctx(&ctx);
	if (e)
		return aicrt_ret(e);
	pthread_mutex_lock(&ctx->lock);
	i = lower_bound(ctx, (uintptr_t)devPtr);
	if (i < ctx->nallocs && ctx->allocs[i].va == (uintptr_t)devPtr &&
	    ctx->allocs[i].imported)
		found = table_take(ctx, (uintptr_t)devPtr, &a);
	pthread_mutex_unlock(&ctx->lock);
	if (!found) {
		AICRT_DBG("ipc close %p: not opened from an IPC handle in this "
			  "context", devPtr);
		return aicrt_ret(aiErrorInvalidDevicePointer);
	}
	aicrt_ctx_wait(ctx, false);
	ret = bo_destroy(ctx, a.handle);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret,
						  aiErrorInvalidDevicePointer));
	return aiSuccess;
}
