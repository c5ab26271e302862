package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xlbproject/xlb/bench/peers"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// System is one contender: a process in the gateway (xlbd, HAProxy,
// NGINX) or a kernel data path (nftables).
type System interface {
	Name() string
	// Start brings the system up once per run; the runner then checks each
	// workload through it.
	Start(ctx context.Context, e *Env) error
	// Target is the generator's target for workload ("http://VIP:80/",
	// "VIP:7000"), or "" when the system does not take part in it.
	Target(workload string) string
	// Enter and Leave bracket every measurement of the system.
	Enter(ctx context.Context, e *Env) error
	Leave(ctx context.Context, e *Env) error
	// PIDs are the processes whose trees are the system; none for a
	// kernel path.
	PIDs() []int
	// Stop ends the system; it is called once even if Start failed, and
	// must work with a cancelled ctx.
	Stop(ctx context.Context, e *Env) error
}

// stopGrace is how long a process may take to exit after SIGTERM.
const stopGrace = 3 * time.Second

// procSystem is the shared part of systems that are one process.
type procSystem struct {
	proc *peers.Proc
}

func (s *procSystem) Enter(context.Context, *Env) error { return s.alive() }
func (s *procSystem) Leave(context.Context, *Env) error { return s.alive() }

// alive fails a measurement whose system has died, instead of measuring
// connection errors.
func (s *procSystem) alive() error {
	if s.proc == nil {
		return errors.New("not started")
	}
	if done, err := s.proc.Exited(); done {
		return fmt.Errorf("%s exited: %v (log: %s)", s.proc.Name, err, s.proc.Log)
	}
	return nil
}

func (s *procSystem) PIDs() []int {
	if s.proc == nil {
		return nil
	}
	return []int{s.proc.PID()}
}

func (s *procSystem) Stop(context.Context, *Env) error {
	if s.proc == nil {
		return nil
	}
	return s.proc.Stop(stopGrace)
}

// httpProxy is HAProxy or NGINX on VIP:port, over the HTTP backends.
type httpProxy struct {
	procSystem
	name  string
	port  int
	start func(context.Context, peers.Lab, string, peers.HTTPProxy) (*peers.Proc, error)
}

func newHAProxy(port int) System {
	return &httpProxy{name: "haproxy", port: port, start: peers.StartHAProxy}
}

func newNGINX(port int) System {
	return &httpProxy{name: "nginx", port: port, start: peers.StartNGINX}
}

func (s *httpProxy) Name() string { return s.name }

func (s *httpProxy) Target(w string) string {
	if w != "http" {
		return ""
	}
	return "http://" + hostPort(netlab.VIP, s.port) + "/"
}

