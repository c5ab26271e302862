/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * csum.h: incremental Internet checksum updates (RFC 1624) for header
 * rewrites: replacing a 16- or 32-bit field changes the checksum by a
 * difference that is computed without touching the rest of the packet.
 *
 * All values are taken exactly as they sit in the packet (network order):
 * the one's complement sum is byte-order independent as long as every
 * operand is in the same order, so no byte swapping is needed.
 */
#ifndef XLB_CSUM_H
#define XLB_CSUM_H

#include "common.h"

/* csum_fold folds a 32-bit one's complement sum of 16-bit words into 16
 * bits. Two rounds suffice: the first leaves at most 0x1fffe. */
static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* csum_replace2 updates the checksum *sum for a 16-bit field changing from
 * old to new: HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3). */
static __always_inline void csum_replace2(__sum16 *sum, __be16 old, __be16 new)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~old;
	s += new;
	*sum = (__sum16)~csum_fold(s);
}

/* csum_replace4 is csum_replace2 for a 32-bit field (an IPv4 address):
 * both 16-bit halves change. */
static __always_inline void csum_replace4(__sum16 *sum, __be32 old, __be32 new)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~(old & 0xffff);
	s += (__u16)~(old >> 16);
	s += new & 0xffff;
	s += new >> 16;
	*sum = (__sum16)~csum_fold(s);
}

/* UDP treats checksum 0 as "none" (allowed over IPv4): such a checksum is
 * left alone, and a computed 0 is sent as 0xffff, its one's complement
 * equal (RFC 768). TCP and ICMP use csum_replace2/4 directly. */
static __always_inline void udp_csum_replace2(__sum16 *sum, __be16 old, __be16 new)
{
	if (*sum == 0)
		return;
	csum_replace2(sum, old, new);
	if (*sum == 0)
		*sum = (__sum16)0xffff;
}

static __always_inline void udp_csum_replace4(__sum16 *sum, __be32 old, __be32 new)
{
	if (*sum == 0)
		return;
	csum_replace4(sum, old, new);
	if (*sum == 0)
		*sum = (__sum16)0xffff;
}

#endif /* XLB_CSUM_H */
