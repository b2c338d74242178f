/*
 * ioctl_rt - round-trip time of small ioctls, native vs device.
 *
 *   ioctl_rt [ITERATIONS]
 *
 * Prints one line per measurement: "name p50_ns p99_ns mean_ns".  Baseline:
 * TCGETS on /dev/null (ENOTTY from the kernel) - the cheapest real ioctl.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "aicard_uapi.h"

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t *samples;

static void report(const char *name, int n)
{
	uint64_t sum = 0;
	for (int i = 0; i < n; i++)
		sum += samples[i];
	qsort(samples, (size_t)n, sizeof(*samples), cmp);
	printf("%s %llu %llu %llu\n", name, (unsigned long long)samples[n / 2],
	       (unsigned long long)samples[n * 99 / 100], (unsigned long long)(sum / (uint64_t)n));
}

#define MEASURE(name, n, call)                          \
	do {                                            \
		for (int i_ = 0; i_ < (n) / 10; i_++)   \
			(void)(call);                   \
		for (int i_ = 0; i_ < (n); i_++) {      \
			uint64_t t0_ = now_ns();        \
			(void)(call);                   \
			samples[i_] = now_ns() - t0_;   \
		}                                       \
		report(name, n);                        \
	} while (0)

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20000;
	samples = calloc((size_t)n, sizeof(*samples));
	struct termios t;
	int null = open("/dev/null", O_RDWR);
	MEASURE("native_tcgets_devnull", n, ioctl(null, TCGETS, &t));

	int fd = open("/dev/aicard0", O_RDWR);
	if (fd < 0) {
		perror("/dev/aicard0");
		return 2;
	}
	struct aicard_clock clk;
	struct aicard_dev_query q = { .type = AICARD_QUERY_CLOCK, .size = sizeof(clk), .pointer = (uintptr_t)&clk };
	MEASURE("device_query_clock", n, ioctl(fd, AICARD_IOCTL_DEV_QUERY, &q));

	struct aicard_queue_create qc = { 0 };
	ioctl(fd, AICARD_IOCTL_QUEUE_CREATE, &qc);
	struct aicard_event_create ec = { 0 };
	ioctl(fd, AICARD_IOCTL_EVENT_CREATE, &ec);
	struct aicard_cmd_event rec = { .type = AICARD_CMD_EVENT_RECORD, .event = ec.handle };
	struct aicard_submit s = { .queue_id = qc.queue_id, .cmd_count = 1, .cmd_stride = sizeof(rec),
				   .cmds = (uintptr_t)&rec };
	ioctl(fd, AICARD_IOCTL_SUBMIT, &s);
	struct aicard_wait w = { .queue_id = qc.queue_id, .fence = s.fence, .timeout_ns = 0 };
	MEASURE("device_wait_signalled_fence", n, ioctl(fd, AICARD_IOCTL_WAIT, &w));
	MEASURE("device_unknown_ioctl", n, ioctl(fd, TCGETS, &t));
	return 0;
}
