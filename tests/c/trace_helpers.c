/*
 * trace_helpers.c - small programs for the trace tests.
 *   spin     query the device in a loop; prints "ready" after 200 calls, runs until killed
 *   fork     parent and fork()ed child each open the device and query it
 *   unknown  an ioctl the driver does not know, with a 16-byte argument
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aicard_uapi.h"

static int query(int fd)
{
	struct aicard_mem_info mi;
	struct aicard_dev_query q = { .type = AICARD_QUERY_MEM_INFO, .size = sizeof(mi), .pointer = (uintptr_t)&mi };
	return ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int fd = open("/dev/aicard0", O_RDWR);
	if (fd < 0) {
		perror("open");
		return 2;
	}
	if (!strcmp(mode, "spin")) {
		for (long i = 0;; i++) {
			query(fd);
			if (i == 200) {
				printf("ready\n");
				fflush(stdout);
			}
		}
	}
	if (!strcmp(mode, "fork")) {
		query(fd);
		pid_t pid = fork();
		if (pid == 0) {
			int cfd = open("/dev/aicard0", O_RDWR);
			int r = query(cfd);
			printf("child pid %d query %d\n", (int)getpid(), r);
			_exit(r == 0 ? 0 : 1);
		}
		int status;
		waitpid(pid, &status, 0);
		printf("parent pid %d child status %d\n", (int)getpid(), WEXITSTATUS(status));
		return WEXITSTATUS(status);
	}
	if (!strcmp(mode, "unknown")) {
		unsigned char arg[16] = { 1, 2, 3, 4 };
		int r = ioctl(fd, _IOWR('Z', 0x42, unsigned char[16]), arg);
		printf("unknown ioctl %d\n", r);
		return 0;
	}
	return 1;
}
