/* SPDX-License-Identifier: MIT */
/*
 * registry.c - the set of live handles (contexts, streams, events, modules,
 * functions), so that a stale or made-up handle is aiErrorInvalidHandle
 * instead of a read through a wild pointer.
 *
 * An open-addressing hash set (linear probing, backward-shift deletion, no
 * tombstones), keyed by the object's address.
 */
#include <stdint.h>
#include <stdlib.h>

#include "rt.h"

struct slot {
	const void *obj;	/* NULL: empty */
	enum aicrt_obj_type type;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;
static size_t cap;	/* power of two, or 0 */
static size_t used;

static size_t hash(const void *p)
{
	uint64_t x = (uintptr_t)p;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

static size_t find(const void *obj)	/* slot of obj, or of the hole */
{
	size_t i = hash(obj) & (cap - 1);

	while (slots[i].obj && slots[i].obj != obj)
		i = (i + 1) & (cap - 1);
	return i;
}

static bool grow(void)
{
	size_t old_cap = cap, ncap = cap ? cap * 2 : 64;
	struct slot *old = slots, *n = calloc(ncap, sizeof(*n));

	if (!n)
		return false;
	slots = n;
	cap = ncap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].obj)
			slots[find(old[i].obj)] = old[i];
	free(old);
	return true;
}

bool aicrt_obj_add(const void *obj, enum aicrt_obj_type type)
{
	bool ok = true;

	pthread_mutex_lock(&reg_lock);
	if ((used + 1) * 2 > cap)
		ok = grow();
	if (ok) {
		size_t i = find(obj);

		if (!slots[i].obj)
			used++;
		slots[i].obj = obj;
		slots[i].type = type;
	}
	pthread_mutex_unlock(&reg_lock);
	return ok;
}

void aicrt_obj_del(const void *obj)
{
	pthread_mutex_lock(&reg_lock);
	if (cap && obj) {
		size_t i = find(obj), j = i;

		if (slots[i].obj) {
			slots[i].obj = NULL;
			used--;
			/* move back every later entry of the run that the hole
			 * would hide from its home slot */
			for (;;) {
				size_t home;

				j = (j + 1) & (cap - 1);
				if (!slots[j].obj)
					break;
				home = hash(slots[j].obj) & (cap - 1);
				if (((j - home) & (cap - 1)) >=
				    ((j - i) & (cap - 1))) {
					slots[i] = slots[j];
					slots[j].obj = NULL;
					i = j;
				}
			}
		}
	}
	pthread_mutex_unlock(&reg_lock);
}

bool aicrt_obj_valid(const void *obj, enum aicrt_obj_type type)
{
	bool ok = false;

	if (!obj)
		return false;
	pthread_mutex_lock(&reg_lock);
	if (cap) {
		size_t i = find(obj);

		ok = slots[i].obj == obj && slots[i].type == type;
	}
	pthread_mutex_unlock(&reg_lock);
	return ok;
}
