/* SPDX-License-Identifier: MIT */
/*
 * errors - bad input from C, one line per case with what came back:
 *
 *   case_name: errno=ENOTTY          (raw ioctl()/mmap() on /dev/aicard0)
 *   case_name: ai=aiErrorNotFound    (through the runtime)
 *
 * errno=0 / ai=aiSuccess mean the call succeeded.  A line that is not
 * what the UAPI header (or aicard.h) promises gets "  <-- expected X" (or
 * what else is wrong) appended.  Exit 0 when every case gave the expected
 * answer.  Needs the kernels (vecadd.aimod) for the module and launch cases.
 *
 *   errors
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "aicard_uapi.h"
#include "common.h"

static const char usage[] = "errors";

static int cases, fails;
static void *bad_ptr;		/* a PROT_NONE page: any access faults */

/* ---- reporting ----------------------------------------------------------- */

/* glibc names every errno (strerrorname_np); an unknown value prints as its number */
static const char *errno_name(int e)
{
	static char buf[24];
	const char *name = e ? strerrorname_np(e) : "0";

	if (name)
		return name;
	snprintf(buf, sizeof(buf), "%d", e);
	return buf;
}

/* want2 < 0: only want is right (the header allows two answers for some) */
static void expect_errno2(const char *name, int got, int want, int want2)
{
	cases++;
	printf("%s: errno=%s", name, errno_name(got));
	if (got != want && got != want2) {
		fails++;
		printf("  <-- expected %s", errno_name(want));
		if (want2 >= 0)
			printf(" or %s", errno_name(want2));
	}
	printf("\n");
	fflush(stdout);
}

static void expect_errno(const char *name, int got, int want)
{
	expect_errno2(name, got, want, -1);
}

/* The call must give want, and what it returned must pass a check:
 * problem is NULL if it did, else what is wrong. */
static void expect_errno_and(const char *name, int got, int want,
			     const char *problem)
{
	cases++;
	printf("%s: errno=%s", name, errno_name(got));
	if (got != want) {
		fails++;
		printf("  <-- expected %s", errno_name(want));
	} else if (problem) {
		fails++;
		printf("  <-- %s", problem);
	}
	printf("\n");
	fflush(stdout);
}

static void expect_ai(const char *name, aiError_t got, aiError_t want)
{
	cases++;
	printf("%s: ai=%s", name, aiGetErrorName(got));
	if (got != want) {
		fails++;
		printf("  <-- expected %s", aiGetErrorName(want));
	}
	printf("\n");
	fflush(stdout);
}

/* A step a case depends on failed: the case cannot be judged. */
static void setup_failed(const char *name, const char *what, int err)
{
	cases++;
	fails++;
	printf("%s: setup failed (%s: %s)\n", name, what, errno_name(err));
	fflush(stdout);
}

/* ---- raw driver access --------------------------------------------------- */

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do {
		r = ioctl(fd, req, arg);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? errno : 0;
}

static int open_card(void)
{
	int fd = open(AICARD_DEV_PREFIX "0", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "open %s0: %s\n", AICARD_DEV_PREFIX,
			strerror(errno));
		exit(EXIT_FAIL);
	}
	return fd;
}

static int bo_create(int fd, uint64_t size, struct aicard_bo_create *bo)
{
	memset(bo, 0, sizeof(*bo));
	bo->size = size;
	return xioctl(fd, AICARD_IOCTL_BO_CREATE, bo);
}

static int bo_destroy(int fd, uint32_t handle, uint32_t pad)
{
	struct aicard_bo_destroy d = { .handle = handle, .pad = pad };

	return xioctl(fd, AICARD_IOCTL_BO_DESTROY, &d);
}

static int queue_create(int fd, uint32_t *queue)
{
	struct aicard_queue_create q;
	int e;

	memset(&q, 0, sizeof(q));
	e = xioctl(fd, AICARD_IOCTL_QUEUE_CREATE, &q);
	*queue = q.queue_id;
	return e;
}

static int copy(int fd, uint32_t queue, uint32_t kind, uint64_t dst,
		uint64_t src, uint64_t size)
{
	struct aicard_copy c;

	memset(&c, 0, sizeof(c));
	c.queue_id = queue;
	c.kind = kind;
	c.dst = dst;
	c.src = src;
	c.size = size;
	c.flags = AICARD_COPY_SYNC;
	return xioctl(fd, AICARD_IOCTL_COPY, &c);
}

