package xdp_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/bench/xdpgen"
	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
	. "github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/netlab"
)

// withinTenPercent fails unless got is within 10% of want.
func withinTenPercent(t *testing.T, what string, got, want float64) {
	t.Helper()
	if got < want*0.9 || got > want*1.1 {
		t.Errorf("%s: %.0f, want %.0f within 10%%", what, got, want)
	}
}

// dialVIP connects from the client with a timeout shorter than the
// kernel's first SYN retransmission: a dropped SYN is a refused attempt,
// not a late success.
func (x *xdpLab) dialVIP(port int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	return x.lab.Dial(ctx, netlab.HostClient, "tcp", net.JoinHostPort(netlab.VIP, strconv.Itoa(port)))
}

// Offered twice its limits, a load balancer in XDP accepts the limits:
// max connections (long-lived connections) and new connections per second
// (counted over 3 s after a second that drains the burst).
func TestXDPLimitsHoldAtTwiceTheLoad(t *testing.T) {
	x := newXDPLab(t, netlab.ClientGatewayBackends(3),
		[]string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostClient: netlab.IfaceClient, netlab.HostSwitch: netlab.HostGateway})
	e := x.start()
	t.Cleanup(func() { e.Drain(context.Background()) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	cfg := x.config(nil)
	for i := range cfg.Listeners {
		switch cfg.Listeners[i].Port {
		case 7000:
			cfg.Listeners[i].LB = "conns"
		case 8080:
			cfg.Listeners[i].LB = "rate"
		}
	}
	const maxConns, rate = 20, 50
	cfg.Limits = map[string]limit.Params{"conns": {MaxConnections: maxConns}, "rate": {NewConnsPerSecond: rate}}
	apply(t, e, cfg)

	t.Run("max connections", func(t *testing.T) {
		var mu sync.Mutex
		var open []net.Conn
		var served atomic.Int64
		var wg sync.WaitGroup
		for range 2 * maxConns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := x.dialVIP(7000)
				if err != nil {
					return
				}
				mu.Lock()
				open = append(open, c)
				mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				if name, err := serve.WhoAmITCP(ctx, c); err == nil && name != "" {
					served.Add(1)
				}
			}()
		}
		wg.Wait()
		defer func() {
			for _, c := range open {
				c.Close()
			}
		}()
		withinTenPercent(t, "connections accepted of 40 offered, max_connections 20", float64(len(open)), maxConns)
		if served.Load() != int64(len(open)) {
			t.Errorf("%d connections accepted, %d served", len(open), served.Load())
		}
		t.Logf("max_connections %d: %d of %d accepted", maxConns, len(open), 2*maxConns)
		if got := gatheredWith(t, reg, "xlb_xdp_limit_drops_total", map[string]string{"lb": "conns", "reason": "max_connections"}); got < maxConns*0.9 {
			t.Errorf("xlb_xdp_limit_drops_total{lb=conns,reason=max_connections} = %v, want the %d refused", got, 2*maxConns-len(open))
		}
	})

	t.Run("new connections per second", func(t *testing.T) {
		const warmup, measure = time.Second, 3 * time.Second
		var accepted, offered atomic.Int64
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / (2 * rate))
		defer tick.Stop()
		start := time.Now()
		for now := range tick.C {
			if now.Sub(start) >= warmup+measure {
				break
			}
			counted := now.Sub(start) >= warmup
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := x.dialVIP(8080)
				if counted {
					offered.Add(1)
				}
				if err != nil {
					return
				}
				c.Close()
				if counted {
					accepted.Add(1)
				}
			}()
		}
		wg.Wait()
		if offered.Load() < 2*rate*3*9/10 {
			t.Fatalf("offered only %d connections in 3 s, want about %d", offered.Load(), 2*rate*3)
		}
		t.Logf("new connections %d/s: %d of %d accepted in 3 s", rate, accepted.Load(), offered.Load())
		withinTenPercent(t, "connections accepted in 3 s at twice 50/s", float64(accepted.Load()), rate*3)
		if got := gatheredWith(t, reg, "xlb_xdp_limit_drops_total", map[string]string{"lb": "rate", "reason": "new_connections"}); got <= 0 {
			t.Errorf("xlb_xdp_limit_drops_total{lb=rate,reason=new_connections} = %v, want > 0", got)
		}
	})
}

