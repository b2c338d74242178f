/*
 * daemon_client.c - a device client for the daemon tests, raw UAPI.
 *
 *   daemon_client hog SIZE    allocate SIZE bytes (half of it mapped and
 *                             written), block a second thread in EVENT_WAIT
 *                             forever, print "ready VRAM_USED", then sleep
 *                             until killed
 *   daemon_client fork        device fds across fork(): EBADFD in the child,
 *                             which opens its own; prints "ok ..."/"FAIL ..."
 *   daemon_client ipc-bad     the IPC ioctls with bad inputs; same output
 *
 * Exit status: the number of failures.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aicard_uapi.h"

#include "check.h"

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

static struct aicard_mem_info mem_info(int fd)
{
	struct aicard_mem_info mi;
	struct aicard_dev_query q = { .type = AICARD_QUERY_MEM_INFO, .size = sizeof(mi),
				      .pointer = (uintptr_t)&mi };
	if (xioctl(fd, AICARD_IOCTL_DEV_QUERY, &q))
		memset(&mi, 0xff, sizeof(mi));
	return mi;
}

static unsigned long long vram_used(int fd)
{
	return mem_info(fd).vram_used;
}

static uint32_t bo_create(int fd, uint64_t size, uint64_t *va)
{
	struct aicard_bo_create c = { .size = size };
	if (xioctl(fd, AICARD_IOCTL_BO_CREATE, &c)) {
		perror("BO_CREATE");
		exit(100);
	}
	if (va)
		*va = c.gpu_va;
	return c.handle;
}

static void *map_bo(int fd, uint32_t handle, size_t size)
{
	struct aicard_bo_mmap_offset mo = { .handle = handle };
	if (xioctl(fd, AICARD_IOCTL_BO_MMAP_OFFSET, &mo)) {
		perror("BO_MMAP_OFFSET");
		exit(100);
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)mo.offset);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(100);
	}
	return p;
}

struct waiter {
	int fd;
	uint32_t event;
};

static void *wait_forever(void *arg)
{
	struct waiter *w = arg;
	/* Recorded once, reset: never signalled again, so this waits until
	 * the process dies. */
	struct aicard_event_wait ew = { .handle = w->event, .timeout_ns = AICARD_TIMEOUT_INFINITE };
	int r = xioctl(w->fd, AICARD_IOCTL_EVENT_WAIT, &ew);
	printf("EVENT_WAIT returned %d\n", r);
	fflush(stdout);
	return NULL;
}

static int hog(unsigned long long size)
{
	int fd = open("/dev/aicard0", O_RDWR);
	if (fd < 0) {
		perror("/dev/aicard0");
		return 100;
	}
	uint32_t mapped = bo_create(fd, size / 2, NULL);
	unsigned char *p = map_bo(fd, mapped, size / 2);
	memset(p, 0xab, size / 2);
	bo_create(fd, size - size / 2, NULL);

	struct aicard_queue_create qc = { 0 };
	struct aicard_event_create ec = { 0 };
	xioctl(fd, AICARD_IOCTL_QUEUE_CREATE, &qc);
	xioctl(fd, AICARD_IOCTL_EVENT_CREATE, &ec);
	static struct waiter w;
	w.fd = fd;
	w.event = ec.handle;
	pthread_t t;
	pthread_create(&t, NULL, wait_forever, &w);
	/* Give the waiter time to be inside the driver: not needed for the
	 * test to be right, only for it to test the blocked case. */
	usleep(100000);
	printf("ready %llu\n", vram_used(fd));
	fflush(stdout);
	for (;;)
		pause();
}

