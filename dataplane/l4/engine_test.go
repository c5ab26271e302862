package l4

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/dataplane/acl"
	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// backendSet runs named TCP and UDP echo servers on loopback.
type backendSet struct {
	tcp map[string]netip.AddrPort
	udp map[string]netip.AddrPort
}

func startBackends(t *testing.T, names ...string) *backendSet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	bs := &backendSet{tcp: map[string]netip.AddrPort{}, udp: map[string]netip.AddrPort{}}
	for _, n := range names {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		bs.tcp[n] = l.Addr().(*net.TCPAddr).AddrPort()
		bs.udp[n] = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		wg.Add(2)
		go func() { defer wg.Done(); _ = serve.NewTCPEcho(n).Serve(ctx, l) }()
		go func() { defer wg.Done(); _ = serve.NewUDPEcho(n).Serve(ctx, pc) }()
	}
	return bs
}

func servers(addrs map[string]netip.AddrPort, weights map[string]int) []pool.Server {
	var out []pool.Server
	for n, ap := range addrs {
		w := 100
		if weights != nil {
			w = weights[n]
		}
		out = append(out, pool.Server{Addr: ap.Addr(), Port: ap.Port(), Weight: w})
	}
	return out
}

func newEngine(t *testing.T) (*Engine, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Drain(ctx)
	})
	return e, reg
}

func apply(t *testing.T, e *Engine, cfg Config) {
	t.Helper()
	ch, err := e.Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	ch.Commit()
}

// freePort returns a loopback address with a port free for tcp and udp.
func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func whoTCP(t *testing.T, addr netip.AddrPort) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	return serve.WhoAmITCP(ctx, c)
}

func TestTCPWeightsHonoured(t *testing.T) {
	bs := startBackends(t, "a", "b", "c")
	e, reg := newEngine(t)
	vip := freePort(t)
	apply(t, e, Config{Listeners: []Listener{{
		Name: "lb/tcp/1", Protocol: TCP, Addr: vip, Registry: pool.NewRegistry(),
		Pool: pool.Config{Scheduler: pool.WRR, Servers: servers(bs.tcp, map[string]int{"a": 100, "b": 50, "c": 0})},
	}}})
	counts := map[string]int{}
	for range 30 {
		name, err := whoTCP(t, vip)
		if err != nil {
			t.Fatal(err)
		}
		counts[name]++
	}
	if counts["a"] != 20 || counts["b"] != 10 || counts["c"] != 0 {
		t.Errorf("30 connections with weights 100/50/0 went %v, want a=20 b=10 c=0", counts)
	}
	if got := testutil.ToFloat64(e.metrics.conns.WithLabelValues("lb/tcp/1")); got != 30 {
		t.Errorf("xlb_l4_connections_total = %v, want 30", got)
	}
	_ = reg
}

