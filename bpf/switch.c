// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The uplinkd switch: tc programs on skbs, at ingress of every port and at
 * egress of every uplink (see "The tc data plane" below).
 *
 * One write moves every guest: guest traffic goes to
 * uplink_ifs[group * MAX_UPLINKS + active[group]], so changing active[group]
 * moves all of a group's guests at once. A balance group sends each guest
 * through its bucket's uplink instead (balances[group]), and one write of
 * that table moves every bucket. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "uplinkd.h"
#include "kernel_types.h"
#include "move_group.h"
#include "parse.h"

/* Refresh a learned entry's timestamp at most this often: a map write per
 * frame would cost more than the forwarding itself. */
#define REFRESH_NS 1000000000ULL

char __license[] SEC("license") = "Dual BSD/GPL";

/* Set at load time when the kernel lets the programs read kernel memory
 * (bpf_probe_read_kernel: root, no lockdown): then tc_uplink_out reads its
 * uplink's carrier before a frame leaves. */
volatile const __u32 carrier_check = 0;

/* Unused: they put the enums and types into BTF for bpf2go. */
const enum drop_reason *_drop_reason __attribute__((unused));
const enum port_role *_port_role __attribute__((unused));
const struct vlan_set *_vlan_set __attribute__((unused));
const struct arrival *_arrival __attribute__((unused));
const struct balance *_balance __attribute__((unused));
const enum group_mode *_group_mode __attribute__((unused));
const struct port_list *_port_list __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct drain);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} draining SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FDB_ENTRIES);
	__type(key, struct fdb_key);
	__type(value, struct fdb_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fdb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NEIGH_ENTRIES);
	__type(key, struct neigh_key);
	__type(value, struct neigh_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} neigh SEC(".maps");

/* learned_macs[port id]: the FDB entries behind a guest port, for its
 * max_macs. Entries that age out of the LRU are not seen here; the daemon
 * recounts from the FDB now and then. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} learned_macs SEC(".maps");

/* bucket_bytes[group * NBUCKETS + bucket], per CPU: the bytes a balance
 * group's guests sent upstream, by bucket, for rebalancing. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_GROUPS * NBUCKETS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bucket_bytes SEC(".maps");

/* arrivals: one event per guest MAC new to its port. When the ring is
 * full (a guest spraying source MACs) events are dropped, not frames. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} arrivals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, struct port_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct group_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} groups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, struct vlan_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vlan_sets SEC(".maps");

/* uplink_ifs[group * MAX_UPLINKS + slot]: the ifindex in each uplink slot,
 * 0 when empty. Kept by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_GROUPS * MAX_UPLINKS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} uplink_ifs SEC(".maps");

/* group_ports[group]: see struct port_list. Kept by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct port_list);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} group_ports SEC(".maps");

/* A frame as the switch sees it (parse_frame). */
struct frame {
	struct ethhdr *eth;
	void *l3;    /* the network header: after Ethernet and the tag read */
	__u16 proto; /* its ethertype, network order */
	__u16 vlan;  /* the VLAN it is switched in: its tag's, 0 untagged */
	__u8 tagged; /* it came with an 802.1Q tag (VID 0 too) */
	__u32 len;
};

/* parse_frame reads Ethernet and at most one 802.1Q tag (none when the
 * kernel has already taken the outer tag into skb metadata: tag_in_meta),
 * and checks that the network header learning reads is all there. It
 * returns 0, or -1 for a frame shorter than the headers it claims. */
static __always_inline int parse_frame(void *data, void *data_end, struct frame *f,
				       int tag_in_meta)
{
	struct hdr_cursor nh = { .pos = data };
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	struct arp_ethip *arp;
	struct vlan_tag tag;
	int proto;

	proto = parse_ethhdr_vlan(&nh, data_end, &f->eth, &tag, tag_in_meta);
	if (proto < 0)
		return -1;
	f->l3 = nh.pos;
	f->proto = proto;
	f->vlan = tag.vid;
	f->tagged = tag.tagged;
	f->len = data_end - data;

	if (proto == bpf_htons(ETH_P_IP) && parse_iphdr(&nh, data_end, &iph) < 0)
		return -1;
	if (proto == bpf_htons(ETH_P_IPV6) && parse_ip6hdr(&nh, data_end, &ip6h) < 0)
		return -1;
	if (proto == bpf_htons(ETH_P_ARP) && parse_arp_ethip(&nh, data_end, &arp) < 0)
		return -1;
	return 0;
}

