/* SPDX-License-Identifier: MIT */
/*
 * driver.c - the single door to the kernel driver: ioctl with EINTR retry,
 * the DEV_QUERY size protocol, and the AICARD_DEBUG log of every call.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "rt.h"

/* ---- debug log ----------------------------------------------------------- */

static int debug_state = -1;	/* -1: AICARD_DEBUG not read yet */

bool aicrt_debug_on(void)
{
	int s = __atomic_load_n(&debug_state, __ATOMIC_RELAXED);

	if (s < 0) {
		const char *v = getenv("AICARD_DEBUG");

		s = v && *v && strcmp(v, "0") != 0;
		__atomic_store_n(&debug_state, s, __ATOMIC_RELAXED);
	}
	return s;
}

void aicrt_debug(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "[aicard] ");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	/* one write per line, so lines of several threads do not mix */
	if (write(STDERR_FILENO, line, strlen(line)) < 0)
		return;
}

/* ---- describing a request ------------------------------------------------ */

static const char *const ioctl_names[] = {
	[0x00] = "DEV_QUERY",      [0x01] = "BO_CREATE",
	[0x02] = "BO_DESTROY",     [0x03] = "BO_MMAP_OFFSET",
	[0x04] = "QUEUE_CREATE",   [0x05] = "QUEUE_DESTROY",
	[0x06] = "SUBMIT",         [0x07] = "WAIT",
	[0x08] = "COPY",           [0x09] = "MEMSET",
	[0x0a] = "MODULE_LOAD",    [0x0b] = "MODULE_UNLOAD",
	[0x0c] = "MODULE_FUNCTION", [0x0d] = "EVENT_CREATE",
	[0x0e] = "EVENT_DESTROY",  [0x0f] = "EVENT_QUERY",
	[0x10] = "EVENT_WAIT",     [0x11] = "EVENT_SIGNAL",
	[0x12] = "PRINTF_READ",    [0x13] = "NOTIFY_WAIT",
	[0x14] = "FENCE_RESET",    [0x15] = "IPC_EXPORT",
	[0x16] = "IPC_IMPORT",
};

static const char *cmd_name(uint32_t type)
{
	switch (type) {
	case AICARD_CMD_LAUNCH:		return "LAUNCH";
	case AICARD_CMD_EVENT_RECORD:	return "EVENT_RECORD";
	case AICARD_CMD_EVENT_WAIT:	return "EVENT_WAIT";
	case AICARD_CMD_EVENT_RESET:	return "EVENT_RESET";
	case AICARD_CMD_MEMBAR:		return "MEMBAR";
	case AICARD_CMD_NOTIFY:		return "NOTIFY";
	case AICARD_CMD_TRANSFORMER:	return "TRANSFORMER";
	default:			return "?";
	}
}

static const char *copy_kind_name(uint32_t kind)
{
	switch (kind) {
	case AICARD_COPY_HTOD:	return "HtoD";
	case AICARD_COPY_DTOH:	return "DtoH";
	case AICARD_COPY_DTOD:	return "DtoD";
	default:		return "?";
	}
}

