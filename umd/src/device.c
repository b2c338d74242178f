/* SPDX-License-Identifier: MIT */
/*
 * device.c - devices, contexts, the calling thread's current context.
 *
 * A context is one open() of /dev/aicardN plus its default queue.  Primary
 * contexts (one per device, shared by the process) are opened on first use;
 * nothing touches a device before the first API call that needs one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

pthread_mutex_t aicrt_global_lock = PTHREAD_MUTEX_INITIALIZER;

static struct aiCtx *primary[AICARD_MAX_DEVICES];	/* global lock */
static struct aicard_device_info info_cache[AICARD_MAX_DEVICES];
static bool info_cached[AICARD_MAX_DEVICES];

static __thread int tls_dev;			/* aiSetDevice */
static __thread struct aiCtx *tls_ctx;		/* aiCtxSetCurrent */

static void dev_path(char *buf, size_t n, int dev)
{
	snprintf(buf, n, "%s%d", AICARD_DEV_PREFIX, dev);
}

int aicrt_device_count(void)
{
	char path[64];
	struct stat st;
	int n = 0;

	while (n < AICARD_MAX_DEVICES) {
		dev_path(path, sizeof(path), n);
		if (stat(path, &st) != 0 || !S_ISCHR(st.st_mode))
			break;
		n++;
	}
	return n;
}

static aiError_t check_dev(int dev)
{
	int count = aicrt_device_count();

	if (count == 0)
		return aiErrorNoDevice;
	if (dev < 0 || dev >= count)
		return aiErrorInvalidDevice;
	return aiSuccess;
}

static aiError_t open_dev(int dev, int *fd_out)
{
	char path[64];
	int fd, err;

	dev_path(path, sizeof(path), dev);
	fd = open(path, O_RDWR | O_CLOEXEC);
	err = fd < 0 ? errno : 0;
	AICRT_DBG("open %s -> %d%s%s", path, fd, err ? " " : "",
		  err ? aicrt_errno_name(err) : "");
	if (fd < 0) {
		switch (err) {
		case ENOENT: case ENODEV: case ENXIO:
			return aiErrorNoDevice;
		case ENOMEM:
			return aiErrorOutOfMemory;
		default:
			return aiErrorOperatingSystem;
		}
	}
	*fd_out = fd;
	return aiSuccess;
}

static void close_dev(int fd)
{
	int ret = close(fd);

	AICRT_DBG("close fd=%d -> %d", fd, ret);
}

/* DEV_QUERY DEVICE_INFO, with the checks a runtime owes its driver. */
static aiError_t query_info(int fd, struct aicard_device_info *info)
{
	uint32_t answer = 0;
	int ret = aicrt_query(fd, AICARD_QUERY_DEVICE_INFO, info, sizeof(*info),
			      &answer);

	if (ret < 0)
		return aicrt_from_errno(-ret, aiErrorInvalidDevice);
	/* an older driver's shorter answer leaves our tail zeroed; the first
	 * fields are what every version has */
	if (answer < offsetof(struct aicard_device_info, vram_size) + 8) {
		AICRT_DBG("device info too short (%u bytes)", answer);
		return aiErrorInvalidDevice;
	}
	if ((info->uapi_version >> 16) != AICARD_UAPI_VERSION_MAJOR) {
		AICRT_DBG("driver speaks UAPI %u.%u, runtime %u.%u: refused",
			  info->uapi_version >> 16,
			  info->uapi_version & 0xffff,
			  AICARD_UAPI_VERSION_MAJOR,
			  AICARD_UAPI_VERSION_MINOR);
		return aiErrorInvalidDevice;
	}
	info->name[sizeof(info->name) - 1] = 0;
	return aiSuccess;
}

static aiError_t ctx_open(int dev, bool is_primary, struct aiCtx **out)
{
	struct aicard_queue_create qc;
	struct aiCtx *ctx;
	aiError_t e;
	int fd, ret;

	e = open_dev(dev, &fd);
	if (e)
		return e;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		close_dev(fd);
		return aiErrorOutOfMemory;
	}
	ctx->fd = fd;
	ctx->dev = dev;
	ctx->primary = is_primary;
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_mutex_init(&ctx->printf_lock, NULL);

	e = query_info(fd, &ctx->info);
	if (e)
		goto fail;

	memset(&qc, 0, sizeof(qc));
	ret = aicrt_ioctl(fd, AICARD_IOCTL_QUEUE_CREATE, &qc);
	if (ret < 0) {
		e = aicrt_from_errno(-ret, aiErrorInvalidValue);
		goto fail;
	}
	ctx->default_stream.ctx = ctx;
	ctx->default_stream.queue_id = qc.queue_id;
	ctx->default_stream.is_default = true;

	if (!aicrt_obj_add(ctx, AICRT_OBJ_CTX)) {
		e = aiErrorOutOfMemory;
		goto fail;
	}
	AICRT_DBG("context %p: dev %d%s fd=%d \"%s\" fw %u.%u vram 0x%llx",
		  (void *)ctx, dev, is_primary ? " (primary)" : "", fd,
		  ctx->info.name, ctx->info.fw_version >> 16,
		  ctx->info.fw_version & 0xffff,
		  (unsigned long long)ctx->info.vram_size);
	*out = ctx;
	return aiSuccess;

