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

#include "measure.h"

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
