/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nat.h: the first packet of a translated connection: a private host of a
 * snat pool reaching out (a port of its blocks, per destination), and an
 * elastic IP in either direction (1:1, ports kept). Each creates the two
 * entries of the load balancer's flow table, initiator's direction first
 * routed (bpf_fib_lookup with the public source, or the pool's or EIP's
 * uplink), the responder's sent back to the hop the initiator's packet
 * came from (symmetric return). Later packets are tracked flows (lb.c).
 *
 * Helpers return an XDP verdict, or NAT_NONE (not NAT traffic: the caller
 * passes it) or NAT_FORWARD (the entries exist: the caller forwards).
 */
#ifndef XLB_NAT_H
#define XLB_NAT_H

#include "lb_maps.h"
#include "lb_nat.h"
#include "nat_maps.h"

#define NAT_NONE -2
#define NAT_FORWARD -3

#define NAT_RELEASE_GRACE_NS (5ULL * 1000000000ULL)

static __always_inline struct nat_stats *nat_stats_of(__u32 slot)
{
	return bpf_map_lookup_elem(&nat_counters, &slot);
}

static __always_inline int nat_drop(__u32 slot, __u32 reason)
{
	struct nat_stats *s = nat_stats_of(slot);

	if (s && reason < NR_MAX)
		s->reasons[reason]++;
	return XDP_DROP;
}

static __always_inline __u32 nat_proto_index(__u8 proto)
{
	if (proto == IPPROTO_TCP)
		return NP_TCP;
	if (proto == IPPROTO_UDP)
		return NP_UDP;
	return NP_ICMP;
}

/* nat_destination_ok asks the FIB whether the kernel would forward the
 * packet with src as its source: a local destination (the gateway itself)
 * or an unroutable one is left to the kernel, untranslated. With a fixed
 * uplink only a local destination is. */
static __always_inline int nat_destination_ok(struct xdp_md *ctx, struct iphdr *iph, __be32 src, int fixed)
{
	struct bpf_fib_lookup fib = {};
	long rc = fib_route(ctx, iph, src, &fib);

	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return 1;
	return fixed && rc != BPF_FIB_LKUP_RET_NOT_FWDED;
}

/* nat_reply_entry fills the responder's entry: its packets (key rk) get
 * the initiator's view back and leave to the hop the initiator's packet
 * came from. */
