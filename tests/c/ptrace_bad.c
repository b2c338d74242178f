/*
 * ptrace_bad.c - a program that misbehaves on purpose, for the tracer's
 * bad-input tests.  Each mode opens /dev/aicard0 and makes a device call
 * first, so the tracer holds a driver for it when things go wrong.
 *
 *   ptrace_bad segv | abort | exit N
 *   ptrace_bad spin              prints "ready PID", then burns CPU forever
 *   ptrace_bad ioctl-loop        prints "ready PID", then device ioctls forever
 *   ptrace_bad fork-spin         a child spins too: "ready PARENT CHILD"
 *   ptrace_bad blocked-thread    a thread waits on an event nobody signals
 *                                (the tracer has a worker busy): "ready PID"
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "aicard_uapi.h"

static int fd;

static long query(void)
{
	struct aicard_clock clk;
	struct aicard_dev_query q = { .type = AICARD_QUERY_CLOCK, .size = sizeof(clk),
				      .pointer = (uintptr_t)&clk };
	return ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q);
}

static void spin(void)
{
	volatile unsigned long x = 0;
	for (;;)
		x++;
}

static void *wait_forever(void *arg)
{
	struct aicard_event_wait ew = { .handle = *(uint32_t *)arg, .timeout_ns = AICARD_TIMEOUT_INFINITE };
	ioctl(fd, AICARD_IOCTL_EVENT_WAIT, &ew);
	return NULL;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	fd = open("/dev/aicard0", O_RDWR);
	if (fd < 0 || query() != 0) {
		perror("device");
		return 2;
	}
	const char *mode = argc > 1 ? argv[1] : "";
	if (!strcmp(mode, "segv"))
		*(volatile int *)(uintptr_t)8 = 1;
	if (!strcmp(mode, "abort"))
		abort();
	if (!strcmp(mode, "exit"))
		return argc > 2 ? atoi(argv[2]) : 0;
	if (!strcmp(mode, "spin")) {
		printf("ready %d\n", getpid());
		spin();
	}
	if (!strcmp(mode, "ioctl-loop")) {
		printf("ready %d\n", getpid());
		for (;;)
			query();
	}
	if (!strcmp(mode, "fork-spin")) {
		pid_t child = fork();
		if (child == 0)
			spin();
		printf("ready %d %d\n", getpid(), child);
		spin();
	}
	if (!strcmp(mode, "blocked-thread")) {
		static struct aicard_event_create ec;
		ioctl(fd, AICARD_IOCTL_EVENT_CREATE, &ec);
		pthread_t t;
		pthread_create(&t, NULL, wait_forever, &ec.handle);
		usleep(200 * 1000);
		printf("ready %d\n", getpid());
		spin();
	}
	fprintf(stderr, "unknown mode '%s'\n", mode);
	return 3;
}
