package xdp

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/xlbproject/xlb/dataplane/pool"
)

// sourceTowards asks the kernel which source address the gateway uses to
// reach the first server: the fullnat address, on which replies return.
func sourceTowards(nl *netlink.Handle, servers []pool.Server) (netip.Addr, error) {
	if len(servers) == 0 {
		return netip.Addr{}, errors.New("no servers to find a source address towards")
	}
	routes, err := nl.RouteGet(servers[0].Addr.AsSlice())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route to %v: %w", servers[0].Addr, err)
	}
	for _, r := range routes {
		if a, ok := netip.AddrFromSlice(r.Src); ok && a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no IPv4 source address towards %v", servers[0].Addr)
}

// warmNeighbour asks the kernel to resolve the backend's next hop now
// (NTF_USE starts resolution like a transmission would), so the first
// packet of a flow finds it in bpf_fib_lookup instead of detouring through
// the kernel, which cannot forward a fullnat packet (its source is one of
// the gateway's own addresses).
func warmNeighbour(nl *netlink.Handle, addr netip.Addr) error {
	routes, err := nl.RouteGet(addr.AsSlice())
	if err != nil || len(routes) == 0 {
		return fmt.Errorf("route to %v: %w", addr, err)
	}
	r := routes[0]
	hop := addr
	if g, ok := netip.AddrFromSlice(r.Gw); ok && g.IsValid() && !g.IsUnspecified() {
		hop = g.Unmap()
	}
	n := &netlink.Neigh{LinkIndex: r.LinkIndex, IP: hop.AsSlice(), Family: netlink.FAMILY_V4, Flags: netlink.NTF_USE}
	if err := nl.NeighSet(n); err != nil {
		return fmt.Errorf("resolving %v: %w", hop, err)
	}
	return nil
}
