/*
 * preload.c - the LD_PRELOAD half of aicard-shim.
 *
 * It fakes exactly one thing: "device nodes /dev/aicard0..N-1 exist".  Each
 * libc entry point first asks a cheap question - is this path or fd ours? -
 * and if not, calls the real libc function with the arguments untouched.
 * Only the ours-branch does work, and that work is handing the call to the
 * Python driver in libaicard_driver.so, which is dlopen()ed on the first
 * device access.  A process that never touches a device therefore never
 * loads libpython, never starts an interpreter and never creates a thread.
 *
 * This file must not include Python.h: it defines _FILE_OFFSET_BITS=64,
 * which renames open() to open64() and stat() to stat64() in this
 * translation unit, and we need to define both spellings ourselves.
 *
 * Error convention: the driver returns >= 0 or -errno; this file converts
 * that once, at the libc edge, into -1 + errno (or MAP_FAILED + errno).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/stat.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "preload.h"
#define AICARD_STACK_TLS __attribute__((tls_model("initial-exec")))
#include "usercopy.h"

#define AICARD_EXPORT __attribute__((visibility("default")))

/* ---------------------------------------------------------------------- */
/* The real libc functions, with their exact types.                        */

#define REAL_FN(f) static __typeof__(f) *real_##f
REAL_FN(open);
REAL_FN(openat);
REAL_FN(close);
REAL_FN(ioctl);
REAL_FN(mmap);
REAL_FN(munmap);
REAL_FN(stat);
REAL_FN(lstat);
REAL_FN(fstat);
REAL_FN(fstatat);
REAL_FN(statx);
REAL_FN(access);
REAL_FN(faccessat);
REAL_FN(euidaccess);
REAL_FN(dup);
REAL_FN(dup2);
REAL_FN(dup3);
REAL_FN(fcntl);
REAL_FN(opendir);
REAL_FN(fdopendir);
REAL_FN(readdir);
REAL_FN(readdir64);
REAL_FN(rewinddir);
REAL_FN(closedir);
REAL_FN(fopen);
REAL_FN(realpath);
REAL_FN(getxattr);
REAL_FN(lgetxattr);
REAL_FN(fgetxattr);
REAL_FN(listxattr);
REAL_FN(llistxattr);
REAL_FN(flistxattr);
/* Names glibc keeps only for binaries linked against old versions. */
static int (*real___xstat)(int, const char *, struct stat *);
static int (*real___lxstat)(int, const char *, struct stat *);
static int (*real___fxstat)(int, int, struct stat *);
static int (*real___fxstatat)(int, int, const char *, struct stat *, int);
static int (*real_close_range)(unsigned int, unsigned int, int);

static void *must_dlsym(const char *name, int optional)
{
	void *p = dlsym(RTLD_NEXT, name);
	if (!p && !optional) {
		/* Nothing sensible can continue without libc's own function. */
		static const char msg[] = "aishim: cannot resolve libc symbol ";
		ssize_t r = write(2, msg, sizeof(msg) - 1);
		r = write(2, name, strlen(name));
		r = write(2, "\n", 1);
		(void)r;
		abort();
	}
	return p;
}

#define RESOLVE(f) (real_##f = must_dlsym(#f, 0))
#define RESOLVE_OPT(f) (real_##f = must_dlsym(#f, 1))

static int ndevices = 4;
static pid_t self_pid;
static time_t node_time;	/* the nodes "appeared" when the process started */

static void resolve_all(void)
{
	RESOLVE(open); RESOLVE(openat); RESOLVE(close); RESOLVE(ioctl);
	RESOLVE(mmap); RESOLVE(munmap); RESOLVE(stat); RESOLVE(lstat);
	RESOLVE(fstat); RESOLVE(fstatat); RESOLVE(statx); RESOLVE(access);
	RESOLVE(faccessat); RESOLVE(euidaccess); RESOLVE(dup); RESOLVE(dup2);
	RESOLVE(dup3); RESOLVE(fcntl); RESOLVE(opendir); RESOLVE(fdopendir);
	RESOLVE(readdir); RESOLVE(readdir64); RESOLVE(rewinddir);
	RESOLVE(closedir); RESOLVE(fopen); RESOLVE(realpath);
	RESOLVE(getxattr); RESOLVE(lgetxattr); RESOLVE(fgetxattr);
	RESOLVE(listxattr); RESOLVE(llistxattr); RESOLVE(flistxattr);
	RESOLVE_OPT(__xstat); RESOLVE_OPT(__lxstat); RESOLVE_OPT(__fxstat);
	RESOLVE_OPT(__fxstatat); RESOLVE_OPT(close_range);

	const char *n = getenv("AISHIM_DEVICES");
	if (n && *n) {
		long v = strtol(n, NULL, 10);
		ndevices = v < 0 ? 0 : v > AICARD_SHIM_MAX_DEVICES ? AICARD_SHIM_MAX_DEVICES : (int)v;
	}
	self_pid = getpid();
	node_time = time(NULL);
}

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