static __always_inline int is_multicast(const __u8 *mac)
{
	return mac[0] & 1;
}

static __always_inline int is_zero(const __u8 *mac)
{
	return !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]);
}

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

/* 01:80:c2:00:00:0X (STP, LACP, LLDP, 802.1X) is for the host, never
 * forwarded: a bridge does not forward it either. */
static __always_inline int is_link_local(const __u8 *mac)
{
	return mac[0] == 0x01 && mac[1] == 0x80 && mac[2] == 0xc2 &&
	       mac[3] == 0 && mac[4] == 0 && (mac[5] & 0xf0) == 0;
}

static __always_inline struct port_stats *stats_of(const struct port_info *port)
{
	__u32 id = port->id;

	return bpf_map_lookup_elem(&stats, &id);
}

static __always_inline void count_drop_id(__u32 id, __u32 reason)
{
	struct port_stats *st = bpf_map_lookup_elem(&stats, &id);

	if (st && reason < DROP_REASONS)
		st->drops[reason]++;
}

static __always_inline void count_drop(const struct port_info *port, __u32 reason)
{
	count_drop_id(port->id, reason);
}

static __always_inline void count_host(const struct port_info *port)
{
	struct port_stats *st = stats_of(port);

	if (st)
		st->host_packets++;
}

static __always_inline void count_rx(const struct port_info *port, __u32 len)
{
	struct port_stats *st = stats_of(port);

	if (st) {
		st->rx_packets++;
		st->rx_bytes += len;
	}
}

static __always_inline __u32 active_slot(__u32 group)
{
	__u32 *slot = bpf_map_lookup_elem(&active, &group);

	return slot ? *slot : NO_SLOT;
}

static __always_inline void refuse_learning(const struct port_info *port)
{
	struct port_stats *st = stats_of(port);

	if (st)
		st->learn_refused++;
}

/* learn_mac learns f's source behind the port: LEARN_REFUSED when the
 * port may not have it (max_macs, mac_lock), LEARN_KNOWN when it was
 * there already, LEARN_NEW when it arrived. */
enum { LEARN_REFUSED = -1, LEARN_KNOWN = 0, LEARN_NEW = 1 };

static __always_inline int learn_mac(const struct port_info *port,
				     __u32 ifindex, const struct frame *f,
				     __u64 now)
{
	struct fdb_key key = { .group = port->group, .vlan = f->vlan };
	struct fdb_entry *old;

	__builtin_memcpy(key.mac, f->eth->h_source, ETH_ALEN);
	old = bpf_map_lookup_elem(&fdb, &key);
	struct fdb_entry entry = {
		.ifindex = ifindex,
		.port_id = port->id,
		.seen_ns = now,
	};
	if (old && old->ifindex == ifindex) {
		if (now - old->seen_ns >= REFRESH_NS)
			bpf_map_update_elem(&fdb, &key, &entry, BPF_ANY);
		return LEARN_KNOWN;
	}

	/* New behind this port: a MAC locked to another port stays there,
	 * and a port at its max_macs learns no more. */
	__u32 old_id = 0;
	if (old) {
		__u32 old_ifindex = old->ifindex;
		struct port_info *owner = bpf_map_lookup_elem(&ports, &old_ifindex);
		if (owner && (owner->flags & PORT_F_MAC_LOCK)) {
			refuse_learning(port);
			return LEARN_REFUSED;
		}
		old_id = old->port_id;
	}
	__u32 id = port->id;
	__u32 *count = bpf_map_lookup_elem(&learned_macs, &id);
	if (port->max_macs && count && *count >= port->max_macs) {
		refuse_learning(port);
		return LEARN_REFUSED;
	}
	if (bpf_map_update_elem(&fdb, &key, &entry, BPF_ANY))
		return LEARN_REFUSED;
	if (count)
		__sync_fetch_and_add(count, 1);
	if (old) {
		__u32 *was = bpf_map_lookup_elem(&learned_macs, &old_id);
		if (was && *was > 0)
			__sync_fetch_and_sub(was, 1);
	}
	return LEARN_NEW;
}

/* report_arrival tells the daemon of a guest learned for the first time
 * (or behind another port); a full ring drops the event, not the frame. */
