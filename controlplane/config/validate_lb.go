package config

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

const (
	maxTags          = 10
	maxTagKeyLen     = 128
	maxTagValueLen   = 256
	maxListeners     = 50
	maxBlackholeHold = 24 * time.Hour
)

func (v *validator) loadBalancers(list []*xlbv1.LoadBalancer) {
	seen := map[string]string{}
	for i, lb := range list {
		p := index("load_balancers", i)
		v.checkID(field(p, "id"), lb.Id, seen)
		v.vip(p, lb.Address)
		v.tags(field(p, "tags"), lb.Tags)
		v.limits(p, lb)
		v.servers(field(p, "servers"), lb.Servers, defaultPool)
		lp := field(p, "listeners")
		if n := len(lb.Listeners); n > maxListeners {
			v.add(lp, "%d listeners; a load balancer has at most %d", n, maxListeners)
		}
		for j, l := range lb.Listeners {
			v.listener(index(lp, j), l, lb)
		}
		v.listenerPorts(lp, lb.Listeners)
		v.bandwidth(p, lb)
		if f := lb.FloodProtection; f != nil {
			v.flood(field(p, "flood_protection"), f)
			if a, err := netip.ParseAddr(lb.Address); err == nil && !a.Unmap().Is4() && (f.Enabled == nil || f.GetEnabled()) {
				v.add(field(p, "flood_protection"), "flood protection runs in XDP, which serves IPv4 VIPs; %s is IPv6", lb.Address)
			}
		}
	}
}

func (v *validator) vip(p, addr string) {
	ap := field(p, "address")
	if addr == "" {
		v.add(ap, "required: the load balancer's VIP")
		return
	}
	a, err := parseIP(addr)
	if err != nil {
		v.add(ap, "%v", err)
		return
	}
	if a.IsUnspecified() || a.IsMulticast() || a.Is4() && a.As4() == [4]byte{255, 255, 255, 255} {
		v.add(ap, "%s cannot be a VIP: it is not a unicast address", a)
		return
	}
	if first, dup := v.vips[a]; dup {
		v.add(ap, "%s is already used by %s", a, first)
		return
	}
	v.vips[a] = p
}

func (v *validator) tags(p string, tags map[string]string) {
	if len(tags) > maxTags {
		v.add(p, "%d tags; at most %d", len(tags), maxTags)
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case strings.TrimSpace(k) == "":
			v.add(key(p, k), "a tag key must not be empty")
		case len(k) > maxTagKeyLen:
			v.add(key(p, k), "the key is %d characters; at most %d", len(k), maxTagKeyLen)
		}
		if len(tags[k]) > maxTagValueLen {
			v.add(key(p, k), "the value is %d characters; at most %d", len(tags[k]), maxTagValueLen)
		}
	}
}

func (v *validator) limits(p string, lb *xlbv1.LoadBalancer) {
	if lb.Spec != "" {
		if _, ok := Preset(lb.Spec); !ok {
			v.add(field(p, "spec"), "%q is not a known spec: one of %s", lb.Spec, strings.Join(PresetNames(), ", "))
		}
		if lb.Limits != nil {
			v.add(field(p, "limits"), "set either spec or limits, not both")
		}
	}
}

// listenerPorts checks that no two listeners share a frontend port in the
// same transport: tcp, http and https share the TCP ports; udp and https
// with http3 share the UDP ports.
func (v *validator) listenerPorts(p string, list []*xlbv1.Listener) {
	tcpPorts, udpPorts := map[uint32]int{}, map[uint32]int{}
	for j, l := range list {
		if l.Port < 1 || l.Port > 65535 {
			continue
		}
		pp := field(index(p, j), "port")
		if l.Protocol == xlbv1.Protocol_tcp || isWeb(l.Protocol) {
			if first, dup := tcpPorts[l.Port]; dup {
				v.add(pp, "%d is already used by listeners[%d]", l.Port, first)
			} else {
				tcpPorts[l.Port] = j
			}
		}
		if l.Protocol == xlbv1.Protocol_udp || l.Protocol == xlbv1.Protocol_https && l.Http3 {
			if first, dup := udpPorts[l.Port]; dup {
				v.add(pp, "%d/udp is already used by listeners[%d] (udp and https with http3 share the UDP ports)", l.Port, first)
			} else {
				udpPorts[l.Port] = j
			}
		}
	}
}

// bandwidth checks the listeners' peak reservations against the total.
func (v *validator) bandwidth(p string, lb *xlbv1.LoadBalancer) {
	total := uint64(lb.BandwidthMbps)
	if total == 0 {
		return
	}
	var sum uint64
	for j, l := range lb.Listeners {
		bw := uint64(l.BandwidthMbps)
		sum += bw
		if bw > total {
			v.add(field(index(field(p, "listeners"), j), "bandwidth_mbps"),
				"%d Mbit/s exceeds the load balancer's bandwidth_mbps %d", bw, total)
		}
	}
	if sum > total {
		v.add(field(p, "bandwidth_mbps"), "sum of listener peaks %d Mbit/s exceeds the load balancer's %d", sum, total)
	}
}

func (v *validator) flood(p string, f *xlbv1.FloodProtection) {
	for _, r := range []struct {
		name string
		rate *xlbv1.FloodRate
	}{{"syn", f.Syn}, {"udp", f.Udp}, {"icmp", f.Icmp}} {
		if r.rate != nil && r.rate.PerSourcePps > 0 && r.rate.TotalPps > 0 && r.rate.PerSourcePps > r.rate.TotalPps {
			v.add(field(p, r.name+".per_source_pps"), "%d exceeds total_pps %d", r.rate.PerSourcePps, r.rate.TotalPps)
		}
	}
	if f.BlackholePps > 0 && f.CleanPps > 0 && f.BlackholePps < f.CleanPps {
		v.add(field(p, "blackhole_pps"), "%d is below clean_pps %d: blackholing starts at or above the cleaning threshold", f.BlackholePps, f.CleanPps)
	}
	if f.BlackholeBps > 0 && f.CleanBps > 0 && f.BlackholeBps < f.CleanBps {
		v.add(field(p, "blackhole_bps"), "%d is below clean_bps %d: blackholing starts at or above the cleaning threshold", f.BlackholeBps, f.CleanBps)
	}
	v.checkDuration(field(p, "blackhole_hold"), f.BlackholeHold, time.Second, maxBlackholeHold)
}
