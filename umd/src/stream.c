/* SPDX-License-Identifier: MIT */
/*
 * stream.c - streams (driver queues + fence bookkeeping) and events.
 *
 * Fence bookkeeping, per stream, under ctx->lock:
 *   last_fence   the last fence the driver gave for work on the queue;
 *   async_fence  the last fence of work that can fault (a launch, an
 *                asynchronous copy or fill);
 *   checked      everything up to here is known complete and its status
 *                was reported.
 * A wait is skipped when last_fence <= checked, so a program that
 * synchronizes and then copies makes no redundant WAIT calls, and a fault
 * is reported once, by the first call that waits for it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

static aiError_t from_status(uint32_t status)
{
	switch (status) {
	case AICARD_FENCE_OK:		return aiSuccess;
	case AICARD_FENCE_FAULT:	return aiErrorLaunchFailure;
	case AICARD_FENCE_TIMEOUT:	return aiErrorLaunchTimeout;
	default:			return aiErrorUnknown;
	}
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Is s still a stream of ctx?  (ctx->lock held) */
static bool stream_alive(struct aiCtx *ctx, const struct aiStream *s)
{
	if (s == &ctx->default_stream)
		return true;
	for (const struct aiStream *p = ctx->streams; p; p = p->next)
		if (p == s)
			return true;
	return false;
}

/* WAIT on one fence; *status set on success.  0 timeout -> NotReady. */
static aiError_t wait_fence(struct aiCtx *ctx, uint32_t queue, uint64_t fence,
			    uint64_t timeout_ns, uint32_t *status)
{
	struct aicard_wait w;
	int ret;

	memset(&w, 0, sizeof(w));
	w.queue_id = queue;
	w.fence = fence;
	w.timeout_ns = timeout_ns;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_WAIT, &w);
	if (ret == -ETIMEDOUT)
		return timeout_ns == 0 ? aiErrorNotReady : aiErrorTimeout;
	if (ret < 0)
		return aicrt_from_errno(-ret, aiErrorInvalidHandle);
	*status = w.status;
	return aiSuccess;
}

void aicrt_stream_queued(struct aiStream *s, uint64_t fence, bool may_fault)
{
	pthread_mutex_lock(&s->ctx->lock);
	s->last_fence = max_u64(s->last_fence, fence);
	if (may_fault)
		s->async_fence = max_u64(s->async_fence, fence);
	pthread_mutex_unlock(&s->ctx->lock);
}

aiError_t aicrt_stream_sync_done(struct aiStream *s, uint64_t fence)
{
	struct aiCtx *ctx = s->ctx;
	uint32_t status = AICARD_FENCE_OK;
	bool need_status;
	aiError_t e;

	pthread_mutex_lock(&ctx->lock);
	s->last_fence = max_u64(s->last_fence, fence);
	need_status = s->async_fence > s->checked;
	if (!need_status)
		s->checked = max_u64(s->checked, fence);
	pthread_mutex_unlock(&ctx->lock);
	if (!need_status)
		return aiSuccess;

	/* the queue is in order: the fence is complete, this only polls for
	 * the status of the work queued before the copy */
	e = wait_fence(ctx, s->queue_id, fence, 0, &status);
	if (e)
		return e == aiErrorNotReady ? aiSuccess : e;
	pthread_mutex_lock(&ctx->lock);
	s->checked = max_u64(s->checked, fence);
	pthread_mutex_unlock(&ctx->lock);
	return from_status(status);
}

aiError_t aicrt_stream_wait(struct aiStream *s, uint64_t timeout_ns,
			    bool report)
{
	struct aiCtx *ctx = s->ctx;
	uint32_t status = AICARD_FENCE_OK;
	uint64_t fence;
	aiError_t e;

	pthread_mutex_lock(&ctx->lock);
	fence = s->last_fence;
	if (fence <= s->checked)
		fence = 0;
	pthread_mutex_unlock(&ctx->lock);
	if (!fence)
		return aiSuccess;

	e = wait_fence(ctx, s->queue_id, fence, timeout_ns, &status);
	if (e || !report)
		return e;
	pthread_mutex_lock(&ctx->lock);
	if (stream_alive(ctx, s))
		s->checked = max_u64(s->checked, fence);
	pthread_mutex_unlock(&ctx->lock);
	return from_status(status);
}