/* Inputs of the request, printed before "->". */
static void describe_in(char *b, size_t n, unsigned long req, const void *arg)
{
	*b = 0;
	if (_IOC_TYPE(req) != AICARD_IOCTL_TYPE)
		return;
	switch (req) {
	case AICARD_IOCTL_DEV_QUERY: {
		const struct aicard_dev_query *q = arg;
		snprintf(b, n, "type=%u size=%u", q->type, q->size);
		break;
	}
	case AICARD_IOCTL_BO_CREATE: {
		const struct aicard_bo_create *c = arg;
		snprintf(b, n, "size=0x%llx", (unsigned long long)c->size);
		break;
	}
	case AICARD_IOCTL_BO_DESTROY:
	case AICARD_IOCTL_BO_MMAP_OFFSET:
	case AICARD_IOCTL_MODULE_UNLOAD:
	case AICARD_IOCTL_EVENT_DESTROY:
	case AICARD_IOCTL_EVENT_QUERY:
	case AICARD_IOCTL_EVENT_SIGNAL:
	case AICARD_IOCTL_QUEUE_DESTROY:
	case AICARD_IOCTL_FENCE_RESET:
	case AICARD_IOCTL_IPC_EXPORT:
		/* all start with a __u32 handle */
		snprintf(b, n, "handle=%u", *(const uint32_t *)arg);
		break;
	case AICARD_IOCTL_QUEUE_CREATE: {
		const struct aicard_queue_create *c = arg;
		snprintf(b, n, "priority=%u", c->priority);
		break;
	}
	case AICARD_IOCTL_SUBMIT: {
		const struct aicard_submit *s = arg;
		const uint32_t *cmd = (const uint32_t *)(uintptr_t)s->cmds;
		int k = snprintf(b, n, "queue=%u count=%u", s->queue_id,
				 s->cmd_count);
		if (cmd && s->cmd_count >= 1 && k > 0 && (size_t)k < n) {
			if (cmd[0] == AICARD_CMD_LAUNCH) {
				const struct aicard_cmd_launch *l =
					(const void *)cmd;
				snprintf(b + k, n - (size_t)k,
					 " LAUNCH module=%u fn=%u grid=%ux%ux%u"
					 " block=%ux%ux%u shared=%u params=%u",
					 l->module, l->function, l->grid[0],
					 l->grid[1], l->grid[2], l->block[0],
					 l->block[1], l->block[2],
					 l->shared_size, l->params_size);
			} else if (cmd[0] == AICARD_CMD_NOTIFY) {
				const struct aicard_cmd_notify *c =
					(const void *)cmd;
				snprintf(b + k, n - (size_t)k,
					 " NOTIFY value=%llu",
					 (unsigned long long)c->value);
			} else if (cmd[0] == AICARD_CMD_TRANSFORMER) {
				const struct aicard_cmd_transformer *t =
					(const void *)cmd;
				snprintf(b + k, n - (size_t)k,
					 " TRANSFORMER op=%u rows=%u dim=%u"
					 " keys=%u vdim=%u", t->op, t->rows,
					 t->dim, t->keys, t->vdim);
			} else {
				snprintf(b + k, n - (size_t)k, " %s event=%u",
					 cmd_name(cmd[0]), cmd[2]);
			}
		}
		break;
	}
	case AICARD_IOCTL_WAIT: {
		const struct aicard_wait *w = arg;
		if (w->timeout_ns == AICARD_TIMEOUT_INFINITE)
			snprintf(b, n, "queue=%u fence=%llu timeout=inf",
				 w->queue_id, (unsigned long long)w->fence);
		else
			snprintf(b, n, "queue=%u fence=%llu timeout=%lluns",
				 w->queue_id, (unsigned long long)w->fence,
				 (unsigned long long)w->timeout_ns);
		break;
	}
	case AICARD_IOCTL_COPY: {
		const struct aicard_copy *c = arg;
		snprintf(b, n, "queue=%u %s dst=0x%llx src=0x%llx size=0x%llx%s",
			 c->queue_id, copy_kind_name(c->kind),
			 (unsigned long long)c->dst, (unsigned long long)c->src,
			 (unsigned long long)c->size,
			 (c->flags & AICARD_COPY_SYNC) ? " sync" : "");
		break;
	}
	case AICARD_IOCTL_MEMSET: {
		const struct aicard_memset *m = arg;
		snprintf(b, n, "queue=%u dst=0x%llx elem=%u count=0x%llx "
			 "value=0x%x%s", m->queue_id,
			 (unsigned long long)m->dst, m->elem_size,
			 (unsigned long long)m->count, m->value,
			 (m->flags & AICARD_COPY_SYNC) ? " sync" : "");
		break;
	}
	case AICARD_IOCTL_MODULE_LOAD: {
		const struct aicard_module_load *m = arg;
		snprintf(b, n, "size=%llu", (unsigned long long)m->size);
		break;
	}
	case AICARD_IOCTL_MODULE_FUNCTION: {
		const struct aicard_module_function *f = arg;
		if (f->name[0])
			snprintf(b, n, "module=%u name=%.64s", f->module,
				 f->name);
		else
			snprintf(b, n, "module=%u index=%u", f->module,
				 f->index);
		break;
	}
	case AICARD_IOCTL_EVENT_WAIT: {
		const struct aicard_event_wait *w = arg;
		if (w->timeout_ns == AICARD_TIMEOUT_INFINITE)
			snprintf(b, n, "handle=%u timeout=inf", w->handle);
		else
			snprintf(b, n, "handle=%u timeout=%lluns", w->handle,
				 (unsigned long long)w->timeout_ns);
		break;
	}
	default:
		break;
	}
}