static __always_inline void report_arrival(const struct port_info *port,
					   __u32 ifindex, const struct frame *f)
{
	struct arrival *ev = bpf_ringbuf_reserve(&arrivals, sizeof(*ev), 0);
	if (!ev)
		return;
	ev->group = port->group;
	ev->ifindex = ifindex;
	ev->vlan = f->vlan;
	__builtin_memcpy(ev->mac, f->eth->h_source, ETH_ALEN);
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline void learn_addr(struct neigh_key *key,
				       const struct frame *f, __u64 now)
{
	struct neigh_entry *old = bpf_map_lookup_elem(&neigh, key);

	if (old && mac_equal(old->mac, f->eth->h_source) && now - old->seen_ns < REFRESH_NS)
		return;

	struct neigh_entry entry = { .seen_ns = now };
	__builtin_memcpy(entry.mac, f->eth->h_source, ETH_ALEN);
	bpf_map_update_elem(&neigh, key, &entry, BPF_ANY);
}

/* learn_ipv4 keeps a unicast IPv4 source: 0.0.0.0 (DHCP), multicast and
 * limited broadcast say nothing about where the guest lives. */
static __always_inline void learn_ipv4(const struct port_info *port,
				       const struct frame *f, __be32 addr,
				       __u64 now)
{
	__u8 first = bpf_ntohl(addr) >> 24;

	if (addr == 0 || first >= 224)
		return;

	struct neigh_key key = {
		.group = port->group, .vlan = f->vlan, .family = 4,
	};
	__builtin_memcpy(key.addr, &addr, 4);
	learn_addr(&key, f, now);
}

static __always_inline void learn_ipv6(const struct port_info *port,
				       const struct frame *f, const __u8 *addr,
				       __u64 now)
{
	__u32 any = 0;

	if (addr[0] == 0xff) /* multicast */
		return;
#pragma unroll
	for (int i = 0; i < 16; i++)
		any |= addr[i];
	if (!any) /* ::, e.g. duplicate address detection */
		return;

	struct neigh_key key = {
		.group = port->group, .vlan = f->vlan, .family = 6,
	};
	__builtin_memcpy(key.addr, addr, 16);
	learn_addr(&key, f, now);
}

static __always_inline void learn(const struct port_info *port, __u32 ifindex,
				  const struct frame *f, void *end)
{
	__u64 now = bpf_ktime_get_ns();
	int mac = learn_mac(port, ifindex, f, now);

	/* A MAC the port may not have teaches no address either: a guest
	 * spoofing a locked MAC must not bind addresses to it. */
	if (mac == LEARN_REFUSED)
		return;
	struct hdr_cursor nh = { .pos = f->l3 };
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	struct arp_ethip *arp;

	if (f->proto == bpf_htons(ETH_P_IP)) {
		if (parse_iphdr(&nh, end, &iph) >= 0)
			learn_ipv4(port, f, iph->saddr, now);
	} else if (f->proto == bpf_htons(ETH_P_ARP)) {
		/* Ethernet/IPv4 ARP only. */
		__be32 sip;
		if (parse_arp_ethip(&nh, end, &arp) >= 0 &&
		    arp->ar_hln == ETH_ALEN && arp->ar_pln == 4) {
			__builtin_memcpy(&sip, arp->ar_sip, sizeof(sip));
			learn_ipv4(port, f, sip, now);
		}
	} else if (f->proto == bpf_htons(ETH_P_IPV6)) {
		if (parse_ip6hdr(&nh, end, &ip6h) >= 0)
			learn_ipv6(port, f, ip6h->saddr.s6_addr, now);
	}
	/* The arrival last: the daemon finds the address of the same frame
	 * learned already. */
	if (mac == LEARN_NEW)
		report_arrival(port, ifindex, f);
}

/* trunk_allows says whether a trunk guest port carries VLAN vlan (0:
 * untagged, always). */
static __always_inline int trunk_allows(const struct port_info *port, __u16 vlan)
{
	if (!(port->flags & PORT_F_VLAN_FILTER) || vlan == 0)
		return 1;
	__u32 id = port->id;
	struct vlan_set *set = bpf_map_lookup_elem(&vlan_sets, &id);
	if (!set)
		return 0;
	__u64 word = vlan >> 6;
	/* Hide what clang knows of word, so that it keeps the mask the
	 * verifier of older kernels (6.1) needs to bound the index. */
	asm volatile("" : "+r"(word));
	word &= 63;
	return (set->bits[word] >> (vlan & 63)) & 1;
}

static __always_inline void count_tx_len(const struct port_info *dst, __u32 len)
{
	struct port_stats *st = stats_of(dst);

	if (st) {
		st->tx_packets++;
		st->tx_bytes += len;
	}
}

/* ---------------------------------------------------------------------
 * The tc data plane: the switch on skbs, at tc ingress of every port
 * (tcx, or a clsact filter where the kernel has no tcx). A frame a local
 * stack sends through a veth, or a VM through a tap, is CHECKSUM_PARTIAL
 * and often GSO; an XDP redirect would rebuild it without that state and
 * it would leave with a bad checksum. An skb redirected here keeps it, so
 * guests keep their offloads and full MTU.
 *
 * The kernel has already moved the outer 802.1Q tag into skb metadata
 * (vlan_tci), so tags are set with bpf_skb_vlan_push/pop per destination;
 * flooding clones the frame to each port of the group (group_ports); and
 * a frame that reaches an uplink without carrier is rescued at that
 * uplink's tc egress (tc_uplink_out), where the group is moved.
 * --------------------------------------------------------------------- */

/* Enough linear bytes for Ethernet, a tag and an IPv6 header. */
#define PULL_LEN (ETH_HLEN + VLAN_HLEN + sizeof(struct ipv6hdr))

/* Tag states of an skb: untagged, or tagged with a VID (0..4095). */
#define UNTAGGED -1

/* skb_tag is the skb's 802.1Q tag state: the VID of a tag in metadata, or
 * UNTAGGED. Read from the skb itself, never carried in a loop's context:
 * the verifier of older kernels (6.1) checks a bpf_loop callback once, as
 * if every iteration began with the first one's context, and drops the
 * code it then thinks unreachable. */
static __always_inline int skb_tag(const struct __sk_buff *skb)
{
	if (skb->vlan_present && skb->vlan_proto == bpf_htons(ETH_P_8021Q))
		return skb->vlan_tci & VLAN_VID_MASK;
	return UNTAGGED;
}

/* skb_frame pulls the headers into the linear area and parses them; the
 * outer tag, if any, is in metadata. Packet pointers are valid until the
 * next helper that changes the skb. */
static __always_inline int skb_frame(struct __sk_buff *skb, struct frame *f)
{
	__u32 len = skb->len;

	if (len < ETH_HLEN)
		return -1;
	if (bpf_skb_pull_data(skb, len < PULL_LEN ? len : PULL_LEN))
		return -1;
	/* An outer tag the kernel took into metadata: an 802.1Q one is the
	 * switch's VLAN; an 802.1ad (S-) tag is part of the payload. */
	int tag = skb_tag(skb);
	if (parse_frame((void *)(long)skb->data, (void *)(long)skb->data_end, f,
			skb->vlan_present) < 0)
		return -1;
	if (tag != UNTAGGED) {
		f->vlan = tag;
		f->tagged = 1;
	}
	f->len = len;
	return 0;
}

static __always_inline int tc_drop(const struct port_info *port, __u32 reason)
{
	count_drop(port, reason);
	return TC_ACT_SHOT;
}

static __always_inline int tc_to_host(const struct port_info *port)
{
	count_host(port);
	return TC_ACT_OK;
}

/* frame_tag is the tag state f came with (an access port's frame, whose
 * vlan is the port's, came untagged). */
static __always_inline int frame_tag(const struct frame *f)
{
	return f->tagged ? f->vlan : UNTAGGED;
}

/* egress_tagged says how a frame of VLAN vlan leaves through dst: 1
 * tagged (uplinks; trunks), 0 untagged (an access port of that VLAN), -1
 * not at all. VLAN 0 is untagged inside the switch. */
static __always_inline int egress_tagged(const struct port_info *dst, __u16 vlan)
{
	if (dst->role == ROLE_UPLINK)
		return vlan != 0;
	if (dst->vlan)
		return vlan == dst->vlan ? 0 : -1;
	return trunk_allows(dst, vlan) ? vlan != 0 : -1;
}

/* retag puts the skb's tag in the state a destination wants. */
static __always_inline int retag(struct __sk_buff *skb, int *cur, int tagged, __u16 vlan)
{
	int want = tagged ? vlan : UNTAGGED;

	if (*cur == want)
		return 0;
	/* A frame that came in priority-tagged (VID 0) leaves as it came
	 * toward a trunk or an uplink. */
	if (tagged == 0 && *cur == UNTAGGED)
		return 0;
	if (!tagged && *cur == 0 && vlan == 0)
		return 0;
	if (*cur != UNTAGGED && bpf_skb_vlan_pop(skb))
		return -1;
	*cur = UNTAGGED;
	if (want != UNTAGGED && bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), want))
		return -1;
	*cur = want;
	return 0;
}