static int submit(int fd, uint32_t queue, const void *cmds, uint32_t count,
		  uint32_t stride, uint64_t *fence)
{
	struct aicard_submit s;
	int e;

	memset(&s, 0, sizeof(s));
	s.queue_id = queue;
	s.cmd_count = count;
	s.cmd_stride = stride;
	s.cmds = (uintptr_t)cmds;
	e = xioctl(fd, AICARD_IOCTL_SUBMIT, &s);
	if (fence)
		*fence = s.fence;
	return e;
}

static int wait_fence(int fd, uint32_t queue, uint64_t fence,
		      uint64_t timeout_ns)
{
	struct aicard_wait w;

	memset(&w, 0, sizeof(w));
	w.queue_id = queue;
	w.fence = fence;
	w.timeout_ns = timeout_ns;
	return xioctl(fd, AICARD_IOCTL_WAIT, &w);
}

static int event_create(int fd, uint32_t *handle)
{
	struct aicard_event_create c;
	int e;

	memset(&c, 0, sizeof(c));
	e = xioctl(fd, AICARD_IOCTL_EVENT_CREATE, &c);
	*handle = c.handle;
	return e;
}

/* ---- raw cases ----------------------------------------------------------- */

static void raw_requests(void)
{
	struct aicard_dev_query q;
	struct aicard_bo_create bo;
	uint32_t word = 0;
	int fd = open_card(), e;

	memset(&q, 0, sizeof(q));
	expect_errno("unknown_ioctl",
		     xioctl(fd, _IOWR('A', 0x7f, struct aicard_dev_query), &q),
		     ENOTTY);
	expect_errno("wrong_size_ioctl",
		     xioctl(fd, _IOWR('A', 0x01, __u32), &word), ENOTTY);
	expect_errno("foreign_ioctl_type",
		     xioctl(fd, _IOWR('Z', 0x00, struct aicard_dev_query), &q),
		     ENOTTY);
	expect_errno("bad_arg_pointer",
		     xioctl(fd, AICARD_IOCTL_BO_CREATE, bad_ptr), EFAULT);

	e = bo_create(fd, 4096, &bo);
	if (e) {
		setup_failed("closed_fd", "BO_CREATE", e);
		close(fd);
	} else {
		close(fd);
		expect_errno("closed_fd", bo_destroy(fd, bo.handle, 0), EBADF);
	}
}

static void raw_query(void)
{
	struct aicard_device_info info;
	struct aicard_dev_query q;
	unsigned char *raw = (unsigned char *)&info;
	const char *problem = NULL;
	int fd = open_card(), e;

	memset(&q, 0, sizeof(q));
	q.type = AICARD_QUERY_DEVICE_INFO;	/* pointer 0: size only */
	e = xioctl(fd, AICARD_IOCTL_DEV_QUERY, &q);
	expect_errno_and("dev_query_size_only", e, 0,
			 q.size == sizeof(info) ? NULL :
			 "answer size is not sizeof(struct aicard_device_info)");

	memset(&info, 0xaa, sizeof(info));
	memset(&q, 0, sizeof(q));
	q.type = AICARD_QUERY_DEVICE_INFO;
	q.size = 8;		/* an "old caller": only 8 bytes of room */
	q.pointer = (uintptr_t)&info;
	e = xioctl(fd, AICARD_IOCTL_DEV_QUERY, &q);
	for (size_t i = 8; i < sizeof(info); i++)
		if (raw[i] != 0xaa)
			problem = "wrote past the 8 bytes it was given";
	if (q.size != sizeof(info))
		problem = "size out is not the full answer size";
	expect_errno_and("dev_query_short_buffer", e, 0, problem);

	memset(&q, 0, sizeof(q));
	q.type = 99;
	q.size = sizeof(info);
	q.pointer = (uintptr_t)&info;
	expect_errno("dev_query_bad_type",
		     xioctl(fd, AICARD_IOCTL_DEV_QUERY, &q), EINVAL);

	q.type = AICARD_QUERY_DEVICE_INFO;
	q.pointer = (uintptr_t)bad_ptr;
	expect_errno("dev_query_bad_buffer",
		     xioctl(fd, AICARD_IOCTL_DEV_QUERY, &q), EFAULT);
	close(fd);
}

