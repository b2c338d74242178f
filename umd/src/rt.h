/* SPDX-License-Identifier: MIT */
/*
 * rt.h - private to libaicard: the objects behind the public handles and
 * the helpers the API files share.
 *
 * Every symbol here is hidden (-fvisibility=hidden) and carries the aicrt_
 * prefix: the library must never bind to a same-named symbol of whatever
 * else is loaded (an LD_PRELOADed shim, for one).
 *
 * Locking
 *   aicrt_global_lock   primary contexts, the device-info cache.
 *   registry lock       (registry.c) the set of live handles.
 *   ctx->lock           that context's tables (allocations, lists of
 *                       streams / events / modules, stream fences).
 *   Never held across a driver call that can block (WAIT, EVENT_WAIT, a
 *   synchronous COPY); never two at once except global -> registry.
 */
#ifndef AICARD_RT_H
#define AICARD_RT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "aicard.h"
#include "aicard_uapi.h"

#define AICRT_HIDDEN __attribute__((visibility("hidden")))

/* ---- objects ------------------------------------------------------------- */

struct aicrt_alloc {
	uint64_t va;		/* gpu_va, the device pointer */
	uint64_t size;		/* as asked for */
	uint32_t handle;	/* BO handle */
	void *host;		/* aiMallocMapped: the host mapping, else NULL */
	size_t map_size;
	bool imported;		/* aiIpcOpenMemHandle: closed by aiIpcCloseMemHandle */
};

/* A stream is a driver queue plus what the runtime knows of its fences.
 * All fields but ctx/queue_id are guarded by ctx->lock. */
struct aiStream {
	struct aiCtx *ctx;
	uint32_t queue_id;
	uint64_t last_fence;	/* fence of the last thing queued, 0: none */
	uint64_t async_fence;	/* last fence of work that may fault */
	uint64_t checked;	/* completion and status known up to here */
	bool is_default;
	struct aiStream *next;	/* ctx->streams (default stream excluded) */
};

struct aiEvent {
	struct aiCtx *ctx;
	uint32_t handle;
	bool recorded;		/* ever passed to aiEventRecord */
	struct aiEvent *next;
};

struct aiFunction {
	struct aiModule *mod;
	struct aicard_module_function info;	/* MODULE_FUNCTION's answer */
	struct aiFunction *next;
};

struct aiModule {
	struct aiCtx *ctx;
	uint32_t handle;
	uint32_t function_count;
	struct aiFunction *functions;	/* looked up so far */
	struct aiModule *next;
};

/* A host function queued with aiLaunchHostFunc, waiting for its
 * CMD_NOTIFY interrupt (ctx->lock). */
struct aicrt_hostfn {
	uint64_t cookie;	/* the CMD_NOTIFY value, never 0 */
	aiHostFn_t fn;
	void *data;
	uint32_t event;		/* the stream waits on it until fn returned */
	struct aicrt_hostfn *next;
};

struct aiCtx {
	int fd;
	int dev;
	bool primary;
	struct aicard_device_info info;
	pthread_mutex_t lock;
	struct aiStream default_stream;
	struct aiStream *streams;
	struct aiEvent *events;
	struct aiModule *modules;
	struct aicrt_alloc *allocs;	/* sorted by va */
	size_t nallocs, cap_allocs;
	/* device printf: drained on synchronize once a kernel was launched */
	bool launched;			/* atomic */
	pthread_mutex_t printf_lock;	/* one drain at a time: output in order */
	/* host functions: the interrupt thread and what it waits for */
	bool notify_started;		/* ctx->lock */
	bool notify_quit;		/* atomic */
	pthread_t notify_thread;
	pid_t notify_pid;		/* process that started it (fork) */
	struct aicrt_hostfn *hostfns;	/* FIFO, ctx->lock */
	uint64_t next_cookie;		/* ctx->lock */
};

/* ---- errors (errors.c) --------------------------------------------------- */

/* Records e as the thread's last error unless it is aiSuccess; returns e.
 * Every public function returns its errors through it. */
AICRT_HIDDEN aiError_t aicrt_ret_at(const char *api, aiError_t e);
#define aicrt_ret(e) aicrt_ret_at(__func__, (e))
/* errno -> aiError_t; einval is what EINVAL means at the call site. */
AICRT_HIDDEN aiError_t aicrt_from_errno(int err, aiError_t einval);
AICRT_HIDDEN const char *aicrt_errno_name(int err);

/* ---- driver calls (driver.c) --------------------------------------------- */

