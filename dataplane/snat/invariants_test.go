package snat

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestPlanInvariantsUnderRandomChanges drives a planner through random
// pool changes, spare takes and port use, and checks after every plan
// what the data path relies on: no port is in two blocks, every host has
// a first block, and no run that a translation holds is taken from its
// host.
func TestPlanInvariantsUnderRandomChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ips := []netip.Addr{pub1, pub2, netip.MustParseAddr("203.0.113.22")}
	srcs := []netip.Prefix{pfx("10.0.0.0/27"), pfx("10.0.0.0/26"), pfx("10.0.0.0/25"), pfx("10.0.0.0/28"), pfx("10.0.0.0/30")}
	cfg := Config{PublicIPs: ips[:1], Sources: srcs[:1]}
	p := mustNew(t, cfg)
	u := usage{}
	for step := range 150 {
		switch r := rng.IntN(10); {
		case r == 0: // the pool changes
			cfg = Config{PublicIPs: ips[:1+rng.IntN(len(ips))], Sources: []netip.Prefix{srcs[rng.IntN(len(srcs))]}}
			if err := p.Update(cfg); err != nil {
				t.Fatal(err)
			}
			// Translations on removed IPs go on, but do not count for
			// the plan any more.
		case r <= 2: // the data path takes a spare
			pr := Proto(rng.IntN(int(NumProtos)))
			if sp := p.Spares(pr); len(sp) > 0 && len(p.hosts) > 0 {
				h := p.hosts[rng.IntN(len(p.hosts))]
				if len(p.Blocks(HostKey{h, pr})) < p.Share() {
					p.Taken(h, sp[0])
				}
			}
		case r <= 6: // a translation holds a port of some host's block
			var all []Block
			p.Each(func(_ HostKey, bs []Block) { all = append(all, bs...) })
			if len(all) > 0 {
				b := all[rng.IntN(len(all))]
				u.use(b, b.Start+uint16(rng.IntN(int(b.Size))))
			}
		default: // translations end
			for k, ports := range u {
				for port := range ports {
					if rng.IntN(3) == 0 {
						delete(u[k], port)
					}
				}
			}
		}
		// What is busy before the plan must stay with its host.
		held := map[ipProto]map[uint16]HostKey{}
		p.Each(func(k HostKey, bs []Block) {
			for _, b := range bs {
				for port := range u[ipProto{b.IP, b.Proto}] {
					if b.Contains(port) {
						if held[ipProto{b.IP, b.Proto}] == nil {
							held[ipProto{b.IP, b.Proto}] = map[uint16]HostKey{}
						}
						held[ipProto{b.IP, b.Proto}][port] = k
					}
				}
			}
		})
		p.Plan(u)
		checkDisjoint(t, p)
		for ipp, ports := range held {
			for port, k := range ports {
				if !p.hostSet[k.Addr] {
					continue // the host left the pool: its blocks drain
				}
				found := false
				for _, b := range p.Blocks(k) {
					if b.IP == ipp.ip && b.Contains(port) {
						found = true
					}
				}
				if !found {
					t.Fatalf("step %d: %v lost the block of busy port %v:%d", step, k, ipp.ip, port)
				}
			}
		}
		for _, h := range p.hosts {
			for pr := Proto(0); pr < NumProtos; pr++ {
				if len(p.Blocks(HostKey{h, pr})) == 0 {
					t.Fatalf("step %d: host %v has no %v block (%d hosts, %d IPs)", step, h, pr, len(p.hosts), len(cfg.PublicIPs))
				}
			}
		}
	}
}