static void raw_buffers(void)
{
	struct aicard_device_info info;
	struct aicard_dev_query q;
	struct aicard_bo_create bo;
	struct aicard_bo_mmap_offset mo;
	int fd = open_card(), e;
	void *p;

	memset(&info, 0, sizeof(info));
	memset(&q, 0, sizeof(q));
	q.type = AICARD_QUERY_DEVICE_INFO;
	q.size = sizeof(info);
	q.pointer = (uintptr_t)&info;
	e = xioctl(fd, AICARD_IOCTL_DEV_QUERY, &q);

	expect_errno("bo_create_zero_size", bo_create(fd, 0, &bo), EINVAL);
	memset(&bo, 0, sizeof(bo));
	bo.size = 4096;
	bo.flags = 1;
	expect_errno("bo_create_flags", xioctl(fd, AICARD_IOCTL_BO_CREATE, &bo),
		     EINVAL);
	if (e)
		setup_failed("bo_create_larger_than_vram", "DEV_QUERY", e);
	else
		expect_errno("bo_create_larger_than_vram",
			     bo_create(fd, info.vram_size + AICARD_PAGE_SIZE,
				       &bo), ENOMEM);

	e = bo_create(fd, 4096, &bo);
	if (e) {
		setup_failed("bo_destroy_pad", "BO_CREATE", e);
		close(fd);
		return;
	}
	expect_errno("bo_destroy_pad", bo_destroy(fd, bo.handle, 1), EINVAL);
	expect_errno("bo_destroy", bo_destroy(fd, bo.handle, 0), 0);
	expect_errno("bo_destroy_freed", bo_destroy(fd, bo.handle, 0), EINVAL);
	memset(&mo, 0, sizeof(mo));
	mo.handle = bo.handle;
	expect_errno("bo_mmap_offset_freed",
		     xioctl(fd, AICARD_IOCTL_BO_MMAP_OFFSET, &mo), EINVAL);
	expect_errno("bo_destroy_zero_handle", bo_destroy(fd, 0, 0), EINVAL);

	/* an mmap offset that names no buffer */
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)0x7ff000000000ll);
	expect_errno("mmap_bad_offset", p == MAP_FAILED ? errno : 0, EINVAL);
	if (p != MAP_FAILED)
		munmap(p, 4096);
	close(fd);
}

/* Copies and fills in a context holding a single 4 KiB buffer, so every
 * address outside it is unmapped. */
static void raw_copies(void)
{
	struct aicard_bo_create bo;
	struct aicard_memset m;
	unsigned char host[128] = { 0 };
	uint32_t queue = 0;
	int fd = open_card(), e;

	e = bo_create(fd, 4096, &bo);
	if (!e)
		e = queue_create(fd, &queue);
	if (e) {
		setup_failed("copy_*", "BO_CREATE/QUEUE_CREATE", e);
		close(fd);
		return;
	}
	expect_errno("copy_ok", copy(fd, queue, AICARD_COPY_HTOD, bo.gpu_va,
				     (uintptr_t)host, 64), 0);
	expect_errno("copy_bad_user_pointer",
		     copy(fd, queue, AICARD_COPY_HTOD, bo.gpu_va,
			  (uintptr_t)bad_ptr, 64), EFAULT);
	expect_errno("copy_dtoh_bad_user_pointer",
		     copy(fd, queue, AICARD_COPY_DTOH, (uintptr_t)bad_ptr,
			  bo.gpu_va, 64), EFAULT);
	expect_errno("copy_bad_device_address",
		     copy(fd, queue, AICARD_COPY_HTOD,
			  bo.gpu_va + (1ull << 30), (uintptr_t)host, 64),
		     EINVAL);
	expect_errno("copy_past_end",
		     copy(fd, queue, AICARD_COPY_HTOD, bo.gpu_va + 4096 - 32,
			  (uintptr_t)host, 64), EINVAL);
	expect_errno("copy_bad_kind",
		     copy(fd, queue, 9, bo.gpu_va, (uintptr_t)host, 64),
		     EINVAL);
	expect_errno("copy_bad_queue",
		     copy(fd, queue + 1000, AICARD_COPY_HTOD, bo.gpu_va,
			  (uintptr_t)host, 64), EINVAL);

	memset(&m, 0, sizeof(m));
	m.queue_id = queue;
	m.dst = bo.gpu_va;
	m.count = 16;
	m.flags = AICARD_COPY_SYNC;
	m.elem_size = 3;
	expect_errno("memset_bad_elem_size",
		     xioctl(fd, AICARD_IOCTL_MEMSET, &m), EINVAL);
	m.elem_size = 4;
	m.dst = bo.gpu_va + 2;
	expect_errno("memset_misaligned", xioctl(fd, AICARD_IOCTL_MEMSET, &m),
		     EINVAL);
	m.dst = bo.gpu_va + 4096 - 8;
	expect_errno("memset_past_end", xioctl(fd, AICARD_IOCTL_MEMSET, &m),
		     EINVAL);
	close(fd);
}

