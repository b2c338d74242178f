/*
 * argcopy.c - ioctl arguments (and a nested user pointer) from every kind
 * of memory a program may use.  Arguments on the calling thread's live
 * stack are copied with memcpy (interposer/usercopy.h); everything else goes
 * through process_vm_readv/writev.  Either way the answer must be right,
 * and a bad pointer EFAULT.  Reports through check.h.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "aicard_uapi.h"
#include "check.h"

static int fd;

/* DEV_QUERY CLOCK with both the argument and the answer at the given places. */
static int query(struct aicard_dev_query *q, struct aicard_clock *clk)
{
	q->type = AICARD_QUERY_CLOCK;
	q->size = sizeof(*clk);
	q->pointer = (uintptr_t)clk;
	clk->freq = 0;
	int r = ioctl(fd, AICARD_IOCTL_DEV_QUERY, q);
	return r == 0 && q->size == sizeof(*clk) && clk->freq != 0 ? 0 : (r ? errno : -1);
}

static int query_on_stack(void)
{
	struct aicard_dev_query q = { 0 };
	struct aicard_clock clk;
	return query(&q, &clk);
}

static void *thread_main(void *arg)
{
	*(int *)arg = query_on_stack();
	return NULL;
}

static volatile int handler_result = -2;

static void on_signal(int sig)
{
	(void)sig;
	handler_result = query_on_stack();	/* on the alternate stack */
}

static ucontext_t main_ctx, co_ctx;
static int co_result = -2;

static void coroutine(void)
{
	co_result = query_on_stack();		/* on a malloc()ed stack */
}

int main(void)
{
	fd = open("/dev/aicard0", O_RDWR);
	if (fd < 0) {
		perror("/dev/aicard0");
		return 100;
	}

	CHECK("stack", query_on_stack() == 0, "query from the stack");

	struct aicard_dev_query *hq = malloc(sizeof(*hq));
	struct aicard_clock *hc = malloc(sizeof(*hc));
	CHECK("heap", query(hq, hc) == 0, "query from the heap");
	struct aicard_dev_query sq = { 0 };
	CHECK("stack argument, heap answer", query(&sq, hc) == 0, "mixed");

	int tr = -2;
	pthread_t t;
	pthread_create(&t, NULL, thread_main, &tr);
	pthread_join(t, NULL);
	CHECK("thread", tr == 0, "query from a thread's stack: %d", tr);

	/* A thread on a stack the program allocated itself. */
	pthread_attr_t a;
	size_t size = 256 << 10;
	void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pthread_attr_init(&a);
	pthread_attr_setstack(&a, stack, size);
	tr = -2;
	pthread_create(&t, &a, thread_main, &tr);
	pthread_join(t, NULL);
	CHECK("thread on the program's own stack", tr == 0, "%d", tr);

	/* A signal handler on an alternate stack. */
	stack_t ss = { .ss_sp = malloc(1 << 16), .ss_size = 1 << 16 };
	sigaltstack(&ss, NULL);
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_ONSTACK };
	sigaction(SIGUSR1, &sa, NULL);
	raise(SIGUSR1);
	CHECK("signal handler on sigaltstack", handler_result == 0, "%d", handler_result);

	/* A coroutine (swapcontext onto a heap stack). */
	getcontext(&co_ctx);
	co_ctx.uc_stack.ss_sp = malloc(1 << 16);
	co_ctx.uc_stack.ss_size = 1 << 16;
	co_ctx.uc_link = &main_ctx;
	makecontext(&co_ctx, coroutine, 0);
	swapcontext(&main_ctx, &co_ctx);
	CHECK("coroutine", co_result == 0, "%d", co_result);

	/* Bad places: the argument, then the answer. */
	CHECK("argument unmapped", ioctl(fd, AICARD_IOCTL_DEV_QUERY, (void *)16) == -1 && errno == EFAULT, "want EFAULT");
	void *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK("argument read-only", ioctl(fd, AICARD_IOCTL_DEV_QUERY, ro) == -1 && errno == EFAULT,
	      "an _IOWR argument in read-only memory: want EFAULT");
	struct aicard_dev_query q = { .type = AICARD_QUERY_CLOCK, .size = 16, .pointer = (uintptr_t)ro };
	CHECK("answer read-only", ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q) == -1 && errno == EFAULT, "want EFAULT");
	q.pointer = 16;
	CHECK("answer unmapped", ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q) == -1 && errno == EFAULT, "want EFAULT");
	/* The argument straddles the end of a mapping: EFAULT, not a crash. */
	char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(two + 4096, 4096);
	CHECK("argument runs off its mapping",
	      ioctl(fd, AICARD_IOCTL_DEV_QUERY, two + 4096 - 8) == -1 && errno == EFAULT, "want EFAULT");

	CHECK("still working", query_on_stack() == 0, "query after the faults");
	return failures;
}