aiError_t aicrt_ctx_wait(struct aiCtx *ctx, bool report)
{
	struct pending { struct aiStream *s; uint32_t queue; uint64_t fence; };
	struct pending *p;
	size_t n = 1, k = 0;
	aiError_t first = aiSuccess;

	pthread_mutex_lock(&ctx->lock);
	for (struct aiStream *s = ctx->streams; s; s = s->next)
		n++;
	p = calloc(n, sizeof(*p));
	if (!p) {
		pthread_mutex_unlock(&ctx->lock);
		return aiErrorOutOfMemory;
	}
	for (struct aiStream *s = &ctx->default_stream; s;
	     s = (s == &ctx->default_stream) ? ctx->streams : s->next) {
		if (s->last_fence > s->checked)
			p[k++] = (struct pending){ s, s->queue_id,
						   s->last_fence };
	}
	pthread_mutex_unlock(&ctx->lock);

	for (size_t i = 0; i < k; i++) {
		uint32_t status = AICARD_FENCE_OK;
		aiError_t e = wait_fence(ctx, p[i].queue, p[i].fence,
					 AICARD_TIMEOUT_INFINITE, &status);

		if (!e && report) {
			pthread_mutex_lock(&ctx->lock);
			if (stream_alive(ctx, p[i].s))
				p[i].s->checked = max_u64(p[i].s->checked,
							  p[i].fence);
			pthread_mutex_unlock(&ctx->lock);
			e = from_status(status);
		}
		if (e && !first)
			first = e;
	}
	free(p);
	return first;
}

/* ---- streams ------------------------------------------------------------- */

aiError_t aiStreamCreate(aiStream_t *stream)
{
	struct aicard_queue_create qc;
	struct aiStream *s;
	struct aiCtx *ctx;
	aiError_t e;
	int ret;

	if (!stream)
		return aicrt_ret(aiErrorInvalidValue);
	e = aicrt_current_ctx(&ctx);
	if (e)
		return aicrt_ret(e);
	s = calloc(1, sizeof(*s));
	if (!s)
		return aicrt_ret(aiErrorOutOfMemory);
	memset(&qc, 0, sizeof(qc));
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_QUEUE_CREATE, &qc);
	if (ret < 0) {
		free(s);
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidValue));
	}
	s->ctx = ctx;
	s->queue_id = qc.queue_id;
	if (!aicrt_obj_add(s, AICRT_OBJ_STREAM)) {
		struct aicard_queue_destroy qd = { .queue_id = qc.queue_id };

		aicrt_ioctl(ctx->fd, AICARD_IOCTL_QUEUE_DESTROY, &qd);
		free(s);
		return aicrt_ret(aiErrorOutOfMemory);
	}
	pthread_mutex_lock(&ctx->lock);
	s->next = ctx->streams;
	ctx->streams = s;
	pthread_mutex_unlock(&ctx->lock);
	*stream = s;
	return aiSuccess;
}

aiError_t aicrt_stream_destroy(struct aiStream *s)
{
	struct aiCtx *ctx = s->ctx;
	struct aicard_queue_destroy qd;
	aiError_t e;
	int ret;

	aicrt_obj_del(s);
	/* the queue's work finishes first; its status is nobody's now */
	e = aicrt_stream_wait(s, AICARD_TIMEOUT_INFINITE, false);
	pthread_mutex_lock(&ctx->lock);
	for (struct aiStream **pp = &ctx->streams; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	pthread_mutex_unlock(&ctx->lock);
	memset(&qd, 0, sizeof(qd));
	qd.queue_id = s->queue_id;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_QUEUE_DESTROY, &qd);
	if (ret < 0 && !e)
		e = aicrt_from_errno(-ret, aiErrorInvalidHandle);
	free(s);
	return e;
}

aiError_t aiStreamDestroy(aiStream_t stream)
{
	if (!aicrt_obj_valid(stream, AICRT_OBJ_STREAM))
		return aicrt_ret(aiErrorInvalidHandle);
	return aicrt_ret(aicrt_stream_destroy(stream));
}

