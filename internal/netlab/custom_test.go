package netlab

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCustomTopology checks that every field of the description reaches the
// kernel, as `ip` shows it.
func TestCustomTopology(t *testing.T) {
	topo := Topology{
		Hosts: []Host{
			{
				Name:        "a",
				AcceptLocal: true,
				Sysctls:     map[string]string{"net.ipv4.tcp_syncookies": "0", "net/ipv4/conf/eth0/arp_ignore": "1"},
				Routes: []Route{
					{Dst: "10.20.0.0/16", Gw: "10.0.0.2", Metric: 50},
					{Dst: "10.30.0.0/16", Dev: "eth0", Src: "10.0.0.1", Table: 100},
					{Dst: "10.40.0.1", Gw: "10.99.0.1", Dev: "eth0", OnLink: true},
					{Dst: "fd00:40::/64", Gw: "fd00::2", Table: 100},
				},
				Rules: []Rule{
					{Priority: 100, Mark: 0x10, Mask: 0xff, Table: 100},
					{Priority: 101, IIF: "eth0", To: "10.50.0.0/16", Table: 100},
					{Priority: 102, IPv6: true, Mark: 7, Table: 100},
				},
			},
			{Name: "b", Forward: true, Gateways: []string{"10.0.0.1", "fd00::1"}},
		},
		Links: []Link{{
			A:   Endpoint{Host: "a", Name: "eth0", MAC: "02:00:00:00:00:0a", Addrs: []string{"10.0.0.1/24", "fd00::1/64"}},
			B:   Endpoint{Host: "b", Name: "eth0", MAC: "02:00:00:00:00:0b", Addrs: []string{"10.0.0.2/24", "fd00::2/64"}},
			MTU: 1400,
		}},
	}
	lab := New(t, topo)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	tests := []struct {
		host string
		cmd  string
		want []string
	}{
		{"a", "ip -o link show eth0", []string{"mtu 1400", "link/ether 02:00:00:00:00:0a"}},
		{"b", "ip -o link show eth0", []string{"mtu 1400", "link/ether 02:00:00:00:00:0b", "state UP"}},
		{"a", "ip route show", []string{"10.20.0.0/16 via 10.0.0.2 dev eth0 metric 50", "10.40.0.1 via 10.99.0.1 dev eth0 onlink"}},
		{"a", "ip route show table 100", []string{"10.30.0.0/16 dev eth0 scope link src 10.0.0.1"}},
		{"a", "ip -6 route show table 100", []string{"fd00:40::/64 via fd00::2 dev eth0"}},
		{"a", "ip rule show", []string{"100:\tfrom all fwmark 0x10/0xff lookup 100", "101:\tfrom all to 10.50.0.0/16 iif eth0 lookup 100"}},
		{"a", "ip -6 rule show", []string{"102:\tfrom all fwmark 0x7 lookup 100"}},
		{"a", "ip -6 -o addr show dev eth0", []string{"fd00::1/64", "nodad"}},
		{"a", "cat /proc/sys/net/ipv4/conf/all/accept_local /proc/sys/net/ipv4/tcp_syncookies /proc/sys/net/ipv4/conf/eth0/arp_ignore", []string{"1\n0\n1"}},
		{"b", "ip route show default", []string{"default via 10.0.0.1 dev eth0"}},
		{"b", "ip -6 route show default", []string{"default via fd00::1 dev eth0"}},
		{"b", "ip -o link show lo", []string{"state UNKNOWN"}}, // up (lo has no carrier state)
	}
	for _, tt := range tests {
		args := strings.Fields(tt.cmd)
		out, err := lab.Run(ctx, tt.host, args[0], args[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: %s:\n%s\nwant it to contain %q", tt.host, tt.cmd, out, w)
			}
		}
	}

	t.Run("udp", func(t *testing.T) {
		srv, err := lab.ListenPacket("b", "udp", "[fd00::2]:5353")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		go func() {
			buf := make([]byte, 64)
			n, from, err := srv.ReadFrom(buf)
			if err == nil {
				srv.WriteTo([]byte(from.String()+" "+string(buf[:n])), from)
			}
		}()
		c, err := lab.Dial(ctx, "a", "udp", "[fd00::2]:5353")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.LocalAddr().String() + " ping"; string(buf[:n]) != want {
			t.Fatalf("reply %q, want %q", buf[:n], want)
		}
	})

	// Successive UDP flows never repeat a source port, even when each
	// socket is closed before the next is dialed (the kernel may reuse).
	t.Run("udp ports", func(t *testing.T) {
		seen := map[int]bool{}
		for range 200 {
			c, err := lab.Dial(ctx, "a", "udp", "[fd00::2]:5353")
			if err != nil {
				t.Fatal(err)
			}
			p := c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
			if seen[p] {
				t.Fatalf("source port %d used twice in 200 dials", p)
			}
			seen[p] = true
		}
	})

	t.Run("dialer", func(t *testing.T) {
		ln, err := lab.Listen("b", "tcp", "10.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		c, err := lab.Dialer("a")(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "10.0.0.1" {
			t.Fatalf("dialed from %s, want 10.0.0.1", got)
		}
	})
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	host := "fail" + randHex(t)
	topo := Topology{Hosts: []Host{
		{Name: "ok" + randHex(t)},
		// Valid description, but the gateway is not on any subnet.
		{Name: host, Routes: []Route{{Dst: "10.1.0.0/16", Gw: "10.9.9.9"}}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lab, err := Build(ctx, topo)
	if errors.Is(err, ErrUnsupported) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err == nil {
		lab.Close()
		t.Fatal("Build succeeded with an unreachable gateway")
	}
	if !strings.Contains(err.Error(), "10.9.9.9") {
		t.Errorf("error %v does not name the route", err)
	}
	for _, n := range netnsList(t) {
		if strings.HasSuffix(n, "-"+host) || strings.HasSuffix(n, "-"+topo.Hosts[0].Name) {
			t.Errorf("namespace %s left by the failed build", n)
		}
	}
}
