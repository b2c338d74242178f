/* SPDX-License-Identifier: MIT */
/*
 * aicard.h - the aicard user-space runtime (libaicard.so): a small CUDA-like
 * API over the kernel driver's UAPI (aicard_uapi.h, /dev/aicard0..N).
 *
 * Model
 *   device   /dev/aicardN, N = 0 .. aiGetDeviceCount()-1.
 *   context  one open() of a device node: its own GPU virtual address space,
 *            buffers, modules, streams and events.  Each device has a
 *            "primary" context, opened on first use and shared by every
 *            thread of the process that selects the device with aiSetDevice.
 *            aiCtxCreate opens a separate one.  The current context is
 *            per thread: the one set with aiCtxSetCurrent / aiCtxCreate if
 *            any, else the primary context of the thread's current device
 *            (aiSetDevice, device 0 by default).
 *   pointer  a device pointer is the buffer's GPU virtual address cast to
 *            void *.  It is only meaningful in the context that allocated it.
 *   stream   an in-order queue of the context.  NULL means the context's
 *            default stream, on which the synchronous copies run too.
 *
 * Errors
 *   Every call returns an aiError_t.  A call that fails also records its
 *   error as the calling thread's "last error" (kept until read):
 *   aiGetLastError returns it and resets it to aiSuccess, aiPeekAtLastError
 *   returns it without resetting.  A kernel that faults is reported by the
 *   next call that waits for it (stream / event / device synchronize, or a
 *   synchronous copy behind it) as aiErrorLaunchFailure, or
 *   aiErrorLaunchTimeout when the device watchdog stopped it.
 *
 * Environment
 *   AICARD_DEBUG=1  print one "[aicard] ..." line per driver call to stderr.
 *
 * The library is thread-safe, has no global constructors and never exits
 * or aborts the process.
 */
#ifndef AICARD_H
#define AICARD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AI_API __attribute__((visibility("default")))
#else
#define AI_API
#endif

/* aiRuntimeGetVersion() returns major * 1000 + minor * 10. */
#define AI_RUNTIME_VERSION_MAJOR 1
#define AI_RUNTIME_VERSION_MINOR 0
#define AI_RUNTIME_VERSION \
	(AI_RUNTIME_VERSION_MAJOR * 1000 + AI_RUNTIME_VERSION_MINOR * 10)

typedef enum aiError {
	aiSuccess = 0,
	aiErrorInvalidValue = 1,
	aiErrorOutOfMemory = 2,
	aiErrorNotInitialized = 3,
	aiErrorInvalidDevicePointer = 17,
	aiErrorNoDevice = 100,
	aiErrorInvalidDevice = 101,
	aiErrorInvalidImage = 200,
	aiErrorFileNotFound = 301,
	aiErrorOperatingSystem = 304,
	aiErrorInvalidHandle = 400,
	aiErrorNotFound = 500,
	aiErrorNotReady = 600,
	aiErrorIllegalAddress = 700,
	aiErrorLaunchTimeout = 702,
	aiErrorLaunchFailure = 719,
	aiErrorTimeout = 720,
	aiErrorNotSupported = 801,
	aiErrorUnknown = 999
} aiError_t;

typedef struct {
	unsigned x, y, z;
} aiDim3;

typedef struct aiDeviceProp {
	char name[32];
	size_t totalGlobalMem;		/* bytes of device memory */
	int multiProcessorCount;	/* compute units */
	int warpSize;
	int maxThreadsPerBlock;
	size_t sharedMemPerBlock;	/* bytes */
	int maxGridSize[3];
	int maxThreadsDim[3];
	unsigned long long clockRate;	/* Hz of the device timestamps */
	int fwVersionMajor, fwVersionMinor;
	int uapiVersionMajor, uapiVersionMinor;	/* of the driver */
	int minor;			/* N of /dev/aicardN */
} aiDeviceProp;

/* A host function for aiLaunchHostFunc. */
typedef void (*aiHostFn_t)(void *userData);

typedef struct aiCtx *aiCtx_t;
typedef struct aiStream *aiStream_t;
typedef struct aiEvent *aiEvent_t;
typedef struct aiModule *aiModule_t;
typedef struct aiFunction *aiFunction_t;