aiError_t aiStreamSynchronize(aiStream_t stream)
{
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(stream, &ctx, &s);

	if (!e) {
		e = aicrt_stream_wait(s, AICARD_TIMEOUT_INFINITE, true);
		aicrt_printf_drain(ctx);
	}
	return aicrt_ret(e);
}

aiError_t aiStreamQuery(aiStream_t stream)
{
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(stream, &ctx, &s);

	if (!e)
		e = aicrt_stream_wait(s, 0, true);
	/* "not ready" is an answer, not an error to remember */
	return e == aiErrorNotReady ? e : aicrt_ret(e);
}

/* One command of AICARD_CMD_SIZE bytes on s; its fence is noted. */
static aiError_t submit_one(struct aiStream *s, const void *cmd, bool may_fault)
{
	struct aicard_submit sub;
	int ret;

	memset(&sub, 0, sizeof(sub));
	sub.queue_id = s->queue_id;
	sub.cmd_count = 1;
	sub.cmd_stride = AICARD_CMD_SIZE;
	sub.cmds = (uintptr_t)cmd;
	ret = aicrt_ioctl(s->ctx->fd, AICARD_IOCTL_SUBMIT, &sub);
	if (ret < 0)
		return aicrt_from_errno(-ret, aiErrorInvalidValue);
	aicrt_stream_queued(s, sub.fence, may_fault);
	return aiSuccess;
}

aiError_t aicrt_submit_cmd(struct aiStream *s, const void *cmd, bool may_fault)
{
	return submit_one(s, cmd, may_fault);
}

aiError_t aiStreamMemoryBarrier(aiStream_t stream)
{
	struct aicard_cmd_membar cmd;
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(stream, &ctx, &s);

	_Static_assert(sizeof(cmd) == AICARD_CMD_SIZE, "command size");
	if (e)
		return aicrt_ret(e);
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = AICARD_CMD_MEMBAR;
	return aicrt_ret(submit_one(s, &cmd, false));
}

aiError_t aiStreamResetFences(aiStream_t stream)
{
	struct aicard_fence_reset fr;
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e = aicrt_resolve_stream(stream, &ctx, &s);
	int ret;

	if (e)
		return aicrt_ret(e);
	if (!(ctx->info.caps & AICARD_CAP_FENCE_RESET))
		return aicrt_ret(aiErrorNotSupported);
	/* a fault of earlier work is this call's to report */
	e = aicrt_stream_wait(s, AICARD_TIMEOUT_INFINITE, true);
	if (e)
		return aicrt_ret(e);
	memset(&fr, 0, sizeof(fr));
	fr.queue_id = s->queue_id;
	pthread_mutex_lock(&ctx->lock);
	/* under the lock: no fence of this stream is noted meanwhile (work
	 * queued by another thread now would make the driver say EBUSY) */
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_FENCE_RESET, &fr);
	if (ret == 0)
		s->last_fence = s->async_fence = s->checked = 0;
	pthread_mutex_unlock(&ctx->lock);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidHandle));
	return aiSuccess;
}

/* ---- events -------------------------------------------------------------- */

static int submit_event(struct aiStream *s, uint32_t type, uint32_t event,
			uint64_t *fence)
{
	struct aicard_cmd_event cmd;
	struct aicard_submit sub;
	int ret;

	_Static_assert(sizeof(cmd) == AICARD_CMD_SIZE, "command size");
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = type;
	cmd.event = event;
	memset(&sub, 0, sizeof(sub));
	sub.queue_id = s->queue_id;
	sub.cmd_count = 1;
	sub.cmd_stride = AICARD_CMD_SIZE;
	sub.cmds = (uintptr_t)&cmd;
	ret = aicrt_ioctl(s->ctx->fd, AICARD_IOCTL_SUBMIT, &sub);
	if (ret == 0)
		*fence = sub.fence;
	return ret;
}

static int query_event(struct aiEvent *e, struct aicard_event_query *q)
{
	memset(q, 0, sizeof(*q));
	q->handle = e->handle;
	return aicrt_ioctl(e->ctx->fd, AICARD_IOCTL_EVENT_QUERY, q);
}

