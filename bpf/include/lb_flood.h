/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_flood.h: flood protection per VIP: its keys, values, maps and the
 * per-packet check.
 *
 * The program measures (per-CPU packet and byte counts per VIP) and
 * enforces; userspace (dataplane/xdp/flood.go) reads the counts every
 * interval, decides the VIP's state (normal, cleaning, blackhole), logs
 * every change and writes the state here:
 *  - always: a class's total rate (SYN, UDP, ICMP packets to the VIP);
 *  - cleaning (or always when no clean threshold is set): a source's
 *    packets of a class beyond its per-source rate;
 *  - blackhole: everything to the VIP.
 * Sources on the VIP's allow lists are never dropped by flood protection.
 */
#ifndef XLB_LB_FLOOD_H
#define XLB_LB_FLOOD_H

#include "lb_limit.h"

#define FLOOD_MAX_VIPS LB_MAX_LISTENERS

enum flood_class {
	FC_SYN = 0, /* tcp with SYN and without ACK */
	FC_UDP,
	FC_ICMP,
	FC_MAX,
};

enum flood_state {
	FS_NORMAL = 0,
	FS_CLEANING = 1,
	FS_BLACKHOLE = 2,
};

#define FLOOD_SOURCE_ALWAYS (1U << 0) /* no clean threshold: per-source rates always apply */
#define FLOOD_EXEMPTS (1U << 1)       /* the VIP has allow-list entries in flood_exempt */

/* flood_conf is a protected VIP's configuration, by VIP. Intervals are the
 * ns between packets at the rate; 0: no limit. */
struct flood_conf {
	__u32 slot;
	__u32 flags;
	__u64 src_interval[FC_MAX];
	__u64 total_interval[FC_MAX];
};

/* flood_src_key: one source's schedule for one class at one VIP. */
struct flood_src_key {
	__be32 vip;
	__be32 saddr;
	__u32 class;
};

/* flood_exempt_key: the VIP's allow lists in an LPM trie (prefixlen = 32
 * + the CIDR's length, as acl_key). */
struct flood_exempt_key {
	__u32 prefixlen;
	__u32 slot;
	__be32 addr;
};

/* Drop reasons (index into flood_stats.drops). */
enum flood_drop {
	FD_BLACKHOLE = 0,
	FD_TOTAL = 1,                /* + class: the class's total rate */
	FD_SOURCE = FD_TOTAL + FC_MAX, /* + class: a source over its rate */
	FD_MAX = FD_SOURCE + FC_MAX,
};

/* flood_stats: per VIP slot, per CPU. */
struct flood_stats {
	__u64 pkts;  /* everything to the VIP, dropped or not: what the state is decided on */
	__u64 bytes;
	__u64 drops[FD_MAX];
	__u64 drop_bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FLOOD_MAX_VIPS);
	__type(key, __be32);
	__type(value, struct flood_conf);
} flood_vips SEC(".maps");

