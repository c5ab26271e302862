// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_count: the sink of `xlb-bench xdp`. Attached to the receiving
 * interface, it counts every frame and the frames that match a filter
 * (L4 protocol and destination port), then drops them (or passes them to
 * the kernel when pass is set). With pass_unmatched, only the matching
 * frames are dropped: a backend that sinks a benchmark's flow still answers
 * ARP and health checks, so the gateway keeps it resolved and up.
 *
 * On a veth, an XDP program on the receiving end is also what makes
 * redirected frames arrive at all: veth's ndo_xdp_xmit delivers into the
 * peer's XDP receive ring, which exists only while the peer has a (driver
 * mode) XDP program or GRO enabled; without it the frames are dropped.
 */
#include "common.h"
#include "parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set at load time by bench/xdpgen. */
XLB_CONFIG __u32 pass = 0;        /* 1: XDP_PASS instead of XDP_DROP */
XLB_CONFIG __u32 pass_unmatched = 0; /* 1: XDP_PASS for frames not matching */
XLB_CONFIG __u8 match_proto = 0;  /* IPPROTO_TCP/UDP/...; 0: any */
XLB_CONFIG __u16 match_dport = 0; /* host order; 0: any */
XLB_CONFIG __u32 match_saddr = 0; /* IPv4 source, network order; 0: any */

struct count_stats {
	__u64 packets; /* every frame */
	__u64 bytes;
	__u64 matched_packets; /* parsed, and matching the filter */
	__u64 matched_bytes;
};

PERCPU_ARRAY_MAP(count_stats_map, struct count_stats, 1);

/* source_matches checks match_saddr (a translated source, for SNAT). The
 * parser checked the IPv4 header's bounds, but the verifier needs its own
 * check of this pointer. */
static __always_inline int source_matches(struct packet *pkt, void *end)
{
	if (!match_saddr)
		return 1;
	if (pkt->l3_proto != bpf_htons(ETH_P_IP))
		return 0;
	struct iphdr *ip = pkt->l3;
	if ((void *)(ip + 1) > end)
		return 0;
	return ip->saddr == match_saddr;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	struct count_stats *st = percpu_slot(&count_stats_map, 0);
	if (!st)
		return XDP_ABORTED;

	__u64 len = frame_len(ctx);
	st->packets++;
	st->bytes += len;

	struct packet pkt;
	if (parse_packet(ctx, &pkt) == PARSE_OK &&
	    (!match_proto || pkt.l4_proto == match_proto) &&
	    (!match_dport || pkt.dport == bpf_htons(match_dport)) &&
	    source_matches(&pkt, (void *)(long)ctx->data_end)) {
		st->matched_packets++;
		st->matched_bytes += len;
	} else if (pass_unmatched) {
		return XDP_PASS;
	}
	return pass ? XDP_PASS : XDP_DROP;
}