// A UDP flood from one (spoofed) source, sent by the live-frame generator:
// above clean_pps the source's excess over its per-source rate is dropped
// (counted at the switch as it leaves the gateway) while a legitimate
// client keeps being served; above blackhole_pps the VIP's traffic is
// dropped for the hold time, then served again.
func TestXDPFloodIsCleanedThenBlackholed(t *testing.T) {
	x := newXDPLab(t, netlab.ClientGatewayBackends(3),
		[]string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostClient: netlab.IfaceClient})
	// The switch's port towards the gateway counts (and drops) the flood's
	// frames as they leave the gateway; everything else passes.
	const floodPort, floodBackendPort = 7003, 9
	sink, err := xdpgen.AttachCounter(lnsRunner(x.lab, netlab.HostSwitch), netlab.HostGateway,
		xdpgen.CounterConfig{Mode: xdpgen.Driver, MatchProto: xdpgen.UDP, MatchDstPort: floodBackendPort, PassUnmatched: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	e := x.start()
	t.Cleanup(func() { e.Drain(context.Background()) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	cfg := x.config(nil)
	var floodServers []pool.Server
	for i := 1; i <= 3; i++ {
		floodServers = append(floodServers, pool.Server{Addr: netip.MustParseAddr(netlab.BackendIP(i)), Port: floodBackendPort, Weight: 100})
	}
	cfg.Listeners = append(cfg.Listeners, Listener{Name: "lb/udp/7003", LB: "lb", Protocol: UDP, VIP: vip, Port: floodPort,
		Registry: x.reg, Pool: pool.Config{Scheduler: pool.RR, Servers: floodServers}})
	fl := Flood{LB: "lb", VIP: vip, UDP: FloodRate{PerSourcePPS: 200}, CleanPPS: 2000}
	cfg.Floods = []Flood{fl}
	apply(t, e, cfg)

	client := lnsRunner(x.lab, netlab.HostClient)
	src, err := xdpgen.InterfaceMAC(client, netlab.IfaceClient)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := xdpgen.InterfaceMAC(lnsRunner(x.lab, netlab.HostGateway), netlab.IfaceGatewayUp)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := xdpgen.BuildFrame(xdpgen.FrameSpec{SrcMAC: src, DstMAC: dst, Src: netip.MustParseAddr("198.51.100.66"),
		Dst: vip, SrcPort: 20000, DstPort: floodPort, Proto: xdpgen.UDP, Size: xdpgen.MinFrameSize})
	if err != nil {
		t.Fatal(err)
	}
	gen, err := xdpgen.NewGenerator(client, xdpgen.GeneratorConfig{Frame: frame, Dev: netlab.IfaceClient, HoldDev: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gen.Close() })
	flood := func(d time.Duration) <-chan xdpgen.Result {
		done := make(chan xdpgen.Result, 1)
		go func() {
			res, err := gen.Send(context.Background(), xdpgen.SendOptions{Rate: 20000, Duration: d})
			if err != nil {
				t.Errorf("flood: %v", err)
			}
			done <- res
		}()
		return done
	}

	// Cleaning: 20000 pps from one source; the client's UDP requests, well
	// under the per-source rate, are all answered.
	done := flood(2 * time.Second)
	answered, asked, duringCleaning := 0, 0, 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		cleaning := e.FloodState(vip) == "cleaning"
		asked++
		if _, err := x.who(netlab.HostClient, "udp", 7001); err == nil {
			answered++
			if cleaning {
				duringCleaning++
			}
		}
	}
	sent := <-done
	time.Sleep(200 * time.Millisecond)
	st, err := sink.Read()
	if err != nil {
		t.Fatal(err)
	}
	if sent.Frames < 10000 {
		t.Fatalf("the generator sent %d frames in 2 s, want a flood (about 40000)", sent.Frames)
	}
	// The source's 200/s over 2 s plus a second's burst, and what passed
	// before cleaning started (about 100 ms: a flood-loop interval, 150 allowed).
	if limit := 600 + sent.PPS()*0.15; float64(st.MatchedPackets) > limit {
		t.Errorf("%d of %d flood frames reached the backends, want at most %.0f (the source's 200/s while cleaning)", st.MatchedPackets, sent.Frames, limit)
	}
	t.Logf("cleaning: %d frames sent (%.0f pps), %d reached the backends; client answered %d of %d", sent.Frames, sent.PPS(), st.MatchedPackets, answered, asked)
	if answered < asked*9/10 || duringCleaning == 0 {
		t.Errorf("during the flood the client got %d of %d answers (%d while cleaning), want it served", answered, asked, duringCleaning)
	}
	if got := gatheredWith(t, reg, "xlb_xdp_flood_dropped_packets_total", map[string]string{"lb": "lb", "reason": "udp_source"}); got < float64(sent.Frames)/2 {
		t.Errorf("udp_source drops %v of %d flood frames, want most of them", got, sent.Frames)
	}

	// Blackhole: above 5000 pps everything to the VIP is dropped for 2 s.
	deadline := time.Now().Add(3 * time.Second)
	for e.FloodState(vip) != "normal" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	fl.BlackholePPS, fl.BlackholeHold = 5000, 2*time.Second
	cfg.Floods = []Flood{fl}
	apply(t, e, cfg)
	done = flood(time.Second)
	deadline = time.Now().Add(2 * time.Second)
	for e.FloodState(vip) != "blackhole" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := e.FloodState(vip); s != "blackhole" {
		t.Fatalf("flood state %q at 20000 pps, want blackhole", s)
	}
	began := time.Now()
	// Asked at once and given half a second, so that neither a late flood
	// nor a SYN retransmitted after 1 s can reach past the 2 s hold.
	if _, err := x.whoWithin(netlab.HostClient, "tcp", 7000, 500*time.Millisecond); err == nil {
		t.Errorf("a TCP request during the blackhole was served, want the VIP's traffic dropped")
	}
	<-done
	var back time.Duration
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, err := x.who(netlab.HostClient, "tcp", 7000); err == nil {
			back = time.Since(began)
			break
		}
	}
	if back == 0 {
		t.Fatal("the VIP was not served again within 6 s of the blackhole")
	}
	if back < 1500*time.Millisecond {
		t.Errorf("served again %v after the blackhole began, want the 2 s hold first", back)
	}
	if got := gatheredWith(t, reg, "xlb_xdp_flood_dropped_packets_total", map[string]string{"lb": "lb", "reason": "blackhole"}); got <= 0 {
		t.Errorf("blackhole drops = %v, want > 0", got)
	}
	for _, s := range []string{"cleaning", "blackhole", "normal"} {
		if got := gatheredWith(t, reg, "xlb_xdp_flood_state_changes_total", map[string]string{"lb": "lb", "state": s}); got < 1 {
			t.Errorf("state changes to %s = %v, want at least 1", s, got)
		}
	}
}

func lnsRunner(lab *netlab.Lab, host string) xdpgen.NSRunner {
	return func(fn func() error) error { return lab.Do(host, fn) }
}

// DESIGN.md's bandwidth rule through XDP, with three udp listeners of one
// load balancer (300 kB/s): A reserves 100 kB/s, B and C have no peak.
// Each offered 250 kB/s, all three get 100 kB/s; with C quiet, B gets the
// 200 kB/s the peak leaves. Counted as bytes forwarded over 2 s.
func TestXDPBandwidthReservationHoldsWithThreeListeners(t *testing.T) {
	x := newXDPLab(t, netlab.ClientGatewayBackends(3),
		[]string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostClient: netlab.IfaceClient, netlab.HostSwitch: netlab.HostGateway})
	e := x.start()
	t.Cleanup(func() { e.Drain(context.Background()) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	var servers []pool.Server
	for i := 1; i <= 3; i++ {
		servers = append(servers, pool.Server{Addr: netip.MustParseAddr(netlab.BackendIP(i)), Port: 7001, Weight: 100})
	}
	names := map[uint16]string{7101: "lb/udp/7101", 7102: "lb/udp/7102", 7103: "lb/udp/7103"}
	var cfg Config
	for port, name := range names {
		cfg.Listeners = append(cfg.Listeners, Listener{Name: name, LB: "lb", Protocol: UDP, VIP: vip, Port: port,
			Registry: x.reg, Pool: pool.Config{Scheduler: pool.RR, Servers: servers}})
	}
	cfg.Limits = map[string]limit.Params{"lb": {BandwidthBps: 300_000, Peaks: map[string]uint64{"lb/udp/7101": 100_000}}}
	apply(t, e, cfg)

	// send offers 250 kB/s (1000-byte datagrams every 4 ms) to port until
	// stop closes.
	send := func(port uint16, stop <-chan struct{}, wg *sync.WaitGroup) {
		defer wg.Done()
		c, err := x.lab.Dial(context.Background(), netlab.HostClient, "udp", net.JoinHostPort(netlab.VIP, strconv.Itoa(int(port))))
		if err != nil {
			t.Errorf("udp to %d: %v", port, err)
			return
		}
		defer c.Close()
		payload := make([]byte, 1000)
		tick := time.NewTicker(4 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_, _ = c.Write(payload)
			}
		}
	}
	forwarded := func() map[uint16]float64 {
		out := map[uint16]float64{}
		for port, name := range names {
			out[port] = gatheredWith(t, reg, "xlb_xdp_bytes_total", map[string]string{"listener": name, "direction": "in"})
		}
		return out
	}
	measure := func(what string, ports []uint16, want map[uint16]float64) {
		t.Helper()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, p := range ports {
			wg.Add(1)
			go send(p, stop, &wg)
		}
		time.Sleep(500 * time.Millisecond) // past the bursts and the first re-split
		before := forwarded()
		const window = 2 * time.Second
		start := time.Now()
		time.Sleep(window)
		after := forwarded()
		elapsed := time.Since(start).Seconds()
		close(stop)
		wg.Wait()
		for _, p := range ports {
			got := (after[p] - before[p]) / elapsed
			t.Logf("%s: %s %.0f B/s", what, names[p], got)
			withinTenPercent(t, what+": "+names[p]+" bytes/s", got, want[p])
		}
		time.Sleep(300 * time.Millisecond) // the senders go quiet
	}
	measure("all three sending", []uint16{7101, 7102, 7103}, map[uint16]float64{7101: 100_000, 7102: 100_000, 7103: 100_000})
	measure("C quiet", []uint16{7101, 7102}, map[uint16]float64{7101: 100_000, 7102: 200_000})
}