/* Other libraries' constructors may call open() before ours has run, so
 * every wrapper makes sure the pointers exist; after start-up this is one
 * predictable branch. */
static inline void ensure_real(void)
{
	if (__builtin_expect(real_open == NULL, 0))
		pthread_once(&resolve_once, resolve_all);
}

__attribute__((constructor)) static void aicard_preload_init(void)
{
	ensure_real();
}

/* ---------------------------------------------------------------------- */
/* "Is this fd ours?": a byte per fd, minor + 1, 0 for "not ours".         */
/* The table lives in .bss: untouched pages cost nothing.  Because a stale */
/* entry (an fd closed behind our back, e.g. by fclose() inside libc) must  */
/* never capture an unrelated file that reuses the number, every device fd  */
/* is a memfd with a unique inode, and the ours-branch confirms it.        */

#define FD_TABLE_SIZE (1 << 20)
static _Atomic uint8_t fd_minor[FD_TABLE_SIZE];
static _Atomic ino_t fd_ino[FD_TABLE_SIZE];

static inline int fd_lookup(int fd)
{
	if ((unsigned)fd >= FD_TABLE_SIZE)
		return -1;
	return (int)atomic_load_explicit(&fd_minor[fd], memory_order_acquire) - 1;
}

/* Per-thread: set while this thread runs driver code, so the driver's own
 * file and memory calls never come back into the driver. */
/* initial-exec: a preloaded library has static TLS, and this flag is read
 * on hot paths (the default model would call __tls_get_addr every time). */
static __thread int in_driver __attribute__((tls_model("initial-exec")));

/* ---------------------------------------------------------------------- */
/* The driver library, loaded on first use.                               */

static struct {
	int (*boot)(void);
	int (*open)(int minor, int fd, int flags);
	int (*close)(int fd);
	int (*dup)(int oldfd, int newfd);
	int (*ioctl)(int fd, unsigned long req, void *buf, unsigned size, int arg_fault, uint64_t argaddr);
	int (*mmap)(int fd, uint64_t length, int prot, int flags, uint64_t offset, int *out_fd, uint64_t *out_offset);
	int (*mapped)(int fd, uint64_t addr, uint64_t length, uint64_t offset);
	int (*munmap)(uint64_t addr, uint64_t length);
	void (*exit)(void);
	int (*ping)(void);
} drv;
static int drv_error;	/* -errno when the driver could not be loaded */
static pthread_once_t drv_once = PTHREAD_ONCE_INIT;

static void drv_fail(const char *what, const char *detail)
{
	fprintf(stderr, "aishim: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	drv_error = -EIO;
}

static void *drv_sym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	if (!p) {
		/* An entry point that is not there would make every later call a
		 * silent wrong answer; refuse all device access instead. */
		drv_fail("driver library lacks entry point", name);
	}
	return p;
}

static void drv_load(void)
{
	char path[PATH_MAX];
	const char *env = getenv("AISHIM_DRIVER_LIB");
	if (env && *env) {
		snprintf(path, sizeof(path), "%s", env);
	} else {
		/* Next to this library: the build puts both in one directory. */
		Dl_info info;
		if (!dladdr((void *)drv_load, &info) || !info.dli_fname) {
			drv_fail("cannot locate the preload library", NULL);
			return;
		}
		snprintf(path, sizeof(path), "%s", info.dli_fname);
		char *slash = strrchr(path, '/');
		size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
		snprintf(path + dirlen, sizeof(path) - dirlen, "%s", AICARD_DRIVER_LIB_NAME);
	}
	/* RTLD_GLOBAL: extension modules the driver imports (numpy, cffi) take
	 * their Python symbols from the global scope. */
	void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!h) {
		drv_fail("cannot load the driver", dlerror());
		return;
	}
	drv.boot = drv_sym(h, "aicard_drv_boot");
	drv.open = drv_sym(h, "aicard_py_open");
	drv.close = drv_sym(h, "aicard_py_close");
	drv.dup = drv_sym(h, "aicard_py_dup");
	drv.ioctl = drv_sym(h, "aicard_py_ioctl");
	drv.mmap = drv_sym(h, "aicard_py_mmap");
	drv.mapped = drv_sym(h, "aicard_py_mapped");
	drv.munmap = drv_sym(h, "aicard_py_munmap");
	drv.exit = drv_sym(h, "aicard_drv_exit");
	drv.ping = drv_sym(h, "aicard_py_ping");
	if (drv_error)
		return;
	int r = drv.boot();
	if (r < 0) {
		drv_fail("the driver failed to start", NULL);
		return;
	}
	/* The first call starts Python and runs the driver's init code.  If that
	 * failed, cffi answers 0 for every entry point; the ping tells. */
	in_driver = 1;
	r = drv.ping();
	in_driver = 0;
	if (r != AICARD_PING_MAGIC) {
		drv_fail("the driver's Python side did not start (see the error above); device access refused", NULL);
		drv.exit = NULL;
	}
}