// echoHalfClosed fills payload with random bytes, sends it through vip to
// an echo backend, half-closes, and returns all that came back.
func echoHalfClosed(t *testing.T, vip netip.AddrPort, payload []byte) ([]byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = rand.Read(payload)
	go func() {
		_, _ = c.Write(payload)
		_ = c.(*net.TCPConn).CloseWrite() // the client is done sending
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return io.ReadAll(c)
}

func TestTCPHalfCloseDeliversTheWholeAnswer(t *testing.T) {
	bs := startBackends(t, "a")
	e, _ := newEngine(t)
	vip := freePort(t)
	apply(t, e, Config{Listeners: []Listener{{
		Name: "lb/tcp/1", Protocol: TCP, Addr: vip, Registry: pool.NewRegistry(),
		Pool: pool.Config{Servers: servers(bs.tcp, nil)},
	}}})
	payload := make([]byte, 8<<20)
	got, err := echoHalfClosed(t, vip, payload)
	if err != nil {
		t.Fatalf("reading the echo after half-close: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo after half-close: got %d bytes, want the %d sent", len(got), len(payload))
	}
	if in := testutil.ToFloat64(e.metrics.bytes.WithLabelValues("lb/tcp/1", "in")); in != float64(len(payload)) {
		t.Errorf("bytes in = %v, want %d", in, len(payload))
	}
}

func TestTCPRefusals(t *testing.T) {
	bs := startBackends(t, "a")
	deny, err := acl.New(acl.Deny, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	if err != nil {
		t.Fatal(err)
	}
	down := pool.NewRegistry()
	tests := []struct {
		name   string
		l      Listener
		reason string
		setup  func(*Engine)
	}{
		{name: "acl deny", reason: reasonACL,
			l: Listener{ACL: deny, Registry: pool.NewRegistry(), Pool: pool.Config{Servers: servers(bs.tcp, nil)}}},
		{name: "stopped", reason: reasonStopped,
			l: Listener{Stopped: true, Registry: pool.NewRegistry(), Pool: pool.Config{Servers: servers(bs.tcp, nil)}}},
		{name: "all weights zero", reason: reasonNoBackend,
			l: Listener{Registry: pool.NewRegistry(), Pool: pool.Config{Servers: servers(bs.tcp, map[string]int{"a": 0})}}},
		{name: "backend refuses", reason: reasonConnectFailed,
			l: Listener{Registry: pool.NewRegistry(), Pool: pool.Config{Servers: []pool.Server{{Addr: netip.MustParseAddr("127.0.0.1"), Port: freePort(t).Port(), Weight: 100}}}}},
		{name: "backend down", reason: reasonNoBackend,
			l: Listener{Registry: down, Pool: pool.Config{Servers: servers(bs.tcp, nil)}},
			setup: func(*Engine) {
				for _, b := range down.Backends() {
					b.SetUp(false)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEngine(t)
			l := tt.l
			l.Name, l.Protocol, l.Addr = "lb/tcp/1", TCP, freePort(t)
			apply(t, e, Config{Listeners: []Listener{l}})
			if tt.setup != nil {
				tt.setup(e)
			}
			name, err := whoTCP(t, l.Addr)
			if err == nil {
				t.Fatalf("connection served by %q, want it refused", name)
			}
			if got := testutil.ToFloat64(e.metrics.dropped.WithLabelValues("lb/tcp/1", tt.reason)); got != 1 {
				t.Errorf("xlb_l4_dropped_total{reason=%q} = %v, want 1", tt.reason, got)
			}
		})
	}
}

func TestReloadKeepsOpenConnections(t *testing.T) {
	bs := startBackends(t, "a", "b")
	e, _ := newEngine(t)
	vip := freePort(t)
	reg := pool.NewRegistry()
	only := func(name string) Config {
		return Config{Listeners: []Listener{{
			Name: "lb/tcp/1", Protocol: TCP, Addr: vip, Registry: reg,
			Pool: pool.Config{Servers: servers(map[string]netip.AddrPort{name: bs.tcp[name]}, nil)},
		}}}
	}
	apply(t, e, only("a"))
	c, err := net.Dial("tcp", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if name, err := serve.WhoAmITCP(ctx, c); err != nil || name != "a" {
		t.Fatalf("first connection: %q %v", name, err)
	}

	apply(t, e, only("b")) // a leaves the pool

	if name, err := whoTCP(t, vip); err != nil || name != "b" {
		t.Fatalf("new connection after reload went to %q (%v), want b", name, err)
	}
	// The open connection still reaches a.
	if _, err := c.Write([]byte("still here\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("still here\n"))
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still here\n" {
		t.Fatalf("open connection after reload: %q %v", buf, err)
	}
}

func TestPrepareFailureLeavesNothingBound(t *testing.T) {
	bs := startBackends(t, "a")
	e, _ := newEngine(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := freePort(t)
	cfg := Config{Listeners: []Listener{
		{Name: "ok", Protocol: TCP, Addr: free, Registry: pool.NewRegistry(), Pool: pool.Config{Servers: servers(bs.tcp, nil)}},
		{Name: "clash", Protocol: TCP, Addr: taken.Addr().(*net.TCPAddr).AddrPort(), Registry: pool.NewRegistry(), Pool: pool.Config{Servers: servers(bs.tcp, nil)}},
	}}
	if _, err := e.Prepare(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "clash") {
		t.Fatalf("Prepare = %v, want an error naming the listener that cannot bind", err)
	}
	// The first listener's socket was released: the port can be bound again.
	l, err := net.Listen("tcp", free.String())
	if err != nil {
		t.Fatalf("port of the aborted listener still bound: %v", err)
	}
	l.Close()
}

func TestUDPSessionsAndLimit(t *testing.T) {
	bs := startBackends(t, "a", "b")
	e, _ := newEngine(t)
	vip := freePort(t)
	apply(t, e, Config{Listeners: []Listener{{
		Name: "lb/udp/1", Protocol: UDP, Addr: vip, Registry: pool.NewRegistry(), MaxSessions: 4,
		Pool: pool.Config{Scheduler: pool.RR, Servers: servers(bs.udp, nil)}, IdleTimeout: time.Minute,
	}}})
	counts := map[string]int{}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 6 {
		c, err := net.Dial("udp", vip.String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		name, err := serve.WhoAmIUDP(ctx, c)
		cancel()
		if i < 4 {
			if err != nil {
				t.Fatalf("session %d: %v", i, err)
			}
			counts[name]++
		} else if err == nil {
			t.Fatalf("session %d over the limit of 4 answered by %q", i, name)
		}
	}
	if counts["a"] != 2 || counts["b"] != 2 {
		t.Errorf("4 sessions with rr went %v, want 2 each", counts)
	}
	if got := testutil.ToFloat64(e.metrics.dropped.WithLabelValues("lb/udp/1", reasonSessionLimit)); got != 2 {
		t.Errorf("session_limit drops = %v, want 2", got)
	}
	// A session keeps its backend: the same socket asks again (each ask
	// with its own generous deadline: a loaded machine is slow, not wrong).
	ask := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return serve.WhoAmIUDP(ctx, conns[0])
	}
	first, err1 := ask()
	again, err2 := ask()
	if first == "" || first != again {
		t.Errorf("one session answered by %q (%v) then %q (%v), want the same backend", first, err1, again, err2)
	}
}

func TestUDPIdleSessionsExpire(t *testing.T) {
	bs := startBackends(t, "a")
	e, _ := newEngine(t)
	vip := freePort(t)
	apply(t, e, Config{Listeners: []Listener{{
		Name: "lb/udp/1", Protocol: UDP, Addr: vip, Registry: pool.NewRegistry(),
		Pool: pool.Config{Servers: servers(bs.udp, nil)}, IdleTimeout: 200 * time.Millisecond,
	}}})
	c, err := net.Dial("udp", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := serve.WhoAmIUDP(ctx, c); err != nil {
		t.Fatal(err)
	}
	if n := e.ActiveConnections(); n != 1 {
		t.Fatalf("active sessions = %d, want 1", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for e.ActiveConnections() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle UDP session never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDrainWaitsThenCloses(t *testing.T) {
	bs := startBackends(t, "a")
	reg := prometheus.NewRegistry()
	e, err := New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	vip := freePort(t)
	apply(t, e, Config{Listeners: []Listener{{
		Name: "lb/tcp/1", Protocol: TCP, Addr: vip, Registry: pool.NewRegistry(), Pool: pool.Config{Servers: servers(bs.tcp, nil)},
	}}})
	c, err := net.Dial("tcp", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	// The echo proves the engine holds the connection (accepted and
	// proxied), not just the kernel's backlog.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("echo through the engine: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	e.Drain(ctx)
	if time.Since(start) < 250*time.Millisecond {
		t.Errorf("Drain returned after %v with a connection open, want it to wait for the drain deadline", time.Since(start))
	}
	if _, err := net.Dial("tcp", vip.String()); err == nil {
		t.Error("listener still accepting after Drain")
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("open connection after the drain deadline: %v, want it closed", err)
	}
}

// TestTCPBandwidth paces each direction to its shaper: 1 MiB echoed through
// a listener whose clients may send 2 MiB/s takes at least the half second
// the rate allows (less the shaper's 50 ms burst), and so does one whose
// clients may receive 2 MiB/s; the delays are recorded.
func TestTCPBandwidth(t *testing.T) {
	bs := startBackends(t, "a")
	for _, dir := range []string{"in", "out"} {
		t.Run(dir, func(t *testing.T) {
			e, _ := newEngine(t)
			vip := freePort(t)
			sh := limit.NewShaper(2 << 20)
			l := Listener{Name: "lb/tcp/1", Protocol: TCP, Addr: vip, Registry: pool.NewRegistry(),
				Pool: pool.Config{Servers: servers(bs.tcp, nil)}}
			if dir == "in" {
				l.BandwidthIn = sh
			} else {
				l.BandwidthOut = sh
			}
			apply(t, e, Config{Listeners: []Listener{l}})
			payload := make([]byte, 1<<20)
			start := time.Now()
			got, err := echoHalfClosed(t, vip, payload)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("echo: %d of %d bytes, %v", len(got), len(payload), err)
			}
			if d := time.Since(start); d < 400*time.Millisecond {
				t.Errorf("1 MiB through a 2 MiB/s %s shaper in %v", dir, d)
			}
			if sh.Waited() <= 0 {
				t.Error("the shaper recorded no delay")
			}
		})
	}
}

// TestUDPBandwidth paces the replies of a listener whose clients may
// receive 100 KB/s: 50 echoed datagrams of 1,000 bytes take at least the
// half second the rate allows, and none is lost (the backend's socket
// holds them meanwhile).
func TestUDPBandwidth(t *testing.T) {
	bs := startBackends(t, "a")
	e, _ := newEngine(t)
	vip := freePort(t)
	out := limit.NewShaper(100_000)
	apply(t, e, Config{Listeners: []Listener{{
		Name: "lb/udp/1", Protocol: UDP, Addr: vip, Registry: pool.NewRegistry(), IdleTimeout: time.Minute,
		Pool: pool.Config{Servers: servers(bs.udp, nil)}, BandwidthOut: out,
	}}})
	c, err := net.Dial("udp", vip.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte{'x'}, 1000)
	start := time.Now()
	for range 50 {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2000)
	for i := range 50 {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("50 kB of replies through a 100 kB/s shaper in %v", d)
	}
	if out.Waited() <= 0 {
		t.Error("the shaper recorded no delay")
	}
}
