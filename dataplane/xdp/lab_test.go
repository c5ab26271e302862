package xdp_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/dataplane/pool"
	. "github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// privateBPFFS mounts a bpffs instance owned by the test.
func privateBPFFS(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mounting bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return filepath.Join(dir, "xlb")
}

// attachPass puts the pass program on the lab's veth ends that receive
// redirected frames.
func attachPass(t *testing.T, lab *netlab.Lab, ends map[string]string) {
	t.Helper()
	for host, ifname := range ends {
		err := lab.Do(host, func() error {
			c, err := AttachPass(ifname)
			if err == nil {
				t.Cleanup(func() { c.Close() })
			}
			return err
		})
		if err != nil {
			t.Fatalf("pass program on %s/%s: %v", host, ifname, err)
		}
	}
}

type xdpLab struct {
	t        *testing.T
	lab      *netlab.Lab
	backends *labsvc.Backends
	bpffs    string
	reg      *pool.Registry
	ifaces   []string
}

func newXDPLab(t *testing.T, topo netlab.Topology, ifaces []string, passEnds map[string]string) *xdpLab {
	topo.NoTxChecksum = true
	lab := netlab.New(t, topo)
	bs, err := labsvc.StartBackends(context.Background(), lab, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	attachPass(t, lab, passEnds)
	return &xdpLab{t: t, lab: lab, backends: bs, bpffs: privateBPFFS(t), reg: pool.NewRegistry(), ifaces: ifaces}
}

// start runs an engine in the gateway namespace.
func (x *xdpLab) start() *Engine {
	x.t.Helper()
	var e *Engine
	err := x.lab.Do(netlab.HostGateway, func() error {
		var err error
		e, err = New(Options{Interfaces: x.ifaces, BPFFS: x.bpffs, MaxFlows: 4096}, nil)
		return err
	})
	if err != nil {
		x.t.Fatalf("starting the XDP engine: %v", err)
	}
	return e
}

func (x *xdpLab) config(wrr map[int]int) Config {
	vip := netip.MustParseAddr(netlab.VIP)
	var servers func(port uint16) []pool.Server = func(port uint16) []pool.Server {
		var out []pool.Server
		for i := 1; i <= 3; i++ {
			w := 100
			if wrr != nil {
				w = wrr[i]
			}
			out = append(out, pool.Server{Addr: netip.MustParseAddr(netlab.BackendIP(i)), Port: port, Weight: w})
		}
		return out
	}
	return Config{Listeners: []Listener{
		{Name: "lb/tcp/7000", Protocol: TCP, VIP: vip, Port: 7000, Registry: x.reg,
			Pool: pool.Config{Scheduler: pool.WRR, Servers: servers(labsvc.TCPPort)}},
		{Name: "lb/udp/7001", Protocol: UDP, VIP: vip, Port: 7001, Registry: x.reg,
			Pool: pool.Config{Scheduler: pool.RR, Servers: servers(labsvc.UDPPort)}},
		{Name: "lb/tcp/8080", Protocol: TCP, VIP: vip, Port: 8080, Registry: x.reg,
			Pool: pool.Config{Scheduler: pool.RR, Servers: servers(labsvc.HTTPPort)}},
	}}
}

func apply(t testing.TB, e *Engine, cfg Config) {
	t.Helper()
	ch, err := e.Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch.Commit()
}

func (x *xdpLab) who(host, network string, port int) (string, error) {
	return x.whoWithin(host, network, port, 2*time.Second)
}

// whoWithin is who with its own timeout.
func (x *xdpLab) whoWithin(host, network string, port int, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := x.lab.Dial(ctx, host, network, net.JoinHostPort(netlab.VIP, strconv.Itoa(port)))
	if err != nil {
		return "", err
	}
	defer c.Close()
	if network == "udp" {
		return serve.WhoAmIUDP(ctx, c)
	}
	return serve.WhoAmITCP(ctx, c)
}

func (x *xdpLab) count(host, network string, port, n int) map[string]int {
	x.t.Helper()
	out := map[string]int{}
	for i := range n {
		name, err := x.who(host, network, port)
		if err != nil {
			x.t.Fatalf("%s %d, attempt %d: %v", network, port, i, err)
		}
		out[name]++
	}
	return out
}

func TestXDPForwardsThroughTheVIP(t *testing.T) {
	x := newXDPLab(t, netlab.ClientGatewayBackends(3),
		[]string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostClient: netlab.IfaceClient, netlab.HostSwitch: netlab.HostGateway})
	e := x.start()
	t.Cleanup(func() { e.Drain(context.Background()) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	apply(t, e, x.config(map[int]int{1: 100, 2: 100, 3: 50}))

	if got := x.count(netlab.HostClient, "tcp", 7000, 50); got["be1"] != 20 || got["be2"] != 20 || got["be3"] != 10 {
		t.Errorf("50 TCP connections with weights 100/100/50 went %v, want 20/20/10", got)
	}
	if got := x.count(netlab.HostClient, "udp", 7001, 30); got["be1"] != 10 || got["be2"] != 10 || got["be3"] != 10 {
		t.Errorf("30 UDP flows with rr went %v, want 10 each", got)
	}

	// NAT mode: the backend sees the client's own address.
	if seen, err := labsvc.SeenAs(context.Background(), x.lab, netlab.HostClient, 8080); err != nil || seen.String() != netlab.ClientIP {
		t.Errorf("backend saw the client as %v (%v), want %s", seen, err, netlab.ClientIP)
	}

	// A backend taken out (health down) gets no new flows.
	x.reg.Lookup(pool.BackendID(netip.MustParseAddr(netlab.BackendIP(2)), labsvc.TCPPort)).SetUp(false)
	time.Sleep(200 * time.Millisecond) // the ring rewrite runs on the engine's goroutine
	if got := x.count(netlab.HostClient, "tcp", 7000, 30); got["be2"] != 0 {
		t.Errorf("with be2 down, 30 connections went %v, want none to be2", got)
	}

	if got := gathered(t, reg, "xlb_xdp_new_flows_total", "lb/tcp/7000"); got != 80 {
		t.Errorf("xlb_xdp_new_flows_total{listener=lb/tcp/7000} = %v, want 80", got)
	}
	if got := gathered(t, reg, "xlb_xdp_new_flows_total", "lb/udp/7001"); got != 30 {
		t.Errorf("xlb_xdp_new_flows_total{listener=lb/udp/7001} = %v, want 30", got)
	}
}

// gathered returns the value of the series of name whose listener label is
// listener.
func gathered(t *testing.T, reg *prometheus.Registry, name, listener string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() == listener {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func TestXDPRepliesLeaveThroughTheUplinkTheyCameIn(t *testing.T) {
	// gw's only default route is via rtrA: without symmetric return, a reply
	// to clientB would leave through rtrA and be lost.
	x := newXDPLab(t, netlab.TwoUplinks(3),
		[]string{netlab.IfaceGatewayUpA, netlab.IfaceGatewayUpB, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostRouterA: netlab.IfaceRouterUp, netlab.HostRouterB: netlab.IfaceRouterUp, netlab.HostSwitch: netlab.HostGateway})
	e := x.start()
	t.Cleanup(func() { e.Drain(context.Background()) })
	apply(t, e, x.config(nil))
	for _, host := range []string{netlab.HostClientA, netlab.HostClientB} {
		if got := x.count(host, "tcp", 7000, 9); len(got) != 3 {
			t.Errorf("9 TCP connections from %s went %v, want all three backends", host, got)
		}
		if got := x.count(host, "udp", 7001, 6); len(got) != 3 {
			t.Errorf("6 UDP flows from %s went %v, want all three backends", host, got)
		}
	}
}

func TestXDPFlowsSurviveARestart(t *testing.T) {
	x := newXDPLab(t, netlab.ClientGatewayBackends(3),
		[]string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostClient: netlab.IfaceClient, netlab.HostSwitch: netlab.HostGateway})
	e := x.start()
	apply(t, e, x.config(nil))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	flows, err := labsvc.OpenLiveFlows(ctx, x.lab)
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Close()
	echo := func(stage string) {
		t.Helper()
		if err := flows.Check(ctx); err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
	}

	e.Drain(context.Background()) // xlbd stops: the program stays attached
	echo("while xlbd is down")

	e2 := x.start() // a new xlbd adopts the pinned maps
	t.Cleanup(func() { e2.Drain(context.Background()) })
	echo("after the restart, before the first apply")
	apply(t, e2, x.config(nil))
	echo("after the restart")
	if got := x.count(netlab.HostClient, "tcp", 7000, 6); len(got) != 3 {
		t.Errorf("new connections after the restart went %v, want all three backends", got)
	}
}

func TestXDPFullNATRepliesReturnWhateverTheBackendsRoutes(t *testing.T) {
	x := newXDPLab(t, netlab.ClientGatewayBackends(3),
		[]string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostClient: netlab.IfaceClient, netlab.HostSwitch: netlab.HostGateway})
	// be1 has no route back to the clients: only its own segment.
	if out, err := x.lab.Run(context.Background(), netlab.BackendHost(1), "ip", "route", "del", "default"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	e := x.start()
	t.Cleanup(func() { e.Drain(context.Background()) })
	vip := netip.MustParseAddr(netlab.VIP)
	be1 := []pool.Server{{Addr: netip.MustParseAddr(netlab.BackendIP(1)), Port: labsvc.HTTPPort, Weight: 100}}
	apply(t, e, Config{Listeners: []Listener{
		{Name: "nat", Protocol: TCP, VIP: vip, Port: 8080, Registry: x.reg, Pool: pool.Config{Servers: be1}},
		{Name: "fullnat", Protocol: TCP, VIP: vip, Port: 8081, Registry: x.reg, Pool: pool.Config{Servers: be1}, FullNAT: true},
	}})
	hc := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: x.lab.Dialer(netlab.HostClient), DisableKeepAlives: true}}
	if _, err := hc.Get("http://" + netlab.VIP + ":8080/"); err == nil {
		t.Error("nat mode worked although the backend cannot route to the client: the test proves nothing")
	}
	for i := range 5 {
		seen, err := labsvc.SeenAs(context.Background(), x.lab, netlab.HostClient, 8081)
		if err != nil {
			t.Fatalf("fullnat request %d: %v", i, err)
		}
		if seen.String() != netlab.GatewayDownIP {
			t.Errorf("in fullnat the backend saw %v, want the gateway's %s", seen, netlab.GatewayDownIP)
		}
	}
}

func TestXDPSchedulersPersistenceAndMasterSlave(t *testing.T) {
	x := newXDPLab(t, netlab.ClientGatewayBackends(3),
		[]string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostClient: netlab.IfaceClient, netlab.HostSwitch: netlab.HostGateway})
	e := x.start()
	t.Cleanup(func() { e.Drain(context.Background()) })
	vip := netip.MustParseAddr(netlab.VIP)
	all := func(port uint16) []pool.Server {
		var out []pool.Server
		for i := 1; i <= 3; i++ {
			out = append(out, pool.Server{Addr: netip.MustParseAddr(netlab.BackendIP(i)), Port: port, Weight: 100})
		}
		return out
	}
	ms := []pool.Server{
		{Addr: netip.MustParseAddr(netlab.BackendIP(1)), Port: labsvc.TCPPort, Weight: 100, Role: pool.Master},
		{Addr: netip.MustParseAddr(netlab.BackendIP(2)), Port: labsvc.TCPPort, Weight: 100, Role: pool.Slave},
	}
	msReg := pool.NewRegistry()
	apply(t, e, Config{Listeners: []Listener{
		{Name: "sticky", Protocol: TCP, VIP: vip, Port: 7100, Registry: x.reg,
			Pool: pool.Config{Scheduler: pool.RR, Servers: all(labsvc.TCPPort), Persistence: time.Minute}},
		{Name: "maglev", Protocol: UDP, VIP: vip, Port: 7101, Registry: x.reg,
			Pool: pool.Config{Scheduler: pool.Maglev, Servers: all(labsvc.UDPPort)}},
		{Name: "wlc", Protocol: TCP, VIP: vip, Port: 7102, Registry: x.reg,
			Pool: pool.Config{Scheduler: pool.WLC, Servers: all(labsvc.TCPPort)}},
		{Name: "ms", Protocol: TCP, VIP: vip, Port: 7103, Registry: msReg,
			Pool: pool.Config{Type: pool.MasterSlave, Servers: ms}},
	}})

	// wlc first, while no listener has connections on these backends (wlc
	// counts a backend's connections across listeners): with equal weights
	// the candidates take turns.
	if got := x.count(netlab.HostClient, "tcp", 7102, 9); got["be1"] != 3 || got["be2"] != 3 || got["be3"] != 3 {
		t.Errorf("9 wlc connections went %v, want 3 each", got)
	}
	// Source-IP persistence: one client stays on one backend across
	// connections although the scheduler is rr.
	if got := x.count(netlab.HostClient, "tcp", 7100, 9); len(got) != 1 {
		t.Errorf("9 connections of one client with source_ip persistence went %v, want one backend", got)
	}
	// maglev spreads distinct flows (source ports) over the backends.
	if got := x.count(netlab.HostClient, "udp", 7101, 60); len(got) != 3 {
		t.Errorf("60 maglev flows went %v, want all three backends", got)
	}
	// master/slave: the master while it is up, the slave when it is down,
	// the master again when it recovers.
	master := msReg.Lookup(pool.BackendID(netip.MustParseAddr(netlab.BackendIP(1)), labsvc.TCPPort))
	if got := x.count(netlab.HostClient, "tcp", 7103, 4); got["be1"] != 4 {
		t.Errorf("master up: %v, want all to be1", got)
	}
	master.SetUp(false)
	time.Sleep(200 * time.Millisecond)
	if got := x.count(netlab.HostClient, "tcp", 7103, 4); got["be2"] != 4 {
		t.Errorf("master down: %v, want all to the slave be2", got)
	}
	master.SetUp(true)
	time.Sleep(200 * time.Millisecond)
	if got := x.count(netlab.HostClient, "tcp", 7103, 4); got["be1"] != 4 {
		t.Errorf("master back: %v, want all to be1 again", got)
	}
}