static inline int drv_ready(void)
{
	pthread_once(&drv_once, drv_load);
	return drv_error;
}

/* ---------------------------------------------------------------------- */
/* Paths.                                                                 */

/* Lexically normalise an absolute path into out (no symlinks resolved):
 * collapses "//", "/./" and "/x/../".  Returns 0, or -1 if it does not fit. */
static int normalize(const char *in, char *out, size_t outsz)
{
	size_t len = 0;
	const char *p = in;
	if (outsz < 2)
		return -1;
	out[len++] = '/';
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);
		if (n == 1 && p[0] == '.') {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (len > 1) {
				len--;
				while (len > 1 && out[len - 1] != '/')
					len--;
			}
		} else {
			if (len > 1) {
				if (len + 1 >= outsz)
					return -1;
				out[len++] = '/';
			}
			if (len + n >= outsz)
				return -1;
			memcpy(out + len, p, n);
			len += n;
		}
		p = end;
	}
	out[len] = 0;
	return 0;
}

/* Minor number if the path names one of our device nodes, else -1.  The
 * first test (does the last component start with "aicard"?) rejects every
 * other path after a few byte compares; only candidates pay for the rest. */
static int path_minor_at(int dirfd, const char *path)
{
	if (!path || !*path)
		return -1;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strncmp(base, AICARD_NODE_NAME, sizeof(AICARD_NODE_NAME) - 1) != 0)
		return -1;

	char full[PATH_MAX], norm[PATH_MAX];
	if (path[0] == '/') {
		snprintf(full, sizeof(full), "%s", path);
	} else {
		char dir[PATH_MAX];
		if (dirfd == AT_FDCWD) {
			if (!getcwd(dir, sizeof(dir)))
				return -1;
		} else {
			char link[64];
			snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
			ssize_t n = readlink(link, dir, sizeof(dir) - 1);
			if (n <= 0)
				return -1;
			dir[n] = 0;
		}
		if ((size_t)snprintf(full, sizeof(full), "%s/%s", dir, path) >= sizeof(full))
			return -1;
	}
	if (normalize(full, norm, sizeof(norm)) < 0)
		return -1;
	static const char prefix[] = AICARD_DEV_DIR "/" AICARD_NODE_NAME;
	if (strncmp(norm, prefix, sizeof(prefix) - 1) != 0)
		return -1;
	const char *d = norm + sizeof(prefix) - 1;
	if (!*d || (d[0] == '0' && d[1]))
		return -1;	/* "aicard" alone, or a leading zero as in aicard01 */
	long minor = 0;
	for (; *d; d++) {
		if (*d < '0' || *d > '9')
			return -1;
		minor = minor * 10 + (*d - '0');
		if (minor >= ndevices)
			return -1;
	}
	return (int)minor;
}

static inline int path_minor(const char *path)
{
	return path_minor_at(AT_FDCWD, path);
}

/* ---------------------------------------------------------------------- */
/* Fake inodes.                                                           */

static void fill_stat(struct stat *st, int minor)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(0, 6);		/* devtmpfs-like */
	st->st_ino = 0xa1ca0000u + (unsigned)minor;
	st->st_mode = S_IFCHR | 0666;
	st->st_nlink = 1;
	st->st_rdev = makedev(AICARD_MAJOR, minor);
	st->st_blksize = 4096;
	st->st_atime = st->st_mtime = st->st_ctime = node_time;
}

static void fill_statx(struct statx *stx, int minor)
{
	memset(stx, 0, sizeof(*stx));
	stx->stx_mask = STATX_BASIC_STATS;
	stx->stx_blksize = 4096;
	stx->stx_nlink = 1;
	stx->stx_mode = S_IFCHR | 0666;
	stx->stx_ino = 0xa1ca0000u + (unsigned)minor;
	stx->stx_rdev_major = AICARD_MAJOR;
	stx->stx_rdev_minor = (unsigned)minor;
	stx->stx_dev_major = 0;
	stx->stx_dev_minor = 6;
	stx->stx_atime.tv_sec = stx->stx_mtime.tv_sec = stx->stx_ctime.tv_sec = node_time;
}

/* A device fd is ours only if the byte says so *and* the fd still refers to
 * the memfd we created for it (see the table comment above). */
