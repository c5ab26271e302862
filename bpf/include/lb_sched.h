/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_sched.h: choosing a backend for a new flow. Userspace computes every
 * listener's ring from dataplane/pool (the eligible backends only: weight 0,
 * down, drained and disabled ones are not in it), so the data path never
 * sees an ineligible backend except through persistence, which checks.
 */
#ifndef XLB_LB_SCHED_H
#define XLB_LB_SCHED_H

#include "lb_maps.h"

/* eligible: (listener, backend) pairs that may take new flows; written by
 * userspace with each ring. */
struct eligible_key {
	__u32 listener;
	__u32 backend;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_LISTENERS * 256);
	__type(key, struct eligible_key);
	__type(value, __u8);
} eligible SEC(".maps");

/* flow_hash mixes the 5-tuple (a murmur3-style finaliser per word). The
 * same program on every node gives the same hash, so with maglev every
 * node sends a flow to the same backend. */
static __always_inline __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 flow_hash(const struct flow_key *k)
{
	__u32 h = mix32(k->saddr ^ 0x9e3779b9);
	h = mix32(h ^ k->daddr);
	h = mix32(h ^ (((__u32)k->sport << 16) | k->dport));
	return mix32(h ^ k->proto);
}

static __always_inline int ring_at(__u32 lid, __u32 idx, __u32 *backend)
{
	__u32 slot = lid * LB_RING_SIZE + idx;
	__u32 *b = bpf_map_lookup_elem(&rings, &slot);

	if (!b)
		return -1;
	*backend = *b;
	return 0;
}

/* pick_wlc scans the candidates for the least active/weight, comparing by
 * cross-multiplication; the scan starts at a rotating position so ties go
 * round. */
static __always_inline int pick_wlc(const struct listener *l, __u32 lid, __u32 *out)
{
	__u32 *cur = bpf_map_lookup_elem(&rr_cursor, &lid);
	__u32 n = l->wlc_len, start, best = 0;
	__s64 best_a = 0;
	__u64 best_w = 0;

	if (!cur || n == 0 || n > LB_WLC_MAX)
		return -1;
	start = __sync_fetch_and_add(cur, 1) % n;
	/* Verifier: a constant bound; the live length ends it early. */
	for (__u32 i = 0; i < LB_WLC_MAX; i++) {
		if (i >= n)
			break;
		__u32 j = start + i;
		if (j >= n)
			j -= n;
		if (j >= LB_WLC_MAX)
			break;
		__u32 id = l->wlc[j];
		__u64 w = l->wlc_w[j];
		__s64 *a = bpf_map_lookup_elem(&active, &id);
		if (!a || w == 0)
			continue;
		__s64 act = *a < 0 ? 0 : *a;
		if (best_w == 0 || (__u64)act * best_w < (__u64)best_a * w) {
			best = id;
			best_a = act;
			best_w = w;
		}
	}
	if (best_w == 0)
		return -1;
	*out = best;
	return 0;
}

/* pick_backend chooses a backend for a new flow of listener lid:
 * persistence first, then the scheduler. */
static __always_inline int pick_backend(const struct listener *l, __u32 lid, const struct flow_key *k,
					__u64 now, __u32 *out)
{
	struct persist_key pk = {.listener = lid, .client = k->saddr};

	if (l->persist_ns) {
		struct persist_val *pv = bpf_map_lookup_elem(&persist, &pk);
		if (pv && now - pv->last_seen < l->persist_ns) {
			struct eligible_key ek = {.listener = lid, .backend = pv->backend};
			if (bpf_map_lookup_elem(&eligible, &ek)) {
				pv->last_seen = now;
				*out = pv->backend;
				return 0;
			}
		}
	}

	int err = -1;
	if (l->sched == SCHED_WLC) {
		err = pick_wlc(l, lid, out);
	} else if (l->ring_len > 0 && l->ring_len <= LB_RING_SIZE) {
		__u32 idx;
		if (l->sched == SCHED_HASH) {
			idx = flow_hash(k) % l->ring_len;
		} else {
			__u32 *cur = bpf_map_lookup_elem(&rr_cursor, &lid);
			if (!cur)
				return -1;
			idx = __sync_fetch_and_add(cur, 1) % l->ring_len;
		}
		err = ring_at(lid, idx, out);
	}
	if (err == 0 && l->persist_ns) {
		struct persist_val pv = {.last_seen = now, .backend = *out};
		bpf_map_update_elem(&persist, &pk, &pv, BPF_ANY);
	}
	return err;
}

#endif /* XLB_LB_SCHED_H */