/* flood_on[0]: protected VIPs configured; 0 skips the VIP lookup. An
 * array lookup the verifier inlines: unprotected nodes pay a load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} flood_on SEC(".maps");

/* flood_states: enum flood_state per slot, written by userspace only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FLOOD_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
} flood_states SEC(".maps");

/* flood_totals: the classes' total GCRA schedules, [slot * FC_MAX + class]. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FLOOD_MAX_VIPS * FC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} flood_totals SEC(".maps");

/* flood_sources: per-source schedules. An LRU: under a spoofed flood the
 * table fills with one-packet sources, and evicting the idlest only
 * forgets a schedule (a fresh burst), never a connection. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flood_src_key);
	__type(value, __u64);
} flood_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FLOOD_MAX_VIPS * 300);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flood_exempt_key);
	__type(value, __u8);
} flood_exempt SEC(".maps");

PERCPU_ARRAY_MAP(flood_counters, struct flood_stats, FLOOD_MAX_VIPS);

/* flood_class_of returns the packet's class, FC_MAX for none. */
static __always_inline __u32 flood_class_of(struct packet *pkt, void *end)
{
	if (pkt->l4_proto == IPPROTO_UDP)
		return FC_UDP;
	if (pkt->l4_proto == IPPROTO_ICMP)
		return FC_ICMP;
	if (pkt->l4_proto == IPPROTO_TCP) {
		__u8 *th = pkt->l4;
		/* Verifier: the flags byte (offset 13) inside the frame. */
		if ((void *)(th + 14) > end)
			return FC_MAX;
		if ((th[13] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
			return FC_SYN;
	}
	return FC_MAX;
}

/* flood_drop drops and counts, unless the source is exempt. */
static __always_inline int flood_drop(const struct flood_conf *c, struct flood_stats *st, __u32 slot, __be32 saddr,
				      __u32 reason, __u32 len)
{
	/* The trie only for VIPs with allow lists: a flood pays no LPM walk
	 * per dropped packet otherwise. */
	if (c->flags & FLOOD_EXEMPTS) {
		struct flood_exempt_key k = {.prefixlen = 64, .slot = slot, .addr = saddr};
		if (bpf_map_lookup_elem(&flood_exempt, &k))
			return XDP_PASS;
	}
	if (reason < FD_MAX)
		st->drops[reason]++;
	st->drop_bytes += len;
	return XDP_DROP;
}

/* flood_check returns XDP_DROP for a packet flood protection drops, else
 * XDP_PASS (the packet goes on to the load balancer). */
static __always_inline int flood_check(struct xdp_md *ctx, struct packet *pkt, void *end)
{
	__u32 zero = 0;
	__u32 *on = bpf_map_lookup_elem(&flood_on, &zero);
	struct iphdr *iph = pkt->l3;

	if (!on || !*on || (void *)(iph + 1) > end)
		return XDP_PASS;
	__be32 vip = iph->daddr, saddr = iph->saddr;
	struct flood_conf *c = bpf_map_lookup_elem(&flood_vips, &vip);
	if (!c)
		return XDP_PASS;
	__u32 slot = c->slot;
	struct flood_stats *st = bpf_map_lookup_elem(&flood_counters, &slot);
	__u32 *state = bpf_map_lookup_elem(&flood_states, &slot);
	if (!st || !state)
		return XDP_PASS;
	__u32 len = ctx->data_end - ctx->data;
	st->pkts++;
	st->bytes += len;
	__u32 s = *state;
	if (s == FS_BLACKHOLE)
		return flood_drop(c, st, slot, saddr, FD_BLACKHOLE, len);
	__u32 cls = flood_class_of(pkt, end);
	if (cls >= FC_MAX)
		return XDP_PASS;
	__u64 now = bpf_ktime_get_ns();
	__u64 iv = c->total_interval[cls];
	if (iv) {
		__u32 ti = slot * FC_MAX + cls;
		__u64 *tat = bpf_map_lookup_elem(&flood_totals, &ti);
		if (tat && !gcra_admit(tat, now, iv, NSEC_PER_SEC))
			return flood_drop(c, st, slot, saddr, FD_TOTAL + cls, len);
	}
	iv = c->src_interval[cls];
	/* Per source only when cleaning: the normal path pays no LRU lookup. */
	if (!iv || (s != FS_CLEANING && !(c->flags & FLOOD_SOURCE_ALWAYS)))
		return XDP_PASS;
	struct flood_src_key sk = {.vip = vip, .saddr = saddr, .class = cls};
	__u64 *tat = bpf_map_lookup_elem(&flood_sources, &sk);
	if (!tat) {
		__u64 first = now + iv;
		bpf_map_update_elem(&flood_sources, &sk, &first, BPF_ANY);
		return XDP_PASS;
	}
	if (!gcra_admit(tat, now, iv, NSEC_PER_SEC))
		return flood_drop(c, st, slot, saddr, FD_SOURCE + cls, len);
	return XDP_PASS;
}

#endif /* XLB_LB_FLOOD_H */