static inline int fd_ours(int fd)
{
	int minor = fd_lookup(fd);
	if (__builtin_expect(minor < 0, 1) || in_driver)
		return -1;
	struct stat st;
	if (real_fstat(fd, &st) < 0 || st.st_ino != atomic_load(&fd_ino[fd])) {
		/* Closed behind our back; forget it and tell the driver. */
		if (atomic_exchange(&fd_minor[fd], 0) && drv.close) {
			in_driver = 1;
			drv.close(fd);
			in_driver = 0;
		}
		return -1;
	}
	return minor;
}

static void fd_publish(int fd, int minor)
{
	struct stat st;
	real_fstat(fd, &st);
	atomic_store(&fd_ino[fd], st.st_ino);
	atomic_store_explicit(&fd_minor[fd], (uint8_t)(minor + 1), memory_order_release);
}

static inline int set_errno(int ret)
{
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}

/* ---------------------------------------------------------------------- */
/* open family                                                            */

static int device_open(int minor, int flags)
{
	if ((flags & O_CREAT) && (flags & O_EXCL))
		return set_errno(-EEXIST);
	if (flags & O_DIRECTORY)
		return set_errno(-ENOTDIR);
	int r = drv_ready();
	if (r < 0)
		return set_errno(r);
	char name[32];
	snprintf(name, sizeof(name), AICARD_NODE_NAME "%d", minor);
	/* A sealed, empty memfd stands in for the device: a real fd, so numbers
	 * never collide, and read/write/poll on it are harmless. */
	int fd = memfd_create(name, MFD_ALLOW_SEALING | ((flags & O_CLOEXEC) ? MFD_CLOEXEC : 0));
	if (fd < 0)
		return -1;
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	if (fd >= FD_TABLE_SIZE) {
		real_close(fd);
		return set_errno(-EMFILE);
	}
	in_driver = 1;
	r = drv.open(minor, fd, flags);
	in_driver = 0;
	if (r < 0) {
		real_close(fd);
		return set_errno(r);
	}
	fd_publish(fd, minor);
	return fd;
}

static inline mode_t open_mode(int flags, va_list ap)
{
	return (flags & (O_CREAT | __O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

AICARD_EXPORT int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	ensure_real();
	int minor = path_minor(path);
	if (__builtin_expect(minor < 0, 1) || in_driver)
		return real_open(path, flags, mode);
	return device_open(minor, flags);
}

AICARD_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = open_mode(flags, ap);
	va_end(ap);
	ensure_real();
	int minor = path_minor_at(dirfd, path);
	if (minor < 0 || in_driver)
		return real_openat(dirfd, path, flags, mode);
	return device_open(minor, flags);
}

/* _FORTIFY_SOURCE spellings; glibc's own versions only add a check that
 * O_CREAT comes with a mode, which cannot apply to a device node. */
AICARD_EXPORT int __open_2(const char *path, int flags)
{
	return open(path, flags);
}

AICARD_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return openat(dirfd, path, flags);
}

AICARD_EXPORT int creat(const char *path, mode_t mode)
{
	return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

AICARD_EXPORT int open64(const char *, int, ...) __attribute__((alias("open")));
AICARD_EXPORT int openat64(int, const char *, int, ...) __attribute__((alias("openat")));
AICARD_EXPORT int __open64_2(const char *, int) __attribute__((alias("__open_2")));
AICARD_EXPORT int __openat64_2(int, const char *, int) __attribute__((alias("__openat_2")));
AICARD_EXPORT int creat64(const char *, mode_t) __attribute__((alias("creat")));

/* fopen() opens through libc-internal calls we cannot see. */
AICARD_EXPORT FILE *fopen(const char *path, const char *mode)
{
	ensure_real();
	int minor = path_minor(path);
	if (minor < 0 || in_driver)
		return real_fopen(path, mode);
	int flags = strchr(mode, '+') ? O_RDWR : (mode[0] == 'r' ? O_RDONLY : O_WRONLY);
	if (strchr(mode, 'e'))
		flags |= O_CLOEXEC;
	int fd = device_open(minor, flags);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, mode);
	if (!f) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return f;
}

AICARD_EXPORT FILE *fopen64(const char *, const char *) __attribute__((alias("fopen")));

/* ---------------------------------------------------------------------- */
/* close, dup                                                             */

/* Forget fd (if ours) before the number can be reused by anyone. */
static void fd_forget(int fd)
{
	if (fd_lookup(fd) < 0)
		return;
	if (atomic_exchange(&fd_minor[fd], 0) && !drv_error && drv.close) {
		in_driver = 1;
		drv.close(fd);
		in_driver = 0;
	}
}

AICARD_EXPORT int close(int fd)
{
	ensure_real();
	if (__builtin_expect(fd_lookup(fd) >= 0, 0) && !in_driver)
		fd_forget(fd);
	return real_close(fd);
}

AICARD_EXPORT int __close(int) __attribute__((alias("close")));

