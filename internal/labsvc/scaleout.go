package labsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xlbproject/xlb/internal/netlab"
)

// AS numbers of the scale-out lab: the nodes share one, each router has
// its own.
const (
	RouterAS     = 65000
	BackRouterAS = 65001
	NodeAS       = 65010
)

// VIPTable is the kernel table the lab's xlbd announce into
// (node.announce.route_table) and the nodes' BIRD learns from.
const VIPTable = 200

// ScaleOutConfig is what StartScaleOut runs.
type ScaleOutConfig struct {
	Nodes, Backends int
	// Xlbd is the xlbd binary; Config the configuration every node runs
	// (node.interfaces [up0, down0], node.announce.route_table VIPTable).
	Xlbd, Config string
	// Dir holds the configurations, sockets and logs.
	Dir string
}

// ScaleOut is a running scale-out lab (netlab.ScaleOut): BIRD on both
// routers and on every node, xlbd on every node, the standard backends.
type ScaleOut struct {
	Lab        *netlab.Lab
	Backends   *Backends
	Router     *Bird // rtr: the client side
	BackRouter *Bird // brtr: the backend side
	Nodes      []*ScaleOutNode
	xdp        *XDPLab
	dir        string
	xlbd, cfg  string // the binary and its configuration file
}

// ScaleOutNode is one gateway node.
type ScaleOutNode struct {
	Host string
	Xlbd *Xlbd
	Bird *Bird
	Log  string // xlbd's log file
	dead bool
	conf string // its BIRD configuration
	pins string // its --bpffs
}

