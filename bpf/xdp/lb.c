// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lb.c: xlb's XDP load balancer for tcp and udp listeners (NAT mode).
 *
 * client -> VIP:port: a tracked flow is rewritten to its backend and routed
 * (bpf_fib_lookup); a new one passes access control and the listener's
 * state, gets a backend (persistence, then the scheduler) and two flow
 * entries, one per direction. backend -> client: the reply entry rewrites
 * the source back to VIP:port and sends the frame out of the interface the
 * client's packets came in on, to the hop they came from, whatever the
 * routing table says (symmetric return). A reply without state on a maglev
 * listener is translated statelessly (lb_reply.h). Everything else goes to
 * the kernel.
 */
#include "common.h"
#include "parse.h"
#include "lb_structs.h"
#include "lb_maps.h"
#include "lb_nat.h"
#include "lb_sched.h"
#include "lb_limit.h"
#include "lb_flood.h"
#include "lb_reply.h"
#include "nat.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* fullnat source ports: tried at (hash + i * 7919) mod the span. */
#define FULLNAT_PORT_MIN 1024
#define FULLNAT_PORT_SPAN (65536 - FULLNAT_PORT_MIN)
#define FULLNAT_PROBES 8

static __always_inline struct lstats *lstats_of(__u32 lid)
{
	return bpf_map_lookup_elem(&listener_stats, &lid);
}

static __always_inline int count_drop(__u32 lid, __u32 reason, int verdict)
{
	struct lstats *s = lstats_of(lid);

	if (s && reason < R_MAX)
		s->reasons[reason]++;
	return verdict;
}

static __always_inline struct gstats *gstats(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&global_stats, &zero);
}

/* tcp_flags returns the flags byte of a tcp packet (0 for udp). */
static __always_inline __u8 tcp_flags(struct packet *pkt, void *end)
{
	struct tcphdr *th = pkt->l4;

	if (pkt->l4_proto != IPPROTO_TCP || (void *)(th + 1) > end)
		return 0;
	return ((__u8 *)th)[13];
}

/* track updates a flow entry with a packet of its direction. */
static __always_inline void track(struct flow *f, __u8 flags, __u64 now)
{
	__u32 ff = f->flags;

	f->last_seen = now;
	if (flags & TCP_FLAG_RST)
		ff |= FF_RST;
	if (flags & TCP_FLAG_FIN)
		ff |= FF_FIN;
	if ((flags & TCP_FLAG_ACK) && !(flags & TCP_FLAG_SYN))
		ff |= FF_ESTABLISHED;
	if (ff != f->flags)
		f->flags = ff;
}

/* forward sends a packet of a tracked flow on. */
static __always_inline int forward(struct xdp_md *ctx, struct packet *pkt, struct flow *f, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *iph = pkt->l3;
	__u32 len = ctx->data_end - ctx->data;
	__u32 reason = R_MAX;

	if ((void *)(iph + 1) > end)
		return XDP_DROP;
	if (f->flags & FF_RELEASED)
		return nat_drop(f->listener, NR_RELEASED);
	/* Before track: a policed-away FIN or RST does not close the flow. */
	if (f->bw) {
		__u32 dir = (f->flags & FF_REPLY) ? BW_OUT : BW_IN;
		if (!police(f->bw, dir, len, now))
			return count_bw_drop(f->listener, dir, len);
	}
	track(f, tcp_flags(pkt, end), now);
	if (ttl_expired(iph))
		return XDP_PASS;
	if (rewrite_tuple(pkt, end, f) < 0)
		return XDP_DROP;
	ttl_decrement(iph);
	if (f->flags & (FF_SNAT | FF_EIP))
		return nat_send(ctx, pkt, f, len);

	struct lstats *s = lstats_of(f->listener);
	if (f->flags & FF_REPLY) {
		if (s) {
			s->pkts_out++;
			s->bytes_out += len;
		}
		int v = send_to_hop(pkt, data, end, f);
		return v < 0 ? XDP_DROP : v;
	}
	if (s) {
		s->pkts_in++;
		s->bytes_in += len;
	}
	__u32 bid = f->backend;
	struct bstats *bs = bpf_map_lookup_elem(&backend_stats, &bid);
	if (bs) {
		bs->pkts++;
		bs->bytes += len;
	}
	int v = send_routed(ctx, pkt, data, end, &reason);
	if (v < 0)
		return XDP_DROP;
	if (reason != R_MAX)
		count_drop(f->listener, reason, 0);
	return v;
}

