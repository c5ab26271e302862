/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * parse.h: bounds-checked header parsing for XDP. Every helper returns a
 * verdict (enum parse_verdict) so callers can count why a packet was not
 * handled. bench/xdpgen/parse.go mirrors these rules exactly (and a fuzz
 * test compares the two), so change both together.
 *
 * Two kinds of checks appear below:
 *  - semantic checks on the header fields (version, header and total
 *    lengths): a packet that fails them is MALFORMED or TRUNCATED;
 *  - "verifier" checks of a packet pointer against data_end. The verifier
 *    lets a program read or write packet bytes only through a pointer it has
 *    seen compared with data_end, so each header gets one before it is
 *    touched, even where a semantic check already implies it.
 */
#ifndef XLB_PARSE_H
#define XLB_PARSE_H

#include "common.h"

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

enum parse_verdict {
	PARSE_OK = 0,
	PARSE_TRUNCATED,   /* a header (or the IP packet) runs past the frame */
	PARSE_MALFORMED,   /* a version or length field is inconsistent */
	PARSE_UNSUPPORTED, /* EtherType, VLAN depth or L4 protocol not handled */
	PARSE_FRAGMENT,    /* an IPv4 fragment: no complete L4 header to use */
};

#define PARSE_MAX_VLANS 2

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
#define IPV4_FRAG_MASK 0x3fff /* MF flag and fragment offset */

/* icmp_hdr is the part of an ICMP or ICMPv6 header that is the same in
 * both (linux/icmp.h is not used: it pulls in libc's socket headers). */
struct icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 echo_id;  /* echo request and reply only */
	__be16 echo_seq;
};

#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

/* vlan_hdr is the 4 bytes a VLAN tag adds after the MAC addresses. */
struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* cursor walks the headers. left mirrors end - pos as a plain number, for
 * length-field checks: the verifier does not allow subtracting packet
 * pointers in unprivileged programs, and it needs no bounds from these. */
struct cursor {
	void *pos;
	void *end;
	__u32 left;
};

static __always_inline void cursor_init(struct cursor *c, struct xdp_md *ctx)
{
	c->pos = (void *)(long)ctx->data;
	c->end = (void *)(long)ctx->data_end;
	c->left = ctx->data_end - ctx->data;
}

/* packet is what parse_packet found. l3 and l4 are packet pointers that
 * have been checked against data_end for their fixed header size, so
 * callers may read and write those headers directly. */
struct packet {
	void *l3;
	void *l4;
	__u32 l4_len;     /* L4 header and payload, from the IP length field */
	__be16 l3_proto;  /* ETH_P_IP or ETH_P_IPV6, network order */
	__u8 l4_proto;    /* IPPROTO_*, also set when PARSE_UNSUPPORTED */
	__u8 vlans;       /* VLAN tags skipped */
	__be16 sport;     /* ports; for ICMP echo both are the echo id */
	__be16 dport;
};

/* parse_eth skips the Ethernet header and up to PARSE_MAX_VLANS VLAN
 * tags; the cursor ends at the L3 header and *proto is its EtherType. */
static __always_inline enum parse_verdict
parse_eth(struct cursor *c, __be16 *proto, __u8 *vlans)
{
	struct ethhdr *eth = c->pos;

	/* Verifier: the 14-byte header must be inside the frame. */
	if ((void *)(eth + 1) > c->end)
		return PARSE_TRUNCATED;
	c->pos = eth + 1;
	c->left -= sizeof(*eth);
	*proto = eth->h_proto;
	*vlans = 0;

	/* A constant trip count: the loop is unrolled, no back edge. */
#pragma unroll
	for (int i = 0; i < PARSE_MAX_VLANS; i++) {
		if (*proto != bpf_htons(ETH_P_8021Q) && *proto != bpf_htons(ETH_P_8021AD))
			return PARSE_OK;
		struct vlan_hdr *vh = c->pos;
		/* Verifier: each tag is read only once inside the frame. */
		if ((void *)(vh + 1) > c->end)
			return PARSE_TRUNCATED;
		c->pos = vh + 1;
		c->left -= sizeof(*vh);
		*proto = vh->encap_proto;
		(*vlans)++;
	}
	if (*proto == bpf_htons(ETH_P_8021Q) || *proto == bpf_htons(ETH_P_8021AD))
		return PARSE_UNSUPPORTED;
	return PARSE_OK;
}

/* parse_ipv4 checks the IPv4 header and moves the cursor to the L4 header.
 * *l4_len is the L4 length the header claims (total length minus header
 * length), checked to fit in the frame. */
static __always_inline enum parse_verdict
parse_ipv4(struct cursor *c, __u8 *l4_proto, __u32 *l4_len)
{
	struct iphdr *iph = c->pos;

	/* Verifier: the fixed 20 bytes before reading any field. */
	if ((void *)(iph + 1) > c->end)
		return PARSE_TRUNCATED;
	if (iph->version != 4 || iph->ihl < 5)
		return PARSE_MALFORMED;

	/* ihl is 4 bits, so hlen <= 60: a bounded variable offset, which the
	 * verifier accepts in the comparison with data_end below. */
	__u32 hlen = iph->ihl * 4;
	if ((void *)iph + hlen > c->end)
		return PARSE_TRUNCATED;
	__u32 tot = bpf_ntohs(iph->tot_len);
	if (tot < hlen)
		return PARSE_MALFORMED;
	/* The frame may be longer (Ethernet padding), not shorter. */
	if (tot > c->left)
		return PARSE_TRUNCATED;
	*l4_proto = iph->protocol;
	*l4_len = tot - hlen;
	c->pos = (void *)iph + hlen;
	c->left -= hlen;
	if (iph->frag_off & bpf_htons(IPV4_FRAG_MASK))
		return PARSE_FRAGMENT;
	return PARSE_OK;
}

