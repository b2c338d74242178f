/*
 * ptrace_raw.c - talks to /dev/aicard* only through raw syscall(), which
 * no LD_PRELOAD library can see: the ptrace backend must emulate it all.
 *
 *   ptrace_raw            every check below; prints "ok <name>" or
 *                         "FAIL <name>: why", exits 0 if all passed
 *   ptrace_raw exec-child FD HANDLE CLOEXEC_FD   (internal: after exec)
 *
 * Built statically as well (ptrace_raw-static) by the test suite.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/stat.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aicard_uapi.h"

#include "check.h"

static long sys_ioctl(int fd, unsigned long req, void *arg)
{
	long r = syscall(SYS_ioctl, fd, req, arg);
	return r < 0 ? -errno : r;
}

static int sys_open(const char *path, int flags)
{
	long r = syscall(SYS_openat, AT_FDCWD, path, flags, 0);
	return r < 0 ? -errno : (int)r;
}

static uint32_t new_queue(int fd)
{
	struct aicard_queue_create qc = { 0 };
	return sys_ioctl(fd, AICARD_IOCTL_QUEUE_CREATE, &qc) == 0 ? qc.queue_id : 0;
}

static int query_minor(int fd)
{
	struct aicard_device_info info;
	struct aicard_dev_query q = { .type = AICARD_QUERY_DEVICE_INFO, .size = sizeof(info),
				      .pointer = (uintptr_t)&info };
	memset(&info, 0xee, sizeof(info));
	long r = sys_ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q);
	return r < 0 ? (int)r : (int)info.minor;
}

static void check_nodes(void)
{
	struct stat st;
	long r = syscall(SYS_newfstatat, AT_FDCWD, "/dev/aicard1", &st, 0);
	CHECK("newfstatat_path", r == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 240 &&
	      minor(st.st_rdev) == 1, "r=%ld mode=%o rdev=%lx", r, st.st_mode, (long)st.st_rdev);
	r = syscall(SYS_stat, "/dev//./aicard0", &st);
	CHECK("stat_normalized", r == 0 && S_ISCHR(st.st_mode) && minor(st.st_rdev) == 0,
	      "r=%ld errno=%d", r, errno);
	struct statx stx;
	r = syscall(SYS_statx, AT_FDCWD, "/dev/aicard0", 0, STATX_BASIC_STATS, &stx);
	CHECK("statx_path", r == 0 && S_ISCHR(stx.stx_mode) && stx.stx_rdev_major == 240 &&
	      stx.stx_rdev_minor == 0, "r=%ld", r);
	r = syscall(SYS_access, "/dev/aicard0", R_OK | W_OK);
	CHECK("access_rw", r == 0, "r=%ld errno=%d", r, errno);
	r = syscall(SYS_access, "/dev/aicard0", X_OK);
	CHECK("access_x", r < 0 && errno == EACCES, "r=%ld errno=%d", r, errno);
	r = syscall(SYS_newfstatat, AT_FDCWD, "/dev/aicard01", &st, 0);
	CHECK("leading_zero_absent", r < 0 && errno == ENOENT, "r=%ld errno=%d", r, errno);
	r = syscall(SYS_newfstatat, AT_FDCWD, "/dev/aicard99", &st, 0);
	CHECK("minor_out_of_range_absent", r < 0 && errno == ENOENT, "r=%ld errno=%d", r, errno);
	r = syscall(SYS_newfstatat, AT_FDCWD, "/dev/aicard0", (void *)16, 0);
	CHECK("stat_bad_buffer_efault", r < 0 && errno == EFAULT, "r=%ld errno=%d", r, errno);
	int e = sys_open("/dev/aicard0", O_RDWR | O_CREAT | O_EXCL);
	CHECK("open_excl_eexist", e == -EEXIST, "r=%d", e);
	e = sys_open("/dev/aicard0", O_RDONLY | O_DIRECTORY);
	CHECK("open_directory_enotdir", e == -ENOTDIR, "r=%d", e);
	/* relative to the cwd and to a dirfd */
	int dfd = sys_open("/dev", O_RDONLY | O_DIRECTORY);
	long fd = syscall(SYS_openat, dfd, "aicard2", O_RDWR);
	CHECK("openat_dirfd", fd >= 0 && query_minor((int)fd) == 2, "fd=%ld", fd);
	if (fd >= 0)
		close((int)fd);
	close(dfd);
	char cwd[4096];
	if (!getcwd(cwd, sizeof(cwd)))
		cwd[0] = 0;
	if (chdir("/dev") == 0) {
		fd = syscall(SYS_open, "aicard3", O_RDWR);
		CHECK("open_relative", fd >= 0 && query_minor((int)fd) == 3, "fd=%ld errno=%d", fd, errno);
		if (fd >= 0)
			close((int)fd);
		if (chdir(cwd) != 0)
			perror("chdir back");
	}
}

