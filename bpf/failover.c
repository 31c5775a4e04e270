// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* In-kernel failover: move a group off its active uplink the moment the
 * kernel reports it cannot transmit, before user space hears of it.
 *
 * Two hooks, loaded separately so a kernel that refuses one keeps the
 * other (the daemon detects which load and says so):
 *  - fentry/netif_carrier_off: the carrier loss itself, in the same call
 *    that reports it, before another frame is redirected;
 *  - tp_btf/xdp_devmap_xmit: a redirected batch that failed with err != 0
 *    (a full ring drops with err == 0: that is no dead link).
 * Both write the same active[group] slot the switch reads, with a
 * compare-and-swap, so a switch made here and one made by the daemon look
 * alike and never undo each other. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "uplinkd.h"
#include "shared_maps.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Just the fields used; CO-RE relocates them against the running kernel. */
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

/* The network namespace (inode) the switch's ifindexes belong to: an
 * ifindex names a device only within its namespace. Set at load time. */
volatile const __u32 switch_netns = 0;

/* fallbacks[group]: usable uplinks best first, kept by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct fallback);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fallbacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fo_events SEC(".maps");

/* Unused: puts the event type into BTF for bpf2go. */
const struct fo_event *_fo_event __attribute__((unused));
const enum fo_cause *_fo_cause __attribute__((unused));

static __always_inline int fail_over(const struct net_device *dev, __u32 cause, int err)
{
	if (dev->nd_net.net->ns.inum != switch_netns)
		return 0;
	__u32 ifindex = dev->ifindex;
	struct port_info *port = bpf_map_lookup_elem(&ports, &ifindex);
	if (!port || port->role != ROLE_UPLINK)
		return 0;
	__u32 group = port->group, slot = port->slot;
	__u32 *cur = bpf_map_lookup_elem(&active, &group);
	struct fallback *fb = bpf_map_lookup_elem(&fallbacks, &group);
	if (!cur || !fb || *cur != slot)
		return 0; /* a standby uplink failing moves nothing */

	__u32 next = NO_SLOT;
#pragma unroll
	for (int i = 0; i < MAX_UPLINKS; i++) {
		if (i < fb->count && fb->slots[i] != slot && fb->slots[i] < MAX_UPLINKS) {
			next = fb->slots[i];
			break;
		}
	}
	if (next == NO_SLOT)
		return 0; /* nowhere to go: leave it to the daemon */
	/* Only the first reporter of this failure switches. */
	if (__sync_val_compare_and_swap(cur, slot, next) != slot)
		return 0;

	struct fo_event *ev = bpf_ringbuf_reserve(&fo_events, sizeof(*ev), 0);
	if (ev) {
		ev->ts_ns = bpf_ktime_get_ns();
		ev->group = group;
		ev->from = slot;
		ev->to = next;
		ev->ifindex = ifindex;
		ev->cause = cause;
		ev->err = err;
		bpf_ringbuf_submit(ev, 0);
	}
	return 0;
}

SEC("tp_btf/xdp_devmap_xmit")
int BPF_PROG(fo_xmit, const struct net_device *from_dev,
	     const struct net_device *to_dev, int sent, int drops, int err)
{
	if (err == 0)
		return 0;
	return fail_over(to_dev, FO_XMIT_ERROR, err);
}

SEC("fentry/netif_carrier_off")
int BPF_PROG(fo_carrier, struct net_device *dev)
{
	return fail_over(dev, FO_CARRIER_OFF, 0);
}