/* parse_ipv6 checks the fixed IPv6 header. Extension headers are not
 * walked: a next header other than the L4 protocols is unsupported. */
static __always_inline enum parse_verdict
parse_ipv6(struct cursor *c, __u8 *l4_proto, __u32 *l4_len)
{
	struct ipv6hdr *ip6h = c->pos;

	/* Verifier: the fixed 40 bytes before reading any field. */
	if ((void *)(ip6h + 1) > c->end)
		return PARSE_TRUNCATED;
	if (ip6h->version != 6)
		return PARSE_MALFORMED;
	__u32 plen = bpf_ntohs(ip6h->payload_len);
	if (plen > c->left - sizeof(*ip6h))
		return PARSE_TRUNCATED;
	*l4_proto = ip6h->nexthdr;
	*l4_len = plen;
	c->pos = ip6h + 1;
	c->left -= sizeof(*ip6h);
	return PARSE_OK;
}

/* parse_udp checks the UDP header at the cursor; l4_len comes from the IP
 * header and is known to fit in the frame. */
static __always_inline enum parse_verdict
parse_udp(struct cursor *c, __u32 l4_len, struct packet *pkt)
{
	struct udphdr *udph = c->pos;

	if (l4_len < sizeof(*udph))
		return PARSE_MALFORMED;
	/* Verifier: implied by l4_len, but the pointer itself must be
	 * compared with data_end. */
	if ((void *)(udph + 1) > c->end)
		return PARSE_TRUNCATED;
	__u32 ulen = bpf_ntohs(udph->len);
	if (ulen < sizeof(*udph) || ulen > l4_len)
		return PARSE_MALFORMED;
	pkt->sport = udph->source;
	pkt->dport = udph->dest;
	return PARSE_OK;
}

/* parse_tcp checks the TCP header at the cursor (options are not read). */
static __always_inline enum parse_verdict
parse_tcp(struct cursor *c, __u32 l4_len, struct packet *pkt)
{
	struct tcphdr *tcph = c->pos;

	if (l4_len < sizeof(*tcph))
		return PARSE_MALFORMED;
	/* Verifier: the fixed 20 bytes, as for UDP. */
	if ((void *)(tcph + 1) > c->end)
		return PARSE_TRUNCATED;
	__u32 doff = tcph->doff * 4;
	if (doff < sizeof(*tcph) || doff > l4_len)
		return PARSE_MALFORMED;
	pkt->sport = tcph->source;
	pkt->dport = tcph->dest;
	return PARSE_OK;
}

/* parse_icmp checks an ICMP or ICMPv6 header (both 8 bytes with the echo
 * id at the same place). Echo requests and replies use the id as both
 * "ports", so they can be treated as flows; other types get port 0. */
static __always_inline enum parse_verdict
parse_icmp(struct cursor *c, __u32 l4_len, struct packet *pkt)
{
	struct icmp_hdr *icmph = c->pos;

	if (l4_len < sizeof(*icmph))
		return PARSE_MALFORMED;
	/* Verifier: type and echo id are read below. */
	if ((void *)(icmph + 1) > c->end)
		return PARSE_TRUNCATED;
	__u8 t = icmph->type;
	int echo = pkt->l4_proto == IPPROTO_ICMP
			   ? (t == ICMP_ECHO || t == ICMP_ECHOREPLY)
			   : (t == ICMPV6_ECHO_REQUEST || t == ICMPV6_ECHO_REPLY);
	pkt->sport = echo ? icmph->echo_id : 0;
	pkt->dport = pkt->sport;
	return PARSE_OK;
}

/* parse_packet parses Ethernet, VLAN, IPv4 or IPv6 and TCP, UDP, ICMP or
 * ICMPv6. On PARSE_OK every field of pkt is set; on other verdicts the
 * fields found so far are. */
static __always_inline enum parse_verdict
parse_packet(struct xdp_md *ctx, struct packet *pkt)
{
	struct cursor c;
	enum parse_verdict v;

	__builtin_memset(pkt, 0, sizeof(*pkt));
	cursor_init(&c, ctx);
	v = parse_eth(&c, &pkt->l3_proto, &pkt->vlans);
	if (v != PARSE_OK)
		return v;

	pkt->l3 = c.pos;
	if (pkt->l3_proto == bpf_htons(ETH_P_IP))
		v = parse_ipv4(&c, &pkt->l4_proto, &pkt->l4_len);
	else if (pkt->l3_proto == bpf_htons(ETH_P_IPV6))
		v = parse_ipv6(&c, &pkt->l4_proto, &pkt->l4_len);
	else
		return PARSE_UNSUPPORTED;
	if (v != PARSE_OK)
		return v;

	pkt->l4 = c.pos;
	switch (pkt->l4_proto) {
	case IPPROTO_UDP:
		return parse_udp(&c, pkt->l4_len, pkt);
	case IPPROTO_TCP:
		return parse_tcp(&c, pkt->l4_len, pkt);
	case IPPROTO_ICMP:
		if (pkt->l3_proto != bpf_htons(ETH_P_IP))
			return PARSE_UNSUPPORTED;
		return parse_icmp(&c, pkt->l4_len, pkt);
	case IPPROTO_ICMPV6:
		if (pkt->l3_proto != bpf_htons(ETH_P_IPV6))
			return PARSE_UNSUPPORTED;
		return parse_icmp(&c, pkt->l4_len, pkt);
	}
	return PARSE_UNSUPPORTED;
}

#endif /* XLB_PARSE_H */