AICARD_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	ensure_real();
	if (!real_close_range)
		return set_errno(-ENOSYS);
	/* With CLOSE_RANGE_CLOEXEC nothing is closed now. */
	if (!(flags & CLOSE_RANGE_CLOEXEC) && !in_driver) {
		unsigned hi = last < FD_TABLE_SIZE - 1 ? last : FD_TABLE_SIZE - 1;
		for (unsigned fd = first; fd <= hi; fd++)
			if (atomic_load_explicit(&fd_minor[fd], memory_order_relaxed))
				fd_forget((int)fd);
	}
	return real_close_range(first, last, flags);
}

/* After the real dup, newfd refers to the same open file as oldfd. */
static int dup_done(int oldfd, int minor, int newfd)
{
	if (newfd < 0 || minor < 0)
		return newfd;
	if (newfd >= FD_TABLE_SIZE) {
		real_close(newfd);
		return set_errno(-EMFILE);
	}
	in_driver = 1;
	int r = drv.dup(oldfd, newfd);
	in_driver = 0;
	if (r < 0) {
		real_close(newfd);
		return set_errno(r);
	}
	fd_publish(newfd, minor);
	return newfd;
}

AICARD_EXPORT int dup(int oldfd)
{
	ensure_real();
	int minor = fd_ours(oldfd);
	return dup_done(oldfd, minor, real_dup(oldfd));
}

AICARD_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	ensure_real();
	int minor = fd_ours(oldfd);
	if (oldfd == newfd)
		return real_dup3(oldfd, newfd, flags);	/* EINVAL, as libc says */
	fd_forget(newfd);	/* dup3 closes it first */
	return dup_done(oldfd, minor, real_dup3(oldfd, newfd, flags));
}

AICARD_EXPORT int dup2(int oldfd, int newfd)
{
	ensure_real();
	int minor = fd_ours(oldfd);
	if (oldfd == newfd)
		return real_dup2(oldfd, newfd);
	fd_forget(newfd);
	return dup_done(oldfd, minor, real_dup2(oldfd, newfd));
}

AICARD_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);	/* int or pointer: same register */
	va_end(ap);
	ensure_real();
	if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC)
		return real_fcntl(fd, cmd, arg);
	int minor = fd_ours(fd);
	return dup_done(fd, minor, real_fcntl(fd, cmd, arg));
}

AICARD_EXPORT int fcntl64(int, int, ...) __attribute__((alias("fcntl")));

/* ---------------------------------------------------------------------- */
/* ioctl                                                                  */

static ssize_t copy_user(void *local, uint64_t remote, size_t n, int to_user)
{
	return aicard_copy_user(self_pid, 1, local, remote, n, to_user) == (long)n ? 0 : -EFAULT;
}

AICARD_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	ensure_real();
	int minor = fd_ours(fd);
	if (minor < 0)
		return real_ioctl(fd, req, arg);

	/* The argument is copied in and out here, sized by the _IOC encoding,
	 * so Python only ever sees a plain buffer; a bad pointer is reported to
	 * the driver (which decides between ENOTTY and EFAULT), never touched. */
	unsigned size = _IOC_SIZE(req), dir = _IOC_DIR(req);
	unsigned char buf[_IOC_SIZEMASK + 1];
	int arg_fault = 0;
	if (size) {
		if (dir & _IOC_WRITE)
			arg_fault = copy_user(buf, (uintptr_t)arg, size, 0) < 0;
		else
			memset(buf, 0, size);
	}
	in_driver = 1;
	/* The kernel's ioctl takes an unsigned int request: so does the driver. */
	int r = drv.ioctl(fd, (unsigned int)req, buf, size, arg_fault, (uintptr_t)arg);
	in_driver = 0;
	if (r >= 0 && size && (dir & _IOC_READ) && copy_user(buf, (uintptr_t)arg, size, 1) < 0)
		r = -EFAULT;
	return set_errno(r);
}

/* ---------------------------------------------------------------------- */
/* mmap / munmap                                                          */

/* Our mappings, so munmap() can tell the driver when a BO is unmapped.
 * Kept small and simple: a handful of mappings is the common case. */
struct mapping {
	uintptr_t start, end;
};
static struct mapping *maps;
static size_t nmaps, maps_cap;
static _Atomic size_t nmaps_pub;	/* read without the lock on the fast path */
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;

static void maps_add(uintptr_t start, size_t len)
{
	pthread_mutex_lock(&maps_lock);
	if (nmaps == maps_cap) {
		size_t cap = maps_cap ? maps_cap * 2 : 16;
		struct mapping *m = realloc(maps, cap * sizeof(*m));
		if (!m) {
			pthread_mutex_unlock(&maps_lock);
			return;
		}
		maps = m;
		maps_cap = cap;
	}
	maps[nmaps++] = (struct mapping){ start, start + len };
	atomic_store(&nmaps_pub, nmaps);
	pthread_mutex_unlock(&maps_lock);
}

