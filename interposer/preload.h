/*
 * preload.h - constants shared by the preload library and its build.
 * The driver library's entry points are declared in build.py (the cffi cdef),
 * which is the one list both sides are generated from.
 */
#ifndef AICARD_PRELOAD_H
#define AICARD_PRELOAD_H

#define AICARD_SHIM_MAX_DEVICES 16		/* AICARD_MAX_DEVICES of the UAPI */
#define AICARD_DEV_DIR "/dev"
#define AICARD_NODE_NAME "aicard"
/* 240-254 are the character majors Linux reserves for local/experimental use. */
#define AICARD_MAJOR 240
#define AICARD_DRIVER_LIB_NAME "libaicard_driver.so"
#define AICARD_PING_MAGIC 0x1CA1C0DE		/* interposer/build.py PING_MAGIC */

#endif
