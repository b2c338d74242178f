/*
 * interpose.c - calls every libc entry point the preload library wraps, in
 * each spelling, on a device node and on ordinary files, and checks what
 * comes back.  Prints "ok NAME" or "FAIL NAME: why" per check; the exit
 * status is the number of failures.  Run under the shim by the test suite.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "aicard_uapi.h"

/* Names only old binaries or fortified builds call; declared by hand. */
extern int __open_2(const char *, int);
extern int __open64_2(const char *, int);
extern int __openat_2(int, const char *, int);
extern int __xstat(int, const char *, struct stat *);
extern int __lxstat(int, const char *, struct stat *);
extern int __fxstat(int, int, struct stat *);
extern int __fxstatat(int, int, const char *, struct stat *, int);

#include "check.h"

static int is_device_stat(const struct stat *st, int minor)
{
	return S_ISCHR(st->st_mode) && major(st->st_rdev) == 240 && (int)minor(st->st_rdev) == minor;
}

/* A device fd is live if DEV_QUERY works on it. */
static int fd_works(int fd)
{
	struct aicard_device_info info;
	struct aicard_dev_query q = { .type = AICARD_QUERY_DEVICE_INFO, .size = sizeof(info),
				      .pointer = (uintptr_t)&info };
	return ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q) == 0 && q.size == sizeof(info);
}

static unsigned long long vram_used(int fd)
{
	struct aicard_mem_info mi;
	struct aicard_dev_query q = { .type = AICARD_QUERY_MEM_INFO, .size = sizeof(mi),
				      .pointer = (uintptr_t)&mi };
	if (ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q) != 0)
		return ~0ull;
	return mi.vram_used;
}