/* uplink_ifindex is the device in a group's uplink slot, 0 if empty. */
static __always_inline __u32 uplink_ifindex(__u32 key)
{
	__u32 *ifindex = bpf_map_lookup_elem(&uplink_ifs, &key);

	return ifindex ? *ifindex : 0;
}

/* too_big says whether the skb is longer than the port on ifindex takes,
 * by the kernel's own rule for forwarding (is_skb_forwardable): up to
 * MTU + Ethernet header + one VLAN tag in the frame, and any GSO skb (its
 * segments are cut to size on the way out). bpf_redirect would drop a
 * longer frame silently; the switch counts it. A tag in skb metadata is
 * not in skb->len. An error (no such device) passes: the redirect fails
 * on its own. */
static __always_inline int too_big(struct __sk_buff *skb, __u32 ifindex)
{
	__u32 mtu_len = 0;

	return bpf_check_mtu(skb, ifindex, &mtu_len, -VLAN_HLEN, 0) > 0;
}

/* tc_to_port sends f's skb to one port of the ingress port's group. */
static __always_inline int tc_to_port(struct __sk_buff *skb, const struct port_info *src,
				      __u32 ifindex, const struct frame *f)
{
	struct port_info *dst = bpf_map_lookup_elem(&ports, &ifindex);
	__u16 vlan = f->vlan;
	int cur = frame_tag(f), tagged;

	if (!dst || dst->group != src->group)
		return tc_drop(src, DROP_NO_UPLINK);
	tagged = egress_tagged(dst, vlan);
	if (tagged < 0)
		return tc_drop(src, DROP_VLAN);
	if (retag(skb, &cur, tagged, vlan) < 0)
		return tc_drop(src, DROP_MALFORMED);
	if (too_big(skb, ifindex))
		return tc_drop(src, DROP_MTU);
	count_tx_len(dst, skb->len);
	if (dst->flags & PORT_F_PEER)
		return bpf_redirect_peer(ifindex, 0);
	return bpf_redirect(ifindex, 0);
}