fail:
	close_dev(fd);	/* the driver drops the queue with the context */
	pthread_mutex_destroy(&ctx->printf_lock);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
	return e;
}

static aiError_t ctx_close(struct aiCtx *ctx)
{
	struct aicard_queue_destroy qd;
	aiError_t first, e;
	int ret;

	aicrt_obj_del(ctx);
	/* like cuCtxDestroy: let queued work finish first */
	first = aicrt_ctx_wait(ctx, false);
	aicrt_printf_drain(ctx);
	aicrt_hostfn_shutdown(ctx);

	while (ctx->modules) {
		e = aicrt_module_unload(ctx->modules);
		first = first ? first : e;
	}
	while (ctx->events) {
		e = aicrt_event_destroy(ctx->events);
		first = first ? first : e;
	}
	while (ctx->streams) {
		e = aicrt_stream_destroy(ctx->streams);
		first = first ? first : e;
	}
	e = aicrt_free_all(ctx);
	first = first ? first : e;

	memset(&qd, 0, sizeof(qd));
	qd.queue_id = ctx->default_stream.queue_id;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_QUEUE_DESTROY, &qd);
	if (ret < 0 && !first)
		first = aicrt_from_errno(-ret, aiErrorInvalidHandle);

	close_dev(ctx->fd);
	free(ctx->allocs);
	pthread_mutex_destroy(&ctx->printf_lock);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
	return first;
}

/* ---- current context ----------------------------------------------------- */

static aiError_t get_primary(int dev, struct aiCtx **out)
{
	aiError_t e = aiSuccess;

	if (dev < 0 || dev >= AICARD_MAX_DEVICES)
		return aiErrorInvalidDevice;
	pthread_mutex_lock(&aicrt_global_lock);
	if (!primary[dev]) {
		e = check_dev(dev);
		if (!e)
			e = ctx_open(dev, true, &primary[dev]);
		if (!e) {
			info_cache[dev] = primary[dev]->info;
			info_cached[dev] = true;
		}
	}
	*out = primary[dev];
	pthread_mutex_unlock(&aicrt_global_lock);
	return e;
}

aiError_t aicrt_current_ctx(struct aiCtx **ctx)
{
	if (tls_ctx) {
		if (!aicrt_obj_valid(tls_ctx, AICRT_OBJ_CTX)) {
			tls_ctx = NULL;	/* destroyed by another thread */
			return aiErrorInvalidHandle;
		}
		*ctx = tls_ctx;
		return aiSuccess;
	}
	return get_primary(tls_dev, ctx);
}

aiError_t aicrt_resolve_stream(aiStream_t stream, struct aiCtx **ctx_out,
			       struct aiStream **out)
{
	if (!stream) {
		struct aiCtx *ctx = *ctx_out;
		aiError_t e = ctx ? aiSuccess : aicrt_current_ctx(&ctx);

		if (e)
			return e;
		*ctx_out = ctx;
		*out = &ctx->default_stream;
		return aiSuccess;
	}
	if (!aicrt_obj_valid(stream, AICRT_OBJ_STREAM))
		return aiErrorInvalidHandle;
	if (*ctx_out && stream->ctx != *ctx_out)
		return aiErrorInvalidHandle;	/* another context's stream */
	*ctx_out = stream->ctx;
	*out = stream;
	return aiSuccess;
}

/* ---- public: devices ----------------------------------------------------- */

aiError_t aiGetDeviceCount(int *count)
{
	int n;

	if (!count)
		return aicrt_ret(aiErrorInvalidValue);
	n = aicrt_device_count();
	*count = n;
	AICRT_DBG("device count %d", n);
	return aicrt_ret(n ? aiSuccess : aiErrorNoDevice);
}

