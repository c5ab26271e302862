// Package demo is `make run`: it builds the standard lab, starts the test
// backends and xlbd with its embedded configuration, sends real traffic
// through every plane that exists, and says what happened and where to look.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// Options configure a demo run.
type Options struct {
	// Xlbd is the xlbd binary to run in the gateway namespace.
	Xlbd string
	// Hold keeps the lab up after the traffic until ctx ends (Ctrl-C).
	Hold bool
	Out  io.Writer
}

// Report is what the demo observed; the tests check it.
type Report struct {
	TCP, UDP map[string]int // backend name -> connections or sessions served
	// TCPWhileDown counts connections made while be3's TCP service was down
	// and marked down by its health check.
	TCPWhileDown map[string]int
	// TCPAfterRecovery counts connections after be3 came back.
	TCPAfterRecovery map[string]int
	// HTTP: new clients; HTTPAPI: requests matching the api rule;
	// HTTPSticky: one client keeping its persistence cookie.
	HTTP, HTTPAPI, HTTPSticky map[string]int
	// HTTPS: new clients over HTTP/1.1 and HTTP/2 (by protocol, then
	// backend); HTTP3: one HTTP/3 client; AltSvc: what HTTPS answers
	// advertised.
	HTTPS  map[string]map[string]int
	HTTP3  map[string]int
	AltSvc string
	// SNAT: the address an outside server saw be1 and be2 as (the pool's
	// public IP); EIPOut: be3 (its EIP); EIPIn: the client reaching be3
	// by its EIP, as be3 saw it.
	SNAT          map[string]string
	EIPOut, EIPIn string
	Metrics       string
}

// The demo's SNAT pool and EIP (configs/demo.yaml).
const (
	snatPublic = "203.0.113.20"
	eipPublic  = "203.0.113.30"
)

const (
	nBackends = 3
	rounds    = 50 // connections per traffic sample
)