typedef enum {
	aiMemcpyHostToDevice = 1,
	aiMemcpyDeviceToHost = 2,
	aiMemcpyDeviceToDevice = 3
} aiMemcpyKind;

/* ---- devices ------------------------------------------------------------ */

/* Probes /dev/aicard0 .. /dev/aicard<AICARD_MAX_DEVICES-1> with stat() and
 * counts the consecutive character devices.  None: *count = 0 and
 * aiErrorNoDevice. */
AI_API aiError_t aiGetDeviceCount(int *count);
/* Selects the calling thread's device (and drops a context set with
 * aiCtxSetCurrent).  The device's primary context is opened on first use. */
AI_API aiError_t aiSetDevice(int dev);
AI_API aiError_t aiGetDevice(int *dev);
AI_API aiError_t aiGetDeviceProperties(aiDeviceProp *prop, int dev);
/* Waits for every stream of the current context. */
AI_API aiError_t aiDeviceSynchronize(void);

/* ---- contexts ----------------------------------------------------------- */

/* Opens the device again: a new context with its own address space.  Like
 * cuCtxCreate it becomes the calling thread's current context. */
AI_API aiError_t aiCtxCreate(aiCtx_t *ctx, int dev);
/* Frees everything the context owns (its streams, events, modules and
 * buffers become invalid) and closes it.  Primary contexts cannot be
 * destroyed (aiErrorInvalidValue). */
AI_API aiError_t aiCtxDestroy(aiCtx_t ctx);
/* Sets the calling thread's current context; NULL goes back to the primary
 * context of the current device. */
AI_API aiError_t aiCtxSetCurrent(aiCtx_t ctx);
/* The context set with aiCtxSetCurrent, else the current device's primary
 * context if it is open already, else NULL. */
AI_API aiError_t aiCtxGetCurrent(aiCtx_t *ctx);

/* ---- memory ------------------------------------------------------------- */

/* size 0 gives *devPtr = NULL and aiSuccess. */
AI_API aiError_t aiMalloc(void **devPtr, size_t size);
/* NULL is fine; an unknown pointer or a double free gives
 * aiErrorInvalidDevicePointer. */
AI_API aiError_t aiFree(void *devPtr);
/* A buffer mapped into the host as well: *hostPtr and *devPtr name the same
 * bytes, no copies involved.  Host writes are visible to work launched
 * afterwards; device writes are visible to the host once that work has been
 * waited for.  aiFree(devPtr) unmaps and frees it. */
AI_API aiError_t aiMallocMapped(void **devPtr, void **hostPtr, size_t size);
/* Device memory free (total minus what every context allocated) and total. */
AI_API aiError_t aiMemGetInfo(size_t *free, size_t *total);
/* Synchronous copy on the current context's default stream. */
AI_API aiError_t aiMemcpy(void *dst, const void *src, size_t n,
			  aiMemcpyKind kind);
/* Queued behind the stream's earlier work; host memory must stay valid
 * until the stream is synchronized. */
AI_API aiError_t aiMemcpyAsync(void *dst, const void *src, size_t n,
			       aiMemcpyKind kind, aiStream_t stream);
/* Byte fills; aiMemsetD32 fills count 32-bit words (devPtr 4-aligned). */
AI_API aiError_t aiMemset(void *devPtr, int value, size_t n);
AI_API aiError_t aiMemsetAsync(void *devPtr, int value, size_t n,
			       aiStream_t stream);
AI_API aiError_t aiMemsetD32(void *devPtr, unsigned value, size_t count);

/* ---- modules and launches ----------------------------------------------- */

/* Loads an aicard module file (.aimod) into the current context.
 * aiErrorFileNotFound if the file is missing, aiErrorInvalidImage if the
 * driver refuses it. */
AI_API aiError_t aiModuleLoad(aiModule_t *mod, const char *path);
AI_API aiError_t aiModuleLoadData(aiModule_t *mod, const void *image,
				  size_t size);
