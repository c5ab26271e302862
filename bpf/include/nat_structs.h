/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nat_structs.h: the keys and values of the SNAT pools and elastic IPs
 * that the XDP program shares with userspace (dataplane/xdp, -type for
 * bpf2go). Translated connections live in the load balancer's flow table
 * (lb_structs.h: struct flow with FF_SNAT or FF_EIP), so the forwarding,
 * ICMP error and sweeping code is one for all of them.
 */
#ifndef XLB_NAT_STRUCTS_H
#define XLB_NAT_STRUCTS_H

#include "common.h"

#define NAT_MAX_POOLS 64     /* snat pools per node */
#define NAT_MAX_EIPS 1024    /* elastic IPs per node */
#define NAT_MAX_EGRESS 256   /* uplinks named by pools and EIPs */
#define NAT_MAX_PUBLIC 1024  /* public IPs of all pools */
#define NAT_HOST_BLOCKS 64   /* port blocks one host holds per protocol (63 fill an IP) */
#define NAT_SPARES 8         /* blocks ready to be taken, per pool and protocol */
#define NAT_PROTOS 3         /* tcp, udp, icmp echo */
#define NAT_STATS_SLOTS (NAT_MAX_POOLS + NAT_MAX_EIPS)

/* Protocol index of the per-protocol port spaces. */
enum nat_proto {
	NP_TCP = 0,
	NP_UDP = 1,
	NP_ICMP = 2,
};

/* nat_prefix_key: LPM key of the private side (pool sources, EIP private
 * addresses as /32s, which win over a pool's wider prefix). */
struct nat_prefix_key {
	__u32 prefixlen;
	__be32 addr;
};

#define NAT_KIND_POOL 1
#define NAT_KIND_EIP 2

struct nat_private {
	__u32 kind;
	__u32 id; /* pool or EIP id */
};

/* nat_pool is one snat pool's data-path settings. */
struct nat_pool {
	__u32 max_blocks; /* blocks a host may hold: its fair share of the pool */
	__u32 egress;     /* egress slot + 1 (the pool's interface); 0: FIB */
	__be32 fail_addr; /* public IP a host without blocks counts failures on */
	__u32 pad;
};

/* nat_block is a run of ports (or ICMP echo ids) of one public IP. start
 * and size are in host byte order. */
struct nat_block {
	__be32 addr;
	__u16 start;
	__u16 size;
};

struct nat_host_key {
	__be32 addr;
	__u32 proto; /* enum nat_proto */
};

/* nat_host: a private host's blocks for one protocol. Userspace writes
 * the first block of every host of a pool in advance; the program appends
 * a spare when the blocks are full (n is advanced atomically). */
struct nat_host {
	__u32 n;
	__u32 pad;
	struct nat_block blocks[NAT_HOST_BLOCKS];
};

/* nat_spare: a block a host of the pool may take when its own are full.
 * The program takes it by swapping taken from 0 to the host's address;
 * userspace refills slots whose taken is set (and never writes a slot the
 * program may still take). */
struct nat_spare {
	struct nat_block b;
	__u32 taken;
	__u32 pad;
};

/* nat_egress: an uplink's next hop, resolved by userspace. ifindex 0:
 * unresolved, the FIB decides. */
struct nat_egress {
	__u32 ifindex;
	__u8 dmac[6];
	__u8 smac[6];
};

struct nat_eip {
	__be32 public_addr;
	__be32 private_addr;
	__u32 egress; /* egress slot + 1; 0: FIB with the public source */
	__u32 pad;
};

/* nat_cursor_key: where the port search for a host's next flow to one
 * destination starts (the port after the last one claimed). */
struct nat_cursor_key {
	__be32 host;
	__be32 daddr;
	__be16 dport;
	__u8 proto;
	__u8 pad;
};

/* nat_cursor: the index (into the host's ports, blocks in order) after
 * the last port given to the destination; full_epoch is nat_epoch + 1 when
 * a search found no port: until the next sweep (which alone frees ports)
 * or plan, the destination's new flows fail at once instead of searching
 * every port again. */
struct nat_cursor {
	__u32 next;
	__u32 full_epoch;
};

/* nat_fail_key: port allocation failures per pool and public IP. */
struct nat_fail_key {
	__u32 pool;
	__be32 addr;
};

enum nat_reason {
	NR_PORT_ALLOC = 0, /* no free port for the destination and no block to take */
	NR_NO_FLOW,        /* tcp non-SYN of an unknown flow */
	NR_CT_FULL,        /* the flow table is full */
	NR_RELEASED,       /* a packet of a released translation (in its 5 s grace) */
	NR_MAX,
};

/* nat_stats: per pool (slot = pool id) or EIP (slot = NAT_MAX_POOLS + id),
 * per CPU. out: private -> outside; in: outside -> private. */
struct nat_stats {
	__u64 pkts_out;
	__u64 bytes_out;
	__u64 pkts_in;
	__u64 bytes_in;
	__u64 new_flows;
	__u64 reasons[NR_MAX];
};

#endif /* XLB_NAT_STRUCTS_H */