static void check_device(int fd)
{
	struct stat st;
	long r = syscall(SYS_fstat, fd, &st);
	CHECK("fstat_fd", r == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 240, "r=%ld", r);
	r = syscall(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH);
	CHECK("fstatat_empty_path", r == 0 && S_ISCHR(st.st_mode), "r=%ld", r);
	CHECK("dev_query", query_minor(fd) == 0, "minor %d", query_minor(fd));

	/* a buffer object, mapped, written by the host, read back by the device */
	struct aicard_bo_create bc = { .size = 65536 };
	r = sys_ioctl(fd, AICARD_IOCTL_BO_CREATE, &bc);
	CHECK("bo_create", r == 0 && bc.handle && bc.gpu_va, "r=%ld", r);
	struct aicard_bo_mmap_offset mo = { .handle = bc.handle };
	r = sys_ioctl(fd, AICARD_IOCTL_BO_MMAP_OFFSET, &mo);
	CHECK("bo_mmap_offset", r == 0, "r=%ld", r);
	uint32_t *p = (uint32_t *)syscall(SYS_mmap, NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
					  mo.offset);
	CHECK("mmap", (long)p > 0 || (long)p < -4096, "r=%p", (void *)p);
	if ((long)p < 0 && (long)p > -4096)
		return;
	for (int i = 0; i < 16384; i++)
		p[i] = 0x1000u + (uint32_t)i;
	uint32_t q = new_queue(fd);
	uint32_t *host = calloc(16384, 4);
	struct aicard_copy c = { .queue_id = q, .kind = AICARD_COPY_DTOH, .dst = (uintptr_t)host,
				 .src = bc.gpu_va, .size = 65536, .flags = AICARD_COPY_SYNC };
	r = sys_ioctl(fd, AICARD_IOCTL_COPY, &c);
	CHECK("copy_dtoh_sees_mapping", r == 0 && host[0] == 0x1000 && host[16383] == 0x1000 + 16383,
	      "r=%ld host[0]=%x", r, host[0]);
	for (int i = 0; i < 16384; i++)
		host[i] = 0xabc00000u + (uint32_t)i;
	struct aicard_copy h = { .queue_id = q, .kind = AICARD_COPY_HTOD, .dst = bc.gpu_va,
				 .src = (uintptr_t)host, .size = 65536, .flags = AICARD_COPY_SYNC };
	r = sys_ioctl(fd, AICARD_IOCTL_COPY, &h);
	CHECK("copy_htod_zero_copy", r == 0 && p[7] == 0xabc00007u, "r=%ld p[7]=%x", r, p[7]);

	/* bad pointers: the argument itself, and a nested one */
	r = sys_ioctl(fd, AICARD_IOCTL_BO_CREATE, (void *)8);
	CHECK("bad_arg_efault", r == -EFAULT, "r=%ld", r);
	struct aicard_copy bad = h;
	bad.src = 16;
	r = sys_ioctl(fd, AICARD_IOCTL_COPY, &bad);
	CHECK("bad_nested_pointer_efault", r == -EFAULT, "r=%ld", r);
	r = sys_ioctl(fd, _IOWR('A', 0xfe, struct aicard_copy), &c);
	CHECK("unknown_request_enotty", r == -ENOTTY, "r=%ld", r);
	r = sys_ioctl(fd, TCGETS, host);
	CHECK("tty_request_enotty", r == -ENOTTY, "r=%ld", r);
	r = syscall(SYS_ftruncate, fd, 0);
	CHECK("ftruncate_einval", r < 0 && errno == EINVAL, "r=%ld errno=%d", r, errno);

	/* dup shares the context: the BO is still there through the copies */
	int d1 = (int)syscall(SYS_dup, fd);
	int d2 = (int)syscall(SYS_dup2, fd, 200);
	int d3 = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 300);
	struct aicard_bo_mmap_offset m2 = { .handle = bc.handle };
	CHECK("dup_shares_context", d1 > 0 && d2 == 200 && d3 >= 300 &&
	      sys_ioctl(d1, AICARD_IOCTL_BO_MMAP_OFFSET, &m2) == 0 && m2.offset == mo.offset &&
	      sys_ioctl(d2, AICARD_IOCTL_BO_MMAP_OFFSET, &m2) == 0 &&
	      sys_ioctl(d3, AICARD_IOCTL_BO_MMAP_OFFSET, &m2) == 0, "d1=%d d2=%d d3=%d", d1, d2, d3);
	syscall(SYS_close, d1);
	syscall(SYS_close, d2);
	syscall(SYS_close, d3);
	r = sys_ioctl(d2, AICARD_IOCTL_BO_MMAP_OFFSET, &m2);
	CHECK("closed_fd_ebadf", r == -EBADF, "r=%ld", r);
	r = syscall(SYS_munmap, p, 65536);
	CHECK("munmap", r == 0, "r=%ld", r);
	struct aicard_bo_destroy bd = { .handle = bc.handle };
	CHECK("bo_destroy", sys_ioctl(fd, AICARD_IOCTL_BO_DESTROY, &bd) == 0, "destroy");
	free(host);
}

