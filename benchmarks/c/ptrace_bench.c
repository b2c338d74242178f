/*
 * ptrace_bench - what a program pays under each front-end (benchmarks/ptrace.py).
 *
 *   ptrace_bench ioctl N      per-ioctl round trip, "name p50_ns mean_ns" lines
 *   ptrace_bench files N      N x (open+read+close /etc/hostname, getpid): "files total_ns"
 *   ptrace_bench compute N    N x (work + getpid + clock_gettime + read /dev/zero
 *                             + write /dev/null): syscalls the filter lets through
 *
 * ioctl needs /dev/aicard0 for its device lines (without one it prints only
 * the native baseline).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "aicard_uapi.h"

#include "measure.h"

static int bench_ioctl(int n)
{
	struct termios t;
	int null = open("/dev/null", O_RDWR);
	MEASURE("native_tcgets_devnull", n, ioctl(null, TCGETS, &t));
	int fd = open("/dev/aicard0", O_RDWR);
	if (fd < 0)
		return 0;
	char buf[16];
	/* an 'A' request the driver does not know: the bare round trip */
	MEASURE("device_unknown_ioctl", n, ioctl(fd, _IOWR('A', 0xfe, char[16]), buf));
	struct aicard_clock clk;
	struct aicard_dev_query q = { .type = AICARD_QUERY_CLOCK, .size = sizeof(clk),
				      .pointer = (uintptr_t)&clk };
	MEASURE("device_query_clock", n, ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q));
	return 0;
}

static int bench_files(int n)
{
	char buf[256];
	uint64_t t0 = now_ns();
	for (int i = 0; i < n; i++) {
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd >= 0) {
			if (read(fd, buf, sizeof(buf)) < 0)
				return 1;
			close(fd);
		}
		syscall(SYS_getpid);
	}
	printf("files %llu\n", (unsigned long long)(now_ns() - t0));
	return 0;
}

static int bench_compute(int n)
{
	char buf[64];
	volatile double x = 1.0;
	int zero = open("/dev/zero", O_RDONLY), null = open("/dev/null", O_WRONLY);
	uint64_t t0 = now_ns();
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < 200; k++)
			x = x * 1.0000001 + 1e-9;
		syscall(SYS_getpid);
		struct timespec ts;
		syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
		if (read(zero, buf, sizeof(buf)) < 0 || write(null, buf, sizeof(buf)) < 0)
			return 1;
	}
	printf("compute %llu\n", (unsigned long long)(now_ns() - t0));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: ptrace_bench ioctl|files|compute N\n");
		return 2;
	}
	int n = atoi(argv[2]);
	samples = calloc((size_t)n, sizeof(*samples));
	if (!strcmp(argv[1], "ioctl"))
		return bench_ioctl(n);
	if (!strcmp(argv[1], "files"))
		return bench_files(n);
	if (!strcmp(argv[1], "compute"))
		return bench_compute(n);
	return 2;
}
