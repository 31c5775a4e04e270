/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Minimal stand-in for <asm/byteorder.h> so BPF objects build with
 * -nostdinc: <linux/ip.h> and <linux/ipv6.h> need only the bitfield order
 * of their first byte. The kernel's headers are per host architecture;
 * the BPF target's byte order is the compiler's (-target bpfel). */
#ifndef __UPLINKD_ASM_BYTEORDER_H
#define __UPLINKD_ASM_BYTEORDER_H

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define __LITTLE_ENDIAN_BITFIELD
#elif __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define __BIG_ENDIAN_BITFIELD
#else
#error "unknown byte order"
#endif

#endif