/* Handles and addresses are per open(): another context's are invalid. */
static void raw_isolation(void)
{
	struct aicard_bo_create bo;
	unsigned char host[64] = { 0 };
	uint32_t queue = 0;
	int a = open_card(), b = open_card(), e;

	e = bo_create(a, 4096, &bo);
	if (!e)
		e = queue_create(b, &queue);	/* b has no buffer at all */
	if (e) {
		setup_failed("cross_context_*", "BO_CREATE/QUEUE_CREATE", e);
	} else {
		expect_errno("cross_context_handle",
			     bo_destroy(b, bo.handle, 0), EINVAL);
		expect_errno2("cross_context_address",
			      copy(b, queue, AICARD_COPY_HTOD, bo.gpu_va,
				   (uintptr_t)host, 64), EINVAL, EFAULT);
	}
	close(a);
	close(b);
}

static void raw_queues(void)
{
	unsigned char cmds[2 * 128];
	struct aicard_cmd_event *ev = (void *)cmds;
	struct aicard_cmd_membar *mb = (void *)cmds;
	struct aicard_queue_destroy qd;
	struct aicard_event_signal sig;
	struct aicard_event_wait ew;
	struct aicard_event_query eq;
	uint32_t queue = 0, event = 0, event2 = 0;
	uint64_t fence = 0;
	int fd = open_card(), e;

	e = queue_create(fd, &queue);
	if (!e)
		e = event_create(fd, &event);
	if (!e)
		e = event_create(fd, &event2);
	if (e) {
		setup_failed("submit_*", "QUEUE_CREATE/EVENT_CREATE", e);
		close(fd);
		return;
	}

	memset(cmds, 0, sizeof(cmds));
	mb->type = AICARD_CMD_MEMBAR;
	expect_errno("submit_zero_cmds", submit(fd, queue, cmds, 0, 64, NULL),
		     EINVAL);
	expect_errno("submit_small_stride",
		     submit(fd, queue, cmds, 1, 32, NULL), EINVAL);
	expect_errno("submit_bad_cmds_pointer",
		     submit(fd, queue, bad_ptr, 1, 64, NULL), EFAULT);
	expect_errno("submit_membar_stride128",
		     submit(fd, queue, cmds, 1, 128, NULL), 0);
	cmds[100] = 1;	/* beyond the 64 known bytes: must be zero */
	expect_errno("submit_nonzero_cmd_tail",
		     submit(fd, queue, cmds, 1, 128, NULL), EINVAL);
	memset(cmds, 0, sizeof(cmds));
	ev->type = 99;
	expect_errno("submit_bad_cmd_type",
		     submit(fd, queue, cmds, 1, 64, NULL), EINVAL);
	ev->type = AICARD_CMD_EVENT_RECORD;
	ev->event = event + event2 + 1000;
	expect_errno("submit_bad_event_handle",
		     submit(fd, queue, cmds, 1, 64, NULL), EINVAL);

	/* a queue stalled on an event only the host will signal */
	ev->type = AICARD_CMD_EVENT_WAIT;
	ev->event = event;
	e = submit(fd, queue, cmds, 1, 64, &fence);
	if (e) {
		setup_failed("wait_poll_pending", "SUBMIT EVENT_WAIT", e);
	} else {
		expect_errno("wait_poll_pending",
			     wait_fence(fd, queue, fence, 0), ETIMEDOUT);
		expect_errno("wait_timeout_1ms",
			     wait_fence(fd, queue, fence, 1000000), ETIMEDOUT);
		memset(&sig, 0, sizeof(sig));
		sig.handle = event;
		expect_errno("event_signal",
			     xioctl(fd, AICARD_IOCTL_EVENT_SIGNAL, &sig), 0);
		expect_errno("wait_after_signal",
			     wait_fence(fd, queue, fence, 5000000000ull), 0);
		expect_errno("wait_future_fence",
			     wait_fence(fd, queue, fence + 1000, 1000000),
			     EINVAL);
	}

	memset(&ew, 0, sizeof(ew));
	ew.handle = event2;
	ew.timeout_ns = 1000000;
	expect_errno("event_wait_timeout",
		     xioctl(fd, AICARD_IOCTL_EVENT_WAIT, &ew), ETIMEDOUT);
	memset(&eq, 0, sizeof(eq));
	eq.handle = event2;
	e = xioctl(fd, AICARD_IOCTL_EVENT_QUERY, &eq);
	expect_errno_and("event_query_unsignaled", e, 0,
			 eq.status == AICARD_EVENT_UNSIGNALED ? NULL :
			 "status is not UNSIGNALED");
	eq.handle = event + event2 + 1000;
	expect_errno("event_query_bad_handle",
		     xioctl(fd, AICARD_IOCTL_EVENT_QUERY, &eq), EINVAL);

	memset(&qd, 0, sizeof(qd));
	qd.queue_id = queue;
	expect_errno("queue_destroy", xioctl(fd, AICARD_IOCTL_QUEUE_DESTROY,
					     &qd), 0);
	expect_errno("queue_destroy_twice",
		     xioctl(fd, AICARD_IOCTL_QUEUE_DESTROY, &qd), EINVAL);
	expect_errno("wait_destroyed_queue", wait_fence(fd, queue, fence, 0),
		     EINVAL);
	close(fd);
}

