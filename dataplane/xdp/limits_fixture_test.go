package xdp_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
	. "github.com/xlbproject/xlb/dataplane/xdp"
)

// gatheredWith returns the value of metric name with exactly these labels
// among its labels, -1 when absent.
func gatheredWith(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestLimitFixtures drives every limiter branch of the program with
// BPF_PROG_TEST_RUN: max connections (and the sweeper giving places back),
// new connections per second, a listener's bandwidth peak and the share of
// the listeners without one.
func TestLimitFixtures(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Timeouts.TCPClosing = 300 * time.Millisecond
		o.SweepInterval = 50 * time.Millisecond
	})
	srv := []pool.Server{{Addr: be1IP, Port: 7000, Weight: 100}}
	reg := pool.NewRegistry()
	cfg := Config{
		Listeners: []Listener{
			{Name: "conns/tcp/7000", LB: "conns", Protocol: TCP, VIP: vip, Port: 7000, Registry: reg, Pool: pool.Config{Servers: srv}},
			{Name: "rate/udp/7001", LB: "rate", Protocol: UDP, VIP: vip, Port: 7001, Registry: reg, Pool: pool.Config{Servers: srv}},
			{Name: "bw/tcp/7002", LB: "bw", Protocol: TCP, VIP: vip, Port: 7002, Registry: reg, Pool: pool.Config{Servers: srv}},
			{Name: "bw/udp/7003", LB: "bw", Protocol: UDP, VIP: vip, Port: 7003, Registry: reg, Pool: pool.Config{Servers: srv}},
			{Name: "bw/udp/7004", LB: "bw", Protocol: UDP, VIP: vip, Port: 7004, Registry: reg, Pool: pool.Config{Servers: srv}},
		},
		Limits: map[string]limit.Params{
			"conns": {MaxConnections: 2},
			"rate":  {NewConnsPerSecond: 2},
			// 7002 reserves 10 kB/s of 15; 7003 and 7004 (no peak) split
			// the 5 left among those sending.
			"bw": {BandwidthBps: 15000, Peaks: map[string]uint64{"bw/tcp/7002": 10000}},
		},
	}
	apply(t, f.e, cfg)
	dropped := func(listener, reason string) float64 {
		return gatheredWith(t, f.reg, "xlb_xdp_dropped_total", map[string]string{"listener": listener, "reason": reason})
	}

	t.Run("max connections", func(t *testing.T) {
		for _, port := range []uint16{41000, 41001} {
			if v, _ := f.run(frame(t, f.fromClient(pkt{sport: port, dport: 7000, syn: true})), f.upIndex); v != xdpRedirect {
				t.Fatalf("connection from port %d under the limit: verdict %d, want redirect", port, v)
			}
			// Established, so they outlive the short closing timeout.
			f.run(frame(t, f.fromClient(pkt{sport: port, dport: 7000, ack: true})), f.upIndex)
		}
		if v, _ := f.run(frame(t, f.fromClient(pkt{sport: 41002, dport: 7000, syn: true})), f.upIndex); v != xdpDrop {
			t.Fatalf("third connection over max_connections 2: verdict %d, want drop", v)
		}
		// Open connections keep flowing.
		if v, _ := f.run(frame(t, f.fromClient(pkt{sport: 41000, dport: 7000, ack: true, payload: []byte("x")})), f.upIndex); v != xdpRedirect {
			t.Errorf("a packet of an open connection at the limit: verdict %d, want redirect", v)
		}
		if got := dropped("conns/tcp/7000", "max_connections"); got != 1 {
			t.Errorf("xlb_xdp_dropped_total{reason=max_connections} = %v, want 1", got)
		}
		if got := gatheredWith(t, f.reg, "xlb_xdp_limit_drops_total", map[string]string{"lb": "conns", "reason": "max_connections"}); got != 1 {
			t.Errorf("xlb_xdp_limit_drops_total{lb=conns,reason=max_connections} = %v, want 1", got)
		}
		// The sweeper recounts every 50 ms here; a flow started while it
		// dumps the table counts twice until its next pass, so the gauge
		// settles on the open connections within a sweep or two.
		var conns float64
		for end := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
			if conns = gatheredWith(t, f.reg, "xlb_xdp_limit_connections", map[string]string{"lb": "conns"}); conns == 2 || time.Now().After(end) {
				break
			}
		}
		if conns != 2 {
			t.Errorf("xlb_xdp_limit_connections{lb=conns} = %v, want 2", conns)
		}
		// A closed connection expires (sweeper) and gives its place back.
		f.run(frame(t, f.fromClient(pkt{sport: 41001, dport: 7000, rst: true})), f.upIndex)
		deadline := time.Now().Add(5 * time.Second)
		for {
			v, _ := f.run(frame(t, f.fromClient(pkt{sport: 41003, dport: 7000, syn: true})), f.upIndex)
			if v == xdpRedirect {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a connection after one expired: still refused (verdict %d)", v)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if v, _ := f.run(frame(t, f.fromClient(pkt{sport: 41004, dport: 7000, syn: true})), f.upIndex); v != xdpDrop {
			t.Errorf("at the limit again: verdict %d, want drop", v)
		}
	})

	t.Run("new connections per second", func(t *testing.T) {
		start := time.Now()
		admitted := 0
		const offered = 8
		for i := range offered {
			v, _ := f.run(frame(t, f.fromClient(pkt{udp: true, sport: uint16(42000 + i), dport: 7001, payload: []byte("q")})), f.upIndex)
			if v == xdpRedirect {
				admitted++
			}
		}
		// A second's worth of burst (2), plus what the clock refilled.
		refill := int(time.Since(start) / (500 * time.Millisecond))
		if admitted < 2 || admitted > 2+refill {
			t.Errorf("%d new flows at once against 2/s: %d admitted, want 2 (+%d refilled)", offered, admitted, refill)
		}
		if got := dropped("rate/udp/7001", "new_connections"); got != float64(offered-admitted) {
			t.Errorf("xlb_xdp_dropped_total{reason=new_connections} = %v, want %d", got, offered-admitted)
		}
		// Packets of admitted flows are not new connections.
		if v, _ := f.run(frame(t, f.fromClient(pkt{udp: true, sport: 42000, dport: 7001, payload: []byte("q")})), f.upIndex); v != xdpRedirect {
			t.Errorf("a packet of an admitted flow: verdict %d, want redirect", v)
		}
		time.Sleep(600 * time.Millisecond)
		if v, _ := f.run(frame(t, f.fromClient(pkt{udp: true, sport: 42100, dport: 7001, payload: []byte("q")})), f.upIndex); v != xdpRedirect {
			t.Errorf("a new flow after the rate refilled: verdict %d, want redirect", v)
		}
	})

	// policed sends n frames of one flow and returns how many passed and
	// the length of one.
	policed := func(p pkt, n int) (int, int) {
		passed, size := 0, 0
		for range n {
			fr := frame(t, f.fromClient(p))
			size = len(fr)
			if v, _ := f.run(fr, f.upIndex); v == xdpRedirect {
				passed++
			}
			p.syn, p.ack = false, true
		}
		return passed, size
	}
	payload := make([]byte, 1000)

	t.Run("bandwidth peak", func(t *testing.T) {
		// 10 kB/s with a burst of 3028 bytes: the SYN and two 1054-byte
		// frames fit, the rest of a quick run does not.
		passed, size := policed(pkt{sport: 43000, dport: 7002, syn: true, payload: payload}, 8)
		if passed < 2 || passed > 4 {
			t.Errorf("8 frames of %d bytes at once against 10 kB/s: %d passed, want 2 or 3", size, passed)
		}
		if got := gatheredWith(t, f.reg, "xlb_xdp_bandwidth_dropped_packets_total", map[string]string{"listener": "bw/tcp/7002", "direction": "in"}); got != float64(8-passed) {
			t.Errorf("bandwidth dropped packets in = %v, want %d", got, 8-passed)
		}
		if got := gatheredWith(t, f.reg, "xlb_xdp_bandwidth_dropped_bytes_total", map[string]string{"listener": "bw/tcp/7002", "direction": "in"}); got != float64((8-passed)*size) {
			t.Errorf("bandwidth dropped bytes in = %v, want %d", got, (8-passed)*size)
		}
		if got := dropped("bw/tcp/7002", "bandwidth"); got != float64(8-passed) {
			t.Errorf("xlb_xdp_dropped_total{reason=bandwidth} = %v, want %d", got, 8-passed)
		}
		// The other direction has its own bucket.
		reply := frame(t, f.fromBackend(pkt{sport: 7000, dport: 43000, ack: true, payload: payload}))
		if v, _ := f.run(reply, f.downIdx); v != xdpRedirect {
			t.Errorf("a reply while the in direction is over its peak: verdict %d, want redirect", v)
		}
	})

	t.Run("bandwidth share", func(t *testing.T) {
		// 7003 shares the 5 kB/s the peak leaves (burst 3028 bytes): two
		// 1042-byte datagrams fit, not six.
		passed, size := policed(pkt{udp: true, sport: 44000, dport: 7003, payload: payload}, 6)
		if passed < 2 || passed > 3 {
			t.Errorf("6 datagrams of %d bytes at once against the 5 kB/s share: %d passed, want 2", size, passed)
		}
		if got := gatheredWith(t, f.reg, "xlb_xdp_bandwidth_dropped_packets_total", map[string]string{"listener": "bw/udp/7003", "direction": "in"}); got != float64(6-passed) {
			t.Errorf("bandwidth dropped packets in = %v, want %d", got, 6-passed)
		}
		if got := gatheredWith(t, f.reg, "xlb_xdp_limit_drops_total", map[string]string{"lb": "bw", "reason": "bandwidth"}); got < float64(6-passed)+1 {
			t.Errorf("xlb_xdp_limit_drops_total{lb=bw,reason=bandwidth} = %v, want both listeners' drops", got)
		}
	})

	t.Run("bandwidth split among the senders", func(t *testing.T) {
		rate := func(listener string) float64 {
			return gatheredWith(t, f.reg, "xlb_xdp_bandwidth_rate_bytes", map[string]string{"listener": listener, "direction": "in"})
		}
		waitRates := func(what string, want7003, want7004 float64, send bool) {
			t.Helper()
			deadline := time.Now().Add(3 * time.Second)
			for rate("bw/udp/7003") != want7003 || rate("bw/udp/7004") != want7004 {
				if time.Now().After(deadline) {
					t.Fatalf("%s: rates %v and %v, want %v and %v", what, rate("bw/udp/7003"), rate("bw/udp/7004"), want7003, want7004)
				}
				if send {
					// Distinct client ports: both go to be1:7000, and a
					// shared reply key would refuse the second flow.
					for _, port := range []uint16{7003, 7004} {
						f.run(frame(t, f.fromClient(pkt{udp: true, sport: 37000 + port, dport: port, payload: []byte("x")})), f.upIndex)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if got := rate("bw/tcp/7002"); got != 10000 {
			t.Errorf("the peak's rate = %v, want 10000", got)
		}
		waitRates("both sending", 2500, 2500, true)
		waitRates("neither sending", 5000, 5000, false)
	})
}
