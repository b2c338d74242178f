/* SPDX-License-Identifier: MIT */
/*
 * aicard_uapi.h - the contract between a user-space runtime and the aicard
 * kernel driver (/dev/aicard0 .. /dev/aicardN).
 *
 * Rules this header follows (they are the rules of modern GPU UAPIs such as
 * panthor and asahi, and the reasons are the same):
 *   - every ioctl number is built with the standard _IOC encoding, so a
 *     generic tool can size and direction-decode any request;
 *   - every struct has a fixed size, explicit padding and 64-bit user
 *     pointers carried as __u64, so 32- and 64-bit callers agree;
 *   - fields named "pad" or "reserved" must be zero on input (EINVAL
 *     otherwise), so they can be given a meaning later;
 *   - new requests are only ever appended; sizes of existing requests never
 *     change (a struct that must grow gets a new request number).
 *
 * Each open() of a device node is a context with its own GPU virtual
 * address space, buffer objects, queues, modules and events.  A handle or a
 * device address from another context is invalid (EINVAL or EFAULT).
 *
 * Errors follow the kernel convention: the ioctl returns -1 and sets errno.
 *   ENOTTY     unknown request (or a size that does not match this header)
 *   EFAULT     a user pointer (the argument or one nested in it) is bad
 *   EINVAL     bad handle, bad device address, non-zero reserved field, ...
 *   ENOENT     MODULE_FUNCTION: no function of that name; IPC_IMPORT: no
 *              buffer exported with that token on this device
 *   ENOMEM     out of device memory
 *   ETIMEDOUT  a wait ran out of time
 *   EBUSY      QUEUE_DESTROY of a queue with commands still waiting
 *   ECANCELED  the context was lost to a device fault: no more work runs
 *   EBADFD     the fd was inherited across fork(); the child must open
 *              the device itself (it then gets a device of its own)
 *   EIO        the driver itself failed (a bug: it is logged)
 *
 * The same layouts are declared with construct in structs/uapi.py; the test
 * suite compiles this header and checks every sizeof/offsetof against them.
 */
#ifndef AICARD_UAPI_H
#define AICARD_UAPI_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define AICARD_UAPI_VERSION_MAJOR 1
#define AICARD_UAPI_VERSION_MINOR 1
#define AICARD_UAPI_VERSION \
	((AICARD_UAPI_VERSION_MAJOR << 16) | AICARD_UAPI_VERSION_MINOR)

#define AICARD_DEV_PREFIX  "/dev/aicard"	/* followed by the minor number */
#define AICARD_MAX_DEVICES 16
#define AICARD_IOCTL_TYPE  'A'
#define AICARD_PAGE_SIZE   4096		/* BO sizes are rounded up to this */

/* ------------------------------------------------------------------ */
/* DEV_QUERY: ask the device something; the answer may grow over time.  */

enum aicard_query_type {
	AICARD_QUERY_DEVICE_INFO = 0,	/* struct aicard_device_info */
	AICARD_QUERY_MEM_INFO = 1,	/* struct aicard_mem_info */
	AICARD_QUERY_CLOCK = 2,		/* struct aicard_clock */
};

struct aicard_dev_query {
	__u32 type;	/* enum aicard_query_type */
	__u32 size;	/* in: bytes at pointer; out: full size of the answer */
	__u64 pointer;	/* user buffer, or 0 to ask for the size only */
};
/* The driver writes min(in size, answer size) bytes and always sets size to
 * the answer size, so an old caller with a short struct keeps working. */

#define AICARD_CAP_PRINTF	(1u << 0)	/* device printf buffer */
#define AICARD_CAP_NOTIFY	(1u << 1)	/* CMD_NOTIFY + NOTIFY_WAIT */
#define AICARD_CAP_TRANSFORMER	(1u << 2)	/* CMD_TRANSFORMER */
#define AICARD_CAP_FENCE_RESET	(1u << 3)	/* FENCE_RESET */

