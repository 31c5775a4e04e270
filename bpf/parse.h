/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing in the style of xdp-tools' parsing_helpers.h: a cursor
 * walks the frame one header at a time. Each helper checks that its whole
 * header lies before data_end, and only then points at it and moves the
 * cursor past it; on a short frame it returns -1 and leaves the cursor
 * where it was. The headers are the kernel's UAPI structs (vendored in
 * bpf/include, see VERSIONS), plus the two the UAPI leaves out. */
#ifndef __UPLINKD_PARSE_H
#define __UPLINKD_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* An 802.1Q tag as it follows the MAC addresses. The kernel declares it
 * in its internal <linux/if_vlan.h>, not in the UAPI (xdp-tools declares
 * it too). */
struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

#define VLAN_HLEN 4
#define VLAN_VID_MASK 0x0fff

/* The 802.1Q tag of a frame: whether it has one, and its VLAN ID
 * (0..4095; VID 0 is a priority tag). */
struct vlan_tag {
	__u16 vid; /* 0 when untagged */
	__u8 tagged;
};

/* An ARP packet for Ethernet and IPv4: the fields of <linux/if_arp.h>'s
 * struct arphdr and the body that header leaves out (under #if 0, as its
 * size depends on ar_hln and ar_pln). That header is not vendored: it
 * pulls in netdevice.h, if.h, socket.h and netlink.h. */
struct arp_ethip {
	__be16 ar_hrd; /* hardware type */
	__be16 ar_pro; /* protocol type */
	__u8 ar_hln;   /* hardware address length: ETH_ALEN here */
	__u8 ar_pln;   /* protocol address length: 4 here */
	__be16 ar_op;
	__u8 ar_sha[ETH_ALEN]; /* sender hardware address */
	__u8 ar_sip[4];        /* sender IPv4 address */
	__u8 ar_tha[ETH_ALEN]; /* target hardware address */
	__u8 ar_tip[4];        /* target IPv4 address */
};

/* The cursor: the first byte not parsed yet. */
struct hdr_cursor {
	void *pos;
};

/* parse_ethhdr points *ethhdr at the Ethernet header at the cursor and
 * returns the ethertype that follows it (network order), or -1 when the
 * frame is shorter than an Ethernet header. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					struct ethhdr **ethhdr)
{
	struct ethhdr *eth = nh->pos;

	if ((void *)(eth + 1) > data_end)
		return -1;
	nh->pos = eth + 1;
	*ethhdr = eth;
	return eth->h_proto;
}

/* parse_ethhdr_vlan is parse_ethhdr followed by at most one 802.1Q tag:
 * it returns the ethertype after the tag (network order), or -1 when the
 * frame is shorter than the headers it claims (a tag read here followed
 * by a cut second one included), and fills *tag. With tag_in_meta (the
 * kernel has already moved the outer tag into skb metadata) it reads no
 * tag: an 802.1Q ethertype in the frame is then the inner one of two,
 * payload to the caller. An 802.1ad (S-) tag is payload too. */
static __always_inline int parse_ethhdr_vlan(struct hdr_cursor *nh, void *data_end,
					     struct ethhdr **ethhdr, struct vlan_tag *tag,
					     int tag_in_meta)
{
	int proto = parse_ethhdr(nh, data_end, ethhdr);
	struct vlan_hdr *vlh = nh->pos;

	tag->vid = 0;
	tag->tagged = 0;
	if (proto != bpf_htons(ETH_P_8021Q) || tag_in_meta)
		return proto;
	if ((void *)(vlh + 1) > data_end)
		return -1;
	nh->pos = vlh + 1;
	tag->vid = bpf_ntohs(vlh->h_vlan_TCI) & VLAN_VID_MASK;
	tag->tagged = 1;
	proto = vlh->h_vlan_encapsulated_proto;
	/* A second tag behind it (QinQ) must be whole: taking the outer tag
	 * off (bpf_skb_vlan_pop) reads it too. */
	if ((proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) &&
	    (void *)(vlh + 2) > data_end)
		return -1;
	return proto;
}

/* parse_iphdr points *iphdr at the IPv4 header at the cursor and returns
 * its protocol, or -1 when the frame is shorter than the 20 bytes of a
 * header without options. Unlike xdp-tools' it does not read ihl: the
 * switch reads only the source address, which every header has. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end,
				       struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;

	if ((void *)(iph + 1) > data_end)
		return -1;
	nh->pos = iph + 1;
	*iphdr = iph;
	return iph->protocol;
}

/* parse_ip6hdr points *ip6hdr at the IPv6 header at the cursor and
 * returns its next header, or -1 when the frame is shorter than 40
 * bytes. Extension headers are left to the caller. */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end,
					struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = nh->pos;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	nh->pos = ip6h + 1;
	*ip6hdr = ip6h;
	return ip6h->nexthdr;
}

/* parse_arp_ethip points *arp at the ARP packet at the cursor and returns
 * its opcode (network order), or -1 when the frame is shorter than an
 * Ethernet/IPv4 ARP packet (28 bytes). It does not check the address
 * lengths: read the addresses only when ar_hln is ETH_ALEN and ar_pln 4. */
static __always_inline int parse_arp_ethip(struct hdr_cursor *nh, void *data_end,
					   struct arp_ethip **arp)
{
	struct arp_ethip *a = nh->pos;

	if ((void *)(a + 1) > data_end)
		return -1;
	nh->pos = a + 1;
	*arp = a;
	return a->ar_op;
}

#endif
