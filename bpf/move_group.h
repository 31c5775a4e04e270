/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* move_group: the one way the kernel side moves a group off a failed
 * uplink, shared by the switch (carrier seen at an uplink's tc egress) and
 * the carrier-off hook. */
#ifndef __UPLINKD_MOVE_GROUP_H
#define __UPLINKD_MOVE_GROUP_H

#include "shared_maps.h"
#include "balance.h"

static __always_inline void report_switch(__u32 group, __u32 from, __u32 to,
					  __u32 ifindex, __u32 cause, int err)
{
	struct fo_event *ev = bpf_ringbuf_reserve(&fo_events, sizeof(*ev), 0);

	if (!ev)
		return;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->group = group;
	ev->from = from;
	ev->to = to;
	ev->ifindex = ifindex;
	ev->cause = cause;
	ev->err = err;
	bpf_ringbuf_submit(ev, 0);
}

/* move_group moves group from slot to the first slot of its fallback
 * order not found dead, with a compare-and-swap, so the first reporter of
 * a failure switches and the others (and the daemon) see the result, and
 * reports the switch on fo_events. slot is marked dead first, until the
 * daemon writes a new order: else a second uplink failing before that
 * write would move the group back to the first, and two dead uplinks'
 * egress programs would pass a frame to and fro until the kernel's
 * recursion limit drops it. It returns the group's slot after the
 * attempt: the new one, the one another reporter chose, or slot itself
 * when there is nowhere to go (then the daemon decides).
 *
 * In a balance group the failed slot is also marked down, which moves
 * its buckets (balance_slot), and the event reports it even when slot
 * was not the designated uplink (then with to = NO_SLOT). Without a
 * fallback order (a down-delay runs) nothing moves: the daemon decides. */
static __always_inline __u32 move_group(__u32 group, __u32 slot, __u32 ifindex,
					__u32 cause, int err)
{
	__u32 *cur = bpf_map_lookup_elem(&active, &group);
	struct fallback *fb = bpf_map_lookup_elem(&fallbacks, &group);
	struct balance *bal = balance_of(group);
	int newly_down = 0;

	if (!cur)
		return NO_SLOT;
	if (!fb || fb->count == 0 || slot >= MAX_UPLINKS)
		return *cur;
	__u32 dead = __sync_fetch_and_or(&fb->dead, 1u << slot) | (1u << slot);
	if (bal) {
		__u32 bit = 1u << slot;
		newly_down = !(__sync_fetch_and_or(&bal->down, bit) & bit);
	}

	/* Only the active slot moves; a standby (or, balanced, a
	 * non-designated) uplink failing moves nothing but its buckets. */
	__u32 ret = *cur, to = NO_SLOT;
	if (ret == slot) {
		__u32 next = NO_SLOT;
#pragma unroll
		for (int i = 0; i < MAX_UPLINKS; i++) {
			__u32 s = fb->slots[i];
			if (i < fb->count && s < MAX_UPLINKS && !(dead & (1u << s))) {
				next = s;
				break;
			}
		}
		if (next != NO_SLOT) {
			ret = __sync_val_compare_and_swap(cur, slot, next);
			if (ret == slot)
				ret = to = next;
		}
	}
	if (to != NO_SLOT || newly_down)
		report_switch(group, slot, to, ifindex, cause, err);
	return ret;
}

#endif