static aiError_t wait_event(struct aiEvent *e)
{
	struct aicard_event_wait w;
	int ret;

	memset(&w, 0, sizeof(w));
	w.handle = e->handle;
	w.timeout_ns = AICARD_TIMEOUT_INFINITE;
	ret = aicrt_ioctl(e->ctx->fd, AICARD_IOCTL_EVENT_WAIT, &w);
	if (ret < 0)
		return aicrt_from_errno(-ret, aiErrorInvalidHandle);
	return aiSuccess;
}

static bool event_recorded(struct aiEvent *e)
{
	bool r;

	pthread_mutex_lock(&e->ctx->lock);
	r = e->recorded;
	pthread_mutex_unlock(&e->ctx->lock);
	return r;
}

aiError_t aiEventCreate(aiEvent_t *event)
{
	struct aicard_event_create ec;
	struct aiEvent *ev;
	struct aiCtx *ctx;
	aiError_t e;
	int ret;

	if (!event)
		return aicrt_ret(aiErrorInvalidValue);
	e = aicrt_current_ctx(&ctx);
	if (e)
		return aicrt_ret(e);
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return aicrt_ret(aiErrorOutOfMemory);
	memset(&ec, 0, sizeof(ec));
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_EVENT_CREATE, &ec);
	if (ret < 0) {
		free(ev);
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidValue));
	}
	ev->ctx = ctx;
	ev->handle = ec.handle;
	if (!aicrt_obj_add(ev, AICRT_OBJ_EVENT)) {
		struct aicard_event_destroy ed = { .handle = ec.handle };

		aicrt_ioctl(ctx->fd, AICARD_IOCTL_EVENT_DESTROY, &ed);
		free(ev);
		return aicrt_ret(aiErrorOutOfMemory);
	}
	pthread_mutex_lock(&ctx->lock);
	ev->next = ctx->events;
	ctx->events = ev;
	pthread_mutex_unlock(&ctx->lock);
	*event = ev;
	return aiSuccess;
}

aiError_t aicrt_event_destroy(struct aiEvent *ev)
{
	struct aiCtx *ctx = ev->ctx;
	struct aicard_event_destroy ed;
	struct aicard_event_query q;
	aiError_t e = aiSuccess;
	int ret;

	aicrt_obj_del(ev);
	pthread_mutex_lock(&ctx->lock);
	for (struct aiEvent **pp = &ctx->events; *pp; pp = &(*pp)->next)
		if (*pp == ev) {
			*pp = ev->next;
			break;
		}
	pthread_mutex_unlock(&ctx->lock);
	/* a record still queued would signal a dead handle: let it land */
	if (ev->recorded && query_event(ev, &q) == 0 &&
	    q.status == AICARD_EVENT_PENDING)
		wait_event(ev);
	memset(&ed, 0, sizeof(ed));
	ed.handle = ev->handle;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_EVENT_DESTROY, &ed);
	if (ret < 0)
		e = aicrt_from_errno(-ret, aiErrorInvalidHandle);
	free(ev);
	return e;
}

aiError_t aiEventDestroy(aiEvent_t event)
{
	if (!aicrt_obj_valid(event, AICRT_OBJ_EVENT))
		return aicrt_ret(aiErrorInvalidHandle);
	return aicrt_ret(aicrt_event_destroy(event));
}

aiError_t aiEventRecord(aiEvent_t event, aiStream_t stream)
{
	struct aiCtx *ctx;
	struct aiStream *s;
	uint64_t fence = 0;
	aiError_t e;
	int ret;

	if (!aicrt_obj_valid(event, AICRT_OBJ_EVENT))
		return aicrt_ret(aiErrorInvalidHandle);
	ctx = event->ctx;
	e = aicrt_resolve_stream(stream, &ctx, &s);
	if (e)
		return aicrt_ret(e);
	ret = submit_event(s, AICARD_CMD_EVENT_RECORD, event->handle, &fence);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidHandle));
	aicrt_stream_queued(s, fence, false);
	pthread_mutex_lock(&ctx->lock);
	event->recorded = true;
	pthread_mutex_unlock(&ctx->lock);
	return aiSuccess;
}