struct aicard_device_info {
	__u32 vendor_id;
	__u32 device_id;
	__u32 uapi_version;		/* AICARD_UAPI_VERSION of the driver */
	__u32 fw_version;		/* major << 16 | minor */
	__u64 vram_size;		/* bytes */
	__u32 core_count;		/* compute units */
	__u32 warp_size;		/* lanes that advance in lock-step */
	__u32 max_threads_per_block;
	__u32 max_shared_per_block;	/* bytes */
	__u32 max_grid_dim[3];
	__u32 max_block_dim[3];
	__u64 timestamp_freq;		/* Hz of the clock behind timestamps */
	__u32 minor;			/* N of /dev/aicardN */
	__u32 caps;			/* AICARD_CAP_* */
	char name[32];			/* NUL-terminated */
};

struct aicard_mem_info {
	__u64 vram_size;	/* bytes on the device */
	__u64 vram_used;	/* bytes of live buffer objects, every context */
	__u64 ctx_used;		/* bytes allocated by this context */
	__u32 ctx_bo_count;	/* live buffer objects of this context */
	__u32 pad;
};

struct aicard_clock {
	__u64 timestamp;	/* device clock now, in ticks */
	__u64 freq;		/* ticks per second */
};

/* ------------------------------------------------------------------ */
/* Buffer objects.  Each BO is mapped into the context's GPU VM at      */
/* creation; gpu_va is the device address kernels and copies use.       */

struct aicard_bo_create {
	__u64 size;	/* in: bytes (> 0), rounded up to AICARD_PAGE_SIZE */
	__u32 flags;	/* in: must be 0 */
	__u32 handle;	/* out: non-zero */
	__u64 gpu_va;	/* out: device virtual address of byte 0 */
};

struct aicard_bo_destroy {
	__u32 handle;
	__u32 pad;
};

/* The offset to pass to mmap(2) on the device fd to map the BO's pages
 * into the caller: the CPU then reads and writes the very memory the
 * device uses. */
struct aicard_bo_mmap_offset {
	__u32 handle;
	__u32 pad;
	__u64 offset;	/* out */
};

/* ------------------------------------------------------------------ */
/* Queues execute commands in order; every command gets a fence: a      */
/* per-queue sequence number that completes when the command is done.   */

struct aicard_queue_create {
	__u32 flags;	/* must be 0 */
	__u32 priority;	/* 0 (normal) .. 3 */
	__u32 queue_id;	/* out: non-zero */
	__u32 pad;
};

struct aicard_queue_destroy {
	__u32 queue_id;
	__u32 pad;
};

/* Commands for SUBMIT.  Each is AICARD_CMD_SIZE bytes and starts with a
 * __u32 type; the array is passed as {count, stride, pointer} so commands
 * can grow: bytes past the known size of a command must be zero. */
#define AICARD_CMD_SIZE 64

enum aicard_cmd_type {
	AICARD_CMD_LAUNCH = 1,		/* struct aicard_cmd_launch */
	AICARD_CMD_EVENT_RECORD = 2,	/* signal event with a device timestamp */
	AICARD_CMD_EVENT_WAIT = 3,	/* queue waits until event is signalled */
	AICARD_CMD_EVENT_RESET = 4,	/* back to unsignalled */
	AICARD_CMD_MEMBAR = 5,		/* order all earlier memory accesses */
	AICARD_CMD_NOTIFY = 6,		/* raise a host interrupt (NOTIFY_WAIT) */
	AICARD_CMD_TRANSFORMER = 7,	/* fixed-function transformer unit */
};

struct aicard_cmd_launch {
	__u32 type;		/* AICARD_CMD_LAUNCH */
	__u32 flags;		/* must be 0 */
	__u32 module;		/* module handle */
	__u32 function;		/* index from MODULE_FUNCTION */
	__u32 grid[3];		/* blocks per grid, each >= 1 */
	__u32 block[3];		/* threads per block, each >= 1 */
	__u32 shared_size;	/* dynamic shared memory per block, bytes */
	__u32 params_size;	/* must equal the function's param_size */
	__u64 params;		/* user pointer; read during SUBMIT */
	__u64 reserved;
};

