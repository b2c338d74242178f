/*
 * pty_probe.c - real ioctls on a real device node: a pseudo-terminal
 * master.  Prints, as hex, every argument buffer it passed or got back, so
 * the passthrough recorder's bytes can be checked against what the program
 * itself saw.
 *
 *   TCGETS (legacy request, kernel struct termios: 36 bytes, out)
 *   TIOCGWINSZ (8 bytes, out), TIOCSWINSZ (8 bytes, in, known values),
 *   TIOCGWINSZ again, TIOCGPTN (_IOR('T', 0x30, unsigned int): _IOC-sized)
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void hex(const char *name, const void *p, size_t n)
{
	const unsigned char *b = p;
	printf("%s ", name);
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

int main(void)
{
	int fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		perror("open /dev/ptmx");
		return 2;
	}
	unsigned char termios[36];
	memset(termios, 0xa5, sizeof(termios));
	if (ioctl(fd, TCGETS, termios) != 0) {
		perror("TCGETS");
		return 1;
	}
	hex("TCGETS", termios, sizeof(termios));
	struct winsize ws;
	if (ioctl(fd, TIOCGWINSZ, &ws) != 0) {
		perror("TIOCGWINSZ");
		return 1;
	}
	hex("TIOCGWINSZ", &ws, sizeof(ws));
	struct winsize set = { .ws_row = 33, .ws_col = 77, .ws_xpixel = 5, .ws_ypixel = 9 };
	if (ioctl(fd, TIOCSWINSZ, &set) != 0) {
		perror("TIOCSWINSZ");
		return 1;
	}
	hex("TIOCSWINSZ", &set, sizeof(set));
	memset(&ws, 0, sizeof(ws));
	if (ioctl(fd, TIOCGWINSZ, &ws) != 0) {
		perror("TIOCGWINSZ");
		return 1;
	}
	hex("TIOCGWINSZ2", &ws, sizeof(ws));
	unsigned int ptn = 0xffffffff;
	if (ioctl(fd, TIOCGPTN, &ptn) != 0) {
		perror("TIOCGPTN");
		return 1;
	}
	hex("TIOCGPTN", &ptn, sizeof(ptn));
	close(fd);
	return 0;
}