static void test_open_family(void)
{
	int fd;
	fd = open("/dev/aicard0", O_RDWR);
	CHECK("open", fd >= 0 && fd_works(fd), "fd=%d", fd);
	close(fd);
	fd = open64("/dev/aicard1", O_RDWR | O_CLOEXEC);
	CHECK("open64", fd >= 0 && fd_works(fd) && (fcntl(fd, F_GETFD) & FD_CLOEXEC), "fd=%d", fd);
	close(fd);
	fd = openat(AT_FDCWD, "/dev/aicard2", O_RDWR);
	CHECK("openat", fd >= 0 && fd_works(fd), "fd=%d", fd);
	close(fd);
	int dir = open("/dev", O_RDONLY | O_DIRECTORY);
	fd = openat64(dir, "aicard3", O_RDWR);
	CHECK("openat64 relative to a /dev dirfd", fd >= 0 && fd_works(fd), "fd=%d", fd);
	close(fd);
	close(dir);
	fd = __open_2("/dev/aicard0", O_RDWR);
	CHECK("__open_2", fd >= 0 && fd_works(fd), "fd=%d", fd);
	close(fd);
	fd = __open64_2("/dev/aicard0", O_RDWR);
	CHECK("__open64_2", fd >= 0 && fd_works(fd), "fd=%d", fd);
	close(fd);
	fd = __openat_2(AT_FDCWD, "/dev/aicard0", O_RDWR);
	CHECK("__openat_2", fd >= 0 && fd_works(fd), "fd=%d", fd);
	close(fd);
	fd = open("//dev/./aicard0", O_RDWR);
	CHECK("open non-canonical path", fd >= 0 && fd_works(fd), "fd=%d", fd);
	close(fd);
	char cwd[PATH_MAX];
	if (getcwd(cwd, sizeof(cwd)) && chdir("/dev") == 0) {
		fd = open("aicard1", O_RDWR);
		CHECK("open relative to cwd /dev", fd >= 0 && fd_works(fd), "fd=%d", fd);
		close(fd);
		if (chdir(cwd) != 0)
			perror("chdir");
	}
	FILE *f = fopen("/dev/aicard0", "r+");
	CHECK("fopen", f && fd_works(fileno(f)), "f=%p", (void *)f);
	if (f)
		fclose(f);
	fd = open("/dev/aicard4", O_RDWR);
	CHECK("open beyond the device count is ENOENT", fd < 0 && errno == ENOENT, "fd=%d", fd);
	fd = open("/dev/aicard01", O_RDWR);
	CHECK("open aicard01 is not a device", fd < 0 && errno == ENOENT, "fd=%d", fd);
	fd = open("/dev/aicard0", O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK("open O_CREAT|O_EXCL is EEXIST", fd < 0 && errno == EEXIST, "fd=%d", fd);
	fd = open("/dev/aicard0", O_RDONLY | O_DIRECTORY);
	CHECK("open O_DIRECTORY is ENOTDIR", fd < 0 && errno == ENOTDIR, "fd=%d", fd);
	fd = open("/dev/null", O_RDWR);
	CHECK("open of an ordinary node is untouched", fd >= 0 && ioctl(fd, AICARD_IOCTL_DEV_QUERY, NULL) < 0
	      && errno == ENOTTY, "fd=%d", fd);
	close(fd);
}

static void test_stat_family(void)
{
	struct stat st;
	struct statx stx;
	CHECK("stat", stat("/dev/aicard1", &st) == 0 && is_device_stat(&st, 1), "mode=%o", st.st_mode);
	CHECK("lstat", lstat("/dev/aicard2", &st) == 0 && is_device_stat(&st, 2), "mode=%o", st.st_mode);
	CHECK("stat64", stat64("/dev/aicard1", (struct stat64 *)&st) == 0 && is_device_stat(&st, 1), "x");
	CHECK("lstat64", lstat64("/dev/aicard1", (struct stat64 *)&st) == 0 && is_device_stat(&st, 1), "x");
	CHECK("fstatat", fstatat(AT_FDCWD, "/dev/aicard3", &st, 0) == 0 && is_device_stat(&st, 3), "x");
	CHECK("fstatat64", fstatat64(AT_FDCWD, "/dev/aicard3", (struct stat64 *)&st, 0) == 0
	      && is_device_stat(&st, 3), "x");
	int fd = open("/dev/aicard2", O_RDWR);
	CHECK("fstat", fstat(fd, &st) == 0 && is_device_stat(&st, 2), "mode=%o", st.st_mode);
	CHECK("fstat64", fstat64(fd, (struct stat64 *)&st) == 0 && is_device_stat(&st, 2), "x");
	CHECK("fstatat AT_EMPTY_PATH", fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && is_device_stat(&st, 2), "x");
	CHECK("statx", statx(AT_FDCWD, "/dev/aicard1", 0, STATX_BASIC_STATS, &stx) == 0
	      && S_ISCHR(stx.stx_mode) && stx.stx_rdev_major == 240 && stx.stx_rdev_minor == 1, "x");
	CHECK("statx AT_EMPTY_PATH", statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0
	      && stx.stx_rdev_minor == 2, "x");
	CHECK("__xstat", __xstat(1, "/dev/aicard0", &st) == 0 && is_device_stat(&st, 0), "x");
	CHECK("__lxstat", __lxstat(1, "/dev/aicard0", &st) == 0 && is_device_stat(&st, 0), "x");
	CHECK("__fxstat", __fxstat(1, fd, &st) == 0 && is_device_stat(&st, 2), "x");
	CHECK("__fxstatat", __fxstatat(1, AT_FDCWD, "/dev/aicard3", &st, 0) == 0 && is_device_stat(&st, 3), "x");
	close(fd);
	CHECK("stat of a missing node is ENOENT", stat("/dev/aicard9", &st) < 0 && errno == ENOENT, "x");
	CHECK("stat of an ordinary file is untouched", stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)
	      && major(st.st_rdev) == 1, "x");
	CHECK("access", access("/dev/aicard0", R_OK | W_OK) == 0, "x");
	CHECK("access X_OK is EACCES", access("/dev/aicard0", X_OK) < 0 && errno == EACCES, "x");
	CHECK("faccessat", faccessat(AT_FDCWD, "/dev/aicard1", F_OK, 0) == 0, "x");
	CHECK("euidaccess", euidaccess("/dev/aicard1", R_OK) == 0, "x");
	CHECK("eaccess", eaccess("/dev/aicard1", W_OK) == 0, "x");
	CHECK("access of a missing node", access("/dev/aicard7", F_OK) < 0 && errno == ENOENT, "x");
	char *rp = realpath("/dev/../dev/aicard2", NULL);
	CHECK("realpath", rp && strcmp(rp, "/dev/aicard2") == 0, "%s", rp ? rp : "(null)");
	free(rp);
	char v[64];
	CHECK("lgetxattr has no attributes", lgetxattr("/dev/aicard0", "security.selinux", v, sizeof(v)) < 0
	      && errno == ENODATA, "x");
	CHECK("listxattr is empty", listxattr("/dev/aicard0", v, sizeof(v)) == 0, "x");
}

