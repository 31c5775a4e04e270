// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark tools: the same generator and receiver for every switch under
 * test, and a bare devmap redirect as the upper bound.
 *
 * bench_gen  runs only through BPF_PROG_TEST_RUN with
 *            BPF_F_TEST_XDP_LIVE_FRAMES: numbers each frame and returns
 *            XDP_TX, which the test run turns into a transmit on the
 *            context's ingress device.
 * bench_rx   records stream frames per receiver slot and drops them; counts
 *            RARP announcements and passes everything else.
 * bench_fwd  redirects every frame to fwd_map[0].
 *
 * Live frames are not reset between runs of the same page: bench_gen writes
 * every field it varies on every run and reads its base values from
 * gen_cfg, never from the frame. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bench.h"

#define ETH_HLEN 14
#define VLAN_HLEN 4
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_P_RARP 0x8035

char __license[] SEC("license") = "Dual BSD/GPL";

/* gen_seq[0]: the next sequence number; Go sets it back on Reset. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} gen_cfg SEC(".maps");

/* rx_slots[ifindex] = receiver slot. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BENCH_IFACES);
	__type(key, __u32);
	__type(value, __u32);
} rx_slots SEC(".maps");

/* Per CPU: the counters need no atomics and no shared cache line when
 * receivers run on several CPUs; reading 8 slots x nCPU values is cheap. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BENCH_SLOTS);
	__type(key, __u32);
	__type(value, struct slot_stats);
} rx_stats SEC(".maps");

/* rx_seen[slot * seen_words + seq / 64], bit seq % 64: shared by all CPUs
 * (atomic OR), so a duplicate is found whichever CPU saw the first copy.
 * Memory-mapped so Go reads and clears megabytes without a syscall per
 * word. The loader sets max_entries to BENCH_SLOTS * seen_words. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BENCH_SLOTS * BENCH_SEEN_WORDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} rx_seen SEC(".maps");

const volatile __u32 seen_words = BENCH_SEEN_WORDS;

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32); /* ifindex */
} fwd_map SEC(".maps");

SEC("xdp")
int bench_gen(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct gen_config *cfg;
	__u64 *next, seq;
	__u8 *seqp;

	if (data + ETH_HLEN + BENCH_HDR_LEN > (__u8 *)end)
		return XDP_ABORTED;
	cfg = bpf_map_lookup_elem(&gen_cfg, &zero);
	next = bpf_map_lookup_elem(&gen_seq, &zero);
	if (!cfg || !next)
		return XDP_ABORTED;

	seq = __sync_fetch_and_add(next, 1);
	/* A test run interrupted by a signal is restarted with its full repeat
	 * count (cilium/ebpf retries EINTR): the limit keeps the total exact. */
	if (seq >= cfg->limit)
		return XDP_DROP;

	seqp = data + ETH_HLEN + BENCH_SEQ_OFF;
	seqp[0] = seq >> 24;
	seqp[1] = seq >> 16;
	seqp[2] = seq >> 8;
	seqp[3] = seq;

	if (cfg->sources > 1) {
		__u32 low = ((__u32)cfg->src[3] << 16 | (__u32)cfg->src[4] << 8 | cfg->src[5]) +
			    (__u32)(seq % cfg->sources);

		data[6] = cfg->src[0];
		data[7] = cfg->src[1];
		data[8] = cfg->src[2];
		data[9] = low >> 16;
		data[10] = low >> 8;
		data[11] = low;
	}
	return XDP_TX;
}

static __always_inline struct slot_stats *rx_slot(__u32 ifindex, __u32 *slot_out)
{
	__u32 *slot = bpf_map_lookup_elem(&rx_slots, &ifindex);

	if (!slot || *slot >= BENCH_SLOTS)
		return 0;
	*slot_out = *slot;
	return bpf_map_lookup_elem(&rx_stats, slot);
}

/* rx_stream records a stream frame arriving at ifindex: 1 if it did (the
 * frame is consumed), 0 if the frame is someone else's. */
