package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// build creates the namespaces, then links, sysctls, addresses, routes and
// rules, in that order (addresses need links; routes need addresses).
func (l *Lab) build(ctx context.Context, topo Topology) error {
	for _, th := range topo.Hosts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.addHost(th.Name); err != nil {
			return err
		}
	}
	steps := []struct {
		what string
		fn   func(context.Context, Topology) error
	}{
		{"loopback", l.setupLoopbacks},
		{"bridges", l.setupBridges},
		{"links", l.setupLinks},
		{"sysctls", l.setupSysctls},
		{"addresses", l.setupAddrs},
		{"routes", l.setupRoutes},
		{"rules", l.setupRules},
		{"waiting for links", l.waitOperUp},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.fn(ctx, topo); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

// addHost creates the host's namespace and registers it before anything
// else can fail, so Close removes it whatever happens next.
func (l *Lab) addHost(name string) error {
	h := &labHost{name: name, ns: l.prefix + "-" + name, fd: netns.None()}
	if err := createNamedNS(h.ns); err != nil {
		return fmt.Errorf("host %s: %w", name, err)
	}
	l.mu.Lock()
	l.hosts[name] = h
	l.order = append(l.order, h)
	l.mu.Unlock()

	fd, err := netns.GetFromName(h.ns)
	if err != nil {
		return fmt.Errorf("host %s: open namespace: %w", name, err)
	}
	h.fd = fd
	nl, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("host %s: netlink: %w", name, err)
	}
	h.nl = nl
	// Without DAD, link-local addresses are usable at once too; a router
	// needs one to send neighbour solicitations for forwarded packets.
	return l.writeSysctls(h, []sysctl{
		{"net/ipv6/conf/all/accept_dad", "0", true},
		{"net/ipv6/conf/default/accept_dad", "0", true},
	})
}

func (l *Lab) setupLoopbacks(_ context.Context, _ Topology) error {
	for _, h := range l.order {
		lo, err := h.nl.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("host %s: %w", h.name, err)
		}
		if err := h.nl.LinkSetUp(lo); err != nil {
			return fmt.Errorf("host %s: lo up: %w", h.name, err)
		}
	}
	return nil
}

func (l *Lab) setupBridges(_ context.Context, topo Topology) error {
	off := false
	for _, th := range topo.Hosts {
		h := l.hosts[th.Name]
		for _, b := range th.Bridges {
			br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs(), MulticastSnooping: &off}
			br.Name = b.Name
			if err := h.nl.LinkAdd(br); err != nil {
				return fmt.Errorf("host %s: add bridge %s: %w", h.name, b.Name, unsupported(err))
			}
			if err := h.nl.LinkSetUp(br); err != nil {
				return fmt.Errorf("host %s: %s up: %w", h.name, b.Name, err)
			}
		}
	}
	return nil
}

func (l *Lab) setupLinks(_ context.Context, topo Topology) error {
	for _, lk := range topo.Links {
		a, b := l.hosts[lk.A.Host], l.hosts[lk.B.Host]
		veth := netlink.NewVeth(netlink.NewLinkAttrs())
		veth.Name = lk.A.Name
		veth.MTU = lk.MTU
		veth.HardwareAddr = mustMAC(lk.A.MAC)
		veth.PeerName = lk.B.Name
		veth.PeerHardwareAddr = mustMAC(lk.B.MAC)
		// The request goes through a's handle, so both ends are born in
		// their namespaces and never exist in the root namespace.
		veth.PeerNamespace = netlink.NsFd(int(b.fd))
		what := fmt.Sprintf("%s/%s <-> %s/%s", lk.A.Host, lk.A.Name, lk.B.Host, lk.B.Name)
		if err := a.nl.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s: %w", what, unsupported(err))
		}
		for _, end := range []struct {
			h *labHost
			e Endpoint
		}{{a, lk.A}, {b, lk.B}} {
			link, err := end.h.nl.LinkByName(end.e.Name)
			if err != nil {
				return fmt.Errorf("veth %s: %w", what, err)
			}
			if end.e.Master != "" {
				br, err := end.h.nl.LinkByName(end.e.Master)
				if err != nil {
					return fmt.Errorf("veth %s: bridge %s: %w", what, end.e.Master, err)
				}
				if err := end.h.nl.LinkSetMaster(link, br); err != nil {
					return fmt.Errorf("veth %s: enslave to %s: %w", what, end.e.Master, err)
				}
			}
			if topo.NoTxChecksum {
				if err := l.Do(end.e.Host, func() error { return txChecksumOff(end.e.Name) }); err != nil {
					return fmt.Errorf("veth %s: tx checksum offload off: %w", what, err)
				}
			}
			if err := end.h.nl.LinkSetUp(link); err != nil {
				return fmt.Errorf("veth %s: up: %w", what, err)
			}
		}
	}
	return nil
}

