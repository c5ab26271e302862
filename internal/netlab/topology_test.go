package netlab

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	twoHosts := func(mod func(*Topology)) Topology {
		topo := Topology{
			Hosts: []Host{{Name: "a"}, {Name: "b", Bridges: []Bridge{{Name: "br0"}}}},
			Links: []Link{{
				A: Endpoint{Host: "a", Name: "eth0", Addrs: []string{"10.0.0.1/24"}},
				B: Endpoint{Host: "b", Name: "eth0", Master: "br0"},
			}},
		}
		mod(&topo)
		return topo
	}
	tests := []struct {
		name    string
		topo    Topology
		wantErr string // "" means valid
	}{
		{"standard client/gw/backends", ClientGatewayBackends(3), ""},
		{"standard two uplinks", TwoUplinks(2), ""},
		{"minimal", twoHosts(func(*Topology) {}), ""},
		{"no hosts", Topology{}, "no hosts"},
		{"duplicate host", twoHosts(func(t *Topology) { t.Hosts = append(t.Hosts, Host{Name: "a"}) }), "duplicate"},
		{"bad host name", twoHosts(func(t *Topology) { t.Hosts[0].Name = "a/b" }), "invalid name"},
		{"long host name", twoHosts(func(t *Topology) { t.Hosts[0].Name = strings.Repeat("h", MaxHostNameLen+1) }), "longer than"},
		{"unknown link host", twoHosts(func(t *Topology) { t.Links[0].B.Host = "c" }), "unknown host"},
		{"long interface name", twoHosts(func(t *Topology) { t.Links[0].A.Name = "abcdefghijklmnop" }), "invalid interface name"},
		{"lo as veth", twoHosts(func(t *Topology) { t.Links[0].A.Name = "lo" }), "reserved"},
		{"interface twice", twoHosts(func(t *Topology) { t.Links[0].B.Name = "br0" }), "defined twice"},
		{"bad address", twoHosts(func(t *Topology) { t.Links[0].A.Addrs = []string{"10.0.0.300/24"} }), "address"},
		{"bad MAC", twoHosts(func(t *Topology) { t.Links[0].A.MAC = "zz" }), "MAC"},
		{"master not a bridge", twoHosts(func(t *Topology) { t.Links[0].B.Master = "eth9" }), "not a bridge"},
		{"route to unknown dev", twoHosts(func(t *Topology) { t.Hosts[0].Routes = []Route{{Dst: "10.1.0.0/16", Dev: "eth9"}} }), "unknown dev"},
		{"route mixed families", twoHosts(func(t *Topology) { t.Hosts[0].Routes = []Route{{Dst: "10.1.0.0/16", Gw: "fd00::1"}} }), "family"},
		{"default route without gw", twoHosts(func(t *Topology) { t.Hosts[0].Routes = []Route{{Dev: "eth0"}} }), "needs gw"},
		{"bad gateway", twoHosts(func(t *Topology) { t.Hosts[0].Gateways = []string{"10.0.0.x"} }), "gateway"},
		{"rule without table", twoHosts(func(t *Topology) { t.Hosts[0].Rules = []Rule{{From: "10.0.0.1"}} }), "table"},
		{"rule mixed families", twoHosts(func(t *Topology) { t.Hosts[0].Rules = []Rule{{From: "10.0.0.1", To: "fd00::/8", Table: 5}} }), "family"},
		{"rule unknown iif", twoHosts(func(t *Topology) { t.Hosts[0].Rules = []Rule{{IIF: "eth7", Table: 5}} }), "iif"},
		{"host sysctl outside net", twoHosts(func(t *Topology) { t.Hosts[0].Sysctls = map[string]string{"kernel.panic": "1"} }), "only keys under net"},
		{"sysctl escaping net", twoHosts(func(t *Topology) { t.Hosts[0].Sysctls = map[string]string{"net/../kernel/panic": "1"} }), "only keys under net"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.topo.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestStandardTopologyAddresses(t *testing.T) {
	topo := ClientGatewayBackends(12)
	tests := []struct {
		host, iface string
		want        []string
	}{
		{HostClient, IfaceClient, []string{"198.18.1.2/24", "2001:db8:1::2/64"}},
		{HostGateway, IfaceGatewayUp, []string{"198.18.1.1/24", "2001:db8:1::1/64"}},
		{HostGateway, IfaceGatewayDown, []string{"198.19.0.1/24", "2001:db8:19::1/64"}},
		{"be1", IfaceBackend, []string{"198.19.0.11/24", "2001:db8:19::11/64"}},
		{"be2", IfaceBackend, []string{"198.19.0.12/24", "2001:db8:19::12/64"}},
		{"be12", IfaceBackend, []string{"198.19.0.22/24", "2001:db8:19::22/64"}},
	}
	for _, tt := range tests {
		got := endpointAddrs(topo, tt.host, tt.iface)
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s/%s addrs = %v, want %v", tt.host, tt.iface, got, tt.want)
		}
	}
	if gw := topo.Host(HostGateway); gw == nil || !gw.Forward || gw.LoAddrs[0] != "198.18.0.10/32" {
		t.Errorf("gw = %+v, want forwarding with the VIP on lo", gw)
	}
	if topo.Host("nope") != nil {
		t.Error(`Host("nope") != nil`)
	}
}

func endpointAddrs(topo Topology, host, iface string) []string {
	for _, l := range topo.Links {
		for _, e := range []Endpoint{l.A, l.B} {
			if e.Host == host && e.Name == iface {
				return e.Addrs
			}
		}
	}
	return nil
}

func TestSysctlPath(t *testing.T) {
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"net.ipv4.ip_forward", "net/ipv4/ip_forward", true},
		{"net/ipv4/conf/eth0.100/rp_filter", "net/ipv4/conf/eth0.100/rp_filter", true},
		{"kernel.hostname", "", false},
		{"net/ipv4/../../kernel/hostname", "", false},
		{"/net/ipv4/ip_forward", "", false},
	}
	for _, tt := range tests {
		got, err := sysctlPath(tt.key)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q, ok=%v", tt.key, got, err, tt.want, tt.ok)
		}
	}
}

func TestLabPrefix(t *testing.T) {
	tests := []struct{ name, want string }{
		{"xlbt-0a1b2c-gw", "xlbt-0a1b2c"},
		{"xlbt-0a1b2c", "xlbt-0a1b2c"},
		{"xlbt-0a1b2cd-gw", "xlbt-0a1b2cd-gw"}, // not Build's format: its own group
		{"xlbt-other", "xlbt-other"},
	}
	for _, tt := range tests {
		if got := labPrefix(tt.name); got != tt.want {
			t.Errorf("labPrefix(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestChecksum(t *testing.T) {
	// Echo request, id 0x1234, seq 1, no data: sum 0x0800+0x1234+0x0001.
	msg := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1}
	if got, want := checksum(msg), ^uint16(0x0800+0x1234+0x0001); got != want {
		t.Fatalf("checksum = %#04x, want %#04x", got, want)
	}
	msg[2], msg[3] = byte(checksum(msg)>>8), byte(checksum(msg))
	if got := checksum(msg); got != 0 {
		t.Fatalf("checksum over a checksummed message = %#04x, want 0", got)
	}
}
