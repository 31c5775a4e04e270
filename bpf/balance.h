/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Balance groups: which uplink a guest's frames leave through. */
#ifndef __UPLINKD_BALANCE_H
#define __UPLINKD_BALANCE_H

#include "shared_maps.h"

/* bucket_of hashes a guest (source MAC and VLAN) to its bucket: FNV-1a
 * over the MAC and the VLAN (big-endian), folded to 8 bits. pkg/balance
 * computes the same. */
static __always_inline __u32 bucket_of(const __u8 *mac, __u16 vlan)
{
	__u32 h = 2166136261u;

#pragma unroll
	for (int i = 0; i < 6; i++)
		h = (h ^ mac[i]) * 16777619u;
	h = (h ^ (vlan >> 8)) * 16777619u;
	h = (h ^ (vlan & 0xff)) * 16777619u;
	return (h ^ (h >> 8) ^ (h >> 16) ^ (h >> 24)) & (NBUCKETS - 1);
}

/* balance_of is group's balance entry if the group is in balance mode. */
static __always_inline struct balance *balance_of(__u32 group)
{
	struct balance *bal = bpf_map_lookup_elem(&balances, &group);

	return bal && bal->mode == MODE_BALANCE ? bal : NULL;
}

/* balance_slot is the slot bucket leaves through: its table entry, or,
 * while that slot is marked down, its alternative (a second failure
 * before the daemon rewrites the table: the designated uplink, which the
 * kernel paths keep on a live one). NO_SLOT if none. No loops: the
 * verifier of older kernels gives up on the paths they multiply. */
static __always_inline __u32 balance_slot(__u32 group, const struct balance *bal, __u32 bucket)
{
	__u32 down = bal->down;
	__u32 slot = bal->slots[bucket & (NBUCKETS - 1)];

	if (slot >= MAX_UPLINKS)
		return NO_SLOT;
	if (!(down & (1u << slot)))
		return slot;
	__u32 n = bal->alt_n[slot];
	if (n == 0 || n > MAX_UPLINKS)
		return NO_SLOT;
	__u32 i = bucket % n;
	/* Keep the mask: the verifier cannot bound a modulo. */
	asm volatile("" : "+r"(i));
	__u32 alt = bal->alt[slot][i & (MAX_UPLINKS - 1)];
	if (alt < MAX_UPLINKS && !(down & (1u << alt)))
		return alt;
	__u32 *cur = bpf_map_lookup_elem(&active, &group);
	return cur && *cur < MAX_UPLINKS && !(down & (1u << *cur)) ? *cur : NO_SLOT;
}

#endif
