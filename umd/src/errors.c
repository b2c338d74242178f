/* SPDX-License-Identifier: MIT */
/* errors.c - error names and strings, the per-thread last error, errno. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rt.h"

static __thread aiError_t tls_last_error = aiSuccess;

static const struct {
	aiError_t code;
	const char *name;
	const char *text;
} error_table[] = {
	{ aiSuccess, "aiSuccess", "no error" },
	{ aiErrorInvalidValue, "aiErrorInvalidValue", "invalid argument" },
	{ aiErrorOutOfMemory, "aiErrorOutOfMemory", "out of memory" },
	{ aiErrorNotInitialized, "aiErrorNotInitialized",
	  "initialization error" },
	{ aiErrorInvalidDevicePointer, "aiErrorInvalidDevicePointer",
	  "invalid device pointer" },
	{ aiErrorNoDevice, "aiErrorNoDevice", "no aicard device is available" },
	{ aiErrorInvalidDevice, "aiErrorInvalidDevice",
	  "invalid device ordinal" },
	{ aiErrorInvalidImage, "aiErrorInvalidImage",
	  "device kernel image is invalid" },
	{ aiErrorFileNotFound, "aiErrorFileNotFound", "file not found" },
	{ aiErrorOperatingSystem, "aiErrorOperatingSystem",
	  "OS call failed or operation not supported on this OS" },
	{ aiErrorInvalidHandle, "aiErrorInvalidHandle",
	  "invalid resource handle" },
	{ aiErrorNotFound, "aiErrorNotFound", "named symbol not found" },
	{ aiErrorNotReady, "aiErrorNotReady", "device not ready" },
	{ aiErrorIllegalAddress, "aiErrorIllegalAddress",
	  "an illegal memory access was encountered" },
	{ aiErrorLaunchTimeout, "aiErrorLaunchTimeout",
	  "the launch timed out and was terminated" },
	{ aiErrorLaunchFailure, "aiErrorLaunchFailure",
	  "unspecified launch failure" },
	{ aiErrorTimeout, "aiErrorTimeout", "timeout expired" },
	{ aiErrorNotSupported, "aiErrorNotSupported",
	  "operation not supported by the device" },
	{ aiErrorUnknown, "aiErrorUnknown", "unknown error" },
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

const char *aiGetErrorName(aiError_t error)
{
	for (size_t i = 0; i < ARRAY_SIZE(error_table); i++)
		if (error_table[i].code == error)
			return error_table[i].name;
	return "unrecognized error code";
}

const char *aiGetErrorString(aiError_t error)
{
	for (size_t i = 0; i < ARRAY_SIZE(error_table); i++)
		if (error_table[i].code == error)
			return error_table[i].text;
	return "unrecognized error code";
}

aiError_t aiGetLastError(void)
{
	aiError_t e = tls_last_error;

	tls_last_error = aiSuccess;
	return e;
}

aiError_t aiPeekAtLastError(void)
{
	return tls_last_error;
}

int aiRuntimeGetVersion(void)
{
	return AI_RUNTIME_VERSION;
}

aiError_t aicrt_ret_at(const char *api, aiError_t e)
{
	if (e != aiSuccess) {
		tls_last_error = e;
		AICRT_DBG("%s -> %s", api, aiGetErrorName(e));
	}
	return e;
}

aiError_t aicrt_from_errno(int err, aiError_t einval)
{
	switch (err) {
	case 0:		return aiSuccess;
	case EINVAL:	return einval;
	case ENOMEM:	return aiErrorOutOfMemory;
	case EFAULT:	return aiErrorInvalidValue;
	case ENOENT:	return aiErrorNotFound;
	case ETIMEDOUT:	return aiErrorTimeout;
	case EBADF:	return aiErrorInvalidHandle;
	case EBUSY:	return aiErrorNotReady;
	case EIO:	return aiErrorUnknown;	/* the driver's own failure */
	/* The context was lost to a device fault: like CUDA's sticky launch
	 * failure, nothing more runs in it. */
	case ECANCELED:	return aiErrorLaunchFailure;
	case EBADFD:	return aiErrorNotInitialized;	/* fd inherited across fork() */
	case EOPNOTSUPP: return aiErrorNotSupported;
	default:	return aiErrorOperatingSystem;
	}
}

/* glibc names every errno (strerrorname_np, glibc >= 2.32); a value it does not know
 * prints as "errno N" so a log line still says what came back. */
const char *aicrt_errno_name(int err)
{
	static __thread char buf[16];
	const char *name = err ? strerrorname_np(err) : "0";

	if (name)
		return name;
	snprintf(buf, sizeof(buf), "errno %d", err);
	return buf;
}