struct aicard_cmd_event {
	__u32 type;		/* AICARD_CMD_EVENT_RECORD / _WAIT / _RESET */
	__u32 flags;		/* must be 0 */
	__u32 event;		/* event handle */
	__u32 pad;
	__u64 reserved[6];
};

struct aicard_cmd_membar {
	__u32 type;		/* AICARD_CMD_MEMBAR */
	__u32 flags;		/* must be 0 */
	__u64 reserved[7];
};

/* When the queue reaches it, the device raises an interrupt carrying value:
 * the driver queues value for NOTIFY_WAIT (in order, per context). */
struct aicard_cmd_notify {
	__u32 type;		/* AICARD_CMD_NOTIFY */
	__u32 flags;		/* must be 0 */
	__u64 value;		/* any value; NOTIFY_WAIT hands it back */
	__u64 reserved[6];
};

/* The fixed-function transformer unit: small f32 computations on device
 * memory.  Every buffer is a device address of this context, 4-aligned,
 * row-major, and must lie inside one buffer object (EINVAL otherwise).
 *   ENCODE     token embedding: dst[i][:] = src1[src0[i]][:] (+ src2[i][:])
 *              src0: __u32 tokens[rows]; src1: f32 table[keys][dim];
 *              src2: f32 positions[rows][dim], or 0 for none;
 *              dst: f32 [rows][dim].  A token >= keys faults the command
 *              (an mmu fault at the address the lookup would read).
 *   DECODE     greedy decode: dst[i] = argmax_j src0[i][j], the first
 *              maximum (a NaN counts as the maximum); src0: f32 logits
 *              [rows][dim]; dst: __u32 [rows]; keys, vdim, src1, src2: 0.
 *   ATTENTION  one attention head: dst = softmax(Q K^T / sqrt(dim)) V with
 *              Q = src0 f32 [rows][dim], K = src1 f32 [keys][dim],
 *              V = src2 f32 [keys][vdim], dst f32 [rows][vdim]; with
 *              AICARD_TRANSFORMER_CAUSAL query i only sees keys j <= i.
 * Limits: every dimension used 1 .. AICARD_TRANSFORMER_MAX_DIM, and
 * rows * keys <= AICARD_TRANSFORMER_MAX_SCORES (ATTENTION). */
enum aicard_transformer_op {
	AICARD_TRANSFORMER_ENCODE = 1,
	AICARD_TRANSFORMER_DECODE = 2,
	AICARD_TRANSFORMER_ATTENTION = 3,
};

#define AICARD_TRANSFORMER_CAUSAL	(1u << 0)
#define AICARD_TRANSFORMER_MAX_DIM	65536
#define AICARD_TRANSFORMER_MAX_SCORES	(1u << 24)

struct aicard_cmd_transformer {
	__u32 type;		/* AICARD_CMD_TRANSFORMER */
	__u32 flags;		/* AICARD_TRANSFORMER_CAUSAL (ATTENTION only) */
	__u32 op;		/* enum aicard_transformer_op */
	__u32 rows;		/* tokens / query rows */
	__u32 dim;		/* embedding width; DECODE: vocabulary size */
	__u32 keys;		/* ENCODE: vocabulary size; ATTENTION: key rows */
	__u32 vdim;		/* ATTENTION: value width */
	__u32 pad;
	__u64 dst;
	__u64 src0;
	__u64 src1;
	__u64 src2;
};

#define AICARD_SUBMIT_MAX_CMDS 4096

struct aicard_submit {
	__u32 queue_id;
	__u32 flags;		/* must be 0 */
	__u32 cmd_count;	/* 1 .. AICARD_SUBMIT_MAX_CMDS */
	__u32 cmd_stride;	/* >= AICARD_CMD_SIZE, multiple of 8 */
	__u64 cmds;		/* user pointer to cmd_count commands */
	__u64 fence;		/* out: fence of the last command */
};

#define AICARD_TIMEOUT_INFINITE (~(__u64)0)