// Run performs the demo. The lab is torn down before it returns, whatever
// happens.
func Run(ctx context.Context, o Options) (rep Report, err error) {
	out := o.Out
	step := func(format string, a ...any) { fmt.Fprintf(out, "\n== "+format+"\n", a...) }

	if os.Geteuid() != 0 {
		return rep, fmt.Errorf("the demo builds network namespaces: run it as root")
	}
	logDir, err := os.MkdirTemp("", "xlb-demo-")
	if err != nil {
		return rep, err
	}

	step("building the lab: client -> gateway (VIP %s) -> %d backends, in network namespaces", netlab.VIP, nBackends)
	topo := netlab.ClientGatewayBackends(nBackends)
	topo.NoTxChecksum = true // veth partial checksums do not survive XDP redirects
	lab, err := netlab.Build(ctx, topo)
	if err != nil {
		return rep, fmt.Errorf("building the lab: %w", err)
	}
	defer func() {
		lab.Close()
		fmt.Fprintf(out, "\n== lab torn down (namespaces %s*)\n", lab.Prefix())
	}()
	xl, err := labsvc.PrepareXDP(lab)
	if err != nil {
		return rep, fmt.Errorf("preparing the lab for XDP: %w", err)
	}
	defer xl.Close()
	for _, h := range lab.Hosts() {
		fmt.Fprintf(out, "   %-8s netns %s\n", h, lab.NetNS(h))
	}

	step("starting backends be1..be%d: HTTP :%d, TCP echo :%d, UDP echo :%d", nBackends, labsvc.HTTPPort, labsvc.TCPPort, labsvc.UDPPort)
	bs, err := labsvc.StartBackends(ctx, lab, nBackends)
	if err != nil {
		return rep, err
	}
	defer bs.Close()

	logPath := filepath.Join(logDir, "xlbd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return rep, err
	}
	defer logFile.Close()
	step("starting xlbd in the gateway with its embedded configuration (configs/demo.yaml):\n   XDP on up0 and down0 for the tcp and udp listeners")
	// The demo's own socket: a demo never takes over an xlbd's /run/xlb/xlb.sock.
	sock := filepath.Join(logDir, "xlb.sock")
	x, err := labsvc.StartXlbd(ctx, lab, netlab.HostGateway, o.Xlbd, logFile, "--log-format", "console", "--bpffs", xl.BPFFS,
		"--state-dir", filepath.Join(logDir, "state"), "--control-listen", "unix://"+sock)
	if err != nil {
		return rep, fmt.Errorf("%w (log: %s)", err, logPath)
	}
	defer func() {
		if serr := x.Stop(10 * time.Second); serr != nil && err == nil {
			err = serr
		}
	}()
	fmt.Fprintf(out, "   ready; log: %s\n", logPath)

	vipTCP := net.JoinHostPort(netlab.VIP, strconv.Itoa(labsvc.TCPPort))
	vipUDP := net.JoinHostPort(netlab.VIP, strconv.Itoa(labsvc.UDPPort))

	step("TCP listener %s on XDP (wrr, weights be1=100 be2=100 be3=50): %d connections from the client", vipTCP, rounds)
	if rep.TCP, err = sample(ctx, lab, "tcp", vipTCP, rounds); err != nil {
		return rep, err
	}
	printShare(out, rep.TCP)

	step("UDP listener %s on XDP (rr): %d flows from the client", vipUDP, rounds)
	if rep.UDP, err = sample(ctx, lab, "udp", vipUDP, rounds); err != nil {
		return rep, err
	}
	printShare(out, rep.UDP)

	step("health checks: stopping be3's TCP service; xlbd marks it down after 3 failed checks")
	if err := bs.ByName("be3").StopTCP(); err != nil {
		return rep, err
	}
	if err := waitMetric(ctx, x, `xlb_backend_up{backend="198.19.0.13:7000",check="tcp"} 0`, 30*time.Second); err != nil {
		return rep, err
	}
	if rep.TCPWhileDown, err = sample(ctx, lab, "tcp", vipTCP, rounds); err != nil {
		return rep, err
	}
	printShare(out, rep.TCPWhileDown)

	step("restarting be3's TCP service; back after 3 good checks")
	if err := bs.ByName("be3").StartTCP(); err != nil {
		return rep, err
	}
	if err := waitMetric(ctx, x, `xlb_backend_up{backend="198.19.0.13:7000",check="tcp"} 1`, 30*time.Second); err != nil {
		return rep, err
	}
	if rep.TCPAfterRecovery, err = sample(ctx, lab, "tcp", vipTCP, rounds); err != nil {
		return rep, err
	}
	printShare(out, rep.TCPAfterRecovery)

	vipHTTP := "http://" + netlab.VIP + ":80/"
	step("HTTP listener %s (userspace proxy behind XDP's access control): %d requests, each a new client", vipHTTP, rounds)
	if rep.HTTP, err = httpSample(ctx, lab, vipHTTP, "www.demo.test", rounds, false); err != nil {
		return rep, err
	}
	printShare(out, rep.HTTP)

	step("the rule api.demo.test -> server group api (be2, be3): %d requests", rounds)
	if rep.HTTPAPI, err = httpSample(ctx, lab, vipHTTP, "api.demo.test", rounds, false); err != nil {
		return rep, err
	}
	printShare(out, rep.HTTPAPI)

	step("insert_cookie persistence: one client with a cookie jar, %d requests", rounds)
	if rep.HTTPSticky, err = httpSample(ctx, lab, vipHTTP, "www.demo.test", rounds, true); err != nil {
		return rep, err
	}
	printShare(out, rep.HTTPSticky)

	if err := httpsDemo(ctx, out, step, lab, &rep); err != nil {
		return rep, err
	}

	step("SNAT: be1 and be2 (pool %q, 198.19.0.0/27) reach an outside server on the client (%s:%d)", "backends", netlab.ClientIP, labsvc.HTTPPort)
	stopOutside, err := outsideServer(ctx, lab)
	if err != nil {
		return rep, err
	}
	defer stopOutside()
	rep.SNAT = map[string]string{}
	outside := net.JoinHostPort(netlab.ClientIP, strconv.Itoa(labsvc.HTTPPort))
	for _, be := range []string{"be1", "be2"} {
		if rep.SNAT[be], err = seenAs(ctx, lab, be, outside); err != nil {
			return rep, err
		}
		fmt.Fprintf(out, "   %s -> outside: seen as %s\n", be, rep.SNAT[be])
	}
	step("EIP %s <-> be3: both directions, ports kept", eipPublic)
	if rep.EIPOut, err = seenAs(ctx, lab, "be3", outside); err != nil {
		return rep, err
	}
	fmt.Fprintf(out, "   be3 -> outside: seen as %s\n", rep.EIPOut)
	if rep.EIPIn, err = seenAs(ctx, lab, netlab.HostClient, net.JoinHostPort(eipPublic, strconv.Itoa(labsvc.HTTPPort))); err != nil {
		return rep, err
	}
	fmt.Fprintf(out, "   client -> %s: be3 saw %s\n", eipPublic, rep.EIPIn)

	if rep.Metrics, err = x.Metrics(); err != nil {
		return rep, fmt.Errorf("reading metrics: %w", err)
	}
	step("a few of xlbd's metrics")
	for _, line := range strings.Split(rep.Metrics, "\n") {
		if strings.HasPrefix(line, "xlb_xdp_new_flows_total") || strings.HasPrefix(line, "xlb_xdp_packets_total") ||
			strings.HasPrefix(line, "xlb_backend_up") || strings.HasPrefix(line, "xlb_config_version") ||
			strings.HasPrefix(line, "xlb_xdp_flow_table_entries") || strings.HasPrefix(line, "xlb_http_requests_total") ||
			strings.HasPrefix(line, "xlb_tls_handshakes_total") || strings.HasPrefix(line, "xlb_certificate_expiry_seconds") ||
			strings.HasPrefix(line, "xlb_snat_new_translations_total") || strings.HasPrefix(line, "xlb_snat_ports_allocated{") ||
			strings.HasPrefix(line, "xlb_eip_new_translations_total") {
			fmt.Fprintln(out, "   "+line)
		}
	}

	step("where to look")
	gw := lab.NetNS(netlab.HostGateway)
	fmt.Fprintf(out, "   metrics:   ip netns exec %s curl -s %s/metrics | grep ^xlb_\n", gw, labsvc.MetricsAddr)
	fmt.Fprintf(out, "   try it:    ip netns exec %s bash -c 'exec 3<>/dev/tcp/%s/%d; echo whoami >&3; head -1 <&3'\n",
		lab.NetNS(netlab.HostClient), netlab.VIP, labsvc.TCPPort)
	fmt.Fprintf(out, "   control:   xlbctl --socket %s get   (or stats, watch health, drain ADDR)\n", sock)
	fmt.Fprintf(out, "   xlbd log:  %s\n", logPath)

	if o.Hold {
		fmt.Fprintln(out, "\nThe lab stays up; press Ctrl-C to tear it down.")
		select {
		case <-ctx.Done():
		case <-x.Done():
			return rep, fmt.Errorf("xlbd exited; see %s", logPath)
		}
	}
	return rep, nil
}

