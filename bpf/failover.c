// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* In-kernel failover: move a group off its active uplink the moment the
 * kernel reports it cannot transmit, before user space hears of it.
 *
 * Two hooks, loaded separately so a kernel that refuses one keeps the
 * other (the daemon detects which load and says so):
 *  - fentry/netif_carrier_off: the carrier loss itself, in the same call
 *    that reports it, before another frame is redirected;
 *  - tp_btf/xdp_devmap_xmit: a redirected batch that failed with err != 0
 *    (a full ring drops with err == 0: that is no dead link). A batch
 *    that went out records its device for the switch's own carrier check
 *    (bpf/switch.c), which moves the group before a frame is lost.
 * Both write the same active[group] slot the switch reads, with a
 * compare-and-swap, so a switch made here and one made by the daemon look
 * alike and never undo each other. */
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

/* remember_dev records which device an uplink slot transmits through, so
 * the switch can read its carrier (bpf/switch.c, uplink_lost_carrier). */
static __always_inline void remember_dev(const struct net_device *dev)
{
	struct port_info *port = uplink_of(dev);
	if (!port)
		return;
	__u32 key = port->group * MAX_UPLINKS + port->slot;
	struct uplink_dev *known = bpf_map_lookup_elem(&uplink_devs, &key);
	if (!known || known->dev == (__u64)dev)
		return;
	known->ifindex = dev->ifindex;
	known->dev = (__u64)dev;
}

SEC("tp_btf/xdp_devmap_xmit")
int BPF_PROG(fo_xmit, const struct net_device *from_dev,
	     const struct net_device *to_dev, int sent, int drops, int err)
{
	if (err == 0) {
		remember_dev(to_dev);
		return 0;
	}
	return fail_over(to_dev, FO_XMIT_ERROR, err);
}

SEC("fentry/netif_carrier_off")
int BPF_PROG(fo_carrier, struct net_device *dev)
{
	return fail_over(dev, FO_CARRIER_OFF, 0);
}
