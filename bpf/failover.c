// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* In-kernel failover: move a group off its active uplink the moment the
 * kernel reports its carrier lost, before user space hears of it:
 * fentry/netif_carrier_off, in the same call that reports the loss,
 * before another frame is sent. Kernels that refuse fentry still have the
 * switch's own check at each uplink's tc egress (bpf/switch.c,
 * tc_uplink_out). Both write the same active[group] slot the switch
 * reads, with a compare-and-swap, so a switch made here and one made by
 * the daemon look alike and never undo each other. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "uplinkd.h"
#include "kernel_types.h"
#include "move_group.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* The network namespace (inode) the switch's ifindexes belong to: an
 * ifindex names a device only within its namespace. Set at load time. */
volatile const __u32 switch_netns = 0;

/* Unused: puts the event type into BTF for bpf2go. */
const struct fo_event *_fo_event __attribute__((unused));
const enum fo_cause *_fo_cause __attribute__((unused));

/* uplink_of returns the switch's record of dev when dev is one of its
 * uplinks (in its namespace), else NULL. */
static __always_inline struct port_info *uplink_of(const struct net_device *dev)
{
	if (dev->nd_net.net->ns.inum != switch_netns)
		return NULL;
	__u32 ifindex = dev->ifindex;
	struct port_info *port = bpf_map_lookup_elem(&ports, &ifindex);
	if (!port || port->role != ROLE_UPLINK || port->slot >= MAX_UPLINKS)
		return NULL;
	return port;
}

static __always_inline int fail_over(const struct net_device *dev, __u32 cause, int err)
{
	struct port_info *port = uplink_of(dev);

	if (port)
		move_group(port->group, port->slot, dev->ifindex, cause, err);
	return 0;
}

SEC("fentry/netif_carrier_off")
int BPF_PROG(fo_carrier, struct net_device *dev)
{
	return fail_over(dev, FO_CARRIER_OFF, 0);
}