static void test_readdir(void)
{
	DIR *d = opendir("/dev");
	struct dirent *e;
	int seen = 0;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "aicard", 6) == 0 && e->d_type == DT_CHR)
			seen |= 1 << atoi(e->d_name + 6);
	CHECK("readdir lists the devices", seen == 0xf, "seen=%#x", seen);
	rewinddir(d);
	seen = 0;
	struct dirent64 *e64;
	while ((e64 = readdir64(d)))
		if (strncmp(e64->d_name, "aicard", 6) == 0)
			seen |= 1 << atoi(e64->d_name + 6);
	CHECK("readdir64 after rewinddir", seen == 0xf, "seen=%#x", seen);
	closedir(d);
	d = opendir("/tmp");
	seen = 0;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "aicard", 6) == 0)
			seen++;
	CHECK("other directories are untouched", seen == 0, "seen=%d", seen);
	closedir(d);
}

static void test_fd_life(void)
{
	int fd = open("/dev/aicard0", O_RDWR);
	struct aicard_bo_create bo = { .size = 1 << 20 };
	CHECK("bo create", ioctl(fd, AICARD_IOCTL_BO_CREATE, &bo) == 0, "x");
	unsigned long long used = vram_used(fd);
	int d1 = dup(fd);
	int d2 = dup2(fd, 100);
	int d3 = dup3(fd, 101, O_CLOEXEC);
	int d4 = fcntl(fd, F_DUPFD, 200);
	int d5 = fcntl(fd, F_DUPFD_CLOEXEC, 300);
	CHECK("dup", d1 >= 0 && fd_works(d1), "d1=%d", d1);
	CHECK("dup2", d2 == 100 && fd_works(d2), "d2=%d", d2);
	CHECK("dup3", d3 == 101 && fd_works(d3) && (fcntl(d3, F_GETFD) & FD_CLOEXEC), "d3=%d", d3);
	CHECK("fcntl F_DUPFD", d4 >= 200 && fd_works(d4), "d4=%d", d4);
	CHECK("fcntl F_DUPFD_CLOEXEC", d5 >= 300 && fd_works(d5), "d5=%d", d5);
	close(fd);
	close(d1);
	close(d2);
	close(d3);
	close(d4);
	CHECK("context lives while one fd is left", fd_works(d5) && vram_used(d5) == used, "x");
	int other = open("/dev/aicard0", O_RDWR);
	close(d5);
	CHECK("last close frees the context's memory", vram_used(other) == used - (1 << 20),
	      "used=%llu before=%llu", vram_used(other), used);
	/* dup2 onto a device fd closes that context. */
	int a = open("/dev/aicard0", O_RDWR), b = open("/dev/null", O_RDONLY);
	struct aicard_bo_create bo2 = { .size = 1 << 20 };
	ioctl(a, AICARD_IOCTL_BO_CREATE, &bo2);
	dup2(b, a);
	CHECK("dup2 over a device fd releases it", vram_used(other) == used - (1 << 20)
	      && ioctl(a, AICARD_IOCTL_DEV_QUERY, NULL) < 0 && errno == ENOTTY, "x");
	close(a);
	close(b);
	int c1 = open("/dev/aicard0", O_RDWR);
	struct aicard_bo_create bo3 = { .size = 1 << 20 };
	ioctl(c1, AICARD_IOCTL_BO_CREATE, &bo3);
	int r = close_range(c1, c1, 0);
	CHECK("close_range releases device fds", r == 0 && vram_used(other) == used - (1 << 20), "r=%d", r);
	close(other);
}