/* Outputs of a request that succeeded, printed after "->". */
static void describe_out(char *b, size_t n, unsigned long req, const void *arg)
{
	*b = 0;
	switch (req) {
	case AICARD_IOCTL_DEV_QUERY: {
		const struct aicard_dev_query *q = arg;
		snprintf(b, n, " size=%u", q->size);
		break;
	}
	case AICARD_IOCTL_BO_CREATE: {
		const struct aicard_bo_create *c = arg;
		snprintf(b, n, " handle=%u gpu_va=0x%llx", c->handle,
			 (unsigned long long)c->gpu_va);
		break;
	}
	case AICARD_IOCTL_BO_MMAP_OFFSET: {
		const struct aicard_bo_mmap_offset *m = arg;
		snprintf(b, n, " offset=0x%llx",
			 (unsigned long long)m->offset);
		break;
	}
	case AICARD_IOCTL_QUEUE_CREATE: {
		const struct aicard_queue_create *c = arg;
		snprintf(b, n, " queue=%u", c->queue_id);
		break;
	}
	case AICARD_IOCTL_SUBMIT: {
		const struct aicard_submit *s = arg;
		snprintf(b, n, " fence=%llu", (unsigned long long)s->fence);
		break;
	}
	case AICARD_IOCTL_WAIT: {
		const struct aicard_wait *w = arg;
		snprintf(b, n, " status=%u completed=%llu", w->status,
			 (unsigned long long)w->completed);
		break;
	}
	case AICARD_IOCTL_COPY: {
		const struct aicard_copy *c = arg;
		snprintf(b, n, " fence=%llu", (unsigned long long)c->fence);
		break;
	}
	case AICARD_IOCTL_MEMSET: {
		const struct aicard_memset *m = arg;
		snprintf(b, n, " fence=%llu", (unsigned long long)m->fence);
		break;
	}
	case AICARD_IOCTL_MODULE_LOAD: {
		const struct aicard_module_load *m = arg;
		snprintf(b, n, " handle=%u functions=%u", m->handle,
			 m->function_count);
		break;
	}
	case AICARD_IOCTL_MODULE_FUNCTION: {
		const struct aicard_module_function *f = arg;
		snprintf(b, n, " index=%u name=%.64s params=%u/%uB shared=%u "
			 "regs=%u", f->index, f->name, f->param_count,
			 f->param_size, f->shared_size, f->num_regs);
		break;
	}
	case AICARD_IOCTL_EVENT_CREATE: {
		const struct aicard_event_create *c = arg;
		snprintf(b, n, " handle=%u", c->handle);
		break;
	}
	case AICARD_IOCTL_PRINTF_READ: {
		const struct aicard_printf_read *r = arg;
		snprintf(b, n, " size=%u pending=%llu", r->size,
			 (unsigned long long)r->pending);
		break;
	}
	case AICARD_IOCTL_NOTIFY_WAIT: {
		const struct aicard_notify_wait *w = arg;
		snprintf(b, n, " value=%llu count=%llu",
			 (unsigned long long)w->value,
			 (unsigned long long)w->count);
		break;
	}
	case AICARD_IOCTL_IPC_IMPORT: {
		const struct aicard_ipc_import *m = arg;
		snprintf(b, n, " handle=%u gpu_va=0x%llx size=0x%llx",
			 m->handle, (unsigned long long)m->gpu_va,
			 (unsigned long long)m->size);
		break;
	}
	case AICARD_IOCTL_EVENT_QUERY: {
		const struct aicard_event_query *q = arg;
		snprintf(b, n, " status=%u timestamp=%llu fence=%llu",
			 q->status, (unsigned long long)q->timestamp,
			 (unsigned long long)q->fence);
		break;
	}
	default:
		break;
	}
}

/* ---- the door ------------------------------------------------------------ */

int aicrt_ioctl(int fd, unsigned long req, void *arg)
{
	char in[256], out[160];
	unsigned nr = _IOC_NR(req);
	const char *name = NULL;
	int ret, err = 0;

	if (aicrt_debug_on())
		describe_in(in, sizeof(in), req, arg);
	do {
		ret = ioctl(fd, req, arg);
	} while (ret < 0 && (err = errno) == EINTR);
	if (ret >= 0)
		err = 0;

	if (aicrt_debug_on()) {
		if (_IOC_TYPE(req) == AICARD_IOCTL_TYPE &&
		    nr < sizeof(ioctl_names) / sizeof(ioctl_names[0]))
			name = ioctl_names[nr];
		if (err)
			snprintf(out, sizeof(out), " %s", aicrt_errno_name(err));
		else
			describe_out(out, sizeof(out), req, arg);
		if (name)
			aicrt_debug("ioctl fd=%d %s%s%s ->%s", fd, name,
				    *in ? " " : "", in,
				    err ? out : (*out ? out : " ok"));
		else
			aicrt_debug("ioctl fd=%d req=0x%08lx ->%s", fd, req,
				    err ? out : " ok");
	}
	return err ? -err : 0;
}

int aicrt_query(int fd, uint32_t type, void *buf, uint32_t size,
		uint32_t *answer_size)
{
	struct aicard_dev_query q;
	int ret;

	memset(buf, 0, size);
	memset(&q, 0, sizeof(q));
	q.type = type;
	q.size = size;
	q.pointer = (uintptr_t)buf;
	ret = aicrt_ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q);
	if (ret == 0 && answer_size)
		*answer_size = q.size;
	return ret;
}