/* Remove [start, end) from the table; returns whether it overlapped. */
static int maps_remove(uintptr_t start, uintptr_t end)
{
	int hit = 0;
	pthread_mutex_lock(&maps_lock);
	for (size_t i = 0; i < nmaps; i++) {
		struct mapping *m = &maps[i];
		if (m->end <= start || m->start >= end)
			continue;
		hit = 1;
		if (start > m->start && end < m->end) {
			/* A hole in the middle: keep both sides. */
			struct mapping right = { end, m->end };
			m->end = start;
			pthread_mutex_unlock(&maps_lock);
			maps_add(right.start, right.end - right.start);
			return 1;
		}
		if (start <= m->start && end >= m->end) {
			maps[i--] = maps[--nmaps];
		} else if (start <= m->start) {
			m->start = end;
		} else {
			m->end = start;
		}
	}
	atomic_store(&nmaps_pub, nmaps);
	pthread_mutex_unlock(&maps_lock);
	return hit;
}

AICARD_EXPORT void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
	ensure_real();
	int minor = (flags & MAP_ANONYMOUS) ? -1 : fd_ours(fd);
	if (minor < 0)
		return real_mmap(addr, length, prot, flags, fd, offset);

	int vram_fd = -1;
	uint64_t vram_off = 0;
	in_driver = 1;
	int r = drv.mmap(fd, length, prot, flags, (uint64_t)offset, &vram_fd, &vram_off);
	in_driver = 0;
	if (r < 0) {
		errno = -r;
		return MAP_FAILED;
	}
	/* The BO's own pages in the device's VRAM memfd: zero copy. */
	void *p = real_mmap(addr, length, prot, flags, vram_fd, (off_t)vram_off);
	if (p == MAP_FAILED)
		return p;
	maps_add((uintptr_t)p, length);
	in_driver = 1;
	drv.mapped(fd, (uintptr_t)p, length, (uint64_t)offset);
	in_driver = 0;
	return p;
}

AICARD_EXPORT void *mmap64(void *, size_t, int, int, int, off_t) __attribute__((alias("mmap")));

AICARD_EXPORT int munmap(void *addr, size_t length)
{
	ensure_real();
	int r = real_munmap(addr, length);
	if (r == 0 && atomic_load_explicit(&nmaps_pub, memory_order_relaxed) && !in_driver) {
		uintptr_t start = (uintptr_t)addr;
		uintptr_t end = start + ((length + 4095) & ~(size_t)4095);
		if (maps_remove(start, end) && drv.munmap) {
			in_driver = 1;
			drv.munmap(start, end - start);
			in_driver = 0;
		}
	}
	return r;
}

/* ---------------------------------------------------------------------- */
/* stat family: one helper per shape, each libc spelling a short shell.   */

/* Minor of a path or of dirfd itself (AT_EMPTY_PATH), or -1. */
static int stat_target(int dirfd, const char *path, int flags)
{
	int minor;
	if ((flags & AT_EMPTY_PATH) && path && !*path)
		minor = fd_ours(dirfd);
	else
		minor = path_minor_at(dirfd, path);
	return minor >= 0 && in_driver ? -1 : minor;
}

AICARD_EXPORT int stat(const char *path, struct stat *st)
{
	ensure_real();
	int minor = stat_target(AT_FDCWD, path, 0);
	if (minor < 0)
		return real_stat(path, st);
	fill_stat(st, minor);
	return 0;
}

AICARD_EXPORT int lstat(const char *path, struct stat *st)
{
	ensure_real();
	int minor = stat_target(AT_FDCWD, path, 0);
	if (minor < 0)
		return real_lstat(path, st);
	fill_stat(st, minor);
	return 0;
}

AICARD_EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	ensure_real();
	int minor = stat_target(dirfd, path, flags);
	if (minor < 0)
		return real_fstatat(dirfd, path, st, flags);
	fill_stat(st, minor);
	return 0;
}

AICARD_EXPORT int fstat(int fd, struct stat *st)
{
	ensure_real();
	int minor = fd_ours(fd);
	if (minor < 0)
		return real_fstat(fd, st);
	fill_stat(st, minor);
	return 0;
}

AICARD_EXPORT int stat64(const char *, struct stat64 *) __attribute__((alias("stat")));
AICARD_EXPORT int lstat64(const char *, struct stat64 *) __attribute__((alias("lstat")));
AICARD_EXPORT int fstat64(int, struct stat64 *) __attribute__((alias("fstat")));
AICARD_EXPORT int fstatat64(int, const char *, struct stat64 *, int) __attribute__((alias("fstatat")));

AICARD_EXPORT int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx)
{
	ensure_real();
	int minor = stat_target(dirfd, path, flags);
	if (minor < 0)
		return real_statx(dirfd, path, flags, mask, stx);
	fill_statx(stx, minor);
	return 0;
}

