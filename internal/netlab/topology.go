package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// Topology describes a lab: hosts (one network namespace each) and the veth
// links between them. Build turns it into namespaces; it is plain data, so
// callers may adjust a standard topology before building it.
type Topology struct {
	Hosts []Host
	Links []Link
	// NoTxChecksum turns off transmit checksum offload on every veth end.
	// A veth hands locally sent packets over with a partial checksum; an XDP
	// program that redirects such a frame passes it on unfinished, and the
	// receiver drops it. Real NICs never see forwarded traffic that way, so
	// only labs that exercise XDP redirects need this.
	NoTxChecksum bool
}

// Host is one network namespace. Loopback is always brought up.
type Host struct {
	// Name is the host's name in the lab (namespace "xlbt-<id>-<Name>").
	Name string
	// LoAddrs are extra addresses on "lo", such as a VIP. A bare IP means
	// a host prefix (/32 or /128).
	LoAddrs []string
	// Bridges are Linux bridges created in this namespace; link endpoints
	// join one by naming it as their Master.
	Bridges []Bridge
	// Gateways are default routes (main table), one per address family.
	Gateways []string
	// Routes are added after addresses and before Gateways.
	Routes []Route
	// Rules are policy routing rules.
	Rules []Rule
	// Forward enables IPv4 and IPv6 forwarding.
	Forward bool
	// RPFilterOff sets rp_filter to 0 on "all", "default" and every
	// interface (the effective value is the maximum of "all" and the
	// interface's own).
	RPFilterOff bool
	// AcceptLocal accepts packets with a local source address
	// (net.ipv4.conf.all.accept_local=1).
	AcceptLocal bool
	// Sysctls are extra namespaced sysctls, keys in dotted
	// ("net.ipv4.tcp_syncookies") or slash form
	// ("net/ipv4/conf/eth0.100/rp_filter"); only "net" keys are accepted,
	// because other sysctls are not per network namespace and would change
	// the host. They are applied after Forward/RPFilterOff/AcceptLocal.
	Sysctls map[string]string
}

// Bridge is a Linux bridge inside a host (STP and multicast snooping off,
// so ports forward at once and neighbour discovery is simply flooded).
type Bridge struct {
	Name string
}

// Link is a veth pair; each end is created directly in its host's
// namespace, never in the root namespace.
type Link struct {
	A, B Endpoint
	// MTU of both ends; 0 keeps the kernel default.
	MTU int
}

// Endpoint is one end of a Link.
type Endpoint struct {
	Host string
	// Name is the interface name inside the host, e.g. "eth0".
	Name string
	// MAC is optional ("02:00:00:00:00:01"); empty lets the kernel pick.
	MAC string
	// Addrs are IPv4/IPv6 CIDRs. IPv6 addresses are added with nodad so
	// they are usable at once.
	Addrs []string
	// Master is a bridge of the same host this end is enslaved to.
	Master string
}

// Route is a route in a host. Dst "" or "default" is a default route whose
// family comes from Gw; write "0.0.0.0/0" or "::/0" for a device-only
// default route.
type Route struct {
	Dst    string
	Gw     string
	Dev    string
	Src    string // preferred source address
	Table  int    // 0: main
	Metric int
	OnLink bool
}

// Rule is a policy routing rule: packets matching all given selectors are
// looked up in Table. With neither From nor To, IPv6 selects the family.
type Rule struct {
	Priority int // 0: chosen by the kernel
	From     string
	To       string
	IIF      string
	Mark     uint32
	Mask     uint32 // 0 with Mark set: exact match
	Table    int
	IPv6     bool
}

// Host returns the host named name, for adjusting a topology before Build,
// or nil.
func (t *Topology) Host(name string) *Host {
	for i := range t.Hosts {
		if t.Hosts[i].Name == name {
			return &t.Hosts[i]
		}
	}
	return nil
}

// MaxHostNameLen keeps namespace names ("xlbt-xxxxxx-" + host) within 40
// characters.
const MaxHostNameLen = 40 - len("xlbt-xxxxxx-")