static int fork_test(void)
{
	int fd = open("/dev/aicard0", O_RDWR);
	if (fd < 0) {
		perror("/dev/aicard0");
		return 100;
	}
	bo_create(fd, 1 << 20, NULL);
	unsigned long long used = vram_used(fd);
	pid_t pid = fork();
	if (pid == 0) {
		struct aicard_bo_create c = { .size = 4096 };
		if (xioctl(fd, AICARD_IOCTL_BO_CREATE, &c) != -EBADFD)
			_exit(10);
		int nfd = open("/dev/aicard0", O_RDWR);
		if (nfd < 0 || xioctl(nfd, AICARD_IOCTL_BO_CREATE, &c))
			_exit(11);
		close(fd);			/* the inherited one: the parent's stays */
		if (vram_used(nfd) < 4096)
			_exit(12);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK("fork: inherited fd is EBADFD, the child's own open works",
	      WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	struct aicard_bo_create c = { .size = 4096 };
	CHECK("fork: the parent's fd still works", xioctl(fd, AICARD_IOCTL_BO_CREATE, &c) == 0, "x");
	printf("vram_used %llu after %llu\n", vram_used(fd), used);
	return failures;
}

static int ipc_bad(void)
{
	int a = open("/dev/aicard0", O_RDWR), b = open("/dev/aicard0", O_RDWR);
	int other = open("/dev/aicard1", O_RDWR);
	if (a < 0 || b < 0 || other < 0) {
		perror("open");
		return 100;
	}
	uint64_t va;
	uint32_t h = bo_create(a, 8192, &va);
	struct aicard_ipc_export x = { .handle = h };
	int r;

	r = ioctl(a, AICARD_IOCTL_IPC_EXPORT, (void *)1) ? errno : 0;
	CHECK("export: bad argument pointer is EFAULT", r == EFAULT, "errno %d", r);
	r = ioctl(a, _IOWR('A', 0x15, struct aicard_bo_create), &x) ? errno : 0;
	CHECK("export: wrong size is ENOTTY", r == ENOTTY, "errno %d", r);
	x.flags = 1;
	CHECK("export: non-zero flags is EINVAL", xioctl(a, AICARD_IOCTL_IPC_EXPORT, &x) == -EINVAL, "x");
	x.flags = 0;
	x.handle = h + 100;
	CHECK("export: unknown handle is EINVAL", xioctl(a, AICARD_IOCTL_IPC_EXPORT, &x) == -EINVAL, "x");
	x.handle = h;
	CHECK("export: handle of another context is EINVAL", xioctl(b, AICARD_IOCTL_IPC_EXPORT, &x) == -EINVAL,
	      "x");
	CHECK("export works", xioctl(a, AICARD_IOCTL_IPC_EXPORT, &x) == 0, "x");

	struct aicard_ipc_import m;
	memset(&m, 0, sizeof(m));
	r = ioctl(b, AICARD_IOCTL_IPC_IMPORT, (void *)8) ? errno : 0;
	CHECK("import: bad argument pointer is EFAULT", r == EFAULT, "errno %d", r);
	CHECK("import: an all-zero token is ENOENT", xioctl(b, AICARD_IOCTL_IPC_IMPORT, &m) == -ENOENT, "x");
	memcpy(m.token, x.token, sizeof(m.token));
	m.token[7] ^= 1;
	CHECK("import: a token off by one bit is ENOENT", xioctl(b, AICARD_IOCTL_IPC_IMPORT, &m) == -ENOENT, "x");
	memcpy(m.token, x.token, sizeof(m.token));
	m.flags = 2;
	CHECK("import: non-zero flags is EINVAL", xioctl(b, AICARD_IOCTL_IPC_IMPORT, &m) == -EINVAL, "x");
	m.flags = 0;
	CHECK("import: on another device is ENOENT", xioctl(other, AICARD_IOCTL_IPC_IMPORT, &m) == -ENOENT, "x");
	CHECK("import: into the exporter's context is EINVAL", xioctl(a, AICARD_IOCTL_IPC_IMPORT, &m) == -EINVAL,
	      "x");
	CHECK("import works", xioctl(b, AICARD_IOCTL_IPC_IMPORT, &m) == 0 && m.size == 8192 && m.handle,
	      "size %llu", (unsigned long long)m.size);
	CHECK("import: twice into one context is EINVAL", xioctl(b, AICARD_IOCTL_IPC_IMPORT, &m) == -EINVAL, "x");

	/* both handles name the same pages */
	unsigned char *pa = map_bo(a, h, 8192), *pb = map_bo(b, m.handle, 8192);
	pa[100] = 0x5a;
	CHECK("exporter and importer map the same bytes", pb[100] == 0x5a && pa != pb, "%x", pb[100]);

	struct aicard_bo_destroy d = { .handle = h };
	CHECK("exporter frees", xioctl(a, AICARD_IOCTL_BO_DESTROY, &d) == 0, "x");
	CHECK("import after the free is ENOENT", xioctl(other, AICARD_IOCTL_IPC_IMPORT, &m) == -ENOENT &&
	      xioctl(a, AICARD_IOCTL_IPC_IMPORT, &m) == -ENOENT, "x");
	CHECK("the importer's mapping keeps the bytes", pb[100] == 0x5a, "x");
	d.handle = m.handle;
	CHECK("importer closes (BO_DESTROY)", xioctl(b, AICARD_IOCTL_BO_DESTROY, &d) == 0, "x");
	CHECK("its handle is gone", xioctl(b, AICARD_IOCTL_BO_DESTROY, &d) == -EINVAL, "x");
	munmap(pa, 8192);
	munmap(pb, 8192);
	CHECK("nothing left in either context", mem_info(a).ctx_used == 0 && mem_info(b).ctx_used == 0 &&
	      mem_info(a).ctx_bo_count == 0, "x");
	printf("vram_used %llu\n", vram_used(a));
	return failures;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "hog"))
		return hog(strtoull(argv[2], NULL, 0));
	if (argc >= 2 && !strcmp(argv[1], "fork"))
		return fork_test();
	if (argc >= 2 && !strcmp(argv[1], "ipc-bad"))
		return ipc_bad();
	fprintf(stderr, "usage: daemon_client hog SIZE | fork | ipc-bad\n");
	return 100;
}
