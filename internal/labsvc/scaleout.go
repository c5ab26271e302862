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
	"time"

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
}

// ScaleOutNode is one gateway node.
type ScaleOutNode struct {
	Host string
	Xlbd *Xlbd
	Bird *Bird
	Log  string // xlbd's log file
	dead bool
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
	cfgPath := filepath.Join(cfg.Dir, "xlb.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.Config), 0o600); err != nil {
		return nil, err
	}
	for i := 1; i <= cfg.Nodes; i++ {
		n := &ScaleOutNode{Host: netlab.NodeHost(i)}
		s.Nodes = append(s.Nodes, n)
		conf := NodeBirdConf(netlab.NodeFrontIP(i), NodeAS, VIPTable, netlab.RouterFrontIP, RouterAS, netlab.BackRouterIP, BackRouterAS)
		if n.Bird, err = s.bird(ctx, n.Host, conf); err != nil {
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
			errs[i] = s.startXlbd(ctx, n, cfg.Xlbd, cfgPath)
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
	log, err := os.Create(filepath.Join(s.dir, host+".bird.log"))
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

func (s *ScaleOut) startXlbd(ctx context.Context, n *ScaleOutNode, bin, cfgPath string) error {
	dir := filepath.Join(s.dir, n.Host)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	n.Log = filepath.Join(dir, "xlbd.log")
	log, err := os.Create(n.Log)
	if err != nil {
		return err
	}
	x, err := StartXlbd(ctx, s.Lab, n.Host, bin, log, "--config", cfgPath, "--drain-timeout", "1s",
		"--state-dir", filepath.Join(dir, "state"), "--control-listen", "unix://"+filepath.Join(dir, "xlb.sock"),
		"--bpffs", s.xdp.PinDir(n.Host))
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
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			for n := range s.Nodes {
				if f[i+1] == netlab.NodeFrontIP(n+1) {
					return n, nil
				}
			}
		}
	}
	return -1, fmt.Errorf("rtr routes %s %d->%d through no node: %s", proto, sport, dport, out)
}

// KillNode makes node i (0-based) die as a machine does: its xlbd and BIRD
// are killed and its links go down. The routers are not told: the switch
// keeps their carrier up, so only BFD notices.
func (s *ScaleOut) KillNode(ctx context.Context, i int) error {
	n := s.Nodes[i]
	n.dead = true
	n.Bird.Kill()
	n.Xlbd.Kill()
	for _, ifname := range []string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown} {
		if _, err := s.Lab.Run(ctx, n.Host, "ip", "link", "set", ifname, "down"); err != nil {
			return err
		}
	}
	return nil
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