static __always_inline int rx_stream(__u32 ifindex, __u8 *p, void *end)
{
	struct slot_stats *st;
	__u64 now, bit, *word;
	__u32 slot, seq, idx;

	if (p + BENCH_HDR_LEN > (__u8 *)end)
		return 0;
	if (p[0] != ((BENCH_MAGIC >> 24) & 0xff) || p[1] != ((BENCH_MAGIC >> 16) & 0xff) ||
	    p[2] != ((BENCH_MAGIC >> 8) & 0xff) || p[3] != (BENCH_MAGIC & 0xff))
		return 0;
	st = rx_slot(ifindex, &slot);
	if (!st)
		return 0; /* not a receiver: leave it to the host */

	seq = (__u32)p[5] << 24 | (__u32)p[6] << 16 | (__u32)p[7] << 8 | p[8];
	now = bpf_ktime_get_ns();
	/* Atomic: a veth with a queue per CPU can deliver on two at once. */
	__sync_fetch_and_add(&st->count, 1);
	if (!st->first_ns)
		st->first_ns = now;
	st->last_ns = now;
	if (seq > st->max_seq)
		st->max_seq = seq;

	if (seq / 64 >= seen_words) {
		st->beyond++;
		return 1;
	}
	idx = slot * seen_words + seq / 64;
	word = bpf_map_lookup_elem(&rx_seen, &idx);
	if (!word) {
		st->beyond++;
		return 1;
	}
	bit = 1ULL << (seq % 64);
	if (__sync_fetch_and_or(word, bit) & bit)
		__sync_fetch_and_add(&st->dups, 1);
	return 1;
}

static __always_inline void rx_rarp(__u32 ifindex)
{
	struct slot_stats *st;
	__u32 slot;

	st = rx_slot(ifindex, &slot);
	if (!st)
		return;
	st->rarps++;
	if (!st->first_rarp_ns)
		st->first_rarp_ns = bpf_ktime_get_ns();
}

/* rx_frame records the frame at data..end arriving at ifindex: 1 if it
 * was a stream frame of a receiver (consumed), 0 to pass it on. */
static __always_inline int rx_frame(__u32 ifindex, __u8 *data, void *end)
{
	__u8 *p = data + ETH_HLEN;
	__u16 proto;

	if (p > (__u8 *)end)
		return 0;
	proto = *(__u16 *)(data + 12);
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		if (p + VLAN_HLEN > (__u8 *)end)
			return 0;
		proto = *(__u16 *)(p + 2);
		p += VLAN_HLEN;
	}
	if (proto == bpf_htons(BENCH_ETH_P))
		return rx_stream(ifindex, p, end);
	if (proto == bpf_htons(ETH_P_RARP))
		rx_rarp(ifindex);
	return 0;
}

SEC("xdp")
int bench_rx(struct xdp_md *ctx)
{
	return rx_frame(ctx->ingress_ifindex, (void *)(long)ctx->data,
			(void *)(long)ctx->data_end) ? XDP_DROP : XDP_PASS;
}

/* bench_rx_tc is the same receiver at tc ingress, for frames that skip
 * the device's XDP: a switch that delivers with bpf_redirect_peer hands
 * the skb straight to the peer's stack. (A tag the kernel moved into
 * metadata is gone from the frame; the stream's bytes are the same.) */
SEC("tc")
int bench_rx_tc(struct __sk_buff *skb)
{
	__u32 len = skb->len < ETH_HLEN + VLAN_HLEN + BENCH_HDR_LEN ? skb->len : ETH_HLEN + VLAN_HLEN + BENCH_HDR_LEN;

	if (bpf_skb_pull_data(skb, len))
		return 0; /* TC_ACT_OK */
	return rx_frame(skb->ifindex, (void *)(long)skb->data,
			(void *)(long)skb->data_end) ? 2 /* TC_ACT_SHOT */ : 0;
}

SEC("xdp")
int bench_fwd(struct xdp_md *ctx)
{
	return bpf_redirect_map(&fwd_map, 0, 0);
}