AI_API aiError_t aiModuleUnload(aiModule_t mod);
/* aiErrorNotFound when the module has no function of that name. */
AI_API aiError_t aiModuleGetFunction(aiFunction_t *fn, aiModule_t mod,
				     const char *name);
/* args[i] points at the value of the i-th kernel parameter (4 or 8 bytes,
 * as the module declares it).  Runs on fn's context; stream NULL is that
 * context's default stream. */
AI_API aiError_t aiLaunchKernel(aiFunction_t fn, aiDim3 grid, aiDim3 block,
				void **args, size_t sharedMem,
				aiStream_t stream);

/* ---- streams and events ------------------------------------------------- */

AI_API aiError_t aiStreamCreate(aiStream_t *stream);
/* Waits for the stream's work, then destroys it. */
AI_API aiError_t aiStreamDestroy(aiStream_t stream);
AI_API aiError_t aiStreamSynchronize(aiStream_t stream);
/* aiSuccess if all its work is done, aiErrorNotReady if not. */
AI_API aiError_t aiStreamQuery(aiStream_t stream);
/* Later work on stream waits until event has been signalled (no-op if the
 * event was never recorded).  stream NULL: the default stream of the
 * event's context. */
AI_API aiError_t aiStreamWaitEvent(aiStream_t stream, aiEvent_t event);

AI_API aiError_t aiEventCreate(aiEvent_t *event);
AI_API aiError_t aiEventDestroy(aiEvent_t event);
/* The event is signalled, with a device timestamp, when the stream reaches
 * this point.  Event and stream must belong to the same context
 * (aiErrorInvalidHandle otherwise); stream NULL is that context's default
 * stream. */
AI_API aiError_t aiEventRecord(aiEvent_t event, aiStream_t stream);
/* aiSuccess once signalled, aiErrorNotReady before (never recorded too). */
AI_API aiError_t aiEventQuery(aiEvent_t event);
/* Waits until signalled; returns at once if it was never recorded. */
AI_API aiError_t aiEventSynchronize(aiEvent_t event);
/* Milliseconds between two signalled events (device clock);
 * aiErrorNotReady if either is not signalled. */
AI_API aiError_t aiEventElapsedTime(float *ms, aiEvent_t start,
				    aiEvent_t end);

/* The device timestamp (ticks of aiDeviceProp.clockRate per second) at
 * which the event was signalled; aiErrorNotReady if it is not. */
AI_API aiError_t aiEventGetTimestamp(unsigned long long *ticks,
				     aiEvent_t event);
/* Queues a reset of the event on stream (NULL: the default stream of the
 * event's context): when the stream gets there the event goes back to not
 * signalled, unless a record queued after the reset is still pending.
 * Until recorded again the event counts as never recorded
 * (aiEventSynchronize and aiStreamWaitEvent do not wait for it). */
AI_API aiError_t aiEventReset(aiEvent_t event, aiStream_t stream);

/* ---- device printf ------------------------------------------------------ */

/* Kernels' printf output is written to the program's stdout (in order,
 * through stdio, then flushed) by every synchronizing call of the context
 * that launched them: aiDeviceSynchronize, aiStreamSynchronize,
 * aiEventSynchronize, aiMemcpy, and aiCtxDestroy.  Output of a kernel that
 * faults is delivered up to the fault.  A kernel may print up to 1 MiB per
 * launch; the rest is lost and a note says how much. */

/* ---- host functions, memory barriers, fences ---------------------------- */

/* Queues fn(userData) on stream, like cudaLaunchHostFunc: it runs on a
 * thread of the runtime once all earlier work of the stream is done, and
 * later work of the stream waits until it has returned.  It is driven by
 * the device's notify interrupt.  fn must not synchronize or queue work on
 * the same context (that would wait for itself).  If earlier work of the
 * context faults, fn never runs.  aiErrorNotSupported if the device has no
 * interrupts. */
AI_API aiError_t aiLaunchHostFunc(aiStream_t stream, aiHostFn_t fn,
				  void *userData);
/* Queues a memory barrier: work after it on the stream sees every memory
 * write of the work before it (device and host-mapped memory). */
