/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Types and limits shared by the benchmark programs (bpf/bench/bench.c)
 * and their Go loader, test/bench/benchbpf (exported with bpf2go -type). */
#ifndef __UPLINKD_BENCH_H
#define __UPLINKD_BENCH_H

#include <linux/types.h>

/* Stream frames: Ethernet header, then the payload
 *   magic (u32, big endian) | stream (u8) | seq (u32, big endian) | zeros
 * The receiver also accepts them behind one 802.1Q / 802.1ad tag. */
#define BENCH_ETH_P 0x88b5 /* IEEE local experimental ethertype 1 */
#define BENCH_MAGIC 0x75706c6b /* "uplk" */
#define BENCH_HDR_LEN 9 /* magic, stream, seq */
#define BENCH_SEQ_OFF 5 /* seq, from the start of the payload */

/* Receiver slots: one stream per slot at a time. */
#define BENCH_SLOTS 8
#define BENCH_IFACES 64 /* interfaces that may feed the slots */

/* Default bitmap words per slot: 256 Ki words = 16 Mi sequence numbers
 * (2 MiB) per slot, 128 Mi in total. The loader may resize. */
#define BENCH_SEEN_WORDS (1 << 18)

/* gen_cfg[0]: what bench_gen does to each frame. */
struct gen_config {
	__u64 limit;   /* sequence numbers >= limit are not sent (XDP_DROP) */
	__u32 sources; /* guest MACs to cycle through; <= 1 keeps the source */
	__u8 src[6];   /* the first guest MAC; the others add to its low 24 bits */
	__u8 pad[6];
};

/* rx_stats[slot], per CPU: Go sums counters and takes min/max of times. */
struct slot_stats {
	__u64 count;    /* stream frames, duplicates and beyond included */
	__u64 dups;     /* stream frames whose bit was already set */
	__u64 beyond;   /* stream frames with seq past the bitmap */
	__u64 first_ns; /* bpf_ktime_get_ns of the first stream frame, 0 = none */
	__u64 last_ns;
	__u64 max_seq;
	__u64 rarps;
	__u64 first_rarp_ns;
};

#endif
