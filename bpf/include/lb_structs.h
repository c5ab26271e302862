/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_structs.h: the keys and values the XDP load balancer shares with
 * userspace (dataplane/xdp generates Go types from them with bpf2go -type).
 * Every struct is padded explicitly so Go and C agree on the layout.
 */
#ifndef XLB_LB_STRUCTS_H
#define XLB_LB_STRUCTS_H

#include "common.h"

#define LB_MAX_LISTENERS 64        /* tcp/udp listeners per node */
#define LB_MAX_BACKENDS 4096       /* backend slots per node */
#define LB_RING_SIZE 65537         /* slots per listener: the maglev table size */
#define LB_WLC_MAX 64              /* wlc candidates scanned per new flow */

/* svc_key finds a listener by VIP, port and protocol. A key with port 0
 * marks a VIP that has UDP listeners (for fragment drops). */
struct svc_key {
	__be32 vip;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

/* Listener flags. */
#define LF_STOPPED (1U << 0)   /* drop new flows (counted) */
#define LF_PASS (1U << 1)      /* http/https: access control, then the kernel */
#define LF_ACL_ALLOW (1U << 2) /* only sources in the listener's ACL */
#define LF_ACL_DENY (1U << 3)  /* every source but those in the ACL */
#define LF_FULLNAT (1U << 4)   /* rewrite the source too (snat_addr) */
#define LF_ANY_PKT (1U << 5)   /* maglev: a non-SYN packet of an unknown flow creates it */
#define LF_LIMITS (1U << 6)    /* new flows pass the load balancer's limits (slot: listener.lb) */

/* Schedulers: what a new flow's backend comes from. */
enum lb_sched {
	SCHED_RING = 0, /* rr/wrr: a per-CPU counter walks the listener's ring */
	SCHED_HASH = 1, /* maglev: the flow hash indexes the ring */
	SCHED_WLC = 2,  /* least active/weight over the wlc candidates */
};

struct listener {
	__u32 flags;
	__u32 sched;
	__u32 ring_len;      /* ring slots in use (0: no eligible backend) */
	__u32 wlc_len;       /* wlc candidates in use */
	__u64 persist_ns;    /* source-IP persistence timeout; 0 off */
	__be32 vip;
	__be16 port;
	__u8 proto;
	__u8 bw;             /* bandwidth bucket pair + 1 its flows are policed by; 0: none */
	__be32 snat_addr;    /* fullnat source address */
	__u32 lb;            /* the load balancer's limit slot (LF_LIMITS) */
	__u32 wlc[LB_WLC_MAX];   /* backend ids */
	__u16 wlc_w[LB_WLC_MAX]; /* their weights in this listener's group */
};

/* backend is one backend server (address and port) slot. Weights belong
 * to a listener's group, not to the server (see listener.wlc_w). */
struct backend {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

/* flow_key is an IPv4 5-tuple as it appears in the packet. */
struct flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* Flow entry flags. */
#define FF_REPLY (1U << 0)       /* the backend-to-client direction */
#define FF_ESTABLISHED (1U << 1) /* tcp: both directions seen past the SYN */
#define FF_FIN (1U << 2)         /* tcp: a FIN passed this direction */
#define FF_RST (1U << 3)         /* tcp: a RST passed */
#define FF_SYN (1U << 4)         /* tcp: the flow started with a SYN */
#define FF_SNAT (1U << 5)        /* a snat pool's translation; listener: the pool id */
#define FF_EIP (1U << 6)         /* an EIP's translation; listener: NAT_MAX_POOLS + EIP id */
#define FF_EGRESS (1U << 7)      /* initiator's direction: leave by egress slot `backend` */
#define FF_RELEASED (1U << 8)    /* snat reply entry kept 5 s after release: the port
				  * is not reused for this destination; packets dropped */
#define FF_INBOUND (1U << 9)     /* EIP: the outside started it (the initiator goes in) */

/* flow is one direction of a tracked connection. Each connection has two
 * entries: the client's direction (key: client -> VIP) and the reply
 * direction (key: backend -> client, or backend -> snat address in
 * fullnat). Each translates its packets to the other side's view. */
struct flow {
	__u64 last_seen;     /* bpf_ktime_get_ns of the last packet */
	__be32 new_saddr;    /* rewritten source (reply: VIP; fullnat fwd: snat) */
	__be32 new_daddr;    /* rewritten destination (fwd: backend; reply: client) */
	__be16 new_sport;
	__be16 new_dport;
	__u32 flags;
	__u32 backend;       /* backend id */
	__u32 listener;      /* listener id */
	__u32 ifindex;       /* reply: the client side's ingress interface */
	__u8 hop_mac[6];     /* reply: the client-side next hop (the frame's source) */
	__u8 own_mac[6];     /* reply: our MAC on that interface */
	__u32 bw;            /* the listener's bandwidth bucket pair + 1 (0: unpoliced) */
};

/* reply_key finds the maglev NAT listener a backend's reply belongs to by
 * its source, for replies without state (lb_reply.h). */
struct reply_key {
	__be32 addr; /* the backend */
	__be16 port;
	__u8 proto;
	__u8 pad;
};

/* persist_key/persist_val: source-IP persistence. */
struct persist_key {
	__u32 listener;
	__be32 client;
};

struct persist_val {
	__u64 last_seen;
	__u32 backend;
	__u32 pad;
};

/* acl_key is an LPM trie key: the listener id is part of the prefix, so
 * one trie serves every listener (prefixlen = 32 + the CIDR's length). */
struct acl_key {
	__u32 prefixlen;
	__u32 listener;
	__be32 addr;
};

/* Drop and pass reasons counted per listener (index into the counters). */
enum lb_reason {
	R_ACL = 0,
	R_STOPPED,
	R_NO_BACKEND,
	R_CT_FULL,       /* the flow table is full: a new flow is dropped, none evicted */
	R_FRAGMENT,      /* udp fragment to a VIP */
	R_NO_FLOW,       /* tcp non-SYN of an unknown flow */
	R_FIB_FAIL,      /* no route to the backend */
	R_NO_NEIGH,      /* neighbour unresolved: passed to the kernel once */
	R_MAX,
};

/* lstats: per listener, per CPU. */
struct lstats {
	__u64 pkts_in;   /* client to backend */
	__u64 bytes_in;
	__u64 pkts_out;  /* backend to client */
	__u64 bytes_out;
	__u64 new_flows;
	__u64 reasons[R_MAX];
};

/* Limits. A load balancer's limit slot has its configuration (lb_limit,
 * written by userspace), the program's state (lb_conns, atomics) and the
 * sweeper's count of closed connections (lb_closed, written by userspace
 * only): open = opened - closed, with no map value written by both sides. */
#define LB_MAX_LBS LB_MAX_LISTENERS

struct lb_limit {
	__u64 max_conns;     /* 0: unlimited */
	__u64 conn_interval; /* ns between new connections at the rate; 0: unlimited */
};

struct lb_conns {
	__s64 opened;        /* connections admitted (less those that failed to start) */
	__u64 tat;           /* new connections: the GCRA's theoretical arrival time */
};

/* bw_bucket is one direction's policer (GCRA on bytes): a packet of len
 * bytes costs len * ns_per_byte16 >> 16 ns of schedule and passes while the
 * schedule runs at most burst ns ahead of now. One pair per listener
 * ([2 * listener id + dir]): at its peak, or at its part of what its load
 * balancer's peaks leave, which userspace splits among the listeners
 * without a peak that are sending and rewrites as they start and stop. */
#define BW_PAIRS LB_MAX_LISTENERS
#define BW_IN 0  /* client to backend */
#define BW_OUT 1 /* backend to client */

struct bw_bucket {
	__u64 tat;
	__u64 ns_per_byte16; /* 0: unlimited */
	__u64 burst;
};

/* Limit drops per listener (index into limstats.reasons). */
enum lb_limit_reason {
	LR_MAX_CONNS = 0,
	LR_NEW_CONNS,
	LR_MAX,
};

/* limstats: per listener, per CPU. */
struct limstats {
	__u64 reasons[LR_MAX];
	__u64 bw_pkts[2];    /* policed away, by direction */
	__u64 bw_bytes[2];
};

/* bstats: per backend, per CPU. */
struct bstats {
	__u64 pkts;
	__u64 bytes;
	__u64 new_flows;
};

/* gstats: node-wide, per CPU. */
struct gstats {
	__u64 parse_fail;    /* malformed or truncated frames (passed) */
	__u64 passed;        /* not for a listener: to the kernel */
	__u64 icmp_translated;
	__u64 ct_full;
};

#endif /* XLB_LB_STRUCTS_H */
