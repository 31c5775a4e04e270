/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The few kernel fields the programs read, declared with just those fields:
 * CO-RE relocates them against the running kernel's BTF, so no vmlinux.h
 * (and no kernel version) is baked into the objects. */
#ifndef __UPLINKD_KERNEL_TYPES_H
#define __UPLINKD_KERNEL_TYPES_H

#include <linux/types.h>

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
	unsigned long state; /* enum netdev_state_t bits */
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

/* Only read through bpf_probe_read_kernel, from a tc program's context
 * (which is the kernel's sk_buff). */
struct sk_buff {
	struct net_device *dev;
} __attribute__((preserve_access_index));

enum netdev_state_t {
	__LINK_STATE_START,
	__LINK_STATE_PRESENT,
	__LINK_STATE_NOCARRIER,
};

#endif
