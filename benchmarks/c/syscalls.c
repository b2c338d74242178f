/*
 * syscalls - a program that never touches the device but makes many
 * syscalls the shim intercepts: open/read/close and stat in a loop.
 *   syscalls [ITERATIONS]   prints the elapsed ns
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	struct timespec t0, t1;
	char buf[64];
	struct stat st;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++) {
		int fd = open("/etc/hostname", O_RDONLY);
		if (read(fd, buf, sizeof(buf)) < 0)
			return 1;
		close(fd);
		stat("/etc/passwd", &st);
		stat("/dev/null", &st);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%lld\n", (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
	return 0;
}