struct flood_ctx {
	struct __sk_buff *skb;
	const struct port_list *list; /* the group's ports, looked up once */
	__u32 src_id; /* the ingress port's counters */
	__u32 group;
	__u32 src_role;
	__u32 in;
	__u32 up_slot;
	__u32 vlan;
	/* The last port to get a copy: it gets the skb itself. Set by the
	 * first pass, read by the second. */
	__u32 last;
};

/* flood_target says whether port i of the group gets a copy (1, with the
 * port, its info and how it wants the tag), not (0), or the list has
 * ended (-1). */
static __always_inline int flood_target(struct flood_ctx *c, __u64 i, __u32 *out,
					struct port_info **dstp, int *tagged)
{
	const struct port_list *list = c->list;

	if (i >= MAX_GROUP_PORTS || i >= list->n)
		return -1;
	*out = list->ifindex[i];
	if (*out == c->in)
		return 0;
	struct port_info *dst = bpf_map_lookup_elem(&ports, out);
	if (!dst || dst->group != c->group)
		return 0;
	if (dst->role == ROLE_UPLINK &&
	    (c->src_role == ROLE_UPLINK || dst->slot != c->up_slot))
		return 0;
	*dstp = dst;
	*tagged = egress_tagged(dst, c->vlan);
	return *tagged >= 0;
}

/* flood_find_last: the first pass, bpf_loop callbacks that only write. */
static long flood_find_last(__u64 i, struct flood_ctx *c)
{
	struct port_info *dst = NULL;
	__u32 out = 0;
	int tagged = 0, r = flood_target(c, i, &out, &dst, &tagged);

	if (r < 0)
		return 1;
	if (r > 0)
		c->last = out;
	return 0;
}

/* flood_clone: the second pass, a clone to every target but the last
 * (one too long for its port is counted, not sent). */
static long flood_clone(__u64 i, struct flood_ctx *c)
{
	struct port_info *dst = NULL;
	__u32 out = 0;
	int tagged = 0, r = flood_target(c, i, &out, &dst, &tagged);

	if (r < 0)
		return 1;
	if (r == 0 || out == c->last)
		return 0;
	int cur = skb_tag(c->skb);
	if (retag(c->skb, &cur, tagged, c->vlan) < 0) {
		count_drop_id(c->src_id, DROP_MALFORMED);
		return 1;
	}
	if (too_big(c->skb, out)) {
		count_drop_id(c->src_id, DROP_MTU);
		return 0;
	}
	count_tx_len(dst, c->skb->len);
	bpf_clone_redirect(c->skb, out, 0);
	return 0;
}

