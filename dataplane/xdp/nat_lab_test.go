package xdp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/dataplane/snat"
	. "github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// The SNAT labs: the client is a private host of the pool (198.18.1.0/27
// or /26), the backends are outside servers that route the public IPs back
// to the gateway (their default route).
type snatLab struct {
	*xdpLab
	e   *Engine
	reg *prometheus.Registry
}

func newSNATLab(t *testing.T) *snatLab {
	x := newXDPLab(t, netlab.ClientGatewayBackends(3),
		[]string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostClient: netlab.IfaceClient, netlab.HostSwitch: netlab.HostGateway})
	e := x.start()
	t.Cleanup(func() { e.Drain(context.Background()) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	return &snatLab{xdpLab: x, e: e, reg: reg}
}

func snatPool(sources string, t SNATTimeouts, publics ...netip.Addr) Config {
	return Config{SNATPools: []SNATPool{{Name: "egress", PublicIPs: publics, Sources: []netip.Prefix{netip.MustParsePrefix(sources)}, Timeouts: t}}}
}

// dialFrom opens a TCP connection from host (from local, if valid).
func (x *xdpLab) dialFrom(host string, local netip.Addr, dst string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := x.lab.Do(host, func() error {
		d := net.Dialer{Timeout: timeout, FallbackDelay: -1}
		if local.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
		}
		var err error
		c, err = d.Dial("tcp", dst)
		return err
	})
	return c, err
}

// openConns opens n connections to dst, 32 at a time; every one must open.
func (x *xdpLab) openConns(t *testing.T, host string, local netip.Addr, dst string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conns[i], errs[i] = x.dialFrom(host, local, dst, 3*time.Second)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("connection %d of %d to %s: %v", i+1, n, dst, err)
		}
	}
	return conns
}

