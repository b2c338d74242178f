/* SPDX-License-Identifier: MIT */
/*
 * module.c - kernel modules, their functions, and kernel launches.
 *
 * A function's MODULE_FUNCTION answer (index, parameter layout) is fetched
 * once, by aiModuleGetFunction, and kept: a launch is then one SUBMIT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt.h"

/* ---- loading ------------------------------------------------------------- */

static aiError_t load_image(struct aiCtx *ctx, const void *image, size_t size,
			    struct aiModule **out)
{
	struct aicard_module_load ml;
	struct aiModule *mod;
	int ret;

	mod = calloc(1, sizeof(*mod));
	if (!mod)
		return aiErrorOutOfMemory;
	memset(&ml, 0, sizeof(ml));
	ml.image = (uintptr_t)image;
	ml.size = size;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_MODULE_LOAD, &ml);
	if (ret < 0) {
		free(mod);
		return aicrt_from_errno(-ret, aiErrorInvalidImage);
	}
	mod->ctx = ctx;
	mod->handle = ml.handle;
	mod->function_count = ml.function_count;
	if (!aicrt_obj_add(mod, AICRT_OBJ_MODULE)) {
		struct aicard_module_unload mu = { .handle = ml.handle };

		aicrt_ioctl(ctx->fd, AICARD_IOCTL_MODULE_UNLOAD, &mu);
		free(mod);
		return aiErrorOutOfMemory;
	}
	pthread_mutex_lock(&ctx->lock);
	mod->next = ctx->modules;
	ctx->modules = mod;
	pthread_mutex_unlock(&ctx->lock);
	*out = mod;
	return aiSuccess;
}

aiError_t aiModuleLoadData(aiModule_t *mod, const void *image, size_t size)
{
	struct aiCtx *ctx;
	aiError_t e;

	if (!mod || !image)
		return aicrt_ret(aiErrorInvalidValue);
	if (size == 0 || size > AICARD_MODULE_MAX_SIZE)
		return aicrt_ret(aiErrorInvalidImage);
	e = aicrt_current_ctx(&ctx);
	if (!e)
		e = load_image(ctx, image, size, mod);
	return aicrt_ret(e);
}

/* Reads a whole file; the errno-style failure is mapped by the caller. */
static aiError_t read_file(const char *path, void **data, size_t *size)
{
	struct stat st;
	size_t done = 0;
	char *buf;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		AICRT_DBG("module %s: %s", path, aicrt_errno_name(err));
		return (err == ENOENT || err == ENOTDIR) ?
			aiErrorFileNotFound : aiErrorOperatingSystem;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return aiErrorOperatingSystem;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > AICARD_MODULE_MAX_SIZE) {
		close(fd);
		return aiErrorInvalidImage;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		close(fd);
		return aiErrorOutOfMemory;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	if (done != (size_t)st.st_size) {
		free(buf);
		return aiErrorOperatingSystem;
	}
	*data = buf;
	*size = done;
	return aiSuccess;
}

aiError_t aiModuleLoad(aiModule_t *mod, const char *path)
{
	struct aiCtx *ctx;
	void *image = NULL;
	size_t size = 0;
	aiError_t e;

	if (!mod || !path)
		return aicrt_ret(aiErrorInvalidValue);
	e = aicrt_current_ctx(&ctx);
	if (e)
		return aicrt_ret(e);
	e = read_file(path, &image, &size);
	if (e)
		return aicrt_ret(e);
	AICRT_DBG("module %s: %zu bytes", path, size);
	e = load_image(ctx, image, size, mod);	/* the driver copies it */
	free(image);
	return aicrt_ret(e);
}

aiError_t aicrt_module_unload(struct aiModule *mod)
{
	struct aiCtx *ctx = mod->ctx;
	struct aicard_module_unload mu;
	struct aiFunction *fn;
	int ret;

	aicrt_obj_del(mod);
	pthread_mutex_lock(&ctx->lock);
	for (struct aiModule **pp = &ctx->modules; *pp; pp = &(*pp)->next)
		if (*pp == mod) {
			*pp = mod->next;
			break;
		}
	fn = mod->functions;
	mod->functions = NULL;
	pthread_mutex_unlock(&ctx->lock);
	while (fn) {
		struct aiFunction *next = fn->next;

		aicrt_obj_del(fn);
		free(fn);
		fn = next;
	}
	/* launches still queued run the module's code */
	aicrt_ctx_wait(ctx, false);
	memset(&mu, 0, sizeof(mu));
	mu.handle = mod->handle;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_MODULE_UNLOAD, &mu);
	free(mod);
	return ret < 0 ? aicrt_from_errno(-ret, aiErrorInvalidHandle) :
			 aiSuccess;
}

aiError_t aiModuleUnload(aiModule_t mod)
{
	if (!aicrt_obj_valid(mod, AICRT_OBJ_MODULE))
		return aicrt_ret(aiErrorInvalidHandle);
	return aicrt_ret(aicrt_module_unload(mod));
}

/* ---- functions ----------------------------------------------------------- */

static struct aiFunction *find_function(struct aiModule *mod, const char *name)
{
	for (struct aiFunction *f = mod->functions; f; f = f->next)
		if (strncmp(f->info.name, name, AICARD_NAME_LEN) == 0)
			return f;
	return NULL;
}