static void test_mmap(void)
{
	int fd = open("/dev/aicard0", O_RDWR);
	struct aicard_bo_create bo = { .size = 8192 };
	ioctl(fd, AICARD_IOCTL_BO_CREATE, &bo);
	struct aicard_bo_mmap_offset mo = { .handle = bo.handle };
	CHECK("mmap offset", ioctl(fd, AICARD_IOCTL_BO_MMAP_OFFSET, &mo) == 0, "x");
	unsigned char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)mo.offset);
	CHECK("mmap", p != MAP_FAILED, "x");
	if (p == MAP_FAILED)
		return;
	memset(p, 0x5a, 8192);
	unsigned char back[8192];
	struct aicard_queue_create qc = { 0 };
	ioctl(fd, AICARD_IOCTL_QUEUE_CREATE, &qc);
	struct aicard_copy cp = { .queue_id = qc.queue_id, .kind = AICARD_COPY_DTOH, .dst = (uintptr_t)back,
				  .src = bo.gpu_va, .size = 8192, .flags = AICARD_COPY_SYNC };
	int r = ioctl(fd, AICARD_IOCTL_COPY, &cp);
	CHECK("mapped writes are device memory", r == 0 && back[0] == 0x5a && back[8191] == 0x5a, "r=%d", r);
	void *q = mmap64(NULL, 4096, PROT_READ, MAP_SHARED, fd, (off_t)mo.offset);
	CHECK("mmap64", q != MAP_FAILED && ((unsigned char *)q)[0] == 0x5a, "x");
	munmap(q, 4096);
	void *bad = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 12345 * 4096);
	CHECK("mmap of an offset that is no buffer is EINVAL", bad == MAP_FAILED && errno == EINVAL, "x");
	bad = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, (off_t)mo.offset);
	CHECK("MAP_PRIVATE is EINVAL", bad == MAP_FAILED && errno == EINVAL, "x");
	bad = mmap(NULL, 1 << 20, PROT_READ, MAP_SHARED, fd, (off_t)mo.offset);
	CHECK("mmap longer than the buffer is EINVAL", bad == MAP_FAILED && errno == EINVAL, "x");
	/* The BO's memory outlives its handle while it is mapped. */
	unsigned long long used = vram_used(fd);
	struct aicard_bo_destroy bd = { .handle = bo.handle };
	ioctl(fd, AICARD_IOCTL_BO_DESTROY, &bd);
	CHECK("destroyed but mapped BO keeps its memory", vram_used(fd) == used && p[100] == 0x5a, "x");
	munmap(p, 4096);
	CHECK("partial munmap keeps it", vram_used(fd) == used, "x");
	munmap(p + 4096, 4096);
	CHECK("last munmap frees it", vram_used(fd) == used - 8192, "used=%llu", vram_used(fd));
	close(fd);
}

static void test_errors(void)
{
	int fd = open("/dev/aicard0", O_RDWR);
	CHECK("unknown ioctl is ENOTTY", ioctl(fd, _IOWR('A', 0x7f, int), NULL) < 0 && errno == ENOTTY, "x");
	CHECK("foreign ioctl is ENOTTY", ioctl(fd, TCGETS, NULL) < 0 && errno == ENOTTY, "x");
	CHECK("isatty on a device fd is 0", !isatty(fd), "x");
	CHECK("bad argument pointer is EFAULT", ioctl(fd, AICARD_IOCTL_BO_CREATE, (void *)8) < 0 && errno == EFAULT, "x");
	struct aicard_dev_query q = { .type = AICARD_QUERY_DEVICE_INFO, .size = 112, .pointer = 16 };
	CHECK("bad nested pointer is EFAULT", ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q) < 0 && errno == EFAULT, "x");
	struct aicard_bo_destroy bd = { .handle = 777 };
	CHECK("unknown handle is EINVAL", ioctl(fd, AICARD_IOCTL_BO_DESTROY, &bd) < 0 && errno == EINVAL, "x");
	struct aicard_bo_destroy pad = { .handle = 1, .pad = 1 };
	CHECK("non-zero pad is EINVAL", ioctl(fd, AICARD_IOCTL_BO_DESTROY, &pad) < 0 && errno == EINVAL, "x");
	CHECK("ioctl on a closed fd is EBADF", ioctl(999, AICARD_IOCTL_DEV_QUERY, &q) < 0 && errno == EBADF, "x");
	close(fd);
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : "";
	if (!*only || !strcmp(only, "open")) test_open_family();
	if (!*only || !strcmp(only, "stat")) test_stat_family();
	if (!*only || !strcmp(only, "readdir")) test_readdir();
	if (!*only || !strcmp(only, "fd")) test_fd_life();
	if (!*only || !strcmp(only, "mmap")) test_mmap();
	if (!*only || !strcmp(only, "errors")) test_errors();
	return failures;
}