static __always_inline void nat_reply_entry(struct flow *rev, struct xdp_md *ctx, struct ethhdr *eth,
					    const struct flow_key *k, __u32 flags, __u32 slot, __u64 now)
{
	rev->last_seen = now;
	rev->new_saddr = k->daddr;
	rev->new_daddr = k->saddr;
	rev->new_sport = k->dport;
	rev->new_dport = k->sport;
	rev->flags = FF_REPLY | flags;
	rev->listener = slot;
	rev->ifindex = ctx->ingress_ifindex;
	__builtin_memcpy(rev->hop_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(rev->own_mac, eth->h_dest, ETH_ALEN);
}

/* nat_insert inserts the initiator's entry once the responder's (the
 * claim) is in. NOEXIST on both: two CPUs racing on one flow's first
 * packets must not both create it, and a full table refuses rather than
 * evicts. */
static __always_inline int nat_insert(struct flow_key *k, struct flow *fwd, struct flow_key *rk, __u32 slot)
{
	if (bpf_map_update_elem(&flows, k, fwd, BPF_NOEXIST) < 0) {
		bpf_map_delete_elem(&flows, rk);
		if (bpf_map_lookup_elem(&flows, k))
			return NAT_FORWARD; /* another CPU created it */
		return nat_drop(slot, NR_CT_FULL);
	}
	struct nat_stats *s = nat_stats_of(slot);
	if (s)
		s->new_flows++;
	return NAT_FORWARD;
}

/* nat_probe is the state of a port search (bpf_loop's context). */
struct nat_probe {
	struct nat_block blk[NAT_HOST_BLOCKS];
	__u32 nblk;
	__u32 total; /* ports in blk */
	__u32 start; /* index of the first port tried */
	__u32 found; /* index + 1 of the port claimed; 0: none */
	struct flow_key rk;
	struct flow rev;
};

/* nat_scratch holds the port search of the packet being processed: too
 * big for the 512-byte stack next to the rest of the program. One per CPU,
 * and an XDP program runs to completion on its CPU, so no one shares it. */
PERCPU_ARRAY_MAP(nat_scratch, struct nat_probe, 1);

/* nat_probe_port tries the i-th port after start: it is free for this
 * destination when no reply entry holds it, and inserting the reply entry
 * with NOEXIST claims it atomically. A bpf_loop callback: the verifier
 * checks it once, whatever the number of iterations (up to every port the
 * host holds), which an unrolled loop could not afford. */
static long nat_probe_port(__u64 i, void *data)
{
	struct nat_probe *p = percpu_slot(&nat_scratch, 0);

	if (!p || p->total == 0)
		return 1;
	__u32 off = (p->start + (__u32)i) % p->total;
	__u32 idx = off;
	/* Verifier: a constant bound over the blocks; nblk ends it early. */
	for (__u32 b = 0; b < NAT_HOST_BLOCKS; b++) {
		if (b >= p->nblk)
			break;
		__u32 size = p->blk[b].size;
		if (off >= size) {
			off -= size;
			continue;
		}
		__be16 port = bpf_htons((__u16)(p->blk[b].start + off));
		p->rk.daddr = p->blk[b].addr;
		p->rk.dport = port;
		if (p->rk.proto == IPPROTO_ICMP)
			p->rk.sport = port; /* an echo id is both "ports" */
		if (bpf_map_update_elem(&flows, &p->rk, &p->rev, BPF_NOEXIST) == 0) {
			p->found = idx + 1;
			return 1;
		}
		return 0;
	}
	return 0;
}

/* nat_take_spare takes one of the pool's spare blocks for the host and
 * appends it to the host's blocks; 0 on success. */
static __always_inline int nat_take_spare(struct nat_host *h, __u32 pid, __u32 pidx, __be32 host,
					  struct nat_block *out)
{
	__u32 base = (pid * NAT_PROTOS + pidx) * NAT_SPARES;

	/* Verifier: NAT_SPARES is a small constant; unrolled. */
#pragma unroll
	for (__u32 i = 0; i < NAT_SPARES; i++) {
		__u32 key = base + i;
		struct nat_spare *s = bpf_map_lookup_elem(&nat_spares, &key);
		if (!s || s->b.size == 0 || s->taken)
			continue;
		if (__sync_val_compare_and_swap(&s->taken, 0, host) != 0)
			continue; /* another CPU took it first */
		*out = s->b;
		if (out->size == 0)
			return -1; /* emptied under us by a sweep: no block */
		__u32 slot = __sync_fetch_and_add(&h->n, 1);
		if (slot >= NAT_HOST_BLOCKS)
			return -1; /* cannot happen: max_blocks <= NAT_HOST_BLOCKS */
		h->blocks[slot] = *out;
		return 0;
	}
	return -1;
}

static __always_inline int nat_port_failure(__u32 pid, const struct nat_pool *pool, struct nat_host *h)
{
	struct nat_fail_key fk = {.pool = pid, .addr = pool->fail_addr};

	if (h && h->n > 0)
		fk.addr = h->blocks[0].addr;
	__u64 *c = bpf_map_lookup_elem(&nat_failures, &fk);
	if (c)
		__sync_fetch_and_add(c, 1);
	return nat_drop(pid, NR_PORT_ALLOC);
}

/* snat_new translates a private host's new connection: a port of its
 * blocks that no flow to this destination holds (the search starts after
 * the last port given to the destination), else a spare block when the
 * host is under its share, else a counted drop: never a reuse. */
static __always_inline int snat_new(struct xdp_md *ctx, struct packet *pkt, struct flow_key *k, __u32 pid,
				    __u8 tflags, __u64 now)
{
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *iph = pkt->l3;

	if ((void *)(eth + 1) > end || (void *)(iph + 1) > end)
		return XDP_DROP;
	struct nat_pool *pool = bpf_map_lookup_elem(&nat_pools, &pid);
	if (!pool)
		return NAT_NONE;
	if (!nat_destination_ok(ctx, iph, pool->fail_addr, pool->egress != 0))
		return NAT_NONE;
	if (k->proto == IPPROTO_TCP && !(tflags & TCP_FLAG_SYN))
		return nat_drop(pid, NR_NO_FLOW);

	__u32 pidx = nat_proto_index(k->proto);
	struct nat_host_key hk = {.addr = k->saddr, .proto = pidx};
	struct nat_host *h = bpf_map_lookup_elem(&nat_hosts, &hk);
	if (!h)
		return nat_port_failure(pid, pool, h);

	struct nat_probe *pp = percpu_slot(&nat_scratch, 0);
	if (!pp)
		return XDP_DROP;
	__builtin_memset(&pp->rk, 0, sizeof(pp->rk));
	__builtin_memset(&pp->rev, 0, sizeof(pp->rev));
	pp->rk.saddr = k->daddr;
	pp->rk.sport = k->dport;
	pp->rk.proto = k->proto;
	nat_reply_entry(&pp->rev, ctx, eth, k, FF_SNAT, pid, now);
	__u32 n = h->n;
	if (n > NAT_HOST_BLOCKS)
		n = NAT_HOST_BLOCKS;
	pp->nblk = n;
	pp->total = 0;
	pp->start = 0;
	pp->found = 0;
	/* Verifier: a constant bound; copies the blocks the host holds now. */
	for (__u32 b = 0; b < NAT_HOST_BLOCKS; b++) {
		if (b >= n)
			break;
		pp->blk[b] = h->blocks[b];
		pp->total += h->blocks[b].size;
	}
	struct nat_cursor_key ck = {.host = k->saddr, .daddr = k->daddr, .dport = k->dport, .proto = k->proto};
	/* A destination's first search starts at a random port (RFC 6056:
	 * ports an off-path host cannot guess), later ones after the last
	 * port it got, so its ports are handed out in order. */
	__u32 zero = 0;
	__u32 *ep = bpf_map_lookup_elem(&nat_epoch, &zero);
	__u32 epoch = ep ? *ep + 1 : 1;
	struct nat_cursor *cur = bpf_map_lookup_elem(&nat_cursor, &ck);
	if (cur && cur->full_epoch == epoch)
		return nat_port_failure(pid, pool, h); /* searched in vain since the last sweep */
	pp->start = cur ? cur->next : bpf_get_prandom_u32();
	if (pp->total > 0)
		bpf_loop(pp->total, nat_probe_port, NULL, 0);

	__u32 next = pp->found;
	if (!pp->found) {
		/* Every port of the host's blocks serves this destination: take
		 * a spare block, if the host is under its share. */
		struct nat_block nb;
		if (n >= pool->max_blocks || nat_take_spare(h, pid, pidx, k->saddr, &nb) < 0) {
			struct nat_cursor full = {.next = pp->start, .full_epoch = epoch};
			bpf_map_update_elem(&nat_cursor, &ck, &full, BPF_ANY);
			return nat_port_failure(pid, pool, h);
		}
		__u32 old_total = pp->total;
		pp->blk[0] = nb;
		pp->nblk = 1;
		pp->total = nb.size;
		pp->start = 0;
		if (pp->total > 0)
			bpf_loop(pp->total, nat_probe_port, NULL, 0);
		if (!pp->found)
			return nat_port_failure(pid, pool, h);
		next = old_total + pp->found;
	}
	struct nat_cursor nc = {.next = next};
	bpf_map_update_elem(&nat_cursor, &ck, &nc, BPF_ANY);

	struct flow fwd = {
		.last_seen = now,
		.new_saddr = pp->rk.daddr,
		.new_daddr = k->daddr,
		.new_sport = pp->rk.dport,
		.new_dport = k->proto == IPPROTO_ICMP ? pp->rk.dport : k->dport,
		.flags = FF_SNAT | ((tflags & TCP_FLAG_SYN) ? FF_SYN : 0),
		.listener = pid,
	};
	if (pool->egress) {
		fwd.flags |= FF_EGRESS;
		fwd.backend = pool->egress - 1;
	}
	struct flow_key rk = pp->rk;
	return nat_insert(k, &fwd, &rk, pid);
}

/* eip_new creates an EIP's connection: inbound (to the public address,
 * translated to the private one) or outbound (from the private address).
 * Any packet starts one: the mapping is static, so a connection that
 * outlived its entries (a flushed table) goes on. */
static __always_inline int eip_new(struct xdp_md *ctx, struct packet *pkt, struct flow_key *k, __u32 id,
				   int inbound, __u8 tflags, __u64 now)
{
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *iph = pkt->l3;
	__u32 slot = NAT_MAX_POOLS + id;

	if ((void *)(eth + 1) > end || (void *)(iph + 1) > end)
		return XDP_DROP;
	struct nat_eip *e = bpf_map_lookup_elem(&nat_eips, &id);
	if (!e || e->public_addr == 0)
		return NAT_NONE;
	struct flow fwd = {
		.last_seen = now,
		.new_saddr = k->saddr,
		.new_daddr = k->daddr,
		.new_sport = k->sport,
		.new_dport = k->dport,
		.flags = FF_EIP | ((tflags & TCP_FLAG_SYN) ? FF_SYN : 0),
		.listener = slot,
	};
	struct flow_key rk = {.saddr = k->daddr, .daddr = k->saddr, .sport = k->dport, .dport = k->sport, .proto = k->proto};
	__u32 dir = inbound ? FF_INBOUND : 0;
	fwd.flags |= dir;
	if (inbound) {
		fwd.new_daddr = e->private_addr;
		rk.saddr = e->private_addr;
	} else {
		if (!nat_destination_ok(ctx, iph, e->public_addr, e->egress != 0))
			return NAT_NONE;
		fwd.new_saddr = e->public_addr;
		rk.daddr = e->public_addr;
		if (e->egress) {
			fwd.flags |= FF_EGRESS;
			fwd.backend = e->egress - 1;
		}
	}
	struct flow rev = {};
	nat_reply_entry(&rev, ctx, eth, k, FF_EIP | dir, slot, now);
	if (bpf_map_update_elem(&flows, &rk, &rev, BPF_NOEXIST) < 0) {
		if (bpf_map_lookup_elem(&flows, k))
			return NAT_FORWARD;
		return nat_drop(slot, NR_CT_FULL);
	}
	return nat_insert(k, &fwd, &rk, slot);
}

/* nat_new_flow decides whether a packet that matched no flow and no
 * listener starts a translation. Packets between private hosts, replies
 * (echo replies) and anything else are not translated. */
static __always_inline int nat_new_flow(struct xdp_md *ctx, struct packet *pkt, struct flow_key *k, __u8 tflags,
					__u64 now)
{
	if (k->proto == IPPROTO_ICMP) {
		struct icmp_hdr *ih = pkt->l4;
		void *end = (void *)(long)ctx->data_end;
		if ((void *)(ih + 1) > end)
			return XDP_DROP;
		if (ih->type != ICMP_ECHO)
			return NAT_NONE;
	}
	__u32 zero = 0;
	__u32 *on = bpf_map_lookup_elem(&nat_on, &zero);
	if (!on || !*on)
		return NAT_NONE;
	if (*on & NAT_ON_EIPS) {
		__u32 *eid = bpf_map_lookup_elem(&nat_eip_public, &k->daddr);
		if (eid)
			return eip_new(ctx, pkt, k, *eid, 1, tflags, now);
	}

	struct nat_prefix_key pk = {.prefixlen = 32, .addr = k->saddr};
	struct nat_private *src = bpf_map_lookup_elem(&nat_privnets, &pk);
	if (!src)
		return NAT_NONE;
	pk.addr = k->daddr;
	if (bpf_map_lookup_elem(&nat_privnets, &pk))
		return NAT_NONE; /* private to private: routed as is */
	if (src->kind == NAT_KIND_EIP)
		return eip_new(ctx, pkt, k, src->id, 0, tflags, now);
	if (src->kind == NAT_KIND_POOL)
		return snat_new(ctx, pkt, k, src->id, tflags, now);
	return NAT_NONE;
}

/* nat_send sends a translated packet on: the responder's direction to the
 * recorded hop, the initiator's by its uplink (FF_EGRESS) or the FIB; and
 * counts it. out is private -> outside. */
static __always_inline int nat_send(struct xdp_md *ctx, struct packet *pkt, struct flow *f, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct nat_stats *s = nat_stats_of(f->listener);
	int out = !(f->flags & FF_REPLY) != !!(f->flags & FF_INBOUND);
	__u32 reason = R_MAX;

	if (s) {
		if (out) {
			s->pkts_out++;
			s->bytes_out += len;
		} else {
			s->pkts_in++;
			s->bytes_in += len;
		}
	}
	if (f->flags & FF_REPLY) {
		int v = send_to_hop(pkt, data, end, f);
		return v < 0 ? XDP_DROP : v;
	}
	if (f->flags & FF_EGRESS) {
		__u32 slot = f->backend;
		struct nat_egress *eg = bpf_map_lookup_elem(&nat_uplinks, &slot);
		struct ethhdr *eth = data;
		if ((void *)(eth + 1) > end)
			return XDP_DROP;
		if (eg && eg->ifindex) {
			__builtin_memcpy(eth->h_dest, eg->dmac, ETH_ALEN);
			__builtin_memcpy(eth->h_source, eg->smac, ETH_ALEN);
			return bpf_redirect(eg->ifindex, 0);
		}
	}
	int v = send_routed(ctx, pkt, data, end, &reason);
	return v < 0 ? XDP_DROP : v;
}

#endif /* XLB_NAT_H */
