/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * common.h: what every xlb BPF program includes first: kernel UAPI types,
 * libbpf's SEC()/helper definitions, byte order, and small always-inline
 * utilities. Programs are compiled with -target bpfel -mcpu=v3 by bpf2go
 * (see the //go:generate lines next to the Go loaders).
 */
#ifndef XLB_COMMON_H
#define XLB_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* bpf_helpers.h defines __always_inline as inline + always_inline: every
 * helper in these headers is inlined, so the verifier sees one function and
 * tracks packet bounds across the helpers. */

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/* Constants configured at load time live in .rodata ("const volatile"):
 * the loader rewrites them before the program is verified, and the verifier
 * then knows their values (dead branches are pruned). volatile keeps clang
 * from folding the compile-time default into the code. */
#define XLB_CONFIG const volatile

/* PERCPU_ARRAY_MAP declares a per-CPU array: counters updated without
 * atomics; userspace sums the CPUs' values. */
#define PERCPU_ARRAY_MAP(_name, _value, _entries)           \
	struct {                                            \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);    \
		__uint(max_entries, _entries);              \
		__type(key, __u32);                         \
		__type(value, _value);                      \
	} _name SEC(".maps")

/* percpu_slot returns this CPU's value of slot key of a per-CPU array, or
 * NULL (never in practice for an in-range key, but the verifier requires
 * the check). */
static __always_inline void *percpu_slot(void *map, __u32 key)
{
	return bpf_map_lookup_elem(map, &key);
}

/* frame_len is the length of the frame in the XDP buffer. */
static __always_inline __u64 frame_len(const struct xdp_md *ctx)
{
	return (__u64)ctx->data_end - (__u64)ctx->data;
}

#endif /* XLB_COMMON_H */