static void check_readonly_target(void)
{
	/* A copy into a read-only page: an error (EFAULT up front, or a device
	 * fault that cancels the context), never a crash.  Its own context,
	 * since a fault leaves the context lost. */
	int fd = sys_open("/dev/aicard0", O_RDWR);
	struct aicard_bo_create bc = { .size = 4096 };
	uint32_t q = new_queue(fd);
	sys_ioctl(fd, AICARD_IOCTL_BO_CREATE, &bc);
	struct aicard_copy ro = { .queue_id = q, .kind = AICARD_COPY_DTOH, .src = bc.gpu_va, .size = 16,
				  .flags = AICARD_COPY_SYNC };
	ro.dst = (uintptr_t)"a string literal lives in a read-only page, longer than this copy..";
	long r = sys_ioctl(fd, AICARD_IOCTL_COPY, &ro);
	CHECK("copy_to_readonly_fails", r == -EFAULT || r == -ECANCELED, "r=%ld", r);
	close(fd);
}

static void check_fork(int fd)
{
	pid_t pid = fork();
	if (pid == 0) {
		int bad = 0;
		struct aicard_dev_query dq = { .type = AICARD_QUERY_CLOCK };
		if (sys_ioctl(fd, AICARD_IOCTL_DEV_QUERY, &dq) != -EBADFD)
			bad |= 1;
		int own = sys_open("/dev/aicard0", O_RDWR);
		if (own < 0 || query_minor(own) != 0)
			bad |= 2;
		_exit(bad);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK("fork_child_inherited_ebadfd_own_device_ok", WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "status %x", status);
	CHECK("fork_parent_still_works", query_minor(fd) == 0, "parent lost its device");
}

struct waiter {
	int fd;
	uint32_t event;
	long result;
};

static void *wait_event(void *arg)
{
	struct waiter *w = arg;
	struct aicard_event_wait ew = { .handle = w->event, .timeout_ns = 20ull * 1000000000ull };
	w->result = sys_ioctl(w->fd, AICARD_IOCTL_EVENT_WAIT, &ew);
	return NULL;
}

static void check_threads(int fd)
{
	/* One thread blocks in the driver until another signals: a tracer
	 * that served ioctls one at a time would hang until the timeout. */
	struct aicard_event_create ec = { 0 };
	long r = sys_ioctl(fd, AICARD_IOCTL_EVENT_CREATE, &ec);
	struct waiter w = { fd, ec.handle, -1 };
	pthread_t t;
	pthread_create(&t, NULL, wait_event, &w);
	usleep(100 * 1000);
	struct aicard_event_signal es = { .handle = ec.handle };
	long s = sys_ioctl(fd, AICARD_IOCTL_EVENT_SIGNAL, &es);
	pthread_join(t, NULL);
	CHECK("thread_waits_other_signals", r == 0 && s == 0 && w.result == 0, "create %ld signal %ld wait %ld",
	      r, s, w.result);
}

static void check_exec(const char *self, int fd)
{
	/* fds without O_CLOEXEC keep their context across exec, as with a
	 * kernel driver; O_CLOEXEC ones are gone. */
	int keep = sys_open("/dev/aicard0", O_RDWR);
	int gone = sys_open("/dev/aicard0", O_RDWR | O_CLOEXEC);
	struct aicard_bo_create bc = { .size = 4096 };
	sys_ioctl(keep, AICARD_IOCTL_BO_CREATE, &bc);
	pid_t pid = fork();
	if (pid == 0) {
		char a[16], b[16], c[16];
		snprintf(a, sizeof(a), "%d", keep);
		snprintf(b, sizeof(b), "%u", bc.handle);
		snprintf(c, sizeof(c), "%d", gone);
		execl(self, self, "exec-child", a, b, c, (char *)NULL);
		_exit(99);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK("fork_exec_inherited_refused_cloexec_closed", WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %x", status);
	(void)fd;
	close(keep);
	close(gone);
}

static int exec_child(int keep, uint32_t handle, int gone)
{
	/* This is a fresh image, but the fd was inherited through fork() first:
	 * a forked child's fds answer EBADFD.  So the exec test forks, and the
	 * fd is refused here - unless it came straight through exec. */
	struct aicard_bo_mmap_offset mo = { .handle = handle };
	long r = sys_ioctl(keep, AICARD_IOCTL_BO_MMAP_OFFSET, &mo);
	long g = syscall(SYS_fcntl, gone, F_GETFD);
	printf("exec-child: keep %ld, cloexec fd %s\n", r, g < 0 ? "closed" : "open");
	return (r == -EBADFD && g < 0) ? 0 : 1;
}

static int exec_self_child(int keep, uint32_t handle)
{
	struct aicard_bo_mmap_offset mo = { .handle = handle };
	long r = sys_ioctl(keep, AICARD_IOCTL_BO_MMAP_OFFSET, &mo);
	printf("exec-self: keep %ld offset %llx\n", r, (unsigned long long)mo.offset);
	return r == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && strcmp(argv[1], "exec-child") == 0)
		return exec_child(atoi(argv[2]), (uint32_t)strtoul(argv[3], NULL, 0), atoi(argv[4]));
	if (argc == 4 && strcmp(argv[1], "exec-self") == 0)
		return exec_self_child(atoi(argv[2]), (uint32_t)strtoul(argv[3], NULL, 0));
	if (argc == 2 && strcmp(argv[1], "exec-self") == 0) {
		/* exec in the same process: the context survives */
		int keep = sys_open("/dev/aicard0", O_RDWR);
		struct aicard_bo_create bc = { .size = 4096 };
		if (keep < 0 || sys_ioctl(keep, AICARD_IOCTL_BO_CREATE, &bc) != 0)
			return 2;
		char a[16], b[16];
		snprintf(a, sizeof(a), "%d", keep);
		snprintf(b, sizeof(b), "%u", bc.handle);
		execl("/proc/self/exe", argv[0], "exec-self", a, b, (char *)NULL);
		return 3;
	}

	/* Without the tracer there is no device node, and the O_CREAT checks
	 * below would create a real file in /dev: stop first. */
	struct stat st;
	if (syscall(SYS_newfstatat, AT_FDCWD, "/dev/aicard0", &st, 0) != 0 || !S_ISCHR(st.st_mode) ||
	    major(st.st_rdev) != 240) {
		fprintf(stderr, "no aicard device\n");
		return 2;
	}
	check_nodes();
	int fd = sys_open("/dev/aicard0", O_RDWR | O_CLOEXEC);
	CHECK("open", fd >= 0, "r=%d", fd);
	if (fd < 0)
		return 1;
	check_device(fd);
	check_fork(fd);
	check_threads(fd);
	check_exec("/proc/self/exe", fd);
	check_readonly_target();
	long r = syscall(SYS_close, fd);
	CHECK("close", r == 0, "r=%ld", r);
	printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
	return failures ? 1 : 0;
}
