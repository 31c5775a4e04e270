/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps that more than one BPF object uses, defined once: both objects pin
 * them by name and must agree on their layout to share the pin. */
#ifndef __UPLINKD_SHARED_MAPS_H
#define __UPLINKD_SHARED_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "uplinkd.h"

/* ports[ifindex]: every interface the switch is attached to. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32); /* ifindex */
	__type(value, struct port_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ports SEC(".maps");

/* active[group] = slot of the active uplink, or NO_SLOT. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_GROUPS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} active SEC(".maps");

/* fallbacks[group]: usable uplinks best first, kept by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct fallback);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fallbacks SEC(".maps");

/* fo_events: every switch the kernel made by itself. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fo_events SEC(".maps");

/* balances[group]: see struct balance. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct balance);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} balances SEC(".maps");

#endif