aiError_t aiSetDevice(int dev)
{
	aiError_t e = check_dev(dev);

	if (e)
		return aicrt_ret(e);
	tls_dev = dev;
	tls_ctx = NULL;
	return aiSuccess;
}

aiError_t aiGetDevice(int *dev)
{
	if (!dev)
		return aicrt_ret(aiErrorInvalidValue);
	if (tls_ctx && aicrt_obj_valid(tls_ctx, AICRT_OBJ_CTX))
		*dev = tls_ctx->dev;
	else
		*dev = tls_dev;
	return aiSuccess;
}

aiError_t aiGetDeviceProperties(aiDeviceProp *prop, int dev)
{
	struct aicard_device_info info;
	aiError_t e;

	if (!prop)
		return aicrt_ret(aiErrorInvalidValue);
	e = check_dev(dev);
	if (e)
		return aicrt_ret(e);

	pthread_mutex_lock(&aicrt_global_lock);
	if (!info_cached[dev]) {
		/* no context yet: ask through a short-lived open */
		int fd;

		e = open_dev(dev, &fd);
		if (!e) {
			e = query_info(fd, &info_cache[dev]);
			close_dev(fd);
		}
		info_cached[dev] = !e;
	}
	info = info_cache[dev];
	pthread_mutex_unlock(&aicrt_global_lock);
	if (e)
		return aicrt_ret(e);

	memset(prop, 0, sizeof(*prop));
	memcpy(prop->name, info.name, sizeof(prop->name));
	prop->name[sizeof(prop->name) - 1] = 0;
	prop->totalGlobalMem = info.vram_size;
	prop->multiProcessorCount = (int)info.core_count;
	prop->warpSize = (int)info.warp_size;
	prop->maxThreadsPerBlock = (int)info.max_threads_per_block;
	prop->sharedMemPerBlock = info.max_shared_per_block;
	for (int i = 0; i < 3; i++) {
		prop->maxGridSize[i] = (int)info.max_grid_dim[i];
		prop->maxThreadsDim[i] = (int)info.max_block_dim[i];
	}
	prop->clockRate = info.timestamp_freq;
	prop->fwVersionMajor = (int)(info.fw_version >> 16);
	prop->fwVersionMinor = (int)(info.fw_version & 0xffff);
	prop->uapiVersionMajor = (int)(info.uapi_version >> 16);
	prop->uapiVersionMinor = (int)(info.uapi_version & 0xffff);
	prop->minor = (int)info.minor;
	return aiSuccess;
}

aiError_t aiDeviceSynchronize(void)
{
	struct aiCtx *ctx;
	aiError_t e = aicrt_current_ctx(&ctx);

	if (!e) {
		e = aicrt_ctx_wait(ctx, true);
		aicrt_printf_drain(ctx);
	}
	return aicrt_ret(e);
}

/* ---- public: contexts ---------------------------------------------------- */

aiError_t aiCtxCreate(aiCtx_t *ctx, int dev)
{
	aiError_t e;

	if (!ctx)
		return aicrt_ret(aiErrorInvalidValue);
	e = check_dev(dev);
	if (!e)
		e = ctx_open(dev, false, ctx);
	if (e)
		return aicrt_ret(e);
	tls_ctx = *ctx;
	return aiSuccess;
}

aiError_t aiCtxDestroy(aiCtx_t ctx)
{
	if (!aicrt_obj_valid(ctx, AICRT_OBJ_CTX))
		return aicrt_ret(aiErrorInvalidHandle);
	if (ctx->primary)
		return aicrt_ret(aiErrorInvalidValue);
	if (tls_ctx == ctx)
		tls_ctx = NULL;
	return aicrt_ret(ctx_close(ctx));
}

aiError_t aiCtxSetCurrent(aiCtx_t ctx)
{
	if (ctx && !aicrt_obj_valid(ctx, AICRT_OBJ_CTX))
		return aicrt_ret(aiErrorInvalidHandle);
	tls_ctx = ctx;
	return aiSuccess;
}

aiError_t aiCtxGetCurrent(aiCtx_t *ctx)
{
	if (!ctx)
		return aicrt_ret(aiErrorInvalidValue);
	if (tls_ctx && aicrt_obj_valid(tls_ctx, AICRT_OBJ_CTX)) {
		*ctx = tls_ctx;
		return aiSuccess;
	}
	pthread_mutex_lock(&aicrt_global_lock);
	*ctx = (tls_dev >= 0 && tls_dev < AICARD_MAX_DEVICES) ?
		primary[tls_dev] : NULL;
	pthread_mutex_unlock(&aicrt_global_lock);
	return aiSuccess;
}
