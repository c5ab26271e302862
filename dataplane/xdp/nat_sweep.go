package xdp

import (
	"net/netip"
	"time"

	"github.com/xlbproject/xlb/dataplane/snat"
)

// More flow flags (bpf/include/lb_structs.h).
const (
	ffSNAT     = 1 << 5
	ffEIP      = 1 << 6
	ffEgress   = 1 << 7
	ffReleased = 1 << 8
	ffInbound  = 1 << 9
	ffNAT      = ffSNAT | ffEIP
)

// releaseGrace keeps a released port from serving the same destination
// again for 5 s: its reply entry stays, marked released.
const releaseGrace = 5 * time.Second

type usageKey struct {
	ip    netip.Addr
	proto snat.Proto
}

// natUsage is what the translations in the flow table hold, counted by a
// sweep.
type natUsage struct {
	ports     map[usageKey]*[65536]uint16              // translations per public port
	hostPorts map[snat.HostKey]map[netip.AddrPort]bool // public ports per host
	busiest   map[snat.HostKey]int                     // a host's most ports to one destination
	perDest   map[hostDest]int
	active    map[uint32]int // connections per pool id, NAT_MAX_POOLS + EIP id
}

type hostDest struct {
	host snat.HostKey
	dst  netip.AddrPort
}

func newNATUsage() *natUsage {
	return &natUsage{ports: map[usageKey]*[65536]uint16{}, hostPorts: map[snat.HostKey]map[netip.AddrPort]bool{},
		busiest: map[snat.HostKey]int{}, perDest: map[hostDest]int{}, active: map[uint32]int{}}
}

// InUse implements snat.Usage.
func (u *natUsage) InUse(b snat.Block) int {
	arr := u.ports[usageKey{b.IP, b.Proto}]
	if arr == nil {
		return 0
	}
	n := 0
	for p := int(b.Start); p <= int(b.End()); p++ {
		n += int(arr[p])
	}
	return n
}

// inUse counts the public ports of ip and proto that hold a translation.
func (u *natUsage) inUse(ip netip.Addr, pr snat.Proto) int {
	arr := u.ports[usageKey{ip, pr}]
	if arr == nil {
		return 0
	}
	n := 0
	for _, c := range arr {
		if c > 0 {
			n++
		}
	}
	return n
}

// add counts a snat reply entry (key: remote -> public ip:port).
func (u *natUsage) add(k lbFlowKey, f lbFlow) {
	pr, ok := snatProto(k.Proto)
	if !ok {
		return
	}
	uk := usageKey{addrOf(k.Daddr), pr}
	arr := u.ports[uk]
	if arr == nil {
		arr = new([65536]uint16)
		u.ports[uk] = arr
	}
	port := portOf(k.Dport)
	if arr[port] < ^uint16(0) {
		arr[port]++
	}
	hk := snat.HostKey{Addr: addrOf(f.NewDaddr), Proto: pr}
	if u.hostPorts[hk] == nil {
		u.hostPorts[hk] = map[netip.AddrPort]bool{}
	}
	u.hostPorts[hk][netip.AddrPortFrom(uk.ip, port)] = true
	hd := hostDest{hk, netip.AddrPortFrom(addrOf(k.Saddr), portOf(k.Sport))}
	u.perDest[hd]++
	if c := u.perDest[hd]; c > u.busiest[hk] {
		u.busiest[hk] = c
	}
}

func snatProto(p uint8) (snat.Proto, bool) {
	switch p {
	case uint8(TCP):
		return snat.TCP, true
	case uint8(UDP):
		return snat.UDP, true
	case 1:
		return snat.ICMP, true
	}
	return 0, false
}

// natTimeout is how long a translation may idle: a snat pool's timeouts
// (RST, both FINs, idle), or for an EIP the node's conntrack timeouts.
func (e *Engine) natTimeout(proto uint8, fwdFlags, revFlags uint32, pool *SNATTimeouts) time.Duration {
	flags := fwdFlags | revFlags
	if pool == nil {
		if proto != uint8(TCP) {
			return e.opts.Timeouts.UDP
		}
		return e.timeout(proto, flags)
	}
	if proto != uint8(TCP) {
		return pool.Idle
	}
	switch {
	case flags&ffRst != 0:
		return pool.TCPRst
	case fwdFlags&ffFin != 0 && revFlags&ffFin != 0:
		return pool.TCPFin
	default:
		return pool.Idle
	}
}

// sweepNAT decides the translations' fate: expired snat ones are released
// (the initiator's entry goes, the reply entry stays 5 s marked released so
// the port does not serve the destination again at once), expired EIP ones
// go; released entries past their grace go. It counts what the rest hold.
func (e *Engine) sweepNAT(all map[lbFlowKey]lbFlow, now uint64, timeouts map[uint32]SNATTimeouts) (dead []lbFlowKey, released map[lbFlowKey]lbFlow, u *natUsage, expired uint64) {
	u = newNATUsage()
	released = map[lbFlowKey]lbFlow{}
	idleFor := func(last uint64) time.Duration {
		if now > last {
			return time.Duration(now - last)
		}
		return 0
	}
	poolTimeouts := func(f lbFlow) *SNATTimeouts {
		if f.Flags&ffSNAT == 0 {
			return nil
		}
		t, ok := timeouts[f.Listener]
		if !ok {
			t = SNATTimeouts{}
			t.defaults()
		}
		return &t
	}
	for k, f := range all {
		if f.Flags&ffNAT == 0 || f.Flags&ffReply != 0 {
			continue
		}
		rk := reverseKey(k, f)
		r, hasReply := all[rk]
		last, rflags := f.LastSeen, uint32(0)
		if hasReply {
			last = max(last, r.LastSeen)
			rflags = r.Flags
		}
		if idleFor(last) <= e.natTimeout(k.Proto, f.Flags, rflags, poolTimeouts(f)) {
			u.active[f.Listener]++
			continue
		}
		expired++
		dead = append(dead, k)
		if !hasReply {
			continue
		}
		if f.Flags&ffSNAT != 0 && r.Flags&ffReleased == 0 {
			r.Flags |= ffReleased
			r.LastSeen = now
			released[rk] = r
			all[rk] = r
		} else if f.Flags&ffSNAT == 0 {
			dead = append(dead, rk)
		}
	}
	for k, f := range all {
		if f.Flags&ffNAT == 0 || f.Flags&ffReply == 0 {
			continue
		}
		if f.Flags&ffReleased != 0 {
			if idleFor(f.LastSeen) > releaseGrace {
				dead = append(dead, k)
				continue
			}
		} else if _, ok := all[lbFlowKey{Saddr: f.NewDaddr, Daddr: f.NewSaddr, Sport: f.NewDport, Dport: f.NewSport, Proto: k.Proto}]; !ok &&
			idleFor(f.LastSeen) > e.natTimeout(k.Proto, 0, f.Flags, poolTimeouts(f)) {
			// An orphaned reply entry: released like the others.
			if f.Flags&ffSNAT != 0 {
				f.Flags |= ffReleased
				f.LastSeen = now
				released[k] = f
			} else {
				dead = append(dead, k)
				continue
			}
		}
		if f.Flags&ffSNAT != 0 {
			u.add(k, f)
		}
	}
	return dead, released, u, expired
}
