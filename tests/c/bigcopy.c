/*
 * bigcopy.c - copies big enough to be cut into pieces that run on several
 * threads (interposer/build.py, pydriver/copythreads.py): every byte must
 * arrive, and a bad page anywhere - in the first piece or the last - must
 * fail the ioctl with EFAULT and leave the context working.
 *
 *   bigcopy [MIB (default 17)]
 *
 * Raw ioctls on the UAPI header only, so exactly one COPY per case.  Sizes
 * are deliberately not page multiples.  Reports through check.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "aicard_uapi.h"
#include "check.h"

static int fd;
static uint32_t queue;

static int copy(unsigned kind, uint64_t dst, uint64_t src, uint64_t size)
{
	struct aicard_copy c = { .queue_id = queue, .kind = kind, .dst = dst, .src = src,
				 .size = size, .flags = AICARD_COPY_SYNC };
	return ioctl(fd, AICARD_IOCTL_COPY, &c) == 0 ? 0 : errno;
}

/* A host buffer of n bytes followed by an inaccessible page. */
static unsigned char *guarded(size_t n, size_t *mapped)
{
	size_t pages = (n + 4095) / 4096;
	*mapped = (pages + 1) * 4096;
	unsigned char *p = mmap(NULL, *mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p + pages * 4096, 4096, PROT_NONE) != 0) {
		perror("guarded buffer");
		exit(100);
	}
	return p;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 17;
	size_t n = (mib << 20) - 12345;		/* not a page multiple */
	fd = open("/dev/aicard0", O_RDWR);
	struct aicard_queue_create qc = { 0 };
	struct aicard_bo_create a = { .size = n }, b = { .size = n };
	if (fd < 0 || ioctl(fd, AICARD_IOCTL_QUEUE_CREATE, &qc) || ioctl(fd, AICARD_IOCTL_BO_CREATE, &a) ||
	    ioctl(fd, AICARD_IOCTL_BO_CREATE, &b)) {
		perror("device set-up");
		return 100;
	}
	queue = qc.queue_id;

	size_t m1, m2;
	unsigned char *src = guarded(n, &m1), *dst = guarded(n, &m2);
	for (size_t i = 0; i < n; i++)
		src[i] = (unsigned char)(i * 131 + (i >> 12));

	/* Round trip through two device buffers: HtoD, DtoD, DtoH. */
	CHECK("htod", copy(AICARD_COPY_HTOD, a.gpu_va, (uintptr_t)src, n) == 0, "%zu bytes", n);
	CHECK("dtod", copy(AICARD_COPY_DTOD, b.gpu_va, a.gpu_va, n) == 0, "%zu bytes", n);
	memset(dst, 0, n);
	CHECK("dtoh", copy(AICARD_COPY_DTOH, (uintptr_t)dst, b.gpu_va, n) == 0, "%zu bytes", n);
	size_t bad = 0;
	while (bad < n && dst[bad] == src[bad])
		bad++;
	CHECK("round trip", bad == n, "byte %zu of %zu differs", bad, n);

	/* A bad page in the last piece, then in the first: EFAULT either way. */
	size_t last = (n / 4096) * 4096 - 4096, first = 4096;
	mprotect(src + last, 4096, PROT_NONE);
	CHECK("htod bad page last", copy(AICARD_COPY_HTOD, a.gpu_va, (uintptr_t)src, n) == EFAULT, "want EFAULT");
	mprotect(src + last, 4096, PROT_READ | PROT_WRITE);
	mprotect(src + first, 4096, PROT_NONE);
	CHECK("htod bad page first", copy(AICARD_COPY_HTOD, a.gpu_va, (uintptr_t)src, n) == EFAULT, "want EFAULT");
	mprotect(src + first, 4096, PROT_READ | PROT_WRITE);
	CHECK("htod runs into the guard page",
	      copy(AICARD_COPY_HTOD, a.gpu_va, (uintptr_t)src + 4096, n) == EFAULT, "want EFAULT");
	mprotect(dst + last, 4096, PROT_READ);
	CHECK("dtoh read-only page last", copy(AICARD_COPY_DTOH, (uintptr_t)dst, b.gpu_va, n) == EFAULT,
	      "want EFAULT");
	mprotect(dst + last, 4096, PROT_READ | PROT_WRITE);

	/* The context still works, and the device buffer holds the good data. */
	memset(dst, 0, n);
	CHECK("after the faults", copy(AICARD_COPY_DTOH, (uintptr_t)dst, b.gpu_va, n) == 0 &&
	      memcmp(dst, src, n) == 0, "copy back failed or differs");
	munmap(src, m1);
	munmap(dst, m2);
	return failures;
}
