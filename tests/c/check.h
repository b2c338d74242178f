/*
 * check.h - the one reporting convention of the suite's C test programs:
 * one line per check, "ok NAME" or "FAIL NAME: why (errno E)", and the
 * failure count as the exit status (the pytest side reads the lines).
 */
#ifndef AICARD_TEST_CHECK_H
#define AICARD_TEST_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(name, cond, ...)                                                     \
	do {                                                                       \
		int saved_errno_ = errno;                                          \
		if (cond) {                                                        \
			printf("ok %s\n", name);                                   \
		} else {                                                           \
			const char *en_ = strerrorname_np(saved_errno_);           \
			printf("FAIL %s: ", name);                                 \
			printf(__VA_ARGS__);                                       \
			printf(" (errno %s)\n", en_ ? en_ : "0");                  \
			failures++;                                                \
		}                                                                  \
		fflush(stdout);                                                    \
	} while (0)

#endif
