package config

import (
	"fmt"
	"net/netip"
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

const (
	maxSnatHosts   = 1000
	maxSnatTimeout = 24 * time.Hour
)

// snatAndEIPs checks the SNAT pools and elastic IPs together: a public
// address belongs to one pool, one EIP or one VIP, never two of them.
func (v *validator) snatAndEIPs(pools []*xlbv1.SnatPool, eips []*xlbv1.Eip) {
	public := map[netip.Addr]string{} // public address -> the field that took it
	takePublic := func(p, s string) {
		a, err := parseIPv4(s)
		if err != nil {
			v.add(p, "%v", err)
			return
		}
		if lb, vip := v.vips[a]; vip {
			v.add(p, "%s is the address of %s", a, lb)
			return
		}
		if first, dup := public[a]; dup {
			v.add(p, "%s is already used by %s", a, first)
			return
		}
		public[a] = p
	}

	type source struct {
		pfx  netip.Prefix
		path string
	}
	var sources []source
	seen := map[string]string{}
	for i, pool := range pools {
		p := index("snat_pools", i)
		v.checkID(field(p, "id"), pool.Id, seen)
		pp := field(p, "public_ips")
		if len(pool.PublicIps) == 0 {
			v.add(pp, "at least one public IP is required")
		}
		for j, s := range pool.PublicIps {
			takePublic(index(pp, j), s)
		}
		sp := field(p, "sources")
		if len(pool.Sources) == 0 {
			v.add(sp, "at least one source CIDR is required")
		}
		var hosts uint64
		for j, s := range pool.Sources {
			path := index(sp, j)
			pfx, err := parseIPv4Prefix(s)
			if err != nil {
				v.add(path, "%v", err)
				continue
			}
			hosts += 1 << (32 - pfx.Bits())
			overlap := false
			for _, o := range sources {
				if o.pfx.Overlaps(pfx) {
					v.add(path, "%s overlaps %s (%s)", pfx, o.path, o.pfx)
					overlap = true
					break
				}
			}
			if !overlap {
				sources = append(sources, source{pfx, path})
			}
		}
		if hosts > maxSnatHosts {
			v.add(sp, "the sources hold %d addresses; a pool serves at most %d hosts", hosts, maxSnatHosts)
		}
		if t := pool.Timeouts; t != nil {
			tp := field(p, "timeouts")
			v.checkDuration(field(tp, "tcp_fin"), t.TcpFin, time.Second, maxSnatTimeout)
			v.checkDuration(field(tp, "tcp_rst"), t.TcpRst, time.Second, maxSnatTimeout)
			v.checkDuration(field(tp, "idle"), t.Idle, time.Second, maxSnatTimeout)
		}
		v.optionalIfName(field(p, "interface"), pool.Interface)
	}

	private := map[netip.Addr]string{}
	for i, e := range eips {
		p := index("eips", i)
		takePublic(field(p, "public_ip"), e.PublicIp)
		pp := field(p, "private_ip")
		a, err := parseIPv4(e.PrivateIp)
		switch {
		case err != nil:
			v.add(pp, "%v", err)
		default:
			if first, dup := private[a]; dup {
				v.add(pp, "%s is already mapped by %s", a, first)
				break
			}
			private[a] = p
		}
		v.optionalIfName(field(p, "interface"), e.Interface)
	}
}

func (v *validator) optionalIfName(p, name string) {
	if name != "" && !validIfName(name) {
		v.add(p, "%q is not a valid interface name: 1 to 15 characters, no '/', ':' or white space", name)
	}
}

func parseIPv4(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, fmt.Errorf("required: an IPv4 address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

func parseIPv4Prefix(s string) (netip.Prefix, error) {
	p, err := parsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 CIDR", s)
	}
	return p, nil
}
