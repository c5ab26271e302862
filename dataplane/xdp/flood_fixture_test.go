package xdp_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"

	"github.com/xlbproject/xlb/dataplane/pool"
	. "github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/netlab"
)

// flood runs frame n times in one BPF_PROG_TEST_RUN: n packets to the VIP
// within microseconds, a rate far above any threshold.
func (f *fixture) flood(frame []byte, ifindex, n int) {
	f.t.Helper()
	err := f.lab.Do(netlab.HostGateway, func() error {
		ctx := struct{ Data, DataEnd, DataMeta, IngressIfindex, RxQueue, EgressIfindex uint32 }{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}
		_, err := f.e.Program().Run(&ebpf.RunOptions{Data: frame, Context: ctx, Repeat: uint32(n)})
		return err
	})
	if err != nil {
		f.t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
}

// TestFloodFixtures drives flood protection's branches: a source over its
// per-source rate, a class over its total, the allow-list exemption,
// cleaning above the clean threshold and the blackhole with its hold.
func TestFloodFixtures(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.FloodInterval = 50 * time.Millisecond })
	srv := []pool.Server{{Addr: be1IP, Port: 7000, Weight: 100}}
	reg := pool.NewRegistry()
	listeners := []Listener{
		{Name: "web/tcp/7000", LB: "web", Protocol: TCP, VIP: vip, Port: 7000, Registry: reg, Pool: pool.Config{Servers: srv}},
		{Name: "web/udp/7001", LB: "web", Protocol: UDP, VIP: vip, Port: 7001, Registry: reg, Pool: pool.Config{Servers: srv}},
	}
	protect := func(fl Flood) {
		fl.LB, fl.VIP = "web", vip
		apply(t, f.e, Config{Listeners: listeners, Floods: []Flood{fl}})
	}
	other := netip.MustParseAddr("198.51.100.7") // a second client
	syn := func(src netip.Addr, sport uint16) uint32 {
		p := f.fromClient(pkt{sport: sport, dport: 7000, syn: true})
		p.src = src
		v, _ := f.run(frame(t, p), f.upIndex)
		return v
	}
	drops := func(reason string) float64 {
		return gatheredWith(t, f.reg, "xlb_xdp_flood_dropped_packets_total", map[string]string{"lb": "web", "reason": reason})
	}
	waitState := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for f.e.FloodState(vip) != want {
			if time.Now().After(deadline) {
				t.Fatalf("flood state %q, want %q", f.e.FloodState(vip), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	t.Run("per source and total", func(t *testing.T) {
		// No clean threshold: per-source rates always apply.
		protect(Flood{SYN: FloodRate{PerSourcePPS: 2}, UDP: FloodRate{TotalPPS: 3}, ICMP: FloodRate{TotalPPS: 2}})
		passed := 0
		for i := range 5 {
			if syn(clientIP, uint16(45000+i)) == xdpRedirect {
				passed++
			}
		}
		if passed != 2 {
			t.Errorf("5 SYNs from one source against 2/s per source: %d passed, want 2", passed)
		}
		if got := drops("syn_source"); got != 3 {
			t.Errorf("syn_source drops = %v, want 3", got)
		}
		if v := syn(other, 45100); v != xdpRedirect {
			t.Errorf("a SYN from another source: verdict %d, want redirect", v)
		}
		passed = 0
		for i := range 5 {
			p := f.fromClient(pkt{udp: true, sport: uint16(46000 + i), dport: 7001, payload: []byte("q")})
			p.src = netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + i)})
			if v, _ := f.run(frame(t, p), f.upIndex); v == xdpRedirect {
				passed++
			}
		}
		if passed != 3 {
			t.Errorf("5 datagrams from 5 sources against 3/s in all: %d passed, want 3", passed)
		}
		if got := drops("udp_total"); got != 2 {
			t.Errorf("udp_total drops = %v, want 2", got)
		}
		// Echo requests to the VIP go on to the kernel, within the rate.
		passed = 0
		for i := range 4 {
			src := netip.AddrFrom4([4]byte{198, 51, 100, byte(40 + i)})
			if v, _ := f.run(echoFrame(t, f.clientHW, f.gwUpMAC, src, vip, layers.ICMPv4TypeEchoRequest, uint16(i)), f.upIndex); v != xdpDrop {
				passed++
			}
		}
		if passed != 2 || drops("icmp_total") != 2 {
			t.Errorf("4 echo requests against 2/s in all: %d passed, icmp_total drops %v; want 2 and 2", passed, drops("icmp_total"))
		}
	})

	t.Run("allow list exempt", func(t *testing.T) {
		// The client's schedule is spent; on the allow list it passes.
		protect(Flood{SYN: FloodRate{PerSourcePPS: 2}, Exempt: []netip.Prefix{netip.PrefixFrom(clientIP, 32)}})
		for i := range 5 {
			if v := syn(clientIP, uint16(45200+i)); v != xdpRedirect {
				t.Fatalf("SYN %d from an allow-listed source: verdict %d, want redirect", i, v)
			}
		}
	})

	t.Run("cleaning", func(t *testing.T) {
		protect(Flood{SYN: FloodRate{PerSourcePPS: 2}, CleanPPS: 5000})
		// Normal: per-source rates wait for cleaning.
		for i := range 4 {
			if v := syn(other, uint16(45300+i)); v != xdpRedirect {
				t.Fatalf("SYN %d below the clean threshold: verdict %d, want redirect", i, v)
			}
		}
		before := drops("syn_source")
		deadline := time.Now().Add(5 * time.Second)
		for f.e.FloodState(vip) != "cleaning" && time.Now().Before(deadline) {
			f.flood(frame(t, f.fromClient(pkt{sport: 45400, dport: 7000, ack: true})), f.upIndex, 20000)
			time.Sleep(10 * time.Millisecond)
		}
		waitState("cleaning")
		// Cleaning: the source gets its 2/s (a second's burst), no more.
		passed := 0
		for i := range 8 {
			if syn(other, uint16(45500+i)) == xdpRedirect {
				passed++
			}
		}
		if passed > 2 || drops("syn_source") != before+float64(8-passed) {
			t.Errorf("cleaning: %d of 8 SYNs at once from one source passed (drops %v -> %v), want at most its 2/s", passed, before, drops("syn_source"))
		}
		if v := syn(netip.MustParseAddr("198.51.100.99"), 45600); v != xdpRedirect {
			t.Errorf("cleaning: a SYN from a fresh source: verdict %d, want redirect", v)
		}
		waitState("normal") // the flood stopped
		if got := gatheredWith(t, f.reg, "xlb_xdp_flood_state_changes_total", map[string]string{"lb": "web", "state": "cleaning"}); got < 1 {
			t.Errorf("state changes to cleaning = %v, want at least 1", got)
		}
	})

	t.Run("blackhole", func(t *testing.T) {
		protect(Flood{CleanPPS: 5000, BlackholePPS: 50000, BlackholeHold: time.Second,
			Exempt: []netip.Prefix{netip.MustParsePrefix("198.51.100.200/30")}})
		deadline := time.Now().Add(5 * time.Second)
		for f.e.FloodState(vip) != "blackhole" && time.Now().Before(deadline) {
			f.flood(frame(t, f.fromClient(pkt{sport: 45700, dport: 7000, ack: true})), f.upIndex, 100000)
			time.Sleep(5 * time.Millisecond)
		}
		waitState("blackhole")
		since := time.Now()
		if got := gatheredWith(t, f.reg, "xlb_xdp_flood_state", map[string]string{"lb": "web"}); got != 2 {
			t.Errorf("xlb_xdp_flood_state = %v, want 2 (blackhole)", got)
		}
		before := drops("blackhole")
		if v := syn(other, 45800); v != xdpDrop {
			t.Errorf("blackhole: a SYN from a legitimate source: verdict %d, want drop", v)
		}
		if got := drops("blackhole"); got != before+1 {
			t.Errorf("blackhole drops %v -> %v, want one more", before, got)
		}
		if v := syn(netip.MustParseAddr("198.51.100.201"), 45801); v != xdpRedirect {
			t.Errorf("blackhole: a SYN from an allow-listed source: verdict %d, want redirect", v)
		}
		waitState("normal")
		if held := time.Since(since); held < 800*time.Millisecond {
			t.Errorf("the blackhole lifted after %v, want the 1s hold", held)
		}
		if v := syn(other, 45802); v != xdpRedirect {
			t.Errorf("after the hold: a SYN: verdict %d, want redirect", v)
		}
	})
}
