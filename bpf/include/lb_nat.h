/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_nat.h: rewriting a tracked packet (addresses, ports, TTL, checksums)
 * and sending it on. Each helper returns an XDP verdict or -1 for "the
 * packet is not as parsed", which callers turn into XDP_DROP.
 */
#ifndef XLB_LB_NAT_H
#define XLB_LB_NAT_H

#include "lb_maps.h"
#include "csum.h"
#include "parse.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* l4_ports returns the L4 header's checksum field and port pair for tcp
 * and udp. Verifier: the fixed header is re-checked against data_end here,
 * because the pointer came back from the stack (struct packet). */
static __always_inline int l4_fields(struct packet *pkt, void *end, __sum16 **csum, __be16 **sport,
				     __be16 **dport, int *is_udp)
{
	if (pkt->l4_proto == IPPROTO_TCP) {
		struct tcphdr *th = pkt->l4;
		if ((void *)(th + 1) > end)
			return -1;
		*csum = &th->check;
		*sport = &th->source;
		*dport = &th->dest;
		*is_udp = 0;
		return 0;
	}
	if (pkt->l4_proto == IPPROTO_UDP) {
		struct udphdr *uh = pkt->l4;
		if ((void *)(uh + 1) > end)
			return -1;
		*csum = &uh->check;
		*sport = &uh->source;
		*dport = &uh->dest;
		*is_udp = 1;
		return 0;
	}
	return -1;
}

/* rewrite_tuple makes the packet's addresses and ports those of f,
 * updating the IP header checksum and the L4 checksum (whose pseudo header
 * covers the addresses) incrementally. */
static __always_inline int rewrite_tuple(struct packet *pkt, void *end, const struct flow *f)
{
	struct iphdr *iph = pkt->l3;
	__sum16 *csum;
	__be16 *sport, *dport;
	int is_udp;

	if ((void *)(iph + 1) > end)
		return -1;
	if (l4_fields(pkt, end, &csum, &sport, &dport, &is_udp) < 0)
		return -1;

	if (iph->saddr != f->new_saddr) {
		if (is_udp)
			udp_csum_replace4(csum, iph->saddr, f->new_saddr);
		else
			csum_replace4(csum, iph->saddr, f->new_saddr);
		csum_replace4(&iph->check, iph->saddr, f->new_saddr);
		iph->saddr = f->new_saddr;
	}
	if (iph->daddr != f->new_daddr) {
		if (is_udp)
			udp_csum_replace4(csum, iph->daddr, f->new_daddr);
		else
			csum_replace4(csum, iph->daddr, f->new_daddr);
		csum_replace4(&iph->check, iph->daddr, f->new_daddr);
		iph->daddr = f->new_daddr;
	}
	if (*sport != f->new_sport) {
		if (is_udp)
			udp_csum_replace2(csum, *sport, f->new_sport);
		else
			csum_replace2(csum, *sport, f->new_sport);
		*sport = f->new_sport;
	}
	if (*dport != f->new_dport) {
		if (is_udp)
			udp_csum_replace2(csum, *dport, f->new_dport);
		else
			csum_replace2(csum, *dport, f->new_dport);
		*dport = f->new_dport;
	}
	return 0;
}

/* ttl_expired is true when forwarding would take the TTL to zero: such a
 * packet goes to the kernel, which answers with ICMP time exceeded. */
static __always_inline int ttl_expired(struct iphdr *iph)
{
	return iph->ttl <= 1;
}

/* ttl_decrement does what every router hop does, checksum included. */
static __always_inline void ttl_decrement(struct iphdr *iph)
{
	__be16 *word = (__be16 *)&iph->ttl; /* ttl and protocol share a word */
	__be16 old = *word;

	iph->ttl--;
	csum_replace2(&iph->check, old, *word);
}

/* send_to_hop sends the frame out of ifindex to the given next hop: the
 * symmetric return path recorded when the flow was created. */
static __always_inline int send_to_hop(struct packet *pkt, void *data, void *end, const struct flow *f)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, f->hop_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f->own_mac, ETH_ALEN);
	return bpf_redirect(f->ifindex, 0);
}

/* send_routed looks the rewritten destination up in the kernel's FIB
 * (policy routing and neighbours included) and redirects there. An
 * unresolved neighbour sends this packet through the kernel, which
 * resolves it; the next packets take the fast path. */
static __always_inline int send_routed(struct xdp_md *ctx, struct packet *pkt, void *data, void *end,
				       __u32 *reason)
{
	struct ethhdr *eth = data;
	struct iphdr *iph = pkt->l3;
	struct bpf_fib_lookup fib = {};

	if ((void *)(eth + 1) > end || (void *)(iph + 1) > end)
		return -1;
	fib.family = AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = iph->protocol;
	fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = ctx->ingress_ifindex;

	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		*reason = R_NO_NEIGH;
		return XDP_PASS;
	}
	*reason = R_FIB_FAIL;
	return XDP_PASS; /* the kernel answers with ICMP unreachable */
}

#endif /* XLB_LB_NAT_H */
