/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Types and limits shared by the BPF programs and the Go loader
 * (exported to Go with bpf2go -type). Changing a struct's layout changes
 * the pinned maps' layout: the loader refuses to reuse a pinned map whose
 * key or value size differs. */
#ifndef __UPLINKD_H
#define __UPLINKD_H

#include <linux/types.h>

#define MAX_GROUPS 64
#define MAX_UPLINKS 8 /* per group: slots 0..7 */
#define MAX_PORTS 1024 /* guest ports + uplinks, all groups */
#define FDB_ENTRIES 65536
#define NEIGH_ENTRIES 65536
#define GROUP_NAME_LEN 32
#define NBUCKETS 256 /* balance groups: guests hash to one of these */

/* active[group] when no uplink is usable. */
#define NO_SLOT 0xffffffff

enum port_role {
	ROLE_GUEST = 1,
	ROLE_UPLINK = 2,
};

enum drop_reason {
	DROP_MALFORMED = 0, /* shorter than the headers it claims */
	DROP_BAD_SRC,       /* multicast or all-zero source MAC */
	DROP_STANDBY,       /* guest-bound frame on a standby uplink */
	DROP_NO_UPLINK,     /* no active uplink, or its slot is empty */
	DROP_HAIRPIN,       /* destination is behind the ingress port */
	DROP_VLAN,          /* VLAN not allowed on the port (tagged frame on an access port, VLAN outside a trunk's list) */
	DROP_MTU,           /* longer than the destination port's MTU allows (not GSO) */
	DROP_NO_DEST,       /* flooded, but no other port of the group carries its VLAN */
	DROP_REASONS,
};

/* ports[ifindex]: every interface the switch is attached to. */
struct port_info {
	__u32 id;    /* index into stats */
	__u32 group; /* index into active / uplinks */
	__u32 role;  /* enum port_role */
	__u32 slot;  /* uplinks: slot in the group; guests: NO_SLOT */
	__u8 mac[6]; /* the port's own address: frames to it go to the host */
	__u16 vlan;  /* guests: access VLAN, 0 = trunk; uplinks: 0 (tags pass) */
	__u32 flags; /* PORT_F_* */
	__u32 max_macs; /* guests: most MACs learned behind the port; 0: no limit */
};

/* A trunk guest port with an allowed-VLAN list (vlan_sets[port id]);
 * without it every VLAN passes. Untagged frames pass on every trunk. */
#define PORT_F_VLAN_FILTER 1
/* A guest port whose learned MACs stay with it: another port sending from
 * one of them is not learned (port security against MAC spoofing). */
#define PORT_F_MAC_LOCK 2
/* A veth whose peer lives in another network namespace (a container):
 * the tc data plane delivers into the peer directly (bpf_redirect_peer),
 * skipping a second pass through the host's backlog. */
#define PORT_F_PEER 4

/* group_ports[group]: every port of a group, for flooding skbs (the tc
 * data plane clones a frame to each). At most 200 guest ports and 8
 * uplinks per group. */
#define MAX_GROUP_PORTS 208
struct port_list {
	__u32 n;
	__u32 ifindex[MAX_GROUP_PORTS];
};

/* vlan_sets[port id]: bit v set = VLAN v allowed. */
struct vlan_set {
	__u64 bits[64];
};

/* fdb: which guest port a (group, VLAN, MAC) lives behind. */
struct fdb_key {
	__u32 group;
	__u16 vlan;
	__u8 mac[6];
};

struct fdb_entry {
	__u32 ifindex;
	__u32 port_id;
	__u64 seen_ns; /* bpf_ktime_get_ns of the last refresh */
};

/* neigh: addresses a guest has used as source, for announcements. */
struct neigh_key {
	__u32 group;
	__u16 vlan;
	__u8 family; /* 4 or 6 */
	__u8 pad;
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
};

struct neigh_entry {
	__u8 mac[6];
	__u16 pad;
	__u64 seen_ns;
};

/* stats[port id], per CPU. */
struct port_stats {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets; /* counted when the switch redirects to the port */
	__u64 tx_bytes;
	__u64 host_packets; /* handed to the host stack (TC_ACT_OK) */
	__u64 drops[DROP_REASONS];
	__u64 learn_refused; /* new MACs not learned: max_macs reached, or locked to another port */
};

/* draining[group]: the uplink that was active until a switch keeps
 * delivering unicast to known guests until until_ns, so frames the
 * upstream still sends there (it relearns from the announcements) are
 * not lost. Broadcasts come in on the active uplink: none here. */
struct drain {
	__u32 slot;
	__u32 pad;
	__u64 until_ns; /* bpf_ktime_get_ns */
};

/* groups[id]: the name a group id belongs to, so a restarted daemon
 * maps its configuration onto the pinned state. Read only by Go. */
struct group_info {
	char name[GROUP_NAME_LEN];
	__u32 in_use;
};

enum group_mode {
	MODE_ACTIVE_BACKUP = 0, /* every guest through active[group] */
	MODE_BALANCE = 1,       /* each guest through its bucket's uplink */
};

/* balances[group]: a balance group's bucket table (bucket -> slot), kept by
 * the daemon, and the slots the kernel found dead since the daemon last
 * wrote it. While a slot is marked down its buckets leave through
 * alt[slot][bucket % alt_n[slot]]: the other uplinks, listed by the daemon
 * in the order its own rewrite will use, so that rewrite moves nothing
 * again. In a balance group active[group] is the designated uplink: the
 * only one that delivers broadcasts and unknown unicast from upstream. */
struct balance {
	__u32 mode; /* enum group_mode */
	__u32 down; /* bit per slot */
	__u8 slots[NBUCKETS];
	__u8 alt_n[MAX_UPLINKS];
	__u8 alt[MAX_UPLINKS][MAX_UPLINKS];
};

/* In-kernel failover (bpf/failover.c). */

/* fallbacks[group]: the slots to move to, best first, kept by the
 * daemon, and the slots the kernel paths (and the poll's MoveOff) found
 * without carrier since the daemon last wrote it: a second failure before
 * that write must not move the group back onto a dead uplink. */
struct fallback {
	__u32 count;
	__u32 slots[MAX_UPLINKS];
	__u32 dead; /* bit per slot */
};

enum fo_cause {
	/* 1 was a transmit error (the XDP data plane's tracepoint). */
	FO_CARRIER_OFF = 2, /* fentry/netif_carrier_off */
	FO_CARRIER_SEEN = 3, /* the switch read no carrier before a redirect */
};

/* fo_events: one per switch the kernel made. */
struct fo_event {
	__u64 ts_ns; /* bpf_ktime_get_ns */
	__u32 group;
	__u32 from;
	__u32 to;
	__u32 ifindex;
	__u32 cause; /* enum fo_cause */
	__s32 err;
};

/* arrivals: a guest MAC learned for the first time in its group and
 * VLAN, or behind another port than before (a VM started or migrated
 * in): the daemon announces it upstream at once. */
struct arrival {
	__u32 group;
	__u32 ifindex;
	__u16 vlan;
	__u8 mac[6];
};

#endif