AI_API aiError_t aiStreamMemoryBarrier(aiStream_t stream);
/* Waits for the stream's work, then restarts its fence numbering (the
 * device zeroes the queue's fence slot; the next operation gets fence 1).
 * Lets a runtime test its handling of a fence counter that starts over.
 * No other thread may queue work on the stream meanwhile.
 * aiErrorLaunchFailure if the context was lost to a fault. */
AI_API aiError_t aiStreamResetFences(aiStream_t stream);

/* ---- the transformer unit ----------------------------------------------- */
/* Fixed-function f32 operations on device memory (all pointers are device
 * pointers of the stream's context, 4-aligned, row-major), queued on
 * stream like a kernel.  A bad token faults the work like a kernel would
 * (aiErrorLaunchFailure at the next synchronization).
 * aiErrorNotSupported if the device has no transformer unit. */

/* Token embedding: out[i][:] = table[tokens[i]][:] (+ positions[i][:] if
 * positions is not NULL), i < n; table is vocab x dim. */
AI_API aiError_t aiTransformerEncode(float *out, const unsigned *tokens,
				     const float *table,
				     const float *positions, unsigned n,
				     unsigned vocab, unsigned dim,
				     aiStream_t stream);
/* Greedy decoding: tokens[i] = index of the first maximum of logits[i][:]
 * (vocab values; a NaN counts as the maximum), i < n. */
AI_API aiError_t aiTransformerDecode(unsigned *tokens, const float *logits,
				     unsigned n, unsigned vocab,
				     aiStream_t stream);
/* One attention head: out = softmax(q k^T / sqrt(dim)) v, with q n x dim,
 * k m x dim, v m x vdim, out n x vdim; causal: row i sees keys j <= i. */
AI_API aiError_t aiTransformerAttention(float *out, const float *q,
					const float *k, const float *v,
					unsigned n, unsigned m, unsigned dim,
					unsigned vdim, int causal,
					aiStream_t stream);

/* ---- errors and version ------------------------------------------------- */

AI_API const char *aiGetErrorString(aiError_t error);
AI_API const char *aiGetErrorName(aiError_t error);
AI_API aiError_t aiGetLastError(void);
AI_API aiError_t aiPeekAtLastError(void);
AI_API int aiRuntimeGetVersion(void);

/* ---- IPC memory handles ------------------------------------------------ */
/* Share device memory with another context: of this process, or of another
 * process using the same device (under the shim: a daemon shared by both,
 * `aishim run --connect`).  The handle is plain bytes: pass it through a
 * pipe, a file, a socket.  It holds an unforgeable token, valid on the
 * device that made it while the exporting allocation lives. */

#define AI_IPC_HANDLE_SIZE 64

typedef struct aiIpcMemHandle {
	unsigned char reserved[AI_IPC_HANDLE_SIZE];
} aiIpcMemHandle_t;

/* A handle for the allocation starting at devPtr (aiMalloc or
 * aiMallocMapped of the current context); the same allocation always gives
 * the same handle.  aiErrorInvalidDevicePointer if devPtr is no allocation
 * start of the current context. */
AI_API aiError_t aiIpcGetMemHandle(aiIpcMemHandle_t *handle, void *devPtr);
/* Maps the memory of handle into the current context: *devPtr is a device
 * pointer of this context to the same bytes.  aiErrorInvalidHandle when the
 * handle is not valid on this device (never was, or its allocation was
 * freed); aiErrorInvalidValue when the memory is already mapped in this
 * context (e.g. it was exported from it).  Close it with
 * aiIpcCloseMemHandle, not aiFree.  The memory stays until the exporter
 * freed it and every importer closed it. */
AI_API aiError_t aiIpcOpenMemHandle(void **devPtr, aiIpcMemHandle_t handle);
/* Unmaps memory opened with aiIpcOpenMemHandle (after the work queued on the
 * context is done, as aiFree does).  aiErrorInvalidDevicePointer if devPtr
 * is not such a pointer of the current context. */
AI_API aiError_t aiIpcCloseMemHandle(void *devPtr);

#ifdef __cplusplus
}
#endif

#endif /* AICARD_H */