enum aicard_fence_status {
	AICARD_FENCE_OK = 0,
	AICARD_FENCE_FAULT = 1,		/* a command on the queue faulted */
	AICARD_FENCE_TIMEOUT = 2,	/* the watchdog stopped a command */
};

/* Wait until fence on queue_id has completed.  Returns -1/ETIMEDOUT when
 * timeout_ns passes first (0 polls); EINVAL for a fence never issued.
 * status reports whether a command up to and including that fence failed;
 * the wait itself still succeeds.  A failure is sticky: once a command
 * failed, every later fence of the queue reports it too. */
struct aicard_wait {
	__u32 queue_id;
	__u32 flags;		/* must be 0 */
	__u64 fence;		/* a fence returned on this queue */
	__u64 timeout_ns;	/* relative; AICARD_TIMEOUT_INFINITE waits */
	__u32 status;		/* out: enum aicard_fence_status */
	__u32 pad;
	__u64 completed;	/* out: last completed fence of the queue */
};

/* ------------------------------------------------------------------ */
/* Copies and fills.  These carry user pointers, so they are requests   */
/* of their own rather than SUBMIT commands.  They are queued behind the */
/* earlier work of queue_id; with AICARD_COPY_SYNC the ioctl returns only */
/* once the copy is done (and fails with EFAULT on a bad user pointer).  */

enum aicard_copy_kind {
	AICARD_COPY_HTOD = 1,	/* src: user pointer, dst: device address */
	AICARD_COPY_DTOH = 2,	/* src: device address, dst: user pointer */
	AICARD_COPY_DTOD = 3,	/* both device addresses */
};

#define AICARD_COPY_SYNC (1u << 0)

struct aicard_copy {
	__u32 queue_id;
	__u32 kind;		/* enum aicard_copy_kind */
	__u64 dst;
	__u64 src;
	__u64 size;		/* bytes; 0 is a no-op that still gets a fence */
	__u32 flags;		/* AICARD_COPY_SYNC */
	__u32 pad;
	__u64 fence;		/* out */
};

struct aicard_memset {
	__u32 queue_id;
	__u32 elem_size;	/* 1, 2 or 4 */
	__u64 dst;		/* device address, aligned to elem_size */
	__u64 count;		/* elements */
	__u32 value;		/* low elem_size bytes are used */
	__u32 flags;		/* AICARD_COPY_SYNC */
	__u64 fence;		/* out */
};

/* ------------------------------------------------------------------ */
/* Modules: kernel binaries in the aicard module format (structs/module.py, */
/* docs/ISA.md).  The image is copied and validated during the ioctl;   */
/* a malformed image is EINVAL and the driver logs what is wrong.       */

#define AICARD_MODULE_MAX_SIZE (64u << 20)

struct aicard_module_load {
	__u64 image;		/* user pointer */
	__u64 size;		/* bytes */
	__u32 flags;		/* must be 0 */
	__u32 handle;		/* out: non-zero */
	__u32 function_count;	/* out */
	__u32 pad;
};

struct aicard_module_unload {
	__u32 handle;
	__u32 pad;
};

#define AICARD_MAX_PARAMS 32
#define AICARD_NAME_LEN   64

enum aicard_param_kind {
	AICARD_PARAM_U32 = 0,
	AICARD_PARAM_I32 = 1,
	AICARD_PARAM_F32 = 2,
	AICARD_PARAM_U64 = 3,
	AICARD_PARAM_PTR = 4,	/* a device address (64-bit) */
};

struct aicard_param_info {
	__u16 offset;		/* in the packed parameter block */
	__u8 size;		/* bytes: 4 or 8 */
	__u8 kind;		/* enum aicard_param_kind */
};

/* Look a function up by name (name[0] != 0) or by index (name[0] == 0;
 * the name is then filled in).  ENOENT when the name is not there. */