AICRT_HIDDEN bool aicrt_debug_on(void);
AICRT_HIDDEN void aicrt_debug(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
#define AICRT_DBG(...) \
	do { if (aicrt_debug_on()) aicrt_debug(__VA_ARGS__); } while (0)

/* The one place ioctl() is called: retries on EINTR, logs with
 * AICARD_DEBUG.  Returns 0 or -errno. */
AICRT_HIDDEN int aicrt_ioctl(int fd, unsigned long req, void *arg);
/* DEV_QUERY with the size in/out protocol: fills buf (zeroed first) with up
 * to size bytes; *answer_size gets the driver's full size (may be NULL). */
AICRT_HIDDEN int aicrt_query(int fd, uint32_t type, void *buf, uint32_t size,
			     uint32_t *answer_size);

/* ---- devices and contexts (device.c) ------------------------------------- */

AICRT_HIDDEN extern pthread_mutex_t aicrt_global_lock;

AICRT_HIDDEN int aicrt_device_count(void);
/* The calling thread's current context, opening the primary one if needed. */
AICRT_HIDDEN aiError_t aicrt_current_ctx(struct aiCtx **ctx);
/* stream NULL -> ctx's default stream; else checks it is a live stream of
 * ctx (ctx NULL: any context; *ctx_out gets its context). */
AICRT_HIDDEN aiError_t aicrt_resolve_stream(aiStream_t stream,
					    struct aiCtx **ctx_out,
					    struct aiStream **out);

/* ---- streams (stream.c) -------------------------------------------------- */

/* Notes a fence the driver returned for work queued on s.  may_fault: a
 * launch or an asynchronous copy, whose status a later wait must report. */
AICRT_HIDDEN void aicrt_stream_queued(struct aiStream *s, uint64_t fence,
				      bool may_fault);
/* Notes that a synchronous copy with this fence completed; returns what
 * the queue reported up to it (asks the driver only if some fault-capable
 * work was queued since the last check). */
AICRT_HIDDEN aiError_t aicrt_stream_sync_done(struct aiStream *s,
					      uint64_t fence);
/* WAIT for everything queued on s so far.  report: take the status (map a
 * fault to an error and consider it reported); else just wait. */
AICRT_HIDDEN aiError_t aicrt_stream_wait(struct aiStream *s,
					 uint64_t timeout_ns, bool report);
/* SUBMITs one AICARD_CMD_SIZE-byte command on s and notes its fence. */
AICRT_HIDDEN aiError_t aicrt_submit_cmd(struct aiStream *s, const void *cmd,
					bool may_fault);
/* Waits for every stream of ctx; the first error is returned. */
AICRT_HIDDEN aiError_t aicrt_ctx_wait(struct aiCtx *ctx, bool report);

/* ---- handle registry (registry.c) ---------------------------------------- */

enum aicrt_obj_type {
	AICRT_OBJ_CTX = 1,
	AICRT_OBJ_STREAM,
	AICRT_OBJ_EVENT,
	AICRT_OBJ_MODULE,
	AICRT_OBJ_FUNCTION,
};

/* false only when out of memory */
AICRT_HIDDEN bool aicrt_obj_add(const void *obj, enum aicrt_obj_type type);
AICRT_HIDDEN void aicrt_obj_del(const void *obj);
AICRT_HIDDEN bool aicrt_obj_valid(const void *obj, enum aicrt_obj_type type);

/* ---- memory (memory.c) --------------------------------------------------- */

/* Frees every allocation of a context being destroyed. */
AICRT_HIDDEN aiError_t aicrt_free_all(struct aiCtx *ctx);

/* ---- modules (module.c) -------------------------------------------------- */

AICRT_HIDDEN aiError_t aicrt_module_unload(struct aiModule *mod);

/* ---- device printf (printf.c) -------------------------------------------- */

/* Writes what the context's kernels printed (PRINTF_READ) to stdout, as
 * CUDA does at synchronization points.  Cheap when nothing was launched. */
AICRT_HIDDEN void aicrt_printf_drain(struct aiCtx *ctx);

/* ---- host functions (hostfn.c) ------------------------------------------- */

/* Stops the interrupt thread and drops host functions that never ran
 * (their events are destroyed); before the context closes. */
AICRT_HIDDEN void aicrt_hostfn_shutdown(struct aiCtx *ctx);

/* ---- streams and events teardown (stream.c) ------------------------------ */

AICRT_HIDDEN aiError_t aicrt_stream_destroy(struct aiStream *s);
AICRT_HIDDEN aiError_t aicrt_event_destroy(struct aiEvent *e);

#endif /* AICARD_RT_H */
