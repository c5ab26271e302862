/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_maps.h: the XDP load balancer's maps. Userspace (dataplane/xdp) writes
 * the configuration maps, reads the counters and sweeps the flow table;
 * every map is pinned so a restarted xlbd keeps the flows.
 */
#ifndef XLB_LB_MAPS_H
#define XLB_LB_MAPS_H

#include "lb_structs.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4 * LB_MAX_LISTENERS);
	__type(key, struct svc_key);
	__type(value, __u32); /* listener id */
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_LISTENERS);
	__type(key, __u32);
	__type(value, struct listener);
} listeners SEC(".maps");

/* rings: LB_RING_SIZE backend ids per listener, listener-major. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_LISTENERS * LB_RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

/* active: open flows per backend, for wlc. The program adds one per new
 * flow; the userspace sweeper subtracts one per expired flow. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, __s64);
} active SEC(".maps");

/* flows: a plain hash, not an LRU: a full table refuses new flows (counted)
 * instead of silently evicting live ones. Its size is set at load time
 * (node.conntrack.max_flows, two entries per connection). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 1048576);
	__type(key, struct flow_key);
	__type(value, struct flow);
} flows SEC(".maps");

/* persist: an LRU is right here: losing an idle client's stickiness only
 * means a fresh pick, never a broken connection. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct persist_key);
	__type(value, struct persist_val);
} persist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_LISTENERS * 300);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct acl_key);
	__type(value, __u8);
} acl SEC(".maps");

/* rr_cursor: the ring position of each listener, shared by all CPUs and
 * advanced atomically: rr and wrr promise exact turns, and only a flow's
 * first packet pays for the shared cache line. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_LISTENERS);
	__type(key, __u32);
	__type(value, __u32);
} rr_cursor SEC(".maps");

/* Limits (lb_structs.h): per limit slot, and the bandwidth buckets. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_LBS);
	__type(key, __u32);
	__type(value, struct lb_limit);
} lb_limits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_LBS);
	__type(key, __u32);
	__type(value, struct lb_conns);
} lb_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_LBS);
	__type(key, __u32);
	__type(value, __s64);
} lb_closed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * BW_PAIRS);
	__type(key, __u32);
	__type(value, struct bw_bucket);
} bw_buckets SEC(".maps");

PERCPU_ARRAY_MAP(limit_stats, struct limstats, LB_MAX_LISTENERS);
PERCPU_ARRAY_MAP(listener_stats, struct lstats, LB_MAX_LISTENERS);
PERCPU_ARRAY_MAP(backend_stats, struct bstats, LB_MAX_BACKENDS);
PERCPU_ARRAY_MAP(global_stats, struct gstats, 1);

#endif /* XLB_LB_MAPS_H */
