/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nat_maps.h: the SNAT pools' and elastic IPs' maps. Userspace writes all
 * but nat_cursor and the counters; the program appends taken spares to
 * nat_hosts.
 */
#ifndef XLB_NAT_MAPS_H
#define XLB_NAT_MAPS_H

#include "nat_structs.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536); /* pool sources and EIP addresses */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nat_prefix_key);
	__type(value, struct nat_private);
} nat_privnets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NAT_MAX_POOLS);
	__type(key, __u32);
	__type(value, struct nat_pool);
} nat_pools SEC(".maps");

/* nat_hosts: at most 1000 hosts per pool, three protocols each. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT_MAX_POOLS * 1000 * NAT_PROTOS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nat_host_key);
	__type(value, struct nat_host);
} nat_hosts SEC(".maps");

/* nat_spares: key (pool * NAT_PROTOS + proto) * NAT_SPARES + slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NAT_MAX_POOLS * NAT_PROTOS * NAT_SPARES);
	__type(key, __u32);
	__type(value, struct nat_spare);
} nat_spares SEC(".maps");

/* nat_cursor: an LRU is right: a forgotten cursor only means the search
 * starts at the block's first port again. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct nat_cursor_key);
	__type(value, struct nat_cursor);
} nat_cursor SEC(".maps");

/* nat_on: NAT_ON_EIPS and NAT_ON_POOLS when any is configured, so that
 * traffic for neither pays no lookups when there are none. */
#define NAT_ON_EIPS 1
#define NAT_ON_POOLS 2
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} nat_on SEC(".maps");

/* nat_epoch: advanced by userspace at every sweep and plan (the moments
 * ports and blocks can become free). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} nat_epoch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NAT_MAX_EGRESS);
	__type(key, __u32);
	__type(value, struct nat_egress);
} nat_uplinks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NAT_MAX_EIPS);
	__type(key, __u32);
	__type(value, struct nat_eip);
} nat_eips SEC(".maps");

/* nat_eip_public: EIP public address -> EIP id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT_MAX_EIPS);
	__type(key, __be32);
	__type(value, __u32);
} nat_eip_public SEC(".maps");

/* nat_failures: written by userspace with 0 for every (pool, public IP), so
 * the program only adds. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT_MAX_PUBLIC);
	__type(key, struct nat_fail_key);
	__type(value, __u64);
} nat_failures SEC(".maps");

PERCPU_ARRAY_MAP(nat_counters, struct nat_stats, NAT_STATS_SLOTS);

#endif /* XLB_NAT_MAPS_H */
