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

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* L4 kinds for checksum rules: udp's 0 means "no checksum"; ICMP has no
 * pseudo header, so address changes leave its checksum alone. */
#define L4_TCP 0
#define L4_UDP 1
#define L4_ICMP 2

/* l4_fields returns the L4 header's checksum field and port pair for tcp
 * and udp, and for ICMP echo the id as both "ports" (the flow key's view).
 * Verifier: the fixed header is re-checked against data_end here, because
 * the pointer came back from the stack (struct packet). */
static __always_inline int l4_fields(struct packet *pkt, void *end, __sum16 **csum, __be16 **sport,
				     __be16 **dport, int *kind)
{
	if (pkt->l4_proto == IPPROTO_TCP) {
		struct tcphdr *th = pkt->l4;
		if ((void *)(th + 1) > end)
			return -1;
		*csum = &th->check;
		*sport = &th->source;
		*dport = &th->dest;
		*kind = L4_TCP;
		return 0;
	}
	if (pkt->l4_proto == IPPROTO_UDP) {
		struct udphdr *uh = pkt->l4;
		if ((void *)(uh + 1) > end)
			return -1;
		*csum = &uh->check;
		*sport = &uh->source;
		*dport = &uh->dest;
		*kind = L4_UDP;
		return 0;
	}
	if (pkt->l4_proto == IPPROTO_ICMP) {
		struct icmp_hdr *ih = pkt->l4;
		if ((void *)(ih + 1) > end)
			return -1;
		*csum = &ih->checksum;
		*sport = &ih->echo_id;
		*dport = &ih->echo_id;
		*kind = L4_ICMP;
		return 0;
	}
	return -1;
}

static __always_inline void l4_csum_replace4(__sum16 *csum, int kind, __be32 old, __be32 new)
{
	if (kind == L4_UDP)
		udp_csum_replace4(csum, old, new);
	else if (kind == L4_TCP)
		csum_replace4(csum, old, new);
}

static __always_inline void l4_csum_replace2(__sum16 *csum, int kind, __be16 old, __be16 new)
{
	if (kind == L4_UDP)
		udp_csum_replace2(csum, old, new);
	else
		csum_replace2(csum, old, new);
}

/* rewrite_tuple makes the packet's addresses and ports those of f,
 * updating the IP header checksum and the L4 checksum (whose pseudo header
 * covers the addresses) incrementally. An ICMP echo's id is its one port:
 * entries of echo flows hold the same value in new_sport and new_dport. */
static __always_inline int rewrite_tuple(struct packet *pkt, void *end, const struct flow *f)
{
	struct iphdr *iph = pkt->l3;
	__sum16 *csum;
	__be16 *sport, *dport;
	int kind;

	if ((void *)(iph + 1) > end)
		return -1;
	if (l4_fields(pkt, end, &csum, &sport, &dport, &kind) < 0)
		return -1;

	if (iph->saddr != f->new_saddr) {
		l4_csum_replace4(csum, kind, iph->saddr, f->new_saddr);
		csum_replace4(&iph->check, iph->saddr, f->new_saddr);
		iph->saddr = f->new_saddr;
	}
	if (iph->daddr != f->new_daddr) {
		l4_csum_replace4(csum, kind, iph->daddr, f->new_daddr);
		csum_replace4(&iph->check, iph->daddr, f->new_daddr);
		iph->daddr = f->new_daddr;
	}
	if (*sport != f->new_sport) {
		l4_csum_replace2(csum, kind, *sport, f->new_sport);
		*sport = f->new_sport;
	}
	if (*dport != f->new_dport) {
		l4_csum_replace2(csum, kind, *dport, f->new_dport);
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

/* fib_route looks up where the kernel would send iph's packet if it came
 * from src (policy routing and neighbours included). */
static __always_inline long fib_route(struct xdp_md *ctx, const struct iphdr *iph, __be32 src,
				      struct bpf_fib_lookup *fib)
{
	fib->family = AF_INET;
	fib->tos = iph->tos;
	fib->l4_protocol = iph->protocol;
	fib->tot_len = bpf_ntohs(iph->tot_len);
	fib->ipv4_src = src;
	fib->ipv4_dst = iph->daddr;
	fib->ifindex = ctx->ingress_ifindex;
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

/* send_fib acts on fib_route's answer rc: redirect to the next hop, or
 * hand an unresolved neighbour (the kernel resolves it; the next packets
 * take the fast path) or a missing route (the kernel answers with ICMP
 * unreachable) to the kernel, with the reason set. */
static __always_inline int send_fib(void *data, void *end, const struct bpf_fib_lookup *fib, long rc,
				    __u32 *reason)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return -1;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
		return bpf_redirect(fib->ifindex, 0);
	}
	*reason = rc == BPF_FIB_LKUP_RET_NO_NEIGH ? R_NO_NEIGH : R_FIB_FAIL;
	return XDP_PASS;
}

/* send_routed routes the rewritten packet by its own addresses. */
static __always_inline int send_routed(struct xdp_md *ctx, struct packet *pkt, void *data, void *end,
				       __u32 *reason)
{
	struct iphdr *iph = pkt->l3;
	struct bpf_fib_lookup fib = {};

	if ((void *)(iph + 1) > end)
		return -1;
	long rc = fib_route(ctx, iph, iph->saddr, &fib);
	return send_fib(data, end, &fib, rc, reason);
}

#endif /* XLB_LB_NAT_H */