/* tc_flood sends the skb to every port of the group but the ingress one:
 * guests that carry its VLAN and, for a frame from a guest, the one
 * uplink that carries the guest (up_slot). Clones go to all but the last,
 * which gets the skb itself. Two passes over the port list, so that no
 * callback reads what another wrote (see skb_tag). */
static __always_inline int tc_flood(struct __sk_buff *skb, const struct port_info *src,
				    __u32 in, __u16 vlan, int cur, __u32 up_slot)
{
	/* The tag state must be the skb's own: a tag still in the frame (a
	 * test run; the kernel moves a received one to metadata) moves
	 * there. */
	if (cur != UNTAGGED && skb_tag(skb) == UNTAGGED) {
		if (bpf_skb_vlan_pop(skb) || bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), cur))
			return tc_drop(src, DROP_MALFORMED);
	}
	__u32 group = src->group;
	struct port_list *list = bpf_map_lookup_elem(&group_ports, &group);
	if (!list)
		return tc_drop(src, DROP_NO_DEST);
	struct flood_ctx c = {
		.skb = skb, .list = list, .src_id = src->id, .group = group, .src_role = src->role,
		.in = in, .up_slot = up_slot, .vlan = vlan,
	};
	bpf_loop(MAX_GROUP_PORTS, flood_find_last, &c, 0);
	__u32 last = c.last;
	if (!last)
		return tc_drop(src, DROP_NO_DEST);
	bpf_loop(MAX_GROUP_PORTS, flood_clone, &c, 0);
	/* The last target left the group between the passes: nowhere to go. */
	struct port_info *dst = bpf_map_lookup_elem(&ports, &last);
	if (!dst)
		return tc_drop(src, DROP_NO_DEST);
	int tagged = egress_tagged(dst, vlan);
	if (tagged < 0)
		return tc_drop(src, DROP_VLAN);
	cur = skb_tag(skb);
	if (retag(skb, &cur, tagged, vlan) < 0)
		return tc_drop(src, DROP_MALFORMED);
	if (too_big(skb, last))
		return tc_drop(src, DROP_MTU);
	count_tx_len(dst, skb->len);
	return bpf_redirect(last, 0);
}

/* The steps of the two ingress programs. A step either decides the
 * frame's fate and returns the verdict, or returns TC_NEXT: the next step
 * runs. */
#define TC_NEXT -2 /* no TC_ACT_ value */

/* ingress_checks parses the frame into f and counts it received on port;
 * it drops a frame shorter than its headers or from a multicast or
 * all-zero source (no switch forwards those). */
static __always_inline int ingress_checks(struct __sk_buff *skb, const struct port_info *port,
					  struct frame *f)
{
	if (skb_frame(skb, f) < 0)
		return tc_drop(port, DROP_MALFORMED);
	count_rx(port, f->len);
	if (is_multicast(f->eth->h_source) || is_zero(f->eth->h_source))
		return tc_drop(port, DROP_BAD_SRC);
	return TC_NEXT;
}

/* guest_vlan puts a guest's frame into its VLAN: an access port takes
 * untagged frames only, into the port's VLAN (its link-local frames go to
 * the host before any learning); a trunk takes untagged frames and the
 * tags it allows. */
static __always_inline int guest_vlan(const struct port_info *port, struct frame *f)
{
	if (port->vlan) {
		if (f->tagged)
			return tc_drop(port, DROP_VLAN);
		if (is_link_local(f->eth->h_dest))
			return tc_to_host(port);
		f->vlan = port->vlan;
	} else if (!trunk_allows(port, f->vlan)) {
		return tc_drop(port, DROP_VLAN);
	}
	return TC_NEXT;
}

/* fdb_lookup is where (group, vlan, mac) lives: a guest port, or NULL
 * (unknown, or not a unicast address the switch learned). */
static __always_inline struct fdb_entry *fdb_lookup(__u32 group, __u16 vlan, const __u8 *mac)
{
	struct fdb_key key = { .group = group, .vlan = vlan };

	__builtin_memcpy(key.mac, mac, ETH_ALEN);
	return bpf_map_lookup_elem(&fdb, &key);
}

/* to_local_guest sends a unicast frame (from a guest or an uplink) to the
 * guest port its destination was learned behind; a destination behind the
 * ingress port itself is dropped. TC_NEXT when the destination is not a local guest. */