/* Binaries built against glibc < 2.33 call these instead; where this
 * glibc no longer has them, the modern call does the same job. */
AICARD_EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
	ensure_real();
	int minor = stat_target(AT_FDCWD, path, 0);
	if (minor < 0)
		return real___xstat ? real___xstat(ver, path, st) : real_stat(path, st);
	fill_stat(st, minor);
	return 0;
}

AICARD_EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
	ensure_real();
	int minor = stat_target(AT_FDCWD, path, 0);
	if (minor < 0)
		return real___lxstat ? real___lxstat(ver, path, st) : real_lstat(path, st);
	fill_stat(st, minor);
	return 0;
}

AICARD_EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
	ensure_real();
	int minor = fd_ours(fd);
	if (minor < 0)
		return real___fxstat ? real___fxstat(ver, fd, st) : real_fstat(fd, st);
	fill_stat(st, minor);
	return 0;
}

AICARD_EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	ensure_real();
	int minor = stat_target(dirfd, path, flags);
	if (minor < 0)
		return real___fxstatat ? real___fxstatat(ver, dirfd, path, st, flags)
				       : real_fstatat(dirfd, path, st, flags);
	fill_stat(st, minor);
	return 0;
}

AICARD_EXPORT int __xstat64(int, const char *, struct stat64 *) __attribute__((alias("__xstat")));
AICARD_EXPORT int __lxstat64(int, const char *, struct stat64 *) __attribute__((alias("__lxstat")));
AICARD_EXPORT int __fxstat64(int, int, struct stat64 *) __attribute__((alias("__fxstat")));
AICARD_EXPORT int __fxstatat64(int, int, const char *, struct stat64 *, int) __attribute__((alias("__fxstatat")));

/* ---------------------------------------------------------------------- */
/* access family and realpath                                             */

static int device_access(int mode)
{
	/* rw-rw-rw-: readable and writable by everyone, never executable. */
	return (mode & X_OK) ? set_errno(-EACCES) : 0;
}

AICARD_EXPORT int access(const char *path, int mode)
{
	ensure_real();
	if (path_minor(path) < 0 || in_driver)
		return real_access(path, mode);
	return device_access(mode);
}

AICARD_EXPORT int faccessat(int dirfd, const char *path, int mode, int flags)
{
	ensure_real();
	if (path_minor_at(dirfd, path) < 0 || in_driver)
		return real_faccessat(dirfd, path, mode, flags);
	return device_access(mode);
}

AICARD_EXPORT int euidaccess(const char *path, int mode)
{
	ensure_real();
	if (path_minor(path) < 0 || in_driver)
		return real_euidaccess(path, mode);
	return device_access(mode);
}

AICARD_EXPORT int eaccess(const char *, int) __attribute__((alias("euidaccess")));

AICARD_EXPORT char *realpath(const char *path, char *resolved)
{
	ensure_real();
	int minor = path_minor(path);
	if (minor < 0 || in_driver)
		return real_realpath(path, resolved);
	char *out = resolved ? resolved : malloc(PATH_MAX);
	if (!out)
		return NULL;
	snprintf(out, PATH_MAX, AICARD_DEV_DIR "/" AICARD_NODE_NAME "%d", minor);
	return out;
}

/* Extended attributes: a device node has none (ls -l asks for SELinux
 * labels and ACLs, and would otherwise report the node missing). */
#define XATTR_SHELLS(name, get_args, get_call, list_args, list_call, target)	\
	AICARD_EXPORT ssize_t name##getxattr get_args					\
	{										\
		ensure_real();								\
		if (target < 0)								\
			return real_##name##getxattr get_call;				\
		return set_errno(-ENODATA);						\
	}										\
	AICARD_EXPORT ssize_t name##listxattr list_args					\
	{										\
		ensure_real();								\
		if (target < 0)								\
			return real_##name##listxattr list_call;			\
		return 0;								\
	}

XATTR_SHELLS(, (const char *path, const char *n, void *v, size_t sz), (path, n, v, sz),
	     (const char *path, char *l, size_t sz), (path, l, sz), stat_target(AT_FDCWD, path, 0))
XATTR_SHELLS(l, (const char *path, const char *n, void *v, size_t sz), (path, n, v, sz),
	     (const char *path, char *l, size_t sz), (path, l, sz), stat_target(AT_FDCWD, path, 0))
XATTR_SHELLS(f, (int fd, const char *n, void *v, size_t sz), (fd, n, v, sz),
	     (int fd, char *l, size_t sz), (fd, l, sz), fd_ours(fd))

/* ---------------------------------------------------------------------- */
/* /dev listing: after the real entries, append aicard0..N-1.             */