var (
	hostNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	ifNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// Validate reports every inconsistency in the description.
func (t *Topology) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// ifaces[host] is the set of interface names known in each host.
	ifaces := map[string]map[string]bool{}
	bridges := map[string]map[string]bool{}
	if len(t.Hosts) == 0 {
		add("no hosts")
	}
	for _, h := range t.Hosts {
		switch {
		case !hostNameRE.MatchString(h.Name):
			add("host %q: invalid name", h.Name)
		case len(h.Name) > MaxHostNameLen:
			add("host %q: name longer than %d", h.Name, MaxHostNameLen)
		case ifaces[h.Name] != nil:
			add("host %q: duplicate", h.Name)
		}
		ifaces[h.Name] = map[string]bool{"lo": true}
		bridges[h.Name] = map[string]bool{}
		for _, b := range h.Bridges {
			if err := checkIfName(b.Name); err != nil {
				add("host %q: bridge: %w", h.Name, err)
			}
			if ifaces[h.Name][b.Name] {
				add("host %q: interface %q defined twice", h.Name, b.Name)
			}
			ifaces[h.Name][b.Name] = true
			bridges[h.Name][b.Name] = true
		}
	}
	for i, l := range t.Links {
		for _, e := range []Endpoint{l.A, l.B} {
			where := fmt.Sprintf("link %d end %s/%s", i, e.Host, e.Name)
			known, ok := ifaces[e.Host]
			if !ok {
				add("%s: unknown host", where)
				continue
			}
			if err := checkIfName(e.Name); err != nil {
				add("%s: %w", where, err)
			} else if known[e.Name] {
				add("%s: interface defined twice", where)
			}
			known[e.Name] = true
			if e.MAC != "" {
				if _, err := net.ParseMAC(e.MAC); err != nil {
					add("%s: %w", where, err)
				}
			}
			if e.Master != "" && !bridges[e.Host][e.Master] {
				add("%s: master %q is not a bridge of the host", where, e.Master)
			}
			for _, a := range e.Addrs {
				if _, err := parseAddr(a); err != nil {
					add("%s: %w", where, err)
				}
			}
		}
		if l.MTU < 0 {
			add("link %d: negative MTU", i)
		}
	}
	for _, h := range t.Hosts {
		for _, err := range h.validate(ifaces[h.Name]) {
			add("host %q: %w", h.Name, err)
		}
	}
	return errors.Join(errs...)
}

func (h *Host) validate(ifaces map[string]bool) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, a := range h.LoAddrs {
		if _, err := parseAddr(a); err != nil {
			add("lo: %w", err)
		}
	}
	for _, g := range h.Gateways {
		if _, err := netip.ParseAddr(g); err != nil {
			add("gateway: %w", err)
		}
	}
	for i, r := range h.Routes {
		if _, err := r.netlink(func(string) (int, bool) { return 0, ifaces[r.Dev] }); err != nil {
			add("route %d: %w", i, err)
		}
	}
	for i, r := range h.Rules {
		if _, err := r.netlink(); err != nil {
			add("rule %d: %w", i, err)
		}
		if r.IIF != "" && !ifaces[r.IIF] {
			add("rule %d: unknown iif %q", i, r.IIF)
		}
	}
	for k := range h.Sysctls {
		if _, err := sysctlPath(k); err != nil {
			add("%w", err)
		}
	}
	return errs
}

func checkIfName(name string) error {
	if len(name) == 0 || len(name) > 15 || !ifNameRE.MatchString(name) {
		return fmt.Errorf("invalid interface name %q (1-15 of [A-Za-z0-9_.-])", name)
	}
	if name == "lo" {
		return errors.New(`interface name "lo" is reserved`)
	}
	return nil
}

// parseAddr accepts a CIDR or a bare IP (host prefix) and keeps the host
// bits, as `ip addr add` does.
func parseAddr(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("address %q: %w", s, err)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address %q: %w", s, err)
	}
	return p, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