struct aicard_module_function {
	__u32 module;		/* module handle */
	__u32 index;		/* in (by index) or out */
	char name[AICARD_NAME_LEN];
	__u32 param_size;	/* out: bytes of the packed parameter block */
	__u32 param_count;	/* out */
	__u32 shared_size;	/* out: static shared memory per block */
	__u32 num_regs;		/* out: registers per thread */
	struct aicard_param_info params[AICARD_MAX_PARAMS];	/* out */
};

/* ------------------------------------------------------------------ */
/* Events: a device-side flag plus the device timestamp at which it was */
/* signalled.  Queues signal them (CMD_EVENT_RECORD), wait on them       */
/* (CMD_EVENT_WAIT) and reset them; the host can query, wait and signal. */

struct aicard_event_create {
	__u32 flags;		/* must be 0 */
	__u32 handle;		/* out: non-zero */
};

struct aicard_event_destroy {
	__u32 handle;
	__u32 pad;
};

enum aicard_event_status {
	AICARD_EVENT_UNSIGNALED = 0,	/* never recorded, or reset */
	AICARD_EVENT_PENDING = 1,	/* a record is queued (set at SUBMIT) */
	AICARD_EVENT_SIGNALED = 2,
};

struct aicard_event_query {
	__u32 handle;
	__u32 status;		/* out: enum aicard_event_status */
	__u64 timestamp;	/* out: device clock when signalled */
	__u64 fence;		/* out: fence of the last record, 0 if none */
	__u32 queue_id;		/* out: queue of the last record */
	__u32 pad;
};

/* Wait until the event is signalled, the condition CMD_EVENT_WAIT waits
 * for; ETIMEDOUT if timeout_ns passes first (an event nobody records or
 * signals always times out). */
struct aicard_event_wait {
	__u32 handle;
	__u32 flags;		/* must be 0 */
	__u64 timeout_ns;	/* ETIMEDOUT when it passes */
};

/* Signal from the host (a "user event"): wakes queues waiting on it. */
struct aicard_event_signal {
	__u32 handle;
	__u32 pad;
};

/* ------------------------------------------------------------------ */
/* Device printf.  A kernel's printf output goes to the context's print */
/* buffer in device memory; when the launch is done the device sends it */
/* to the driver, which keeps it (in order) until PRINTF_READ takes it.  */

struct aicard_printf_read {
	__u64 pointer;		/* user buffer for the text */
	__u32 size;		/* in: bytes at pointer (0: just report pending);
				 * out: bytes written */
	__u32 flags;		/* must be 0 */
	__u64 pending;		/* out: bytes still buffered after this read */
	__u64 dropped;		/* out: bytes lost (buffers full) since the last read */
};

/* Take the oldest CMD_NOTIFY interrupt of this context (one per call, in
 * order).  ETIMEDOUT if none arrives within timeout_ns (0 polls). */
struct aicard_notify_wait {
	__u32 flags;		/* must be 0 */
	__u32 pending;		/* out: interrupts still queued after this one */
	__u64 timeout_ns;	/* relative; AICARD_TIMEOUT_INFINITE waits */
	__u64 value;		/* out: the value of that CMD_NOTIFY */
	__u64 count;		/* out: interrupts this context received so far */
};

/* Restart an idle queue's fence numbering: the device zeroes the queue's
 * fence slot, and the next command gets fence 1.  EBUSY while commands are
 * in flight, ECANCELED if the context was lost.  Events keep the fence
 * of their last record in the old numbering. */
struct aicard_fence_reset {
	__u32 queue_id;
	__u32 flags;		/* must be 0 */
};

/* ------------------------------------------------------------------ */
/* IPC memory handles: share a buffer object with another context, of   */
/* this process or of another one using the same device (the daemon,    */
/* `aishim serve`, shares devices between processes).                   */
/*                                                                      */
/* IPC_EXPORT gives an unforgeable token (32 random bytes) for a BO of  */
/* this context; exporting the same buffer again gives the same token.  */
/* IPC_IMPORT maps the buffer into this context: a new handle and a new */
/* device address, the same device memory (the same pages through mmap */
/* as well).  A token is valid only on the device that minted it, and   */
/* only while the exporting handle lives: once the exporter destroys it */
/* (BO_DESTROY, or its context goes), IPC_IMPORT answers ENOENT.        */
/* Imports already made keep the memory alive: it is freed when every   */
/* handle on it is destroyed (BO_DESTROY of the imported handle closes  */
/* an import) and nothing maps it.                                      */
/*   EINVAL  unknown handle, non-zero flags, or the buffer is already   */
/*           mapped in this context (its exporter's context included)   */
/*   ENOENT  the token is not (or no longer) exported on this device    */