/* acl_allows applies the listener's access list to the client address. */
static __always_inline int acl_allows(const struct listener *l, __u32 lid, __be32 saddr)
{
	if (!(l->flags & (LF_ACL_ALLOW | LF_ACL_DENY)))
		return 1;
	struct acl_key k = {.prefixlen = 64, .listener = lid, .addr = saddr};
	int listed = bpf_map_lookup_elem(&acl, &k) != NULL;
	return (l->flags & LF_ACL_ALLOW) ? listed : !listed;
}

/* new_flow creates the two entries of a new connection and forwards its
 * first packet. */
static __always_inline int new_flow(struct xdp_md *ctx, struct packet *pkt, struct flow_key *k,
				    const struct listener *l, __u32 lid, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 flags = tcp_flags(pkt, end);
	__u32 bid;

	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	if (l->flags & LF_STOPPED)
		return count_drop(lid, R_STOPPED, XDP_DROP);
	if (!acl_allows(l, lid, k->saddr))
		return count_drop(lid, R_ACL, XDP_DROP);
	if (k->proto == IPPROTO_TCP && !(flags & TCP_FLAG_SYN) && !(l->flags & LF_ANY_PKT))
		return count_drop(lid, R_NO_FLOW, XDP_DROP);
	if (pick_backend(l, lid, k, now, &bid) < 0)
		return count_drop(lid, R_NO_BACKEND, XDP_DROP);
	struct backend *b = bpf_map_lookup_elem(&backends, &bid);
	if (!b)
		return count_drop(lid, R_NO_BACKEND, XDP_DROP);
	/* The load balancer's limits, last: a flow refused for another reason
	 * takes no place and no token. */
	__u32 limited = l->flags & LF_LIMITS, slot = l->lb;
	if (limited) {
		__u32 lr = conn_admit(slot, now);
		if (lr != LR_MAX)
			return count_limit_drop(lid, lr);
	}

	struct flow fwd = {
		.last_seen = now,
		.new_saddr = k->saddr, /* fullnat: the gateway address and a port, below */
		.new_daddr = b->addr,
		.new_sport = k->sport,
		.new_dport = b->port,
		.flags = (flags & TCP_FLAG_SYN) ? FF_SYN : 0,
		.backend = bid,
		.listener = lid,
		.bw = l->bw,
	};
	struct flow rev = {
		.last_seen = now,
		.new_saddr = k->daddr,
		.new_daddr = k->saddr,
		.new_sport = k->dport,
		.new_dport = k->sport,
		.flags = FF_REPLY,
		.backend = bid,
		.listener = lid,
		.ifindex = ctx->ingress_ifindex,
		.bw = l->bw,
	};
	__builtin_memcpy(rev.hop_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(rev.own_mac, eth->h_dest, ETH_ALEN);
	struct flow_key rk = {
		.saddr = b->addr,
		.daddr = k->saddr,
		.sport = b->port,
		.dport = k->sport,
		.proto = k->proto,
	};
	if (l->flags & LF_FULLNAT) {
		/* First try: the client's own port on the gateway address. */
		rk.daddr = l->snat_addr;
		fwd.new_saddr = l->snat_addr;
	}

	/* NOEXIST: two CPUs racing on one flow's first packets (a retransmitted
	 * SYN) must not both count it; a full table refuses instead of evicting.
	 * In fullnat the reply key is also the port claim: a port is free for
	 * this backend when no reply entry holds it, so a few candidates are
	 * tried; none free is a counted drop, never a reuse. */
	int claimed = bpf_map_update_elem(&flows, &rk, &rev, BPF_NOEXIST) == 0;
	if (!claimed && (l->flags & LF_FULLNAT)) {
		__u32 h = flow_hash(k);
		rk.daddr = l->snat_addr;
		fwd.new_saddr = l->snat_addr;
		/* Verifier: a constant number of probes. */
		for (__u32 i = 0; i < FULLNAT_PROBES; i++) {
			__be16 port = bpf_htons(FULLNAT_PORT_MIN + (h + i * 7919) % FULLNAT_PORT_SPAN);
			rk.dport = port;
			if (bpf_map_update_elem(&flows, &rk, &rev, BPF_NOEXIST) == 0) {
				fwd.new_sport = port;
				claimed = 1;
				break;
			}
		}
	}
	if (!claimed) {
		if (limited)
			conn_release(slot);
		struct flow *f = bpf_map_lookup_elem(&flows, k);
		if (f)
			return forward(ctx, pkt, f, now);
		struct gstats *g = gstats();
		if (g)
			g->ct_full++;
		return count_drop(lid, R_CT_FULL, XDP_DROP);
	}
	if (bpf_map_update_elem(&flows, k, &fwd, BPF_NOEXIST) < 0) {
		bpf_map_delete_elem(&flows, &rk);
		if (limited)
			conn_release(slot);
		struct flow *f = bpf_map_lookup_elem(&flows, k);
		if (f)
			return forward(ctx, pkt, f, now);
		return count_drop(lid, R_CT_FULL, XDP_DROP);
	}
	__s64 *a = bpf_map_lookup_elem(&active, &bid);
	if (a)
		__sync_fetch_and_add(a, 1);
	struct lstats *s = lstats_of(lid);
	if (s)
		s->new_flows++;
	struct bstats *bs = bpf_map_lookup_elem(&backend_stats, &bid);
	if (bs)
		bs->new_flows++;

	struct flow *f = bpf_map_lookup_elem(&flows, k);
	if (!f)
		return XDP_DROP;
	return forward(ctx, pkt, f, now);
}

/* fragment handles an IPv4 fragment: udp fragments to a VIP with udp
 * listeners are dropped and counted (no flow can be found for the later
 * fragments, and reassembly is not the fast path's job); others pass. */
static __always_inline int fragment(struct packet *pkt, void *end)
{
	struct iphdr *iph = pkt->l3;

	if (!iph || (void *)(iph + 1) > end || iph->protocol != IPPROTO_UDP)
		return XDP_PASS;
	struct svc_key sk = {.vip = iph->daddr, .port = 0, .proto = IPPROTO_UDP};
	__u32 *lid = bpf_map_lookup_elem(&services, &sk);
	if (!lid)
		return XDP_PASS;
	return count_drop(*lid, R_FRAGMENT, XDP_DROP);
}

#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11

/* icmp_inner is the offending packet's header quoted in an ICMP error:
 * the IPv4 header (no options) and the first 8 bytes of tcp or udp. */
struct icmp_inner {
	struct iphdr ip;
	__be16 sport;
	__be16 dport;
	__be16 w2; /* udp: length; tcp: sequence number (high half) */
	__be16 w3; /* udp: checksum; tcp: sequence number (low half) */
};

/* icmp_word_replace keeps the ICMP checksum right when a quoted 16- or
 * 32-bit field changes (ICMPv4 has no pseudo header). */
static __always_inline void icmp_quote_replace4(__sum16 *icsum, __be32 *field, __be32 new)
{
	csum_replace4(icsum, *field, new);
	*field = new;
}

static __always_inline void icmp_quote_replace2(__sum16 *icsum, __be16 *field, __be16 new)
{
	csum_replace2(icsum, *field, new);
	*field = new;
}

/* icmp_error translates an ICMP error (unreachable, fragmentation needed,
 * time exceeded) about a tracked flow, so path MTU discovery works through
 * the NAT:
 *  - quoting a reply we sent from VIP:port (reported to the VIP): the
 *    backend sent it, so the quote gets the backend's address and port and
 *    the error goes to the backend;
 *  - quoting a packet we forwarded to a backend (reported to the client):
 *    the client sent it to VIP:port, so the quote says so and the error
 *    goes to the client by the flow's recorded hop. */
static __always_inline int icmp_error(struct xdp_md *ctx, struct packet *pkt, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *iph = pkt->l3;
	struct icmp_hdr *icmph = pkt->l4;
	__u32 reason = R_MAX;

	/* Verifier: the outer headers, then the whole quote, against data_end. */
	if ((void *)(iph + 1) > end || (void *)(icmph + 1) > end)
		return XDP_PASS;
	if (icmph->type != ICMP_DEST_UNREACH && icmph->type != ICMP_TIME_EXCEEDED)
		return XDP_PASS;
	struct icmp_inner *in = (void *)(icmph + 1);
	if ((void *)(in + 1) > end)
		return XDP_PASS;
	if (in->ip.ihl != 5 || (in->ip.protocol != IPPROTO_TCP && in->ip.protocol != IPPROTO_UDP))
		return XDP_PASS;

	/* The quoted packet's reverse is the flow entry of the other direction. */
	struct flow_key k = {
		.saddr = in->ip.daddr,
		.daddr = in->ip.saddr,
		.sport = in->dport,
		.dport = in->sport,
		.proto = in->ip.protocol,
	};
	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	if (!f)
		return XDP_PASS;
	if (ttl_expired(iph))
		return XDP_PASS;

	__sum16 *icsum = &icmph->checksum;
	int udp = in->ip.protocol == IPPROTO_UDP;
	if (!(f->flags & FF_REPLY)) {
		/* The quote is our reply (VIP -> client); the backend sent it,
		 * to the client (nat) or to our address and port (fullnat). */
		__be32 to = f->new_daddr;
		if (udp && in->w3) {
			__sum16 uc = in->w3;
			csum_replace4(&uc, in->ip.saddr, to);
			csum_replace2(&uc, in->sport, f->new_dport);
			csum_replace4(&uc, in->ip.daddr, f->new_saddr);
			csum_replace2(&uc, in->dport, f->new_sport);
			icmp_quote_replace2(icsum, &in->w3, uc);
		}
		__sum16 ic = in->ip.check;
		csum_replace4(&ic, in->ip.saddr, to);
		csum_replace4(&ic, in->ip.daddr, f->new_saddr);
		icmp_quote_replace2(icsum, &in->ip.check, ic);
		icmp_quote_replace4(icsum, &in->ip.saddr, to);
		icmp_quote_replace2(icsum, &in->sport, f->new_dport);
		icmp_quote_replace4(icsum, &in->ip.daddr, f->new_saddr);
		icmp_quote_replace2(icsum, &in->dport, f->new_sport);
		csum_replace4(&iph->check, iph->daddr, to);
		iph->daddr = to;
		ttl_decrement(iph);
		struct gstats *g = gstats();
		if (g)
			g->icmp_translated++;
		int v = send_routed(ctx, pkt, data, end, &reason);
		return v < 0 ? XDP_DROP : v;
	}
	/* The quote is a packet we forwarded (client, or our address in
	 * fullnat -> backend); the client sent it to VIP:port. */
	__be32 vip = f->new_saddr, client = f->new_daddr;
	if (udp && in->w3) {
		__sum16 uc = in->w3;
		csum_replace4(&uc, in->ip.daddr, vip);
		csum_replace2(&uc, in->dport, f->new_sport);
		csum_replace4(&uc, in->ip.saddr, client);
		csum_replace2(&uc, in->sport, f->new_dport);
		icmp_quote_replace2(icsum, &in->w3, uc);
	}
	__sum16 ic = in->ip.check;
	csum_replace4(&ic, in->ip.daddr, vip);
	csum_replace4(&ic, in->ip.saddr, client);
	icmp_quote_replace2(icsum, &in->ip.check, ic);
	icmp_quote_replace4(icsum, &in->ip.daddr, vip);
	icmp_quote_replace2(icsum, &in->dport, f->new_sport);
	icmp_quote_replace4(icsum, &in->ip.saddr, client);
	icmp_quote_replace2(icsum, &in->sport, f->new_dport);
	if (iph->daddr != client) {
		csum_replace4(&iph->check, iph->daddr, client);
		iph->daddr = client;
	}
	ttl_decrement(iph);
	struct gstats *g = gstats();
	if (g)
		g->icmp_translated++;
	int v = send_to_hop(pkt, data, end, f);
	return v < 0 ? XDP_DROP : v;
}

SEC("xdp")
int xlb_lb(struct xdp_md *ctx)
{
	void *end = (void *)(long)ctx->data_end;
	struct packet pkt;
	enum parse_verdict v = parse_packet(ctx, &pkt);
	struct gstats *g;

	if (v == PARSE_FRAGMENT && pkt.l3_proto == bpf_htons(ETH_P_IP) && pkt.vlans == 0)
		return fragment(&pkt, end);
	if (v != PARSE_OK) {
		if (v != PARSE_UNSUPPORTED && (g = gstats()))
			g->parse_fail++;
		return XDP_PASS;
	}
	/* IPv4 tcp, udp, ICMP echo (translated by snat pools and EIPs) and
	 * ICMP errors without VLAN tags; the kernel handles the rest. */
	if (pkt.l3_proto != bpf_htons(ETH_P_IP) || pkt.vlans)
		goto pass;
	if (flood_check(ctx, &pkt, end) == XDP_DROP)
		return XDP_DROP;
	if (pkt.l4_proto == IPPROTO_ICMP) {
		struct icmp_hdr *ih = pkt.l4;
		if ((void *)(ih + 1) > end)
			return XDP_DROP;
		if (ih->type != ICMP_ECHO && ih->type != ICMP_ECHOREPLY)
			return icmp_error(ctx, &pkt, bpf_ktime_get_ns());
	} else if (pkt.l4_proto != IPPROTO_TCP && pkt.l4_proto != IPPROTO_UDP) {
		goto pass;
	}

	struct iphdr *iph = pkt.l3;
	if ((void *)(iph + 1) > end)
		return XDP_DROP;
	struct flow_key k = {
		.saddr = iph->saddr,
		.daddr = iph->daddr,
		.sport = pkt.sport,
		.dport = pkt.dport,
		.proto = pkt.l4_proto,
	};
	__u64 now = bpf_ktime_get_ns();

	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	if (f)
		return forward(ctx, &pkt, f, now);

	struct svc_key sk = {.vip = k.daddr, .port = k.dport, .proto = k.proto};
	__u32 *lidp = bpf_map_lookup_elem(&services, &sk);
	if (lidp) {
		__u32 lid = *lidp;
		struct listener *l = bpf_map_lookup_elem(&listeners, &lid);
		if (!l)
			goto pass;
		if (l->flags & LF_PASS) {
			/* http/https: the proxy in userspace serves it, after the ACL. */
			if (!acl_allows(l, lid, k.saddr))
				return count_drop(lid, R_ACL, XDP_DROP);
			return XDP_PASS;
		}
		return new_flow(ctx, &pkt, &k, l, lid, now);
	}

	/* Before the snat pools: a backend may also be one of their sources. */
	int rv = stateless_reply(ctx, &pkt, &k, now);
	if (rv != REPLY_NONE)
		return rv;

	int nv = nat_new_flow(ctx, &pkt, &k, tcp_flags(&pkt, end), now);
	if (nv == NAT_FORWARD) {
		f = bpf_map_lookup_elem(&flows, &k);
		if (f)
			return forward(ctx, &pkt, f, now);
		if ((g = gstats()))
			g->ct_full++;
		return XDP_DROP;
	}
	if (nv != NAT_NONE)
		return nv;

pass:
	if ((g = gstats()))
		g->passed++;
	return XDP_PASS;
}

/* xlb_pass lets frames through: attached to the lab's veth ends that
 * receive redirected frames (a veth drops redirected frames unless its
 * peer has an XDP program). */
SEC("xdp")
int xlb_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
