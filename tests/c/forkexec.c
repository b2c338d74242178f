/*
 * forkexec.c - a process holding device fds meets fork, system, popen,
 * posix_spawn and exec.  Prints "ok NAME" / "FAIL NAME: why"; exit status
 * is the number of failures.
 *
 *   forkexec SELF_CHECK_PROGRAM
 * SELF_CHECK_PROGRAM: a program that opens /dev/aicard0 itself and exits 0
 * if the device works (e.g. the vecadd sample).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aicard_uapi.h"

extern char **environ;
#include "check.h"

static int query(int fd, struct aicard_mem_info *mi)
{
	struct aicard_dev_query q = { .type = AICARD_QUERY_MEM_INFO, .size = sizeof(*mi), .pointer = (uintptr_t)mi };
	return ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q) ? -errno : 0;
}

static int wait_status(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
	const char *prog = argc > 1 ? argv[1] : "/bin/false";
	struct aicard_mem_info mi;
	int fd = open("/dev/aicard0", O_RDWR);		/* inherited by children */
	int cloexec = open("/dev/aicard0", O_RDWR | O_CLOEXEC);
	struct aicard_bo_create bo = { .size = 1 << 20 };
	ioctl(fd, AICARD_IOCTL_BO_CREATE, &bo);
	query(fd, &mi);
	unsigned long long used = mi.vram_used;

	/* fork: the inherited fd is refused, a fresh open works */
	pid_t pid = fork();
	if (pid == 0) {
		struct aicard_mem_info cmi;
		int r = query(fd, &cmi);
		if (r != -EBADFD)
			_exit(10);
		int nfd = open("/dev/aicard0", O_RDWR);
		struct aicard_bo_create cbo = { .size = 4096 };
		if (nfd < 0 || ioctl(nfd, AICARD_IOCTL_BO_CREATE, &cbo) || query(nfd, &cmi))
			_exit(11);
		if (cmi.vram_used != 4096)	/* a device of its own: the parent's BO is not there */
			_exit(12);
		close(fd);
		_exit(0);
	}
	int st = wait_status(pid);
	CHECK("fork: inherited fd is EBADFD, the child's own open works", st == 0, "child status %d", st);
	CHECK("fork: the parent's context is untouched", query(fd, &mi) == 0 && mi.vram_used == used,
	      "used %llu, want %llu", (unsigned long long)mi.vram_used, used);

	/* system / popen / posix_spawn of programs that do not use the device */
	CHECK("system", system("exit 3") >> 8 == 3, "x");
	FILE *p = popen("echo hello", "r");
	char line[64] = "";
	CHECK("popen", p && fgets(line, sizeof(line), p) && !strcmp(line, "hello\n") && pclose(p) == 0, "%s", line);
	pid_t sp;
	char *sargv[] = { "/bin/sh", "-c", "exit 5", NULL };
	int r = posix_spawn(&sp, "/bin/sh", NULL, NULL, sargv, environ);
	CHECK("posix_spawn", r == 0 && wait_status(sp) == 5, "r=%d", r);

	/* an exec'd child that opens the device gets a working driver of its own */
	char *pargv[] = { (char *)prog, NULL };
	r = posix_spawn(&sp, prog, NULL, NULL, pargv, environ);
	st = r == 0 ? wait_status(sp) : -1;
	CHECK("exec'd child uses the device", st == 0, "status %d", st);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "%s > /dev/null", prog);
	CHECK("system() child uses the device", system(cmd) == 0, "x");

	/* close-on-exec: the O_CLOEXEC device fd is not in an exec'd child,
	 * the other one is (as a plain fd the child's shim does not know) */
	snprintf(cmd, sizeof(cmd), "test -e /proc/self/fd/%d && ! test -e /proc/self/fd/%d", fd, cloexec);
	CHECK("close-on-exec honoured", system(cmd) == 0, "fd %d / cloexec fd %d", fd, cloexec);

	CHECK("parent still works at the end", query(fd, &mi) == 0 && mi.vram_used == used, "x");
	return failures;
}