static __always_inline int to_local_guest(struct __sk_buff *skb, const struct port_info *port,
					  __u32 ifindex, const __u8 *dst, const struct frame *f)
{
	if (is_multicast(dst))
		return TC_NEXT;
	struct fdb_entry *to = fdb_lookup(port->group, f->vlan, dst);
	if (!to)
		return TC_NEXT;
	if (to->ifindex == ifindex)
		return tc_drop(port, DROP_HAIRPIN);
	return tc_to_port(skb, port, to->ifindex, f);
}

/* The uplink a guest's frames leave through. */
struct uplink_choice {
	struct balance *bal; /* the group's balance table; NULL: active-backup */
	__u32 bucket;        /* balance groups: the guest's bucket */
	__u32 slot;          /* the uplink's slot, or NO_SLOT */
};

/* choose_uplink is the uplink that carries the guest with source address
 * src: the group's active uplink, or in a balance group the uplink of the
 * guest's bucket. */
static __always_inline struct uplink_choice choose_uplink(const struct port_info *port,
							  const __u8 *src, __u16 vlan)
{
	struct uplink_choice up = { .bal = balance_of(port->group) };

	up.bucket = up.bal ? bucket_of(src, vlan) : 0;
	up.slot = up.bal ? balance_slot(port->group, up.bal, up.bucket) : active_slot(port->group);
	return up;
}

/* to_uplink sends a guest's unicast frame for a destination that is not
 * a local guest to the guest's uplink (up), counting a balance group's
 * bytes by bucket. A dead uplink's tc egress moves the group and passes
 * the frame on. */
static __always_inline int to_uplink(struct __sk_buff *skb, const struct port_info *port,
				     const struct frame *f, const struct uplink_choice *up)
{
	if (up->slot >= MAX_UPLINKS)
		return tc_drop(port, DROP_NO_UPLINK);
	if (up->bal) {
		__u32 k = port->group * NBUCKETS + up->bucket;
		__u64 *bytes = bpf_map_lookup_elem(&bucket_bytes, &k);
		if (bytes)
			*bytes += f->len;
	}
	__u32 ifindex = uplink_ifindex(port->group * MAX_UPLINKS + up->slot);
	if (!ifindex)
		return tc_drop(port, DROP_NO_UPLINK);
	return tc_to_port(skb, port, ifindex, f);
}

SEC("tc")
int tc_guest(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct port_info *port = bpf_map_lookup_elem(&ports, &ifindex);
	struct frame f;
	__u8 dst[ETH_ALEN], src[ETH_ALEN];
	int verdict;

	if (!port) /* not (yet) part of the switch */
		return TC_ACT_OK;
	verdict = ingress_checks(skb, port, &f);
	if (verdict != TC_NEXT)
		return verdict;
	verdict = guest_vlan(port, &f);
	if (verdict != TC_NEXT)
		return verdict;

	learn(port, ifindex, &f, (void *)(long)skb->data_end);
	/* Packet pointers die with the first helper that changes the skb. */
	__builtin_memcpy(dst, f.eth->h_dest, ETH_ALEN);
	__builtin_memcpy(src, f.eth->h_source, ETH_ALEN);

	if (is_link_local(dst))
		return tc_to_host(port);
	verdict = to_local_guest(skb, port, ifindex, dst, &f);
	if (verdict != TC_NEXT)
		return verdict;
	/* Only frames that may leave upstream need the guest's uplink: a
	 * flood reaches the one that carries the guest. */
	struct uplink_choice up = choose_uplink(port, src, f.vlan);
	if (is_multicast(dst))
		return tc_flood(skb, port, ifindex, f.vlan, frame_tag(&f), up.slot);
	return to_uplink(skb, port, &f, &up);
}

/* for_the_host: the host's own traffic (probe replies, management) on
 * any uplink, and link-local frames. */
static __always_inline int for_the_host(const struct port_info *port, const __u8 *dst)
{
	return mac_equal(dst, port->mac) || is_link_local(dst);
}

/* standby_deliver decides a frame that came in on an uplink that is not
 * the group's active (designated) one. It delivers no flood copies to
 * guests: the upstream floods to every port, and only the active uplink
 * may deliver them. Unicast to a known guest it delivers in a balance
 * group (the upstream sends it to the one port it learned the guest on:
 * no duplicates), and for a while after it stopped being active: make
 * before break. */
