// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_gen: the packet generator of `xlb-bench xdp`. Userspace runs it with
 * BPF_PROG_TEST_RUN in live-frame mode (BPF_F_TEST_XDP_LIVE_FRAMES): the
 * kernel hands it one template frame Repeat times and transmits whatever it
 * returns, XDP_REDIRECT to redirect_ifindex or XDP_TX out of the ingress
 * interface given in the run's xdp_md.
 *
 * The loader may also attach this program (generic mode) to an idle
 * interface only to keep it in the kernel's XDP dispatcher: otherwise each
 * repeated test run swaps it in and out of the dispatcher, paying an RCU
 * grace period each way. Frames really received there carry another
 * ingress ifindex than gen_ifindex and pass untouched.
 *
 * Pages are recycled between batches and runs, and the kernel resets a
 * frame's data only when a program moved its pointers: a frame comes back
 * carrying whatever was written into it, by this program and by the
 * receiver's XDP program too (a load balancer rewrites addresses and MACs
 * in place before redirecting, and a sink dropping the frame returns the
 * page to this run's pool). So every frame first gets the template's
 * first TMPL_LEN bytes (all of its headers) back; the rewrites then start
 * from the template.
 */
#include "common.h"
#include "parse.h"
#include "csum.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set at load time by bench/xdpgen. */
XLB_CONFIG __u32 gen_ifindex = 0;      /* the runs' ingress interface */
XLB_CONFIG __u32 redirect_ifindex = 0; /* 0: XDP_TX */
XLB_CONFIG __u32 flows = 1;            /* source ports sport_base .. +flows-1 */
XLB_CONFIG __u16 sport_base = 0;       /* host order */
XLB_CONFIG __u32 src_addrs = 1;        /* IPv4 sources src_base .. +src_addrs-1 */
XLB_CONFIG __u32 src_base = 0;         /* host order */

/* The template's first bytes, set at load time with their count. */
#define TMPL_WORDS 16
#define TMPL_LEN (TMPL_WORDS * 8)
XLB_CONFIG __u64 tmpl[TMPL_WORDS] = {};
XLB_CONFIG __u32 tmpl_len = 0; /* bytes of tmpl to restore, <= TMPL_LEN */

/* Exact counts: while limit is not 0 the program transmits only frames
 * whose ticket is below limit and drops the rest, so a run restarted by a
 * signal (BPF_PROG_TEST_RUN repeats the whole run after EINTR) cannot send
 * more than asked. Written by userspace between runs. */
volatile __u64 limit = 0;
volatile __u64 tickets = 0;

struct gen_stats {
	__u64 frames;        /* transmitted (returned XDP_REDIRECT or XDP_TX) */
	__u64 bytes;
	__u64 over_limit;    /* dropped: ticket at or above limit */
	__u64 not_rewritten; /* flows or src_addrs > 1 but not an IPv4/IPv6 TCP/UDP frame */
};

PERCPU_ARRAY_MAP(gen_stats_map, struct gen_stats, 1);

/* rewrite varies the flow of frame number seq: source port and, for IPv4,
 * source address, with incremental checksum updates. */
static __always_inline int rewrite(struct xdp_md *ctx, __u64 seq)
{
	struct packet pkt;

	if (parse_packet(ctx, &pkt) != PARSE_OK)
		return 0;

	__sum16 *l4sum;
	int udp = 0;
	if (pkt.l4_proto == IPPROTO_UDP) {
		l4sum = &((struct udphdr *)pkt.l4)->check;
		udp = 1;
	} else if (pkt.l4_proto == IPPROTO_TCP) {
		l4sum = &((struct tcphdr *)pkt.l4)->check;
	} else {
		return 0;
	}

	if (flows > 1) {
		/* sport sits at offset 0 in both TCP and UDP headers. */
		__be16 *sport = pkt.l4;
		__be16 new = bpf_htons((__u16)(sport_base + seq % flows));
		if (udp)
			udp_csum_replace2(l4sum, *sport, new);
		else
			csum_replace2(l4sum, *sport, new);
		*sport = new;
	}
	if (src_addrs > 1 && pkt.l3_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = pkt.l3;
		__u64 f = flows > 1 ? flows : 1;
		__be32 new = bpf_htonl((__u32)(src_base + (seq / f) % src_addrs));
		/* The address is in the IP header checksum and in the L4
		 * pseudo-header. */
		csum_replace4(&iph->check, iph->saddr, new);
		if (udp)
			udp_csum_replace4(l4sum, iph->saddr, new);
		else
			csum_replace4(l4sum, iph->saddr, new);
		iph->saddr = new;
	}
	return 1;
}

/* restore writes the template's headers back, 8 bytes at a time; a tail
 * shorter than 8 bytes (tmpl_len is rounded down by the loader) is payload
 * no receiver rewrites. The loop is bounded for the verifier, and each word
 * is checked against data_end. */
static __always_inline void restore(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 *w = data;

	for (int i = 0; i < TMPL_WORDS; i++) {
		if ((__u32)i * 8 >= tmpl_len || (void *)(w + i + 1) > end)
			break;
		w[i] = tmpl[i];
	}
}

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	if (ctx->ingress_ifindex != gen_ifindex)
		return XDP_PASS; /* a real frame where the program is held */

	struct gen_stats *st = percpu_slot(&gen_stats_map, 0);
	if (!st)
		return XDP_ABORTED;

	if (limit && __sync_fetch_and_add(&tickets, 1) >= limit) {
		st->over_limit++;
		return XDP_DROP;
	}

	restore(ctx);
	if (flows > 1 || src_addrs > 1) {
		/* The per-CPU frame count numbers the frames: no atomics. */
		if (!rewrite(ctx, st->frames))
			st->not_rewritten++;
	}
	st->frames++;
	st->bytes += frame_len(ctx);

	if (redirect_ifindex)
		return bpf_redirect(redirect_ifindex, 0);
	return XDP_TX;
}