aiError_t aiStreamWaitEvent(aiStream_t stream, aiEvent_t event)
{
	struct aiCtx *ctx;
	struct aiStream *s;
	uint64_t fence = 0;
	aiError_t e;
	int ret;

	if (!aicrt_obj_valid(event, AICRT_OBJ_EVENT))
		return aicrt_ret(aiErrorInvalidHandle);
	ctx = event->ctx;
	e = aicrt_resolve_stream(stream, &ctx, &s);
	if (e)
		return aicrt_ret(e);
	/* waiting for an event nobody records would stall the queue for
	 * good; CUDA treats it as already complete */
	if (!event_recorded(event))
		return aiSuccess;
	ret = submit_event(s, AICARD_CMD_EVENT_WAIT, event->handle, &fence);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidHandle));
	aicrt_stream_queued(s, fence, false);
	return aiSuccess;
}

aiError_t aiEventQuery(aiEvent_t event)
{
	struct aicard_event_query q;
	int ret;

	if (!aicrt_obj_valid(event, AICRT_OBJ_EVENT))
		return aicrt_ret(aiErrorInvalidHandle);
	ret = query_event(event, &q);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidHandle));
	return q.status == AICARD_EVENT_SIGNALED ? aiSuccess : aiErrorNotReady;
}

aiError_t aiEventSynchronize(aiEvent_t event)
{
	aiError_t e;

	if (!aicrt_obj_valid(event, AICRT_OBJ_EVENT))
		return aicrt_ret(aiErrorInvalidHandle);
	if (!event_recorded(event))
		return aiSuccess;
	e = wait_event(event);
	aicrt_printf_drain(event->ctx);
	return aicrt_ret(e);
}

aiError_t aiEventGetTimestamp(unsigned long long *ticks, aiEvent_t event)
{
	struct aicard_event_query q;
	int ret;

	if (!ticks)
		return aicrt_ret(aiErrorInvalidValue);
	if (!aicrt_obj_valid(event, AICRT_OBJ_EVENT))
		return aicrt_ret(aiErrorInvalidHandle);
	ret = query_event(event, &q);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidHandle));
	if (q.status != AICARD_EVENT_SIGNALED)
		return aiErrorNotReady;
	*ticks = q.timestamp;
	return aiSuccess;
}

aiError_t aiEventReset(aiEvent_t event, aiStream_t stream)
{
	struct aiCtx *ctx;
	struct aiStream *s;
	uint64_t fence = 0;
	aiError_t e;
	int ret;

	if (!aicrt_obj_valid(event, AICRT_OBJ_EVENT))
		return aicrt_ret(aiErrorInvalidHandle);
	ctx = event->ctx;
	e = aicrt_resolve_stream(stream, &ctx, &s);
	if (e)
		return aicrt_ret(e);
	ret = submit_event(s, AICARD_CMD_EVENT_RESET, event->handle, &fence);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidHandle));
	aicrt_stream_queued(s, fence, false);
	pthread_mutex_lock(&ctx->lock);
	event->recorded = false;
	pthread_mutex_unlock(&ctx->lock);
	return aiSuccess;
}

aiError_t aiEventElapsedTime(float *ms, aiEvent_t start, aiEvent_t end)
{
	struct aicard_event_query q0, q1;
	uint64_t freq;
	int ret;

	if (!ms)
		return aicrt_ret(aiErrorInvalidValue);
	if (!aicrt_obj_valid(start, AICRT_OBJ_EVENT) ||
	    !aicrt_obj_valid(end, AICRT_OBJ_EVENT) || start->ctx != end->ctx)
		return aicrt_ret(aiErrorInvalidHandle);
	ret = query_event(start, &q0);
	if (ret == 0)
		ret = query_event(end, &q1);
	if (ret < 0)
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidHandle));
	if (q0.status != AICARD_EVENT_SIGNALED ||
	    q1.status != AICARD_EVENT_SIGNALED)
		return aiErrorNotReady;
	freq = start->ctx->info.timestamp_freq;
	if (!freq)
		return aicrt_ret(aiErrorUnknown);	/* driver left it 0 */
	*ms = (float)((double)(int64_t)(q1.timestamp - q0.timestamp) * 1e3 /
		      (double)freq);
	return aiSuccess;
}
