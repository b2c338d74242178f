/* SPDX-License-Identifier: MIT */
/*
 * hostfn.c - aiLaunchHostFunc on the device's notify interrupt.
 *
 * A host function is one SUBMIT of two commands on its stream:
 *   CMD_NOTIFY(cookie)     the device raises an interrupt carrying cookie
 *                          once the stream's earlier work is done;
 *   CMD_EVENT_WAIT(event)  the stream then holds until the event is
 *                          signalled.
 * A thread per context (started with the first host function) takes the
 * interrupts with NOTIFY_WAIT, runs the function whose cookie came up,
 * then signals the event from the host (EVENT_SIGNAL): the stream goes on.
 * Cookie 0 only wakes the thread (to stop it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt.h"

/* Between two checks of notify_quit when the wake-up interrupt cannot be
 * sent (a lost context runs nothing, not even CMD_NOTIFY). */
#define NOTIFY_POLL_NS (500ull * 1000 * 1000)

static int event_signal(struct aiCtx *ctx, uint32_t handle)
{
	struct aicard_event_signal es = { .handle = handle };

	return aicrt_ioctl(ctx->fd, AICARD_IOCTL_EVENT_SIGNAL, &es);
}

static void event_destroy(struct aiCtx *ctx, uint32_t handle)
{
	struct aicard_event_destroy ed = { .handle = handle };

	aicrt_ioctl(ctx->fd, AICARD_IOCTL_EVENT_DESTROY, &ed);
}

/* The entry for cookie, taken off the list (ctx->lock held). */
static struct aicrt_hostfn *take(struct aiCtx *ctx, uint64_t cookie)
{
	for (struct aicrt_hostfn **pp = &ctx->hostfns; *pp; pp = &(*pp)->next)
		if ((*pp)->cookie == cookie) {
			struct aicrt_hostfn *h = *pp;

			*pp = h->next;
			return h;
		}
	return NULL;
}

static void *notify_main(void *arg)
{
	struct aiCtx *ctx = arg;

	while (!__atomic_load_n(&ctx->notify_quit, __ATOMIC_ACQUIRE)) {
		struct aicard_notify_wait w;
		struct aicrt_hostfn *h;
		int ret;

		memset(&w, 0, sizeof(w));
		w.timeout_ns = NOTIFY_POLL_NS;
		ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_NOTIFY_WAIT, &w);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret < 0)
			break;		/* the context is gone */
		pthread_mutex_lock(&ctx->lock);
		h = w.value ? take(ctx, w.value) : NULL;
		pthread_mutex_unlock(&ctx->lock);
		if (!h)
			continue;
		h->fn(h->data);
		event_signal(ctx, h->event);
		/* the driver keeps the event's slot until the stream is past it */
		event_destroy(ctx, h->event);
		free(h);
	}
	return NULL;
}

aiError_t aiLaunchHostFunc(aiStream_t stream, aiHostFn_t fn, void *userData)
{
	struct aicard_cmd_notify notify;
	struct aicard_cmd_event wait;
	struct aicard_event_create ec;
	struct aicard_submit sub;
	uint8_t cmds[2 * AICARD_CMD_SIZE];
	struct aicrt_hostfn *h;
	struct aiCtx *ctx = NULL;
	struct aiStream *s;
	aiError_t e;
	int ret;

	_Static_assert(sizeof(notify) == AICARD_CMD_SIZE, "command size");
	if (!fn)
		return aicrt_ret(aiErrorInvalidValue);
	e = aicrt_resolve_stream(stream, &ctx, &s);
	if (e)
		return aicrt_ret(e);
	if (!(ctx->info.caps & AICARD_CAP_NOTIFY))
		return aicrt_ret(aiErrorNotSupported);
	h = calloc(1, sizeof(*h));
	if (!h)
		return aicrt_ret(aiErrorOutOfMemory);
	memset(&ec, 0, sizeof(ec));
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_EVENT_CREATE, &ec);
	if (ret < 0) {
		free(h);
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidValue));
	}
	h->fn = fn;
	h->data = userData;
	h->event = ec.handle;

	pthread_mutex_lock(&ctx->lock);
	if (!ctx->notify_started) {
		if (pthread_create(&ctx->notify_thread, NULL, notify_main, ctx)) {
			pthread_mutex_unlock(&ctx->lock);
			event_destroy(ctx, h->event);
			free(h);
			return aicrt_ret(aiErrorOperatingSystem);
		}
		ctx->notify_started = true;
		ctx->notify_pid = getpid();
	}
	h->cookie = ++ctx->next_cookie;
	/* listed before the submit: the interrupt may come before it returns */
	h->next = NULL;
	{
		struct aicrt_hostfn **pp = &ctx->hostfns;

		while (*pp)
			pp = &(*pp)->next;
		*pp = h;
	}
	pthread_mutex_unlock(&ctx->lock);

	memset(&notify, 0, sizeof(notify));
	notify.type = AICARD_CMD_NOTIFY;
	notify.value = h->cookie;
	memset(&wait, 0, sizeof(wait));
	wait.type = AICARD_CMD_EVENT_WAIT;
	wait.event = h->event;
	memcpy(cmds, &notify, AICARD_CMD_SIZE);
	memcpy(cmds + AICARD_CMD_SIZE, &wait, AICARD_CMD_SIZE);
	memset(&sub, 0, sizeof(sub));
	sub.queue_id = s->queue_id;
	sub.cmd_count = 2;
	sub.cmd_stride = AICARD_CMD_SIZE;
	sub.cmds = (uintptr_t)cmds;
	ret = aicrt_ioctl(ctx->fd, AICARD_IOCTL_SUBMIT, &sub);
	if (ret < 0) {
		pthread_mutex_lock(&ctx->lock);
		h = take(ctx, notify.value);
		pthread_mutex_unlock(&ctx->lock);
		if (h) {
			event_destroy(ctx, h->event);
			free(h);
		}
		return aicrt_ret(aicrt_from_errno(-ret, aiErrorInvalidValue));
	}
	aicrt_stream_queued(s, sub.fence, false);
	return aiSuccess;
}

void aicrt_hostfn_shutdown(struct aiCtx *ctx)
{
	struct aicrt_hostfn *h;
	bool started;

	pthread_mutex_lock(&ctx->lock);
	started = ctx->notify_started;
	ctx->notify_started = false;
	pthread_mutex_unlock(&ctx->lock);
	/* after fork() the thread exists only in the parent */
	if (started && ctx->notify_pid == getpid()) {
		struct aicard_cmd_notify wake;
		struct aicard_submit sub;

		__atomic_store_n(&ctx->notify_quit, true, __ATOMIC_RELEASE);
		/* wake the thread now; if the context is lost it notices
		 * within NOTIFY_POLL_NS */
		memset(&wake, 0, sizeof(wake));
		wake.type = AICARD_CMD_NOTIFY;
		memset(&sub, 0, sizeof(sub));
		sub.queue_id = ctx->default_stream.queue_id;
		sub.cmd_count = 1;
		sub.cmd_stride = AICARD_CMD_SIZE;
		sub.cmds = (uintptr_t)&wake;
		aicrt_ioctl(ctx->fd, AICARD_IOCTL_SUBMIT, &sub);
		pthread_join(ctx->notify_thread, NULL);
	}
	pthread_mutex_lock(&ctx->lock);
	h = ctx->hostfns;
	ctx->hostfns = NULL;
	pthread_mutex_unlock(&ctx->lock);
	while (h) {
		struct aicrt_hostfn *next = h->next;

		event_destroy(ctx, h->event);
		free(h);
		h = next;
	}
}