// echoAll checks that every connection still carries data both ways.
func echoAll(conns []net.Conn) error {
	errs := make(chan error, len(conns))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			var b [1]byte
			if _, err := c.Write([]byte{'x'}); err != nil {
				errs <- fmt.Errorf("connection %d (%v): %w", i, c.LocalAddr(), err)
				return
			}
			if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'x' {
				errs <- fmt.Errorf("connection %d (%v): echo %q: %v", i, c.LocalAddr(), b, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// seenBy asks an outside server which address the request came from.
func (x *xdpLab) seenBy(host, server string) (netip.Addr, error) {
	hc := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: x.lab.Dialer(host), DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + net.JoinHostPort(server, strconv.Itoa(labsvc.HTTPPort)) + "/headers")
	if err != nil {
		return netip.Addr{}, err
	}
	defer resp.Body.Close()
	var hdrs map[string][]string
	if err := json.NewDecoder(resp.Body).Decode(&hdrs); err != nil {
		return netip.Addr{}, err
	}
	ap, err := netip.ParseAddrPort(hdrs[serve.HeadersKeyRemoteAddr][0])
	return ap.Addr().Unmap(), err
}

func hostPorts(bs []snat.Block) int {
	n := 0
	for _, b := range bs {
		n += int(b.Size)
	}
	return n
}

var clientAddr = netip.MustParseAddr(netlab.ClientIP)

func TestSNATLabPublicIPAnd2000Connections(t *testing.T) {
	x := newSNATLab(t)
	apply(t, x.e, snatPool("198.18.1.0/27", SNATTimeouts{}, snatPublic))
	be1, be2 := netlab.BackendIP(1), netlab.BackendIP(2)

	for _, server := range []string{be1, be2} {
		if seen, err := x.seenBy(netlab.HostClient, server); err != nil || seen != snatPublic {
			t.Fatalf("%s saw the private host as %v (%v), want the public IP %v", server, seen, err, snatPublic)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	uc, err := x.lab.Dial(ctx, netlab.HostClient, "udp", net.JoinHostPort(be2, strconv.Itoa(labsvc.UDPPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	if name, err := serve.WhoAmIUDP(ctx, uc); err != nil || name != "be2" {
		t.Errorf("udp through snat: %q, %v", name, err)
	}
	if err := x.lab.Ping(ctx, netlab.HostClient, be1); err != nil {
		t.Errorf("ping (ICMP echo ids translated): %v", err)
	}

	// 2,000 connections over two destinations from one host with one
	// 1024-port block: each port serves both destinations.
	conns := x.openConns(t, netlab.HostClient, netip.Addr{}, net.JoinHostPort(be1, strconv.Itoa(labsvc.TCPPort)), 1000)
	conns = append(conns, x.openConns(t, netlab.HostClient, netip.Addr{}, net.JoinHostPort(be2, strconv.Itoa(labsvc.TCPPort)), 1000)...)
	if err := echoAll(conns); err != nil {
		t.Fatal(err)
	}
	if bs := x.e.HostBlocks("egress", clientAddr, snat.TCP); hostPorts(bs) != 1024 {
		t.Errorf("the host holds %v, want its one 1024-port block", bs)
	}
	ts, err := x.e.Translations()
	if err != nil {
		t.Fatal(err)
	}
	perDest := map[netip.Addr]map[uint16]bool{}
	for _, tr := range ts {
		if tr.Protocol != 6 || tr.Remote.Port() != labsvc.TCPPort {
			continue
		}
		if perDest[tr.Remote.Addr()] == nil {
			perDest[tr.Remote.Addr()] = map[uint16]bool{}
		}
		perDest[tr.Remote.Addr()][tr.Public.Port()] = true
	}
	for _, d := range []string{be1, be2} {
		if got := len(perDest[netip.MustParseAddr(d)]); got != 1000 {
			t.Errorf("%s: %d distinct public ports, want 1000", d, got)
		}
	}
	if got := gatheredLabels(t, x.reg, "xlb_snat_port_alloc_failures_total", map[string]string{"pool": "egress", "public_ip": snatPublic.String()}); got != 0 {
		t.Errorf("%v allocation failures, want none", got)
	}
	// What xlbctl snat shows, once a sweep has counted the translations:
	// the public IP's ports and the host's, 1000 TCP ports each (one per
	// port, serving both destinations) plus the UDP and ICMP ones.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := x.e.SNATStatus()
		ok := len(st) == 1 && st[0].ID == "egress" && len(st[0].PublicIPs) == 1 && len(st[0].Hosts) == 1
		if ok {
			ip, h := st[0].PublicIPs[0], st[0].Hosts[0]
			ok = ip.IP == snatPublic && ip.InUse >= 1000 && ip.Allocated >= 1024 && h.Host == clientAddr && h.InUse >= 1000
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SNAT status %+v, want pool egress with %v and host %v using at least 1000 ports", st, snatPublic, clientAddr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestSNATLabFullHostFailsCountedAndRSTFreesThePort(t *testing.T) {
	x := newSNATLab(t)
	const rst = 2 * time.Second
	apply(t, x.e, snatPool("198.18.1.0/27", SNATTimeouts{TCPRst: rst}, snatPublic))
	dst := net.JoinHostPort(netlab.BackendIP(1), strconv.Itoa(labsvc.TCPPort))
	conns := x.openConns(t, netlab.HostClient, netip.Addr{}, dst, 1024)

	// The host's 1024 ports all hold a connection to this destination:
	// more fail, counted, and break nothing.
	const extra = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range extra {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := x.dialFrom(netlab.HostClient, netip.Addr{}, dst, 700*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			c.Close()
		}()
	}
	wg.Wait()
	if failed != extra {
		t.Errorf("%d of %d connections beyond the host's ports opened", extra-failed, extra)
	}
	labels := map[string]string{"pool": "egress", "public_ip": snatPublic.String()}
	if got := gatheredLabels(t, x.reg, "xlb_snat_port_alloc_failures_total", labels); got < extra {
		t.Errorf("xlb_snat_port_alloc_failures_total = %v, want at least %d", got, extra)
	}
	if err := echoAll(conns); err != nil {
		t.Fatalf("an established connection broke: %v", err)
	}

	// A RST releases the port after tcp_rst (plus a sweep); it serves this
	// destination again 5 s after its release, not before.
	victim := conns[0]
	_ = victim.(*net.TCPConn).SetLinger(0)
	local := victim.LocalAddr().(*net.TCPAddr).AddrPort()
	reset := time.Now()
	victim.Close()
	conns = conns[1:]
	releasedAt := time.Duration(0)
	for releasedAt == 0 && time.Since(reset) < rst+3*time.Second {
		ts, err := x.e.Translations()
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range ts {
			if tr.Private.Port() == local.Port() && tr.Released {
				releasedAt = time.Since(reset)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if releasedAt == 0 || releasedAt < rst {
		t.Fatalf("the reset connection's port was released after %v, want after tcp_rst %v and within a sweep more", releasedAt, rst)
	}
	var c net.Conn
	for time.Since(reset) < rst+15*time.Second {
		var err error
		if c, err = x.dialFrom(netlab.HostClient, netip.Addr{}, dst, 700*time.Millisecond); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	reused := time.Since(reset)
	if c == nil {
		t.Fatalf("no port free for the destination %v after the RST", reused)
	}
	c.Close()
	if reused < releasedAt+4*time.Second {
		// a sweep of slack on either side of the 5 s grace
		t.Errorf("the port served the destination again %v after the RST, %v after its release: before the 5 s grace", reused, reused-releasedAt)
	}
	t.Logf("RST: released after %v, reusable after %v", releasedAt, reused)

	// A second public IP adds capacity without a restart.
	apply(t, x.e, snatPool("198.18.1.0/27", SNATTimeouts{TCPRst: rst}, snatPublic, snatPublic2))
	more := x.openConns(t, netlab.HostClient, netip.Addr{}, dst, 10)
	if err := echoAll(append(conns, more...)); err != nil {
		t.Fatalf("after adding a public IP: %v", err)
	}
}

func TestSNATLabGrowingPastATierKeepsConnections(t *testing.T) {
	x := newSNATLab(t)
	const fin = 2 * time.Second
	timeouts := SNATTimeouts{TCPFin: fin}
	apply(t, x.e, snatPool("198.18.1.0/27", timeouts, snatPublic)) // 32 hosts: 1024 ports each
	dst := net.JoinHostPort(netlab.BackendIP(1), strconv.Itoa(labsvc.TCPPort))
	// 600 connections to one destination take 600 consecutive ports of the
	// block (wrapping around): both halves are busy.
	conns := x.openConns(t, netlab.HostClient, netip.Addr{}, dst, 600)
	block := x.e.HostBlocks("egress", clientAddr, snat.TCP)
	if len(block) != 1 || block[0].Size != 1024 {
		t.Fatalf("the host holds %v, want one 1024-port block", block)
	}

	// 64 hosts: new blocks are 512 ports.
	apply(t, x.e, snatPool("198.18.1.0/26", timeouts, snatPublic))
	if err := echoAll(conns); err != nil {
		t.Fatalf("growing the pool broke a connection: %v", err)
	}
	if bs := x.e.HostBlocks("egress", clientAddr, snat.TCP); hostPorts(bs) != 1024 {
		t.Errorf("with both halves busy the host holds %v, want all 1024 ports still", bs)
	}
	// A new host of the grown pool gets the new size.
	newHost := netip.MustParseAddr("198.18.1.40")
	if out, err := x.lab.Run(context.Background(), netlab.HostClient, "ip", "addr", "add", newHost.String()+"/24", "dev", netlab.IfaceClient); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	nc := x.openConns(t, netlab.HostClient, newHost, dst, 3)
	if err := echoAll(nc); err != nil {
		t.Fatal(err)
	}
	if bs := x.e.HostBlocks("egress", newHost, snat.TCP); len(bs) != 1 || bs[0].Size != 512 {
		t.Errorf("the new host holds %v, want one 512-port block", bs)
	}

	// The connections in the block's second half close (FIN both ways,
	// then tcp_fin and the 5 s grace): only then does that half go back,
	// and the others live on.
	ts, err := x.e.Translations()
	if err != nil {
		t.Fatal(err)
	}
	public := map[uint16]uint16{} // private port -> public port
	for _, tr := range ts {
		if tr.Private.Addr() == clientAddr && tr.Protocol == 6 {
			public[tr.Private.Port()] = tr.Public.Port()
		}
	}
	second := snat.Block{IP: snatPublic, Proto: snat.TCP, Start: block[0].Start + 512, Size: 512}
	var keep, closing []net.Conn
	for _, c := range conns {
		if second.Contains(public[uint16(c.LocalAddr().(*net.TCPAddr).Port)]) {
			closing = append(closing, c)
		} else {
			keep = append(keep, c)
		}
	}
	if len(closing) == 0 || len(keep) == 0 {
		t.Fatalf("%d connections in the second half, %d in the first: want both", len(closing), len(keep))
	}
	for _, c := range closing {
		c.(*net.TCPConn).CloseWrite()
	}
	for _, c := range closing {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.Copy(io.Discard, c) // the server's FIN
		c.Close()
	}
	want := []snat.Block{{IP: snatPublic, Proto: snat.TCP, Start: block[0].Start, Size: 512}}
	deadline := time.Now().Add(fin + 5*time.Second + 15*time.Second)
	for time.Now().Before(deadline) && hostPorts(x.e.HostBlocks("egress", clientAddr, snat.TCP)) != 512 {
		time.Sleep(250 * time.Millisecond)
	}
	if bs := x.e.HostBlocks("egress", clientAddr, snat.TCP); len(bs) != 1 || bs[0] != want[0] {
		t.Errorf("after the second half fell idle the host holds %v, want %v", bs, want)
	}
	if err := echoAll(keep); err != nil {
		t.Fatalf("reclaiming the idle half broke a connection: %v", err)
	}
}

func TestEIPLabTwoUplinksSymmetric(t *testing.T) {
	topo := netlab.TwoUplinks(3)
	eipA, eipB := netip.MustParseAddr("203.0.113.31"), netip.MustParseAddr("203.0.113.32")
	// Each router routes its EIP to the gateway; nothing routes the other.
	ra, rb := topo.Host(netlab.HostRouterA), topo.Host(netlab.HostRouterB)
	ra.Routes = append(ra.Routes, netlab.Route{Dst: eipA.String() + "/32", Gw: netlab.GatewayUpAIP})
	rb.Routes = append(rb.Routes, netlab.Route{Dst: eipB.String() + "/32", Gw: netlab.GatewayUpBIP})
	x := newXDPLab(t, topo,
		[]string{netlab.IfaceGatewayUpA, netlab.IfaceGatewayUpB, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostRouterA: netlab.IfaceRouterUp, netlab.HostRouterB: netlab.IfaceRouterUp, netlab.HostSwitch: netlab.HostGateway})
	e := x.start()
	t.Cleanup(func() { e.Drain(context.Background()) })
	apply(t, e, Config{EIPs: []EIP{
		{Public: eipA, Private: netip.MustParseAddr(netlab.BackendIP(1)), Interface: netlab.IfaceGatewayUpA},
		{Public: eipB, Private: netip.MustParseAddr(netlab.BackendIP(2)), Interface: netlab.IfaceGatewayUpB},
	}})

	// Inbound through upB (gw's routes point at rtrA): the reply must
	// leave by upB, and the server sees the real client.
	for _, c := range []struct {
		client, clientIP string
		eip              netip.Addr
	}{{netlab.HostClientB, netlab.ClientBIP, eipB}, {netlab.HostClientA, netlab.ClientAIP, eipA}} {
		seen, err := x.seenBy(c.client, c.eip.String())
		if err != nil || seen.String() != c.clientIP {
			t.Errorf("%s -> %v: the private server saw %v (%v), want %s", c.client, c.eip, seen, err, c.clientIP)
		}
	}

	// Outbound from be2 to clientB: only upB leads there (rtrA's default
	// route goes to clientA). clientB sees the EIP.
	srv := serve.NewHTTP("clientB")
	ln, err := x.lab.Listen(netlab.HostClientB, "tcp", net.JoinHostPort(netlab.ClientBIP, strconv.Itoa(labsvc.HTTPPort)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, ln) }()
	seen, err := x.seenBy(netlab.BackendHost(2), netlab.ClientBIP)
	if err != nil || seen != eipB {
		t.Errorf("be2 -> clientB: clientB saw %v (%v), want the EIP %v by upB", seen, err, eipB)
	}

	// The control: without its interface the routing table sends be2's
	// connection out by rtrA, where it is lost.
	apply(t, e, Config{EIPs: []EIP{
		{Public: eipA, Private: netip.MustParseAddr(netlab.BackendIP(1)), Interface: netlab.IfaceGatewayUpA},
		{Public: eipB, Private: netip.MustParseAddr(netlab.BackendIP(2))},
	}})
	if seen, err := x.seenBy(netlab.BackendHost(2), netlab.ClientBIP); err == nil {
		t.Errorf("without the EIP's interface be2 still reached clientB (seen as %v): the test proves nothing", seen)
	}
}

func TestSNATLabTranslationsSurviveARestart(t *testing.T) {
	x := newXDPLab(t, netlab.ClientGatewayBackends(3),
		[]string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown},
		map[string]string{netlab.HostClient: netlab.IfaceClient, netlab.HostSwitch: netlab.HostGateway})
	e := x.start()
	cfg := snatPool("198.18.1.0/27", SNATTimeouts{}, snatPublic)
	apply(t, e, cfg)
	dst := net.JoinHostPort(netlab.BackendIP(1), strconv.Itoa(labsvc.TCPPort))
	conns := x.openConns(t, netlab.HostClient, netip.Addr{}, dst, 50)

	e.Drain(context.Background()) // xlbd stops: the program keeps translating
	if err := echoAll(conns); err != nil {
		t.Fatalf("while xlbd is down: %v", err)
	}
	e2 := x.start()
	t.Cleanup(func() { e2.Drain(context.Background()) })
	if err := echoAll(conns); err != nil {
		t.Fatalf("after the restart, before the first apply: %v", err)
	}
	apply(t, e2, cfg)
	more := x.openConns(t, netlab.HostClient, netip.Addr{}, dst, 50)
	if err := echoAll(append(conns, more...)); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if seen, err := x.seenBy(netlab.HostClient, netlab.BackendIP(2)); err != nil || seen != snatPublic {
		t.Errorf("after the restart the outside saw %v (%v), want %v", seen, err, snatPublic)
	}
}
