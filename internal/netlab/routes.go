package netlab

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netlink converts the route; index resolves Dev to an interface index.
func (r Route) netlink(index func(dev string) (int, bool)) (*netlink.Route, error) {
	nr := &netlink.Route{Table: r.Table, Priority: r.Metric}
	family := 0
	setFamily := func(a netip.Addr, what string) error {
		f := familyOf(a)
		if family != 0 && f != family {
			return fmt.Errorf("%s %s: address family differs from the route's", what, a)
		}
		family = f
		return nil
	}
	if r.Dst != "" && r.Dst != "default" {
		p, err := parseAddr(r.Dst)
		if err != nil {
			return nil, fmt.Errorf("dst: %w", err)
		}
		p = p.Masked()
		nr.Dst = ipNet(p)
		family = familyOf(p.Addr())
	}
	if r.Gw != "" {
		a, err := netip.ParseAddr(r.Gw)
		if err != nil {
			return nil, fmt.Errorf("gw: %w", err)
		}
		if err := setFamily(a, "gw"); err != nil {
			return nil, err
		}
		nr.Gw = a.AsSlice()
	}
	if r.Src != "" {
		a, err := netip.ParseAddr(r.Src)
		if err != nil {
			return nil, fmt.Errorf("src: %w", err)
		}
		if err := setFamily(a, "src"); err != nil {
			return nil, err
		}
		nr.Src = a.AsSlice()
	}
	if family == 0 {
		return nil, errors.New(`default route needs gw (or dst "0.0.0.0/0" / "::/0")`)
	}
	nr.Family = family
	if r.Dev != "" {
		idx, ok := index(r.Dev)
		if !ok {
			return nil, fmt.Errorf("unknown dev %q", r.Dev)
		}
		nr.LinkIndex = idx
	} else if r.Gw == "" {
		return nil, errors.New("route needs gw or dev")
	}
	if r.Gw == "" {
		nr.Scope = netlink.SCOPE_LINK // as `ip route add` does for device routes
	}
	if r.OnLink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	if r.Table < 0 || r.Metric < 0 {
		return nil, errors.New("negative table or metric")
	}
	return nr, nil
}

func (r Rule) netlink() (*netlink.Rule, error) {
	nr := netlink.NewRule()
	nr.Table = r.Table
	if r.Table <= 0 {
		return nil, errors.New("rule needs a table")
	}
	if r.Priority < 0 {
		return nil, errors.New("negative priority")
	}
	if r.Priority > 0 {
		nr.Priority = r.Priority
	}
	family := unix.AF_INET
	if r.IPv6 {
		family = unix.AF_INET6
	}
	seen := false
	for i, s := range []string{r.From, r.To} {
		if s == "" {
			continue
		}
		p, err := parseAddr(s)
		if err != nil {
			return nil, err
		}
		f := familyOf(p.Addr())
		if seen && f != family {
			return nil, errors.New("from and to differ in address family")
		}
		family, seen = f, true
		if i == 0 {
			nr.Src = ipNet(p.Masked())
		} else {
			nr.Dst = ipNet(p.Masked())
		}
	}
	nr.Family = family
	nr.IifName = r.IIF
	nr.Mark = r.Mark
	if r.Mask != 0 {
		m := r.Mask
		nr.Mask = &m
	}
	return nr, nil
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}
