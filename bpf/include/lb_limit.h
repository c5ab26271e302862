/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_limit.h: a load balancer's connection limits (max connections, new
 * connections per second) on the new-flow path, and the bandwidth
 * policers on every packet of a policed flow.
 *
 * Rates are GCRA schedules (one u64, the theoretical arrival time of the
 * next cell) shared by every CPU. They are kept with atomic adds rather
 * than a compare-and-swap loop: the verifier wants loops bounded, and a
 * bounded CAS loop would have to give up (drop or admit) under contention,
 * while an add always lands. A cell is added first and taken back when it
 * ran past the burst, so at saturation the schedule is exact; only leaving
 * an idle spell (the schedule in the past) needs one CAS, and a CPU that
 * loses it adds its cell to the winner's restart.
 */
#ifndef XLB_LB_LIMIT_H
#define XLB_LB_LIMIT_H

#include "lb_maps.h"

#define NSEC_PER_SEC 1000000000ULL

/* gcra_admit charges cost ns to the schedule at *tat; it admits while the
 * schedule runs at most burst ns ahead of now. */
static __always_inline int gcra_admit(__u64 *tat, __u64 now, __u64 cost, __u64 burst)
{
	__u64 t = *(volatile __u64 *)tat;

	if ((__s64)(t - now) < 0 && __sync_val_compare_and_swap(tat, t, now + cost) == t)
		return 1;
	__u64 next = __sync_fetch_and_add(tat, cost) + cost;
	if ((__s64)(next - now) > (__s64)burst) {
		__sync_fetch_and_add(tat, -cost);
		return 0;
	}
	return 1;
}

/* conn_admit takes one connection of limit slot `slot`: it returns LR_MAX
 * when admitted (the caller then owes conn_release if the flow does not
 * start), or the reason of the refusal. Missing slots admit: the verifier
 * requires the lookups' NULL checks, and an in-range slot always exists. */
static __always_inline __u32 conn_admit(__u32 slot, __u64 now)
{
	struct lb_limit *lim = bpf_map_lookup_elem(&lb_limits, &slot);
	struct lb_conns *c = bpf_map_lookup_elem(&lb_state, &slot);
	__s64 *closed = bpf_map_lookup_elem(&lb_closed, &slot);

	if (!lim || !c || !closed)
		return LR_MAX;
	/* Count first, then compare: two CPUs racing for the last place
	 * cannot both get it. */
	__s64 open = __sync_fetch_and_add(&c->opened, 1) - *closed;
	if (lim->max_conns && open >= (__s64)lim->max_conns) {
		__sync_fetch_and_add(&c->opened, -1);
		return LR_MAX_CONNS;
	}
	/* A second's worth of burst, as the userspace engines' rates. */
	if (lim->conn_interval && !gcra_admit(&c->tat, now, lim->conn_interval, NSEC_PER_SEC)) {
		__sync_fetch_and_add(&c->opened, -1);
		return LR_NEW_CONNS;
	}
	return LR_MAX;
}

/* conn_release gives back a connection conn_admit took for a flow that
 * did not start (table full, or another CPU created it first). */
static __always_inline void conn_release(__u32 slot)
{
	struct lb_conns *c = bpf_map_lookup_elem(&lb_state, &slot);

	if (c)
		__sync_fetch_and_add(&c->opened, -1);
}

/* police charges a packet of len bytes to bucket pair bw - 1, direction
 * dir; 1: it passes. An established flow pays a map lookup, a load and an
 * atomic add; an unpoliced flow only the test of f->bw. */
static __always_inline int police(__u32 bw, __u32 dir, __u32 len, __u64 now)
{
	__u32 idx = (bw - 1) * 2 + dir;
	struct bw_bucket *b = bpf_map_lookup_elem(&bw_buckets, &idx);

	if (!b || !b->ns_per_byte16)
		return 1;
	return gcra_admit(&b->tat, now, ((__u64)len * b->ns_per_byte16) >> 16, b->burst);
}

static __always_inline int count_limit_drop(__u32 lid, __u32 reason)
{
	struct limstats *s = bpf_map_lookup_elem(&limit_stats, &lid);

	if (s && reason < LR_MAX)
		s->reasons[reason]++;
	return XDP_DROP;
}

static __always_inline int count_bw_drop(__u32 lid, __u32 dir, __u32 len)
{
	struct limstats *s = bpf_map_lookup_elem(&limit_stats, &lid);

	if (s && dir < 2) {
		s->bw_pkts[dir]++;
		s->bw_bytes[dir] += len;
	}
	return XDP_DROP;
}

#endif /* XLB_LB_LIMIT_H */