static __always_inline int standby_deliver(struct __sk_buff *skb, const struct port_info *port,
					   __u32 ifindex, const __u8 *dst, const struct frame *f)
{
	__u32 group = port->group;

	if (is_multicast(dst)) /* most of what a standby uplink hears */
		return tc_drop(port, DROP_STANDBY);
	struct drain *dr = bpf_map_lookup_elem(&draining, &group);
	int draining_here = dr && dr->slot == port->slot && bpf_ktime_get_ns() < dr->until_ns;

	if (draining_here || balance_of(group)) {
		int verdict = to_local_guest(skb, port, ifindex, dst, f);
		if (verdict != TC_NEXT)
			return verdict;
	}
	return tc_drop(port, DROP_STANDBY);
}

SEC("tc")
int tc_uplink(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct port_info *port = bpf_map_lookup_elem(&ports, &ifindex);
	struct frame f;
	__u8 dst[ETH_ALEN];
	int verdict;

	if (!port)
		return TC_ACT_OK;
	verdict = ingress_checks(skb, port, &f);
	if (verdict != TC_NEXT)
		return verdict;
	if (for_the_host(port, f.eth->h_dest))
		return tc_to_host(port);
	__builtin_memcpy(dst, f.eth->h_dest, ETH_ALEN);

	if (active_slot(port->group) != port->slot)
		return standby_deliver(skb, port, ifindex, dst, &f);
	verdict = to_local_guest(skb, port, ifindex, dst, &f);
	if (verdict != TC_NEXT)
		return verdict;
	/* Broadcast, multicast, unknown unicast: every guest of the VLAN. */
	return tc_flood(skb, port, ifindex, f.vlan, frame_tag(&f), NO_SLOT);
}

/* skb_lost_carrier reads the carrier of the device the skb is on. */
static __always_inline int skb_lost_carrier(struct __sk_buff *ctx)
{
	struct sk_buff *skb = (void *)ctx;
	struct net_device *dev = 0;
	unsigned long state = 0;

	if (bpf_probe_read_kernel(&dev, sizeof(dev), &skb->dev) || !dev)
		return 0;
	if (bpf_probe_read_kernel(&state, sizeof(state), &dev->state))
		return 0;
	return !(state & (1UL << bpf_core_enum_value(enum netdev_state_t, __LINK_STATE_START))) ||
	       (state & (1UL << bpf_core_enum_value(enum netdev_state_t, __LINK_STATE_NOCARRIER)));
}

/* tc_uplink_out runs at tc egress of every uplink. While the uplink has
 * carrier it only looks (one read). Without carrier a guest's frame would
 * die here: the group moves off this uplink (move_group, as the other
 * kernel paths do) and the frame leaves through the uplink that now
 * carries the guest. The host's own frames are left alone. */
SEC("tc")
int tc_uplink_out(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct port_info *port = bpf_map_lookup_elem(&ports, &ifindex);

	if (!carrier_check || !port || port->role != ROLE_UPLINK || port->slot >= MAX_UPLINKS)
		return TC_ACT_OK;
	if (!skb_lost_carrier(skb))
		return TC_ACT_OK;

	__u32 group = port->group;
	__u32 next = move_group(group, port->slot, ifindex, FO_CARRIER_SEEN, 0);

	/* Only a guest's frame moves: its source is in the FDB. */
	if (bpf_skb_pull_data(skb, ETH_HLEN))
		return TC_ACT_OK;
	struct hdr_cursor nh = { .pos = (void *)(long)skb->data };
	struct ethhdr *eth;
	if (parse_ethhdr(&nh, (void *)(long)skb->data_end, &eth) < 0)
		return TC_ACT_OK;
	int tag = skb_tag(skb);
	__u16 vlan = tag == UNTAGGED ? 0 : tag;
	if (!fdb_lookup(group, vlan, eth->h_source))
		return TC_ACT_OK;
	struct balance *bal = balance_of(group);
	if (bal)
		next = balance_slot(group, bal, bucket_of(eth->h_source, vlan));
	if (next >= MAX_UPLINKS || next == port->slot)
		return TC_ACT_OK;
	__u32 up = uplink_ifindex(group * MAX_UPLINKS + next);
	struct port_info *to = bpf_map_lookup_elem(&ports, &up);
	if (!up || !to)
		return TC_ACT_OK;
	/* tc_to_port counted the frame on this uplink, on this CPU (the
	 * redirect that brought it here ran right before): move the count. */
	struct port_stats *st = stats_of(port);
	if (st && st->tx_packets > 0) {
		st->tx_packets--;
		st->tx_bytes -= skb->len;
	}
	count_tx_len(to, skb->len);
	return bpf_redirect(up, 0);
}
