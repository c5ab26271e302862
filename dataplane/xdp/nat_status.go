package xdp

import (
	"net/netip"
	"slices"

	"github.com/xlbproject/xlb/dataplane/snat"
)

// SNATPoolStatus is one pool's port use as of the last sweep, for the
// control API (xlbctl snat).
type SNATPoolStatus struct {
	ID        string
	PublicIPs []SNATIPStatus
	Hosts     []SNATHostStatus
}

// SNATIPStatus is one public IP's ports: allocated to hosts in blocks
// (every protocol) and holding a translation now.
type SNATIPStatus struct {
	IP               netip.Addr
	InUse, Allocated int
	BlockUtilisation float64 // mean over protocols of the blocks' share in use
}

// SNATHostStatus is one private host's ports in use (every protocol).
// Hosts using none are left out: the planner gives every source address
// its first block in advance.
type SNATHostStatus struct {
	Host  netip.Addr
	InUse int
}

// SNATStatus reports every pool, sorted by id, its public IPs in
// configuration order and its hosts by address.
func (e *Engine) SNATStatus() []SNATPoolStatus {
	e.sweeps.mu.Lock()
	u := e.sweeps.nat
	e.sweeps.mu.Unlock()
	if u == nil {
		u = newNATUsage()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []SNATPoolStatus
	for _, x := range e.nat.pools {
		ps := SNATPoolStatus{ID: x.cfg.Name}
		for _, ip := range x.cfg.PublicIPs {
			st := SNATIPStatus{IP: ip}
			for pr := snat.Proto(0); pr < snat.NumProtos; pr++ {
				ports, util := x.plan.Allocated(ip, pr)
				st.Allocated += ports
				st.InUse += u.inUse(ip, pr)
				st.BlockUtilisation += util / float64(snat.NumProtos)
			}
			ps.PublicIPs = append(ps.PublicIPs, st)
		}
		hosts := map[netip.Addr]int{}
		x.plan.Each(func(k snat.HostKey, _ []snat.Block) {
			hosts[k.Addr] += len(u.hostPorts[k])
		})
		for h, n := range hosts {
			if n == 0 {
				continue
			}
			ps.Hosts = append(ps.Hosts, SNATHostStatus{Host: h, InUse: n})
		}
		slices.SortFunc(ps.Hosts, func(a, b SNATHostStatus) int { return a.Host.Compare(b.Host) })
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b SNATPoolStatus) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}