#define AICARD_IPC_TOKEN_SIZE 32

struct aicard_ipc_export {
	__u32 handle;		/* BO of this context */
	__u32 flags;		/* must be 0 */
	__u8 token[AICARD_IPC_TOKEN_SIZE];	/* out */
};

struct aicard_ipc_import {
	__u8 token[AICARD_IPC_TOKEN_SIZE];
	__u32 flags;		/* must be 0 */
	__u32 handle;		/* out: BO handle in this context */
	__u64 gpu_va;		/* out: its device address in this context */
	__u64 size;		/* out: bytes (page-rounded) */
};

/* ------------------------------------------------------------------ */

#define AICARD_IOCTL_DEV_QUERY       _IOWR('A', 0x00, struct aicard_dev_query)
#define AICARD_IOCTL_BO_CREATE       _IOWR('A', 0x01, struct aicard_bo_create)
#define AICARD_IOCTL_BO_DESTROY      _IOW('A', 0x02, struct aicard_bo_destroy)
#define AICARD_IOCTL_BO_MMAP_OFFSET  _IOWR('A', 0x03, struct aicard_bo_mmap_offset)
#define AICARD_IOCTL_QUEUE_CREATE    _IOWR('A', 0x04, struct aicard_queue_create)
#define AICARD_IOCTL_QUEUE_DESTROY   _IOW('A', 0x05, struct aicard_queue_destroy)
#define AICARD_IOCTL_SUBMIT          _IOWR('A', 0x06, struct aicard_submit)
#define AICARD_IOCTL_WAIT            _IOWR('A', 0x07, struct aicard_wait)
#define AICARD_IOCTL_COPY            _IOWR('A', 0x08, struct aicard_copy)
#define AICARD_IOCTL_MEMSET          _IOWR('A', 0x09, struct aicard_memset)
#define AICARD_IOCTL_MODULE_LOAD     _IOWR('A', 0x0a, struct aicard_module_load)
#define AICARD_IOCTL_MODULE_UNLOAD   _IOW('A', 0x0b, struct aicard_module_unload)
#define AICARD_IOCTL_MODULE_FUNCTION _IOWR('A', 0x0c, struct aicard_module_function)
#define AICARD_IOCTL_EVENT_CREATE    _IOWR('A', 0x0d, struct aicard_event_create)
#define AICARD_IOCTL_EVENT_DESTROY   _IOW('A', 0x0e, struct aicard_event_destroy)
#define AICARD_IOCTL_EVENT_QUERY     _IOWR('A', 0x0f, struct aicard_event_query)
#define AICARD_IOCTL_EVENT_WAIT      _IOW('A', 0x10, struct aicard_event_wait)
#define AICARD_IOCTL_EVENT_SIGNAL    _IOW('A', 0x11, struct aicard_event_signal)
#define AICARD_IOCTL_PRINTF_READ     _IOWR('A', 0x12, struct aicard_printf_read)
#define AICARD_IOCTL_NOTIFY_WAIT     _IOWR('A', 0x13, struct aicard_notify_wait)
#define AICARD_IOCTL_FENCE_RESET     _IOW('A', 0x14, struct aicard_fence_reset)
#define AICARD_IOCTL_IPC_EXPORT      _IOWR('A', 0x15, struct aicard_ipc_export)
#define AICARD_IOCTL_IPC_IMPORT      _IOWR('A', 0x16, struct aicard_ipc_import)

#endif /* AICARD_UAPI_H */
