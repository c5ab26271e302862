/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_reply.h: a backend's reply that reaches this node without the flow's
 * state. Behind ECMP routers a flow's two directions may cross different
 * nodes (the backend side's router hashes the reply's own 5-tuple), and a
 * flow that moved here after its node died has no reply entry until its
 * next client packet. On a maglev NAT listener every node translates a
 * reply the same way (the backend keeps the client's address and port), so
 * no state is needed: source backend:port becomes the listener's VIP:port
 * and the FIB routes the reply to the client. Userspace writes `replies`
 * only for a backend address:port that one such listener uses: one that
 * serves two VIPs is ambiguous and needs the state.
 */
#ifndef XLB_LB_REPLY_H
#define XLB_LB_REPLY_H

#include "lb_structs.h"
#include "lb_maps.h"
#include "lb_nat.h"
#include "lb_limit.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * LB_MAX_BACKENDS);
	__type(key, struct reply_key);
	__type(value, __u32); /* listener id */
} replies SEC(".maps");

/* stateless_replies: per listener, per CPU; a map of its own so that the
 * layout of the older counters (and their pins) stays as it was. */
PERCPU_ARRAY_MAP(stateless_replies, __u64, LB_MAX_LISTENERS);

#define REPLY_NONE -1 /* not a reply of a maglev NAT listener */

/* stateless_reply translates and sends such a reply; REPLY_NONE when the
 * packet is not one, else the verdict. */
static __always_inline int stateless_reply(struct xdp_md *ctx, struct packet *pkt, const struct flow_key *k,
					   __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *iph = pkt->l3;
	__u32 len = ctx->data_end - ctx->data;

	if (k->proto != IPPROTO_TCP && k->proto != IPPROTO_UDP)
		return REPLY_NONE;
	struct reply_key rk = {.addr = k->saddr, .port = k->sport, .proto = k->proto};
	__u32 *lidp = bpf_map_lookup_elem(&replies, &rk);
	if (!lidp)
		return REPLY_NONE;
	__u32 lid = *lidp;
	struct listener *l = bpf_map_lookup_elem(&listeners, &lid);
	/* The entry may outlive its listener by one configuration change. */
	if (!l || l->sched != SCHED_HASH || (l->flags & (LF_PASS | LF_FULLNAT)) || l->proto != k->proto)
		return REPLY_NONE;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || (void *)(iph + 1) > end)
		return XDP_DROP;
	if (ttl_expired(iph))
		return XDP_PASS;
	/* The route first, for the rewritten packet (only its source changes):
	 * a reply to this node itself (its health checks, its own connections
	 * to the backend) is no client's and goes to the kernel untouched. */
	struct bpf_fib_lookup fib = {};
	long rc = fib_route(ctx, iph, l->vip, &fib);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return REPLY_NONE;
	if (l->bw && !police(l->bw, BW_OUT, len, now))
		return count_bw_drop(lid, BW_OUT, len);
	struct flow f = {
		.new_saddr = l->vip,
		.new_daddr = k->daddr,
		.new_sport = l->port,
		.new_dport = k->dport,
	};
	if (rewrite_tuple(pkt, end, &f) < 0)
		return XDP_DROP;
	ttl_decrement(iph);
	__u64 *n = bpf_map_lookup_elem(&stateless_replies, &lid);
	if (n)
		(*n)++;
	struct lstats *s = bpf_map_lookup_elem(&listener_stats, &lid);
	if (s) {
		s->pkts_out++;
		s->bytes_out += len;
	}
	/* Verifier: the frame again, after the rewrite's helpers. With an
	 * unresolved neighbour the kernel resolves it (and drops this reply if
	 * it refuses the VIP as a source from outside: the node's neighbour
	 * towards its router is normally resolved by the routing daemon's own
	 * traffic); the next packets come here. */
	__u32 reason = R_MAX;
	int v = send_fib((void *)(long)ctx->data, (void *)(long)ctx->data_end, &fib, rc, &reason);
	if (v < 0)
		return XDP_DROP;
	if (s && reason < R_MAX) /* bounds the index for the verifier */
		s->reasons[reason]++;
	return v;
}

#endif /* XLB_LB_REPLY_H */