// StartScaleOut starts the daemons and backends in lab (built from
// netlab.ScaleOut(cfg.Nodes, cfg.Backends) with NoTxChecksum) and waits
// until both routers have an equal path through every node. Close stops
// everything it started, also after an error.
func StartScaleOut(ctx context.Context, lab *netlab.Lab, cfg ScaleOutConfig) (_ *ScaleOut, err error) {
	s := &ScaleOut{Lab: lab, dir: cfg.Dir}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", errors.Join(err, s.Close()), s.Logs())
		}
	}()
	var peers []Iface
	for i := 1; i <= cfg.Nodes; i++ {
		peers = append(peers, Iface{netlab.HostSwitch, netlab.NodeFrontPort(i)}, Iface{netlab.HostSwitch, netlab.NodeBackPort(i)})
		// A NIC drops frames for other MACs before XDP sees them; a veth
		// does not. Without this, frames for a dead node's MAC, flooded
		// once the switch forgets it, would reach the other nodes' XDP.
		for _, port := range []string{netlab.NodeFrontPort(i), netlab.NodeBackPort(i)} {
			if out, err := lab.Run(ctx, netlab.HostSwitch, "bridge", "link", "set", "dev", port, "flood", "off"); err != nil {
				return nil, fmt.Errorf("%w: %s", err, out)
			}
		}
	}
	if s.xdp, err = PrepareXDPPeers(lab, peers); err != nil {
		return nil, err
	}
	// The backends live until Close, not until ctx (which bounds the start).
	if s.Backends, err = StartBackends(context.WithoutCancel(ctx), lab, cfg.Backends); err != nil {
		return nil, err
	}
	var front, back []string
	for i := 1; i <= cfg.Nodes; i++ {
		front, back = append(front, netlab.NodeFrontIP(i)), append(back, netlab.NodeBackIP(i))
	}
	if s.Router, err = s.bird(ctx, netlab.HostRouter, RouterBirdConf(netlab.RouterFrontIP, RouterAS, front, NodeAS)); err != nil {
		return nil, err
	}
	if s.BackRouter, err = s.bird(ctx, netlab.HostBackRouter, RouterBirdConf(netlab.BackRouterIP, BackRouterAS, back, NodeAS)); err != nil {
		return nil, err
	}
	s.xlbd, s.cfg = cfg.Xlbd, filepath.Join(cfg.Dir, "xlb.yaml")
	if err := os.WriteFile(s.cfg, []byte(cfg.Config), 0o600); err != nil {
		return nil, err
	}
	for i := 1; i <= cfg.Nodes; i++ {
		n := &ScaleOutNode{Host: netlab.NodeHost(i), pins: s.xdp.PinDir(netlab.NodeHost(i)),
			conf: NodeBirdConf(netlab.NodeFrontIP(i), NodeAS, VIPTable, netlab.RouterFrontIP, RouterAS, netlab.BackRouterIP, BackRouterAS)}
		s.Nodes = append(s.Nodes, n)
		if n.Bird, err = s.bird(ctx, n.Host, n.conf); err != nil {
			return nil, err
		}
	}
	// The nodes' xlbd start together: each takes a few seconds.
	var wg sync.WaitGroup
	errs := make([]error, len(s.Nodes))
	for i, n := range s.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.startXlbd(ctx, n)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := s.WaitPaths(ctx, cfg.Nodes, 30*time.Second); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *ScaleOut) bird(ctx context.Context, host, conf string) (*Bird, error) {
	log, err := os.OpenFile(filepath.Join(s.dir, host+".bird.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	b, err := StartBird(ctx, s.Lab, host, s.dir, conf, log)
	if err != nil {
		log.Close()
		return nil, err
	}
	go func() { <-b.done; log.Close() }()
	return b, nil
}

func (s *ScaleOut) startXlbd(ctx context.Context, n *ScaleOutNode) error {
	dir := filepath.Join(s.dir, n.Host)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	n.Log = filepath.Join(dir, "xlbd.log")
	log, err := os.OpenFile(n.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	x, err := StartXlbd(ctx, s.Lab, n.Host, s.xlbd, log, "--config", s.cfg, "--drain-timeout", "1s",
		"--state-dir", filepath.Join(dir, "state"), "--control-listen", "unix://"+filepath.Join(dir, "xlb.sock"),
		"--bpffs", n.pins)
	if err != nil {
		log.Close()
		return fmt.Errorf("%s: %w", n.Host, err)
	}
	go func() { <-x.Done(); log.Close() }()
	n.Xlbd = x
	return nil
}

// nexthopRE is a path of a multipath route as `ip route` prints it.
var nexthopRE = regexp.MustCompile(`nexthop via (\S+)`)

// Paths returns the next hops of rtr's route to the VIP and of brtr's
// default route (the way back to the client), as BIRD installed them.
func (s *ScaleOut) Paths(ctx context.Context) (toVIP, toClient []string, err error) {
	get := func(host, dst string) ([]string, error) {
		out, err := s.Lab.Run(ctx, host, "ip", "route", "show", dst)
		if err != nil {
			return nil, err
		}
		var hops []string
		for _, m := range nexthopRE.FindAllStringSubmatch(string(out), -1) {
			hops = append(hops, m[1])
		}
		if len(hops) == 0 {
			// A single path is printed without "nexthop".
			if f := strings.Fields(string(out)); len(f) > 2 && f[1] == "via" {
				hops = []string{f[2]}
			}
		}
		return hops, nil
	}
	if toVIP, err = get(netlab.HostRouter, netlab.VIP); err != nil {
		return nil, nil, err
	}
	if toClient, err = get(netlab.HostBackRouter, "default"); err != nil {
		return nil, nil, err
	}
	return toVIP, toClient, nil
}

// PathCounter counts the routers' equal paths over netlink, without
// starting a process: cheap enough to poll every few milliseconds while
// traffic flows. Close releases its sockets.
type PathCounter struct {
	rtr, brtr *netlink.Handle
}

// NewPathCounter opens netlink sockets in both routers' namespaces.
func (s *ScaleOut) NewPathCounter() (*PathCounter, error) {
	var pc PathCounter
	for host, h := range map[string]**netlink.Handle{netlab.HostRouter: &pc.rtr, netlab.HostBackRouter: &pc.brtr} {
		if err := s.Lab.Do(host, func() (err error) { *h, err = netlink.NewHandle(); return err }); err != nil {
			pc.Close()
			return nil, fmt.Errorf("%s: netlink: %w", host, err)
		}
	}
	return &pc, nil
}

// Count returns the paths of rtr's route to the VIP and of brtr's default
// route.
func (pc *PathCounter) Count() (toVIP, toClient int, err error) {
	count := func(h *netlink.Handle, dst *net.IPNet) (int, error) {
		rs, err := h.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, r := range rs {
			if r.Dst == nil { // the default route, in older netlink
				r.Dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
			}
			if r.Dst.String() != dst.String() {
				continue
			}
			if len(r.MultiPath) > 0 {
				n += len(r.MultiPath)
			} else if r.Gw != nil {
				n++
			}
		}
		return n, nil
	}
	if toVIP, err = count(pc.rtr, &net.IPNet{IP: net.ParseIP(netlab.VIP).To4(), Mask: net.CIDRMask(32, 32)}); err != nil {
		return 0, 0, err
	}
	toClient, err = count(pc.brtr, &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)})
	return toVIP, toClient, err
}

// Close closes the sockets.
func (pc *PathCounter) Close() {
	for _, h := range []*netlink.Handle{pc.rtr, pc.brtr} {
		if h != nil {
			h.Close()
		}
	}
}

// WaitPaths waits until both routers have exactly n equal paths.
func (s *ScaleOut) WaitPaths(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		toVIP, toClient, err := s.Paths(ctx)
		if err == nil && len(toVIP) == n && len(toClient) == n {
			return nil
		}
		if time.Now().After(deadline) {
			up, _ := s.Router.Established(ctx)
			return fmt.Errorf("after %v: rtr's paths to the VIP %v, brtr's to the client %v (%v), want %d each; rtr's sessions up: %v",
				limit, toVIP, toClient, err, n, up)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// NodeOf returns the node (0-based) rtr sends a client flow to, by asking
// its kernel which path the flow's 5-tuple hashes to.
func (s *ScaleOut) NodeOf(ctx context.Context, proto string, sport, dport int) (int, error) {
	out, err := s.Lab.Run(ctx, netlab.HostRouter, "ip", "route", "get", netlab.VIP, "from", netlab.ClientIP,
		"iif", netlab.IfaceRouterDown, "ipproto", proto, "sport", strconv.Itoa(sport), "dport", strconv.Itoa(dport))
	if err != nil {
		return -1, err
	}
	return s.nodeByVia(string(out), netlab.NodeFrontIP)
}

// KillNode makes node i (0-based) die as a machine does: its xlbd and
// BIRD are frozen (SIGSTOP: nothing is withdrawn, no session closed), its
// links go down, then both are killed. The routers are not told: the
// switch keeps their carrier up, so only BFD notices.
func (s *ScaleOut) KillNode(ctx context.Context, i int) error {
	n := s.Nodes[i]
	n.dead = true
	n.Bird.signal(syscall.SIGSTOP)
	_ = n.Xlbd.Signal(syscall.SIGSTOP)
	err := s.setLinks(ctx, n, "down")
	n.Bird.Kill()
	n.Xlbd.Kill()
	return err
}

// ReviveNode brings a killed node back: links up, BIRD, then xlbd (which
// adopts what its predecessor pinned), and waits until both routers have
// a path through every node again.
func (s *ScaleOut) ReviveNode(ctx context.Context, i int) error {
	n := s.Nodes[i]
	if !n.dead {
		return fmt.Errorf("%s is not dead", n.Host)
	}
	if err := s.setLinks(ctx, n, "up"); err != nil {
		return err
	}
	var err error
	if n.Bird, err = s.bird(ctx, n.Host, n.conf); err != nil {
		return err
	}
	if err := s.startXlbd(ctx, n); err != nil {
		return err
	}
	n.dead = false
	return s.WaitPaths(ctx, len(s.Nodes), 30*time.Second)
}

// setLinks sets both of a node's links up or down at once (one ip -batch).
// Up also puts back its routes (netlab.ScaleOut's), which the kernel
// removed with the links.
func (s *ScaleOut) setLinks(ctx context.Context, n *ScaleOutNode, state string) error {
	cmd := s.Lab.Command(ctx, n.Host, "ip", "-batch", "-")
	batch := fmt.Sprintf("link set %s %s\nlink set %s %s\n", netlab.IfaceGatewayUp, state, netlab.IfaceGatewayDown, state)
	if state == "up" {
		batch += fmt.Sprintf("route replace %s via %s\nroute replace default via %s\n",
			netlab.BackendNet, netlab.BackRouterIP, netlab.RouterFrontIP)
	}
	cmd.Stdin = strings.NewReader(batch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: links %s: %w: %s", n.Host, state, err, out)
	}
	return nil
}

// ReplyNodeOf returns the node (0-based) brtr sends a backend's reply to
// the client through, as NodeOf does for the client's side.
func (s *ScaleOut) ReplyNodeOf(ctx context.Context, proto, backend string, bport, cport int) (int, error) {
	out, err := s.Lab.Run(ctx, netlab.HostBackRouter, "ip", "route", "get", netlab.ClientIP, "from", backend,
		"iif", netlab.IfaceRouterDown, "ipproto", proto, "sport", strconv.Itoa(bport), "dport", strconv.Itoa(cport))
	if err != nil {
		return -1, err
	}
	return s.nodeByVia(string(out), netlab.NodeBackIP)
}

// nodeByVia finds the node whose address (addr(i), 1-based) follows "via".
func (s *ScaleOut) nodeByVia(out string, addr func(int) string) (int, error) {
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			for n := range s.Nodes {
				if f[i+1] == addr(n+1) {
					return n, nil
				}
			}
		}
	}
	return -1, fmt.Errorf("the route goes through no node: %s", out)
}

// Metric returns the value of series on node i, -1 when absent.
func (s *ScaleOut) Metric(i int, series string) (float64, error) {
	text, err := s.Nodes[i].Xlbd.Metrics()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return -1, nil
}

// Dial opens a connection from the client to the VIP from a chosen source
// port, so that a test knows the flow's 5-tuple (and so its path).
func (s *ScaleOut) Dial(ctx context.Context, network string, sport, dport int) (net.Conn, error) {
	var c net.Conn
	err := s.Lab.Do(netlab.HostClient, func() error {
		var local net.Addr
		if network == "udp" {
			local = &net.UDPAddr{IP: net.ParseIP(netlab.ClientIP), Port: sport}
		} else {
			local = &net.TCPAddr{IP: net.ParseIP(netlab.ClientIP), Port: sport}
		}
		d := net.Dialer{LocalAddr: local, Timeout: 3 * time.Second}
		var err error
		c, err = d.DialContext(ctx, network, net.JoinHostPort(netlab.VIP, strconv.Itoa(dport)))
		return err
	})
	return c, err
}

// Close stops the xlbd (SIGTERM), the BIRD daemons and the backends, and
// removes the pins. The lab itself is the caller's.
func (s *ScaleOut) Close() error {
	var errs []error
	for _, n := range s.Nodes {
		if n.Xlbd != nil && !n.dead {
			if err := n.Xlbd.Stop(10 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n.Host, err))
			}
		}
		if n.Bird != nil && !n.dead {
			n.Bird.Kill()
		}
	}
	for _, b := range []*Bird{s.Router, s.BackRouter} {
		if b != nil {
			b.Kill()
		}
	}
	if s.Backends != nil {
		errs = append(errs, s.Backends.Close())
	}
	if s.xdp != nil {
		errs = append(errs, s.xdp.Close())
	}
	return errors.Join(errs...)
}

// Logs returns every daemon's log, for a failed test or run.
func (s *ScaleOut) Logs() string {
	var b strings.Builder
	matches, _ := filepath.Glob(filepath.Join(s.dir, "*.bird.log"))
	for _, n := range s.Nodes {
		matches = append(matches, n.Log)
	}
	for _, m := range matches {
		if m == "" {
			continue
		}
		data, _ := os.ReadFile(m)
		fmt.Fprintf(&b, "==> %s\n%s\n", m, data)
	}
	return b.String()
}
