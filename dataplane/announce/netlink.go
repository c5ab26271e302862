package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkRoutes writes the routes in the namespace of the handle: each VIP
// as a host route on the loopback device (it is never used for
// forwarding: the table is only read by the routing daemon).
type NetlinkRoutes struct {
	h  *netlink.Handle
	lo int
}

// NewNetlinkRoutes returns routes written through h (nil: the calling
// thread's namespace).
func NewNetlinkRoutes(h *netlink.Handle) (*NetlinkRoutes, error) {
	if h == nil {
		var err error
		if h, err = netlink.NewHandle(); err != nil {
			return nil, fmt.Errorf("netlink: %w", err)
		}
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("loopback device: %w", err)
	}
	return &NetlinkRoutes{h: h, lo: lo.Attrs().Index}, nil
}

func (r *NetlinkRoutes) route(vip netip.Addr, table, metric uint32) *netlink.Route {
	bits := 32
	if vip.Is6() {
		bits = 128
	}
	return &netlink.Route{
		LinkIndex: r.lo,
		Dst:       &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(bits, bits)},
		Table:     int(table),
		Protocol:  RouteProtocol,
		Priority:  int(metric),
		Scope:     netlink.SCOPE_HOST,
		Type:      unix.RTN_UNICAST,
	}
}

// Replace implements Routes. A changed metric is a different route to the
// kernel (metric is part of the key), so the old one is removed first.
func (r *NetlinkRoutes) Replace(vip netip.Addr, table, metric uint32) error {
	_ = r.Delete(vip, table)
	if err := r.h.RouteReplace(r.route(vip, table, metric)); err != nil {
		return fmt.Errorf("route %s table %d: %w", vip, table, err)
	}
	return nil
}

// Delete implements Routes; a route already gone is not an error.
func (r *NetlinkRoutes) Delete(vip netip.Addr, table uint32) error {
	for {
		routes, err := r.routes(table, vip)
		if err != nil {
			return err
		}
		if len(routes) == 0 {
			return nil
		}
		for _, rt := range routes {
			if err := r.h.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("deleting route %s table %d: %w", vip, table, err)
			}
		}
	}
}

// List implements Routes.
func (r *NetlinkRoutes) List(table uint32) ([]netip.Addr, error) {
	routes, err := r.routes(table, netip.Addr{})
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, rt := range routes {
		if a, ok := netip.AddrFromSlice(rt.Dst.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

// routes lists the routes of RouteProtocol in table, to vip if it is
// valid, in both families.
func (r *NetlinkRoutes) routes(table uint32, vip netip.Addr) ([]netlink.Route, error) {
	filter := &netlink.Route{Table: int(table), Protocol: RouteProtocol}
	mask := netlink.RT_FILTER_TABLE | netlink.RT_FILTER_PROTOCOL
	var out []netlink.Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := r.h.RouteListFiltered(fam, filter, mask)
		if err != nil {
			return nil, fmt.Errorf("listing routes of table %d: %w", table, err)
		}
		for _, rt := range rs {
			if rt.Dst == nil {
				continue
			}
			if vip.IsValid() {
				a, _ := netip.AddrFromSlice(rt.Dst.IP)
				if a.Unmap() != vip {
					continue
				}
			}
			out = append(out, rt)
		}
	}
	return out, nil
}
