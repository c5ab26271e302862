package xdp

import (
	"net/netip"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// assignUplinks gives each interface named by a pool or EIP an egress
// slot, keeping the slots of interfaces still named.
func (e *Engine) assignUplinks(names []string) {
	n := e.nat
	want := map[string]bool{}
	for _, name := range names {
		if name != "" {
			want[name] = true
		}
	}
	used := make([]bool, maxUplinks)
	for name, slot := range n.uplinks {
		if !want[name] {
			_ = e.objs.NatUplinks.Put(slot, lbNatEgress{})
			delete(n.uplinks, name)
			continue
		}
		used[slot] = true
	}
	for name := range want {
		if _, ok := n.uplinks[name]; ok {
			continue
		}
		if slot, ok := allocID(used); ok {
			n.uplinks[name] = slot
		}
	}
}

// uplinkRef is the egress slot + 1 of an interface, 0 for none.
func (n *natState) uplinkRef(name string) uint32 {
	if slot, ok := n.uplinks[name]; ok && name != "" {
		return slot + 1
	}
	return 0
}

// refreshUplinks resolves each uplink's next hop (a gateway route through
// it, in any routing table) and its MAC. Unresolved uplinks get ifindex 0:
// the program falls back to the FIB until the neighbour is known.
func (e *Engine) refreshUplinks() {
	for name, slot := range e.nat.uplinks {
		v, err := e.resolveUplink(name)
		if err != nil {
			e.log.Debug("snat: uplink next hop not resolved yet", zap.String("interface", name), zap.Error(err))
		}
		_ = e.objs.NatUplinks.Put(slot, v)
	}
}

type uplinkError string

func (u uplinkError) Error() string { return string(u) }

func (e *Engine) resolveUplink(name string) (lbNatEgress, error) {
	l, err := e.nl.LinkByName(name)
	if err != nil {
		return lbNatEgress{}, err
	}
	idx := l.Attrs().Index
	routes, err := e.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC, LinkIndex: idx},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF)
	if err != nil {
		return lbNatEgress{}, err
	}
	var gw netip.Addr
	for _, r := range routes {
		a, ok := netip.AddrFromSlice(r.Gw)
		if !ok || !a.Unmap().Is4() {
			continue
		}
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			gw = a.Unmap() // a default route through the uplink wins
			break
		}
		if !gw.IsValid() {
			gw = a.Unmap()
		}
	}
	if !gw.IsValid() {
		return lbNatEgress{}, uplinkError("no gateway route through " + name)
	}
	neighs, err := e.nl.NeighList(idx, netlink.FAMILY_V4)
	if err != nil {
		return lbNatEgress{}, err
	}
	for _, nb := range neighs {
		a, ok := netip.AddrFromSlice(nb.IP)
		if !ok || a.Unmap() != gw || len(nb.HardwareAddr) != 6 {
			continue
		}
		if nb.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_PERMANENT|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_NOARP) == 0 {
			continue
		}
		var v lbNatEgress
		v.Ifindex = uint32(idx)
		copy(v.Dmac[:], nb.HardwareAddr)
		copy(v.Smac[:], l.Attrs().HardwareAddr)
		return v, nil
	}
	// Ask the kernel to resolve it (NTF_USE starts resolution like a
	// transmission would); the next refresh finds it.
	_ = e.nl.NeighSet(&netlink.Neigh{LinkIndex: idx, IP: gw.AsSlice(), Family: netlink.FAMILY_V4, Flags: netlink.NTF_USE})
	return lbNatEgress{}, uplinkError("neighbour " + gw.String() + " on " + name + " unresolved")
}
