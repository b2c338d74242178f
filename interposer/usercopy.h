/*
 * usercopy.h - copy_from_user / copy_to_user within this process, shared by
 * the preload library (ioctl arguments) and the driver library (nested user
 * pointers), so both follow one rule:
 *
 * bytes on the calling thread's live stack are copied with memcpy - they are
 * mapped and writable for certain (the caller's own frames sit on them), and
 * it saves process_vm_readv/writev, two syscalls, 0.8 of WAIT's 3 us.  The
 * usual `struct aicard_wait w; ioctl(fd, ..., &w)` is such a case.  Anything
 * else - heap, globals, a bad pointer, a signal handler on an alternate
 * stack, a coroutine's stack (our own frame is then outside the thread's
 * bounds) - takes the checked path and gets EFAULT, never SIGSEGV.
 */
#ifndef AICARD_USERCOPY_H
#define AICARD_USERCOPY_H

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The includer may choose a TLS model: the preload library, loaded at
 * start-up, uses initial-exec (no __tls_get_addr on the hot path); the
 * dlopen()ed driver library keeps the default, which cannot run out of the
 * static TLS space a dlopen()ed library would have to borrow. */
#ifndef AICARD_STACK_TLS
#define AICARD_STACK_TLS
#endif

/* This thread's stack as pthread describes it; known < 0: could not tell.
 * (A forked child keeps its thread's stack at the same addresses.) */
static __thread uintptr_t aicard_stack_lo AICARD_STACK_TLS;
static __thread uintptr_t aicard_stack_hi AICARD_STACK_TLS;
static __thread int aicard_stack_known AICARD_STACK_TLS;

/* Between our frame (always below the caller's) and the top of the stack. */
static __attribute__((noinline, unused)) int aicard_on_live_stack(uintptr_t p, size_t n)
{
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);
	if (!aicard_stack_known) {
		pthread_attr_t a;
		void *lo;
		size_t size;
		aicard_stack_known = -1;
		if (pthread_getattr_np(pthread_self(), &a) == 0) {
			if (pthread_attr_getstack(&a, &lo, &size) == 0) {
				aicard_stack_lo = (uintptr_t)lo;
				aicard_stack_hi = (uintptr_t)lo + size;
				aicard_stack_known = 1;
			}
			pthread_attr_destroy(&a);
		}
	}
	return aicard_stack_known > 0 && here >= aicard_stack_lo && here < aicard_stack_hi &&
	       p > here && p + n >= p && p + n <= aicard_stack_hi;
}

/* Copy n bytes between local (ours) and remote (user memory of process pid;
 * self: pid is this process, so the live-stack shortcut applies).  Bytes
 * moved, or -errno (a short count when a bad page stops the copy). */
static inline long aicard_copy_user(pid_t pid, int self, void *local, uintptr_t remote, size_t n,
				    int to_user)
{
	if (self && aicard_on_live_stack(remote, n)) {
		if (to_user)
			memcpy((void *)remote, local, n);
		else
			memcpy(local, (void *)remote, n);
		return (long)n;
	}
	struct iovec l = { local, n }, r = { (void *)remote, n };
	ssize_t got = to_user ? process_vm_writev(pid, &l, 1, &r, 1, 0)
			      : process_vm_readv(pid, &l, 1, &r, 1, 0);
	return got < 0 ? -errno : (long)got;
}

#endif