#define MAX_DEV_DIRS 64
static struct dev_dir {
	DIR *dir;
	int next;		/* next synthetic minor to return */
	struct dirent64 ent;
} dev_dirs[MAX_DEV_DIRS];
static pthread_mutex_t dirs_lock = PTHREAD_MUTEX_INITIALIZER;

static int is_dev_dir(const char *path)
{
	char norm[PATH_MAX], full[PATH_MAX];
	if (!path || (path[0] != '/' && strncmp(path, "dev", 3) && strcmp(path, ".")))
		return 0;	/* cheap reject for nearly every directory */
	if (path[0] == '/') {
		snprintf(full, sizeof(full), "%s", path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return 0;
		if ((size_t)snprintf(full, sizeof(full), "%s/%s", cwd, path) >= sizeof(full))
			return 0;
	}
	return normalize(full, norm, sizeof(norm)) == 0 && strcmp(norm, AICARD_DEV_DIR) == 0;
}

static void dir_track(DIR *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&dirs_lock);
	for (int i = 0; i < MAX_DEV_DIRS; i++) {
		if (!dev_dirs[i].dir) {
			dev_dirs[i].dir = d;
			dev_dirs[i].next = 0;
			break;
		}
	}
	pthread_mutex_unlock(&dirs_lock);
}

static struct dev_dir *dir_find(DIR *d)
{
	for (int i = 0; i < MAX_DEV_DIRS; i++)
		if (dev_dirs[i].dir == d)
			return &dev_dirs[i];
	return NULL;
}

AICARD_EXPORT DIR *opendir(const char *path)
{
	ensure_real();
	DIR *d = real_opendir(path);
	if (d && !in_driver && is_dev_dir(path))
		dir_track(d);
	return d;
}

AICARD_EXPORT DIR *fdopendir(int fd)
{
	ensure_real();
	DIR *d = real_fdopendir(fd);
	if (d && !in_driver) {
		char link[64], target[PATH_MAX];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			if (strcmp(target, AICARD_DEV_DIR) == 0)
				dir_track(d);
		}
	}
	return d;
}

static struct dirent64 *synth_entry(DIR *d)
{
	pthread_mutex_lock(&dirs_lock);
	struct dev_dir *dd = dir_find(d);
	struct dirent64 *e = NULL;
	if (dd && dd->next < ndevices) {
		memset(&dd->ent, 0, sizeof(dd->ent));
		dd->ent.d_ino = 0xa1ca0000u + (unsigned)dd->next;
		dd->ent.d_type = DT_CHR;
		dd->ent.d_reclen = sizeof(dd->ent);
		snprintf(dd->ent.d_name, sizeof(dd->ent.d_name), AICARD_NODE_NAME "%d", dd->next);
		dd->next++;
		e = &dd->ent;
	}
	pthread_mutex_unlock(&dirs_lock);
	return e;
}

AICARD_EXPORT struct dirent64 *readdir64(DIR *d)
{
	ensure_real();
	struct dirent64 *e = real_readdir64(d);
	if (e)
		return e;
	int saved = errno;
	e = synth_entry(d);
	if (!e)
		errno = saved;
	return e;
}

/* On 64-bit glibc struct dirent and struct dirent64 are the same layout. */
AICARD_EXPORT struct dirent *readdir(DIR *d)
{
	return (struct dirent *)readdir64(d);
}

AICARD_EXPORT void rewinddir(DIR *d)
{
	ensure_real();
	pthread_mutex_lock(&dirs_lock);
	struct dev_dir *dd = dir_find(d);
	if (dd)
		dd->next = 0;
	pthread_mutex_unlock(&dirs_lock);
	real_rewinddir(d);
}

AICARD_EXPORT int closedir(DIR *d)
{
	ensure_real();
	pthread_mutex_lock(&dirs_lock);
	struct dev_dir *dd = dir_find(d);
	if (dd)
		dd->dir = NULL;
	pthread_mutex_unlock(&dirs_lock);
	return real_closedir(d);
}

/* ---------------------------------------------------------------------- */
/* fork: keep our own locks consistent; the driver handles its side.      */

static void atfork_prepare(void)
{
	pthread_mutex_lock(&dirs_lock);
	pthread_mutex_lock(&maps_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&maps_lock);
	pthread_mutex_unlock(&dirs_lock);
}

static void atfork_child(void)
{
	pthread_mutex_unlock(&maps_lock);
	pthread_mutex_unlock(&dirs_lock);
	self_pid = getpid();
}

__attribute__((constructor)) static void aicard_preload_atfork(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* exit(): the driver finishes what it writes (the trace's END record).
 * Only if a device was ever used: otherwise there is no driver at all. */
__attribute__((destructor)) static void aicard_preload_fini(void)
{
	if (drv.exit && !drv_error && !in_driver)
		drv.exit();
}