func (l *Lab) setupSysctls(_ context.Context, topo Topology) error {
	for _, th := range topo.Hosts {
		h := l.hosts[th.Name]
		var s []sysctl
		if th.Forward {
			s = append(s, sysctl{"net/ipv4/ip_forward", "1", false},
				sysctl{"net/ipv6/conf/all/forwarding", "1", true})
		}
		if th.RPFilterOff {
			links, err := h.nl.LinkList()
			if err != nil {
				return fmt.Errorf("host %s: list links: %w", h.name, err)
			}
			names := []string{"all", "default"}
			for _, lk := range links {
				names = append(names, lk.Attrs().Name)
			}
			for _, n := range names {
				s = append(s, sysctl{"net/ipv4/conf/" + n + "/rp_filter", "0", false})
			}
		}
		if th.AcceptLocal {
			s = append(s, sysctl{"net/ipv4/conf/all/accept_local", "1", false})
		}
		keys := make([]string, 0, len(th.Sysctls))
		for k := range th.Sysctls {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p, err := sysctlPath(k)
			if err != nil {
				return err
			}
			s = append(s, sysctl{p, th.Sysctls[k], false})
		}
		if err := l.writeSysctls(h, s); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) setupAddrs(_ context.Context, topo Topology) error {
	add := func(h *labHost, dev string, addrs []string) error {
		if len(addrs) == 0 {
			return nil
		}
		link, err := h.nl.LinkByName(dev)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.name, err)
		}
		for _, s := range addrs {
			p, err := parseAddr(s)
			if err != nil {
				return err
			}
			a := &netlink.Addr{IPNet: ipNet(p)}
			if !p.Addr().Is4() {
				a.Flags = unix.IFA_F_NODAD
			}
			if err := h.nl.AddrAdd(link, a); err != nil {
				return fmt.Errorf("host %s: add %s to %s: %w", h.name, s, dev, err)
			}
		}
		return nil
	}
	for _, lk := range topo.Links {
		for _, e := range []Endpoint{lk.A, lk.B} {
			if err := add(l.hosts[e.Host], e.Name, e.Addrs); err != nil {
				return err
			}
		}
	}
	for _, th := range topo.Hosts {
		if err := add(l.hosts[th.Name], "lo", th.LoAddrs); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) setupRoutes(_ context.Context, topo Topology) error {
	for _, th := range topo.Hosts {
		h := l.hosts[th.Name]
		index := func(dev string) (int, bool) {
			link, err := h.nl.LinkByName(dev)
			if err != nil {
				return 0, false
			}
			return link.Attrs().Index, true
		}
		routes := slices.Clone(th.Routes)
		for _, gw := range th.Gateways {
			routes = append(routes, Route{Gw: gw})
		}
		for i, r := range routes {
			nr, err := r.netlink(index)
			if err != nil {
				return fmt.Errorf("host %s: route %d: %w", h.name, i, err)
			}
			if err := h.nl.RouteAdd(nr); err != nil {
				return fmt.Errorf("host %s: add route %+v: %w", h.name, r, err)
			}
		}
	}
	return nil
}

func (l *Lab) setupRules(_ context.Context, topo Topology) error {
	for _, th := range topo.Hosts {
		h := l.hosts[th.Name]
		for _, r := range th.Rules {
			nr, err := r.netlink()
			if err != nil {
				return fmt.Errorf("host %s: %w", h.name, err)
			}
			if err := h.nl.RuleAdd(nr); err != nil {
				return fmt.Errorf("host %s: add rule %+v: %w", h.name, r, err)
			}
		}
	}
	return nil
}

// waitOperUp waits until every veth is operationally up. The
// kernel attaches a link's queueing discipline only then (from linkwatch,
// up to a second after the link is set up) and drops what is sent before,
// so without the wait the first packets through a new lab are lost.
func (l *Lab) waitOperUp(ctx context.Context, _ Topology) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var down []string
		for _, h := range l.order {
			links, err := h.nl.LinkList()
			if err != nil {
				return fmt.Errorf("host %s: list links: %w", h.name, err)
			}
			for _, lk := range links {
				a := lk.Attrs()
				if lk.Type() == "veth" && a.OperState != netlink.OperUp {
					down = append(down, h.name+"/"+a.Name+"("+a.OperState.String()+")")
				}
			}
		}
		if len(down) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("links not up: %v", down)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("links not up: %v: %w", down, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// unsupported marks errors that mean the kernel lacks a link type.
func unsupported(err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return err
}

// mustMAC parses a MAC that Validate already checked; "" is nil.
func mustMAC(s string) net.HardwareAddr {
	if s == "" {
		return nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil {
		panic(fmt.Sprintf("netlab: unvalidated MAC %q: %v", s, err))
	}
	return mac
}
