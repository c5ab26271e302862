package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func TestClientGatewayBackends(t *testing.T) {
	lab := New(t, ClientGatewayBackends(2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("ping", func(t *testing.T) {
		tests := []struct{ from, to string }{
			{HostClient, GatewayUpIP},
			{HostClient, VIP},
			{HostClient, BackendIP(1)}, // forwarded by gw
			{HostClient, BackendIP(2)},
			{BackendHost(2), BackendIP(1)}, // across the sw bridge
			{BackendHost(1), ClientIP},
			{HostClient, GatewayUpIP6},
			{HostClient, VIP6},
			{HostClient, BackendIP6(1)},
			{BackendHost(2), ClientIP6},
		}
		for _, tt := range tests {
			t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
				if err := lab.WaitReachable(ctx, tt.from, tt.to); err != nil {
					t.Fatal(err)
				}
			})
		}
	})

	t.Run("tcp through gw", func(t *testing.T) {
		for _, tt := range []struct{ backend, client string }{
			{BackendIP(1), ClientIP},
			{BackendIP6(1), ClientIP6},
		} {
			t.Run(tt.backend, func(t *testing.T) {
				peer := tcpRoundTrip(ctx, t, lab, BackendHost(1), HostClient, net.JoinHostPort(tt.backend, "8080"))
				if peer != tt.client {
					t.Fatalf("backend saw peer %s, want %s (routed, not NATed)", peer, tt.client)
				}
			})
		}
	})

	t.Run("sysctls and addresses", func(t *testing.T) {
		tests := []struct {
			host string
			args []string
			want string
		}{
			{HostGateway, []string{"cat", "/proc/sys/net/ipv4/ip_forward"}, "1"},
			{HostGateway, []string{"cat", "/proc/sys/net/ipv6/conf/all/forwarding"}, "1"},
			{HostGateway, []string{"cat", "/proc/sys/net/ipv4/conf/up0/rp_filter"}, "0"},
			{HostClient, []string{"cat", "/proc/sys/net/ipv4/ip_forward"}, "0"},
			{HostGateway, []string{"ip", "-o", "addr", "show", "dev", "lo"}, "198.18.0.10/32"},
			{HostSwitch, []string{"ip", "-o", "link", "show", "master", "br0"}, "be2"},
			{BackendHost(1), []string{"ip", "route", "show", "default"}, "via 198.19.0.1 dev eth0"},
		}
		for _, tt := range tests {
			out, err := lab.Run(ctx, tt.host, tt.args[0], tt.args[1:]...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("%s: %v = %q, want it to contain %q", tt.host, tt.args, out, tt.want)
			}
		}
	})

	t.Run("run reports output on failure", func(t *testing.T) {
		_, err := lab.Run(ctx, HostClient, "sh", "-c", "echo oops-from-sh; exit 3")
		if err == nil || !strings.Contains(err.Error(), "oops-from-sh") || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("Run error = %v, want exit status and output", err)
		}
		if _, err := lab.Run(ctx, "nohost", "true"); err == nil {
			t.Fatal("Run on an unknown host succeeded")
		}
	})

	t.Run("do enters the namespace", func(t *testing.T) {
		var names []string
		err := lab.Do(HostGateway, func() error {
			ifs, err := net.Interfaces()
			for _, i := range ifs {
				names = append(names, i.Name)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(names, ","); got != "lo,up0,down0" {
			t.Fatalf("interfaces in gw = %s, want lo,up0,down0", got)
		}
		want := errors.New("from fn")
		if err := lab.Do(HostGateway, func() error { return want }); !errors.Is(err, want) {
			t.Fatalf("Do error = %v, want %v", err, want)
		}
	})

	t.Run("do re-raises panics", func(t *testing.T) {
		got := func() (v any) {
			defer func() { v = recover() }()
			_ = lab.Do(HostClient, func() error { panic("boom in ns") })
			return nil
		}()
		if got != "boom in ns" {
			t.Fatalf("recovered %v, want the panic value", got)
		}
	})
}

func TestTwoUplinks(t *testing.T) {
	lab := New(t, TwoUplinks(1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, tt := range []struct{ from, to string }{
		{HostClientA, GatewayUpAIP},
		{HostClientA, VIP},
		{HostClientA, BackendIP(1)},
		{HostClientB, GatewayUpBIP}, // answered through upB by gw's source rule
		{BackendHost(1), GatewayDownIP6},
	} {
		t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
			if err := lab.WaitReachable(ctx, tt.from, tt.to); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("tcp clientA to backend", func(t *testing.T) {
		if peer := tcpRoundTrip(ctx, t, lab, BackendHost(1), HostClientA, net.JoinHostPort(BackendIP(1), "8080")); peer != ClientAIP {
			t.Fatalf("backend saw %s, want %s", peer, ClientAIP)
		}
	})

	t.Run("replies to clientB leave through rtrA", func(t *testing.T) {
		// The request reaches gw through rtrB, the reply goes to rtrA and
		// dies: the asymmetry the data plane has to fix.
		if err := lab.WaitReachable(ctx, HostClientA, VIP); err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		defer cancel()
		if err := lab.Ping(pctx, HostClientB, VIP); err == nil {
			t.Fatal("clientB got a reply from the VIP; gw routing is symmetric already")
		}
		out, err := lab.Run(ctx, HostGateway, "ip", "route", "get", ClientBIP, "from", VIP)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "via "+RouterAUpIP+" dev "+IfaceGatewayUpA) {
			t.Fatalf("gw route to clientB = %q, want via rtrA", out)
		}
	})

	t.Run("rp_filter off everywhere", func(t *testing.T) {
		for _, host := range lab.Hosts() {
			out, err := lab.Run(ctx, host, "sh", "-c", "cat /proc/sys/net/ipv4/conf/*/rp_filter | sort -u")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != "0" {
				t.Errorf("%s: rp_filter values %q, want only 0", host, got)
			}
		}
	})
}

// tcpRoundTrip listens in server, dials addr from client and returns the
// peer address the server saw.
func tcpRoundTrip(ctx context.Context, t *testing.T, lab *Lab, server, client, addr string) string {
	t.Helper()
	ln, err := lab.Listen(server, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "%s %s", host, line)
	}()
	c, err := lab.Dial(ctx, client, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, "hello"); err != nil {
		t.Fatal(err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	peer, rest, _ := strings.Cut(strings.TrimSpace(reply), " ")
	if rest != "hello" {
		t.Fatalf("reply %q, want the echoed line", reply)
	}
	return peer
}