static void *read_kernel(const char *file, size_t *size)
{
	char path[PATH_MAX + 64];
	FILE *f;
	void *buf;
	long n;

	kernel_path(path, sizeof(path), file);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = n > 0 ? malloc((size_t)n) : NULL;
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*size = (size_t)n;
	return buf;
}

static void raw_modules(void)
{
	static const unsigned char junk[64] = "this is not an aicard module";
	struct aicard_module_load ml;
	struct aicard_module_function mf;
	struct aicard_cmd_launch l;
	unsigned char params[256] = { 0 };
	uint32_t queue = 0;
	size_t size = 0;
	void *image;
	int fd = open_card(), e;

	memset(&ml, 0, sizeof(ml));
	ml.image = (uintptr_t)junk;
	ml.size = sizeof(junk);
	expect_errno("module_load_garbage",
		     xioctl(fd, AICARD_IOCTL_MODULE_LOAD, &ml), EINVAL);
	ml.image = (uintptr_t)bad_ptr;
	ml.size = 4096;
	expect_errno("module_load_bad_pointer",
		     xioctl(fd, AICARD_IOCTL_MODULE_LOAD, &ml), EFAULT);
	memset(&mf, 0, sizeof(mf));
	mf.module = 0xdead;
	strcpy(mf.name, "vecadd");
	expect_errno("module_function_bad_module",
		     xioctl(fd, AICARD_IOCTL_MODULE_FUNCTION, &mf), EINVAL);

	image = read_kernel("vecadd.aimod", &size);
	if (!image) {
		setup_failed("module_*", "reading vecadd.aimod", ENOENT);
		close(fd);
		return;
	}
	memset(&ml, 0, sizeof(ml));
	ml.image = (uintptr_t)image;
	ml.size = size;
	e = xioctl(fd, AICARD_IOCTL_MODULE_LOAD, &ml);
	free(image);
	if (!e)
		e = queue_create(fd, &queue);
	if (e) {
		setup_failed("module_*", "MODULE_LOAD vecadd", e);
		close(fd);
		return;
	}
	memset(&mf, 0, sizeof(mf));
	mf.module = ml.handle;
	strcpy(mf.name, "no_such_function");
	expect_errno("module_function_missing",
		     xioctl(fd, AICARD_IOCTL_MODULE_FUNCTION, &mf), ENOENT);
	memset(&mf, 0, sizeof(mf));
	mf.module = ml.handle;
	mf.index = ml.function_count;	/* one past the last, by index */
	expect_errno("module_function_bad_index",
		     xioctl(fd, AICARD_IOCTL_MODULE_FUNCTION, &mf), EINVAL);
	memset(&mf, 0, sizeof(mf));
	mf.module = ml.handle;
	strcpy(mf.name, "vecadd");
	e = xioctl(fd, AICARD_IOCTL_MODULE_FUNCTION, &mf);
	if (e || mf.param_size > sizeof(params)) {
		setup_failed("launch_*", "MODULE_FUNCTION vecadd", e);
		close(fd);
		return;
	}

	memset(&l, 0, sizeof(l));
	l.type = AICARD_CMD_LAUNCH;
	l.module = ml.handle;
	l.function = mf.index;
	l.grid[0] = l.grid[1] = l.grid[2] = 1;
	l.block[0] = l.block[1] = l.block[2] = 1;
	l.params = (uintptr_t)params;	/* n = 0: nothing is touched */
	l.params_size = mf.param_size - 4;
	expect_errno("launch_wrong_params_size",
		     submit(fd, queue, &l, 1, 64, NULL), EINVAL);
	l.params_size = mf.param_size;
	l.grid[0] = 0;
	expect_errno("launch_zero_grid", submit(fd, queue, &l, 1, 64, NULL),
		     EINVAL);
	l.grid[0] = 1;
	l.function = mf.index + 1000;
	expect_errno("launch_bad_function",
		     submit(fd, queue, &l, 1, 64, NULL), EINVAL);
	l.function = mf.index;
	l.params = (uintptr_t)bad_ptr;
	expect_errno("launch_bad_params_pointer",
		     submit(fd, queue, &l, 1, 64, NULL), EFAULT);
	close(fd);
}