// sample opens n connections (tcp) or sessions (udp, each from its own
// source port) from the client to addr and counts which backend answered.
func sample(ctx context.Context, lab *netlab.Lab, network, addr string, n int) (map[string]int, error) {
	counts := map[string]int{}
	for range n {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := lab.Dial(cctx, netlab.HostClient, network, addr)
		if err != nil {
			cancel()
			return counts, fmt.Errorf("%s %s: %w", network, addr, err)
		}
		var name string
		if network == "udp" {
			name, err = serve.WhoAmIUDP(cctx, c)
		} else {
			name, err = serve.WhoAmITCP(cctx, c)
		}
		_ = c.Close()
		cancel()
		if err != nil {
			return counts, fmt.Errorf("%s %s: %w", network, addr, err)
		}
		counts[name]++
	}
	return counts, nil
}

func printShare(out io.Writer, counts map[string]int) {
	names := make([]string, 0, len(counts))
	total := 0
	for n, c := range counts {
		names = append(names, n)
		total += c
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(out, "   %-4s %3d  %s\n", n, counts[n], strings.Repeat("#", counts[n]*40/max(total, 1)))
	}
}

// waitMetric polls /metrics until a line equals want.
func waitMetric(ctx context.Context, x *labsvc.Xlbd, want string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		m, err := x.Metrics()
		if err == nil && strings.Contains("\n"+m+"\n", "\n"+want+"\n") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q: %w", want, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// httpSample sends n GET requests with the given Host from the client and
// counts the backends that answered (the X-Backend header). sticky keeps
// one cookie jar across the requests (one client); otherwise each request
// is a new client.
func httpSample(ctx context.Context, lab *netlab.Lab, url, host string, n int, sticky bool) (map[string]int, error) {
	counts := map[string]int{}
	var jar http.CookieJar
	newClient := func() *http.Client {
		return &http.Client{
			Timeout:   3 * time.Second,
			Jar:       jar,
			Transport: &http.Transport{DialContext: lab.Dialer(netlab.HostClient), DisableKeepAlives: true},
		}
	}
	if sticky {
		jar, _ = cookiejar.New(nil)
	}
	c := newClient()
	for range n {
		if !sticky {
			c = newClient()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return counts, err
		}
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			return counts, fmt.Errorf("GET %s (Host %s): %w", url, host, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return counts, fmt.Errorf("GET %s (Host %s): %s", url, host, resp.Status)
		}
		counts[resp.Header.Get("X-Backend")]++
	}
	return counts, nil
}

// outsideServer runs an HTTP server on the client, the outside world of
// the SNAT pool and the EIP.
func outsideServer(ctx context.Context, lab *netlab.Lab) (stop func(), err error) {
	ln, err := lab.Listen(netlab.HostClient, "tcp", net.JoinHostPort(netlab.ClientIP, strconv.Itoa(labsvc.HTTPPort)))
	if err != nil {
		return nil, fmt.Errorf("outside server: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serve.NewHTTP("outside").Serve(ctx, ln)
	}()
	return func() { cancel(); ln.Close(); <-done }, nil
}

// seenAs asks the HTTP server at addr, from host, which address the
// request came from.
func seenAs(ctx context.Context, lab *netlab.Lab, host, addr string) (string, error) {
	hc := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: lab.Dialer(host), DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/headers", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s -> %s: %w", host, addr, err)
	}
	defer resp.Body.Close()
	var hdrs map[string][]string
	if err := json.NewDecoder(resp.Body).Decode(&hdrs); err != nil {
		return "", fmt.Errorf("%s -> %s: %w", host, addr, err)
	}
	ra := hdrs[serve.HeadersKeyRemoteAddr]
	if len(ra) == 0 {
		return "", fmt.Errorf("%s -> %s: no %s", host, addr, serve.HeadersKeyRemoteAddr)
	}
	ip, _, err := net.SplitHostPort(ra[0])
	return ip, err
}