func (s *httpProxy) Start(ctx context.Context, e *Env) error {
	p, err := s.start(ctx, e.Lab, netlab.HostGateway, peers.HTTPProxy{
		Listen:   hostPort(netlab.VIP, s.port),
		Backends: e.backendList(labsvc.HTTPPort),
		CPU:      e.Opts.GatewayCPU,
		RunDir:   e.systemDir(s.name),
	})
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// xlbd is xlb's daemon with a configuration generated for the scenario.
type xlbd struct {
	procSystem
	name    string
	config  string // YAML
	targets map[string]string
	metrics string // its metrics address in the gateway
	bpffs   string // pin directory; "" for a system that does not attach XDP
}

// newXlbL4 is xlbd's userspace L4 engine (XDP off): a tcp listener on
// VIP:7000 and a udp listener on VIP:7001 over be1..beN, round robin, like
// configs/demo.yaml without weights, so it picks exactly as nftables'
// numgen inc does.
func newXlbL4(backends int) System {
	cfg := xlbConfig("off", backends, l4Listeners)
	return &xlbd{name: "xlb-l4", config: cfg, metrics: "127.0.0.1:9100", targets: l4Targets()}
}

// l4Listeners are the l4 scenario's listeners: tcp and udp echo, and the
// packet-rate workload's udp port, whose frames the backends' counters
// drop, so its health check asks the udp echo server instead.
var l4Listeners = fmt.Sprintf(`
      - {protocol: tcp, port: %[1]d, backend_port: %[1]d, scheduler: rr}
      - {protocol: udp, port: %[2]d, backend_port: %[2]d, scheduler: rr}
      - {protocol: udp, port: %[3]d, backend_port: %[3]d, scheduler: rr, health_check: {type: udp, port: %[2]d, request: health, response: ok}}`,
	labsvc.TCPPort, labsvc.UDPPort, FramesPort)

// l4Targets are the l4 systems' targets by workload.
func l4Targets() map[string]string {
	return map[string]string{
		"tcp": hostPort(netlab.VIP, labsvc.TCPPort),
		"udp": hostPort(netlab.VIP, labsvc.UDPPort),
		"pps": hostPort(netlab.VIP, FramesPort),
	}
}

// newXlbHTTP is xlbd's HTTP proxy (dataplane/l7) on VIP:port: round robin,
// no persistence, no added headers and no gzip, so it does what HAProxy and
// NGINX are configured to do.
func newXlbHTTP(port, backends int) System {
	cfg := xlbConfig("off", backends, fmt.Sprintf(`
      - {protocol: http, port: %d, backend_port: %d, scheduler: rr, gzip: false}`, port, labsvc.HTTPPort))
	return &xlbd{name: "xlb", config: cfg, metrics: "127.0.0.1:9101", targets: map[string]string{
		"http": "http://" + hostPort(netlab.VIP, port) + "/",
	}}
}

// xlbConfig is a load balancer on the lab's VIP over be1..beN (no limits
// preset: nothing caps the rates) with the given listeners.
func xlbConfig(xdpMode string, backends int, listeners string) string {
	var servers strings.Builder
	for i := 1; i <= backends; i++ {
		fmt.Fprintf(&servers, "      - {address: %s}\n", netlab.BackendIP(i))
	}
	return fmt.Sprintf(`# Generated by xlb-bench scenario.
node: {xdp_mode: %s}
load_balancers:
  - id: bench
    address: %s
    servers:
%s    listeners:%s
`, xdpMode, netlab.VIP, servers.String(), listeners)
}

func (s *xlbd) Name() string { return s.name }

func (s *xlbd) Target(w string) string { return s.targets[w] }

func (s *xlbd) Start(ctx context.Context, e *Env) error {
	if e.Opts.Xlbd == "" {
		return errors.New("no xlbd binary")
	}
	dir := e.systemDir(s.name)
	cfg := filepath.Join(dir, "xlb.yaml")
	if err := os.WriteFile(cfg, []byte(s.config), 0o644); err != nil {
		return err
	}
	bpffs := s.bpffs
	if bpffs == "" {
		bpffs = filepath.Join(e.Lab.BPFFSDir(), s.name) // unused: XDP is off
	}
	p, err := peers.Start(ctx, e.Lab, netlab.HostGateway, s.name, filepath.Join(dir, "xlbd.log"),
		"taskset", "-c", strconv.Itoa(e.Opts.GatewayCPU), e.Opts.Xlbd, "run",
		"--config", cfg, "--metrics-listen", s.metrics, "--log-format", "console", "--log-level", "warn",
		"--bpffs", bpffs, "--state-dir", filepath.Join(dir, "state"), "--drain-timeout", "1s",
		"--http-access-log=false", "--control-listen", "unix://"+filepath.Join(dir, "xlb.sock"))
	if err != nil {
		return err
	}
	s.proc = p
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: e.Lab.Dialer(netlab.HostGateway), DisableKeepAlives: true}}
	return waitReady(ctx, 20*time.Second, func(ctx context.Context) error {
		if err := s.alive(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.metrics+"/readyz", nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("xlbd /readyz: %s", resp.Status)
		}
		return nil
	})
}

// nftDNAT is nftables DNAT in the gateway: the kernel forwards, conntrack
// translates. Its table exists only while it is measured, so conntrack
// does not tax the other systems' traffic.
type nftDNAT struct {
	nftTable
	backends int
}

func newNFTDNAT(backends int) System { return &nftDNAT{backends: backends} }

func (s *nftDNAT) Name() string { return "nftables" }

func (s *nftDNAT) Target(w string) string { return l4Targets()[w] }

func (s *nftDNAT) Start(context.Context, *Env) error { return nil }

func (s *nftDNAT) Enter(ctx context.Context, e *Env) error {
	return s.install(ctx, e, "nft-dnat.nft", func(name string) ([]byte, error) {
		return peers.RenderDNAT(peers.DNAT{Table: name, Rules: []peers.DNATRule{
			{Proto: "tcp", VIP: netlab.VIP, Port: labsvc.TCPPort, Backends: e.backendList(labsvc.TCPPort)},
			{Proto: "udp", VIP: netlab.VIP, Port: labsvc.UDPPort, Backends: e.backendList(labsvc.UDPPort)},
			{Proto: "udp", VIP: netlab.VIP, Port: FramesPort, Backends: e.backendList(FramesPort)},
		}})
	})
}

// nftTable is the part of the nftables systems that installs their table
// in the gateway for a measurement and deletes it after.
type nftTable struct {
	table *peers.Table
	tuned bool
}

// install renders the table (named by render's argument), keeps a copy in
// the system's directory as file, and installs it; the first time it also
// shortens conntrack's closing timeouts (see the l4 method).
func (n *nftTable) install(ctx context.Context, e *Env, file string, render func(name string) ([]byte, error)) error {
	name := peers.NewTableName()
	script, err := render(name)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.systemDir("nftables"), file), script, 0o644); err != nil {
		return err
	}
	e.tables = append(e.tables, name)
	t, err := peers.InstallTable(ctx, e.Lab, netlab.HostGateway, name, script)
	if err != nil {
		return err
	}
	n.table = t
	if !n.tuned {
		if err := peers.TuneConntrack(ctx, e.Lab, netlab.HostGateway); err != nil {
			return err
		}
		n.tuned = true
	}
	return nil
}

func (n *nftTable) Leave(ctx context.Context, _ *Env) error {
	if n.table == nil {
		return nil
	}
	err := n.table.Delete(context.WithoutCancel(ctx))
	n.table = nil
	return err
}

func (n *nftTable) PIDs() []int { return nil }

func (n *nftTable) Stop(ctx context.Context, e *Env) error { return n.Leave(ctx, e) }