/* ---- through the runtime ------------------------------------------------- */

static void runtime_cases(int count)
{
	static const unsigned char junk[64] = "this is not an aicard module";
	unsigned char host[64] = { 0 };
	size_t free_b = 0, total = 0;
	aiModule_t mod = NULL;
	aiFunction_t fn;
	aiEvent_t e0, e1;
	aiCtx_t primary = NULL, ctx;
	void *p = NULL, *q = NULL, *bufs[3];
	aiDim3 one = { 1, 1, 1 }, zero = { 0, 1, 1 };
	float ms;
	char path[PATH_MAX + 64];
	int x = 0;

	expect_ai("ai_set_device_out_of_range", aiSetDevice(count),
		  aiErrorInvalidDevice);
	expect_ai("ai_set_device", aiSetDevice(0), aiSuccess);
	expect_ai("ai_mem_get_info", aiMemGetInfo(&free_b, &total), aiSuccess);
	expect_ai("ai_malloc_larger_than_vram",
		  aiMalloc(&p, total + AICARD_PAGE_SIZE), aiErrorOutOfMemory);
	expect_ai("ai_malloc_zero", aiMalloc(&p, 0), aiSuccess);
	expect_ai("ai_free_null", aiFree(NULL), aiSuccess);
	expect_ai("ai_free_unknown", aiFree((void *)(uintptr_t)0x1234),
		  aiErrorInvalidDevicePointer);
	(void)aiMalloc(&q, 4096);
	expect_ai("ai_free", aiFree(q), aiSuccess);
	expect_ai("ai_double_free", aiFree(q), aiErrorInvalidDevicePointer);
	expect_ai("ai_get_last_error", aiGetLastError(),
		  aiErrorInvalidDevicePointer);
	expect_ai("ai_last_error_cleared", aiGetLastError(), aiSuccess);
	expect_ai("ai_memcpy_freed_pointer",
		  aiMemcpy(q, host, sizeof(host), aiMemcpyHostToDevice),
		  aiErrorInvalidDevicePointer);
	(void)aiMalloc(&p, 4096);
	expect_ai("ai_memcpy_bad_host_pointer",
		  aiMemcpy(p, bad_ptr, 64, aiMemcpyHostToDevice),
		  aiErrorInvalidValue);
	expect_ai("ai_memcpy_bad_kind", aiMemcpy(p, host, 64, 0),
		  aiErrorInvalidValue);
	(void)aiFree(p);
	expect_ai("ai_stream_bad_handle",
		  aiStreamSynchronize((aiStream_t)(void *)&x),
		  aiErrorInvalidHandle);
	(void)aiCtxGetCurrent(&primary);
	expect_ai("ai_ctx_destroy_primary", aiCtxDestroy(primary),
		  aiErrorInvalidValue);

	(void)aiEventCreate(&e0);
	(void)aiEventCreate(&e1);
	expect_ai("ai_event_query_unrecorded", aiEventQuery(e0),
		  aiErrorNotReady);
	expect_ai("ai_event_sync_unrecorded", aiEventSynchronize(e0),
		  aiSuccess);
	expect_ai("ai_event_elapsed_unrecorded",
		  aiEventElapsedTime(&ms, e0, e1), aiErrorNotReady);
	(void)aiEventDestroy(e1);
	(void)aiEventDestroy(e0);
	expect_ai("ai_event_destroyed_handle", aiEventQuery(e0),
		  aiErrorInvalidHandle);

	expect_ai("ai_module_missing_file",
		  aiModuleLoad(&mod, "/nonexistent/aicard/x.aimod"),
		  aiErrorFileNotFound);
	expect_ai("ai_module_garbage",
		  aiModuleLoadData(&mod, junk, sizeof(junk)),
		  aiErrorInvalidImage);

	kernel_path(path, sizeof(path), "vecadd.aimod");
	if (aiModuleLoad(&mod, path) != aiSuccess) {
		setup_failed("ai_function_*", "aiModuleLoad vecadd", ENOENT);
		return;
	}
	expect_ai("ai_function_missing",
		  aiModuleGetFunction(&fn, mod, "no_such_function"),
		  aiErrorNotFound);
	expect_ai("ai_function", aiModuleGetFunction(&fn, mod, "vecadd"),
		  aiSuccess);
	expect_ai("ai_launch_zero_grid",
		  aiLaunchKernel(fn, zero, one, (void *[]){ &p, &p, &p, &x },
				 0, NULL),
		  aiErrorInvalidValue);
	expect_ai("ai_launch_no_args",
		  aiLaunchKernel(fn, one, one, NULL, 0, NULL),
		  aiErrorInvalidValue);
	(void)aiModuleUnload(mod);
	expect_ai("ai_function_after_unload",
		  aiLaunchKernel(fn, one, one, NULL, 0, NULL),
		  aiErrorInvalidHandle);
	(void)aiGetLastError();

	/* a kernel that reads and writes freed memory, in a context of its
	 * own so that the fault cannot spoil anything else */
	if (aiCtxCreate(&ctx, 0) != aiSuccess) {
		setup_failed("ai_launch_fault", "aiCtxCreate", 0);
		return;
	}
	if (aiModuleLoad(&mod, path) != aiSuccess ||
	    aiModuleGetFunction(&fn, mod, "vecadd") != aiSuccess) {
		setup_failed("ai_launch_fault", "load vecadd", 0);
		aiCtxDestroy(ctx);
		return;
	}
	for (int i = 0; i < 3; i++) {
		(void)aiMalloc(&bufs[i], 1024 * sizeof(float));
		(void)aiFree(bufs[i]);
	}
	expect_ai("ai_launch_fault_queued",
		  launch_vecadd(fn, bufs[0], bufs[1], bufs[2], 1024, NULL),
		  aiSuccess);
	expect_ai("ai_launch_fault", aiStreamSynchronize(NULL),
		  aiErrorLaunchFailure);
	expect_ai("ai_ctx_destroy", aiCtxDestroy(ctx), aiSuccess);
	expect_ai("ai_ctx_destroyed_handle", aiCtxSetCurrent(ctx),
		  aiErrorInvalidHandle);
	(void)aiGetLastError();
}

int main(int argc, char **argv)
{
	int count;

	for (int i = 1; i < argc; i++) {
		check_help(argv[i], usage);
		die_usage(usage, "unknown argument '%s'", argv[i]);
	}
	count = device_count_or_exit();
	bad_ptr = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	if (bad_ptr == MAP_FAILED) {
		perror("mmap");
		return EXIT_FAIL;
	}

	raw_requests();
	raw_query();
	raw_buffers();
	raw_copies();
	raw_isolation();
	raw_queues();
	raw_modules();
	runtime_cases(count);

	if (fails) {
		printf("# errors FAILED: %d of %d cases not as expected\n",
		       fails, cases);
		return EXIT_FAIL;
	}
	printf("# errors passed: %d cases as expected\n", cases);
	return EXIT_PASS;
}