/* The driver's parameter table must make sense before we pack into it. */
static bool layout_ok(const struct aicard_module_function *mf)
{
	if (mf->param_count > AICARD_MAX_PARAMS)
		return false;
	for (uint32_t i = 0; i < mf->param_count; i++) {
		const struct aicard_param_info *p = &mf->params[i];

		if ((p->size != 4 && p->size != 8) ||
		    (uint32_t)p->offset + p->size > mf->param_size)
			return false;
	}
	return true;
}

aiError_t aiModuleGetFunction(aiFunction_t *fn, aiModule_t mod,
			      const char *name)
{
	struct aiFunction *f, *other;
	struct aiCtx *ctx;
	int ret;

	if (!fn || !name || !name[0])
		return aicrt_ret(aiErrorInvalidValue);
	if (!aicrt_obj_valid(mod, AICRT_OBJ_MODULE))
		return aicrt_ret(aiErrorInvalidHandle);
	if (strlen(name) >= AICARD_NAME_LEN)
		return aicrt_ret(aiErrorNotFound);	/* cannot be there */
	ctx = mod->ctx;

	pthread_mutex_lock(&ctx->lock);
	f = find_function(mod, name);
	pthread_mutex_unlock(&ctx->lock);
	if (f) {
		*fn = f;
		return aiSuccess;
	}

	f = calloc(1, sizeof(*f));
	if (!f)
		return aicrt_ret(aiErrorOutOfMemory);
	f->mod = mod;
	f->info.module = mod->handle;
	strcpy(f->info.name, name);
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_MODULE_FUNCTION, &f->info);
	if (ret < 0) {
		free(f);
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidHandle));
	}
	f->info.name[AICARD_NAME_LEN - 1] = 0;
	if (!layout_ok(&f->info)) {
		AICRT_DBG("function %s: driver gave a bad parameter table",
			  name);
		free(f);
		return aicrt_ret(aiErrorInvalidImage);
	}

	if (!aicrt_obj_add(f, AICRT_OBJ_FUNCTION)) {
		free(f);
		return aicrt_ret(aiErrorOutOfMemory);
	}
	pthread_mutex_lock(&ctx->lock);
	other = find_function(mod, name);	/* another thread was faster */
	if (!other) {
		f->next = mod->functions;
		mod->functions = f;
	}
	pthread_mutex_unlock(&ctx->lock);
	if (other) {
		aicrt_obj_del(f);
		free(f);
		f = other;
	}
	*fn = f;
	return aiSuccess;
}

/* ---- launches ------------------------------------------------------------ */

aiError_t aiLaunchKernel(aiFunction_t fn, aiDim3 grid, aiDim3 block,
			 void **args, size_t sharedMem, aiStream_t stream)
{
	const struct aicard_module_function *mf;
	struct aicard_cmd_launch cmd;
	struct aicard_submit sub;
	uint8_t small[512], *params = small;
	struct aiCtx *ctx;
	struct aiStream *s;
	aiError_t e;
	int ret;

	_Static_assert(sizeof(cmd) == AICARD_CMD_SIZE, "command size");
	if (!aicrt_obj_valid(fn, AICRT_OBJ_FUNCTION))
		return aicrt_ret(aiErrorInvalidHandle);
	ctx = fn->mod->ctx;
	e = aicrt_resolve_stream(stream, &ctx, &s);
	if (e)
		return aicrt_ret(e);
	mf = &fn->info;
	if (!grid.x || !grid.y || !grid.z || !block.x || !block.y ||
	    !block.z || sharedMem > UINT32_MAX ||
	    (mf->param_count && !args))
		return aicrt_ret(aiErrorInvalidValue);

	if (mf->param_size > sizeof(small)) {
		params = malloc(mf->param_size);
		if (!params)
			return aicrt_ret(aiErrorOutOfMemory);
	}
	memset(params, 0, mf->param_size);
	for (uint32_t i = 0; i < mf->param_count; i++) {
		if (!args[i]) {
			e = aiErrorInvalidValue;
			goto out;
		}
		memcpy(params + mf->params[i].offset, args[i],
		       mf->params[i].size);
	}

	memset(&cmd, 0, sizeof(cmd));
	cmd.type = AICARD_CMD_LAUNCH;
	cmd.module = fn->mod->handle;
	cmd.function = mf->index;
	cmd.grid[0] = grid.x;
	cmd.grid[1] = grid.y;
	cmd.grid[2] = grid.z;
	cmd.block[0] = block.x;
	cmd.block[1] = block.y;
	cmd.block[2] = block.z;
	cmd.shared_size = (uint32_t)sharedMem;
	cmd.params_size = mf->param_size;
	cmd.params = (uintptr_t)params;

	memset(&sub, 0, sizeof(sub));
	sub.queue_id = s->queue_id;
	sub.cmd_count = 1;
	sub.cmd_stride = AICARD_CMD_SIZE;
	sub.cmds = (uintptr_t)&cmd;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_SUBMIT, &sub);
	if (ret < 0) {
		e = aicrt_from_errno(-ret, aiErrorInvalidValue);
		goto out;
	}
	aicrt_stream_queued(s, sub.fence, true);
	__atomic_store_n(&ctx->launched, true, __ATOMIC_RELEASE);
out:
	if (params != small)
		free(params);
	return aicrt_ret(e);
}
