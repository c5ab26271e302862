package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// scaleOutConfig is what every node of the scale-out lab runs: maglev
// listeners, announced over BGP for ECMP.
var scaleOutConfig = nodeConfig(`{xdp_mode: native, interfaces: [up0, down0], announce: {mode: ecmp, route_table: 200}}`,
	threeServers, `
      - {protocol: tcp, port: 7000, scheduler: maglev, health_check: `+fastTCPCheck+`}
      - {protocol: udp, port: 7001, scheduler: maglev}`)

// startScaleOut runs the three-node lab for a test.
func startScaleOut(t *testing.T) *labsvc.ScaleOut {
	t.Helper()
	topo := netlab.ScaleOut(3, 3)
	topo.NoTxChecksum = true
	lab := netlab.New(t, topo)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := labsvc.StartScaleOut(ctx, lab, labsvc.ScaleOutConfig{Nodes: 3, Backends: 3, Xlbd: xlbdBin, Config: scaleOutConfig, Dir: t.TempDir()})
	if errors.Is(err, labsvc.ErrNoBird) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s", s.Logs())
		}
		if err := s.Close(); err != nil {
			t.Errorf("stopping the scale-out lab: %v", err)
		}
	})
	return s
}

// Three xlbd nodes behind ECMP routers that learn the VIP from each node's
// BIRD over BGP with BFD: the flows spread over the nodes, a flow finds the
// same backend whichever node it crosses, and when a node dies the flows
// that crossed it move to the others and keep their backend (open TCP
// connections go on), while the others are untouched.
func TestScaleOutECMP(t *testing.T) {
	s := startScaleOut(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type flow struct {
		conn    net.Conn
		sport   int
		node    int
		backend string
	}
	var flows []*flow
	perNode := make([]int, len(s.Nodes))
	for i := range 30 {
		f := &flow{sport: 42000 + i}
		var err error
		if f.node, err = s.NodeOf(ctx, "tcp", f.sport, labsvc.TCPPort); err != nil {
			t.Fatal(err)
		}
		if f.conn, err = s.Dial(ctx, "tcp", f.sport, labsvc.TCPPort); err != nil {
			t.Fatalf("connection from port %d (through %s): %v", f.sport, s.Nodes[f.node].Host, err)
		}
		defer f.conn.Close()
		if f.backend, err = whoAmI(ctx, f.conn); err != nil {
			t.Fatalf("connection from port %d (through %s): %v", f.sport, s.Nodes[f.node].Host, err)
		}
		flows = append(flows, f)
		perNode[f.node]++
	}
	// Spread: each node created the connections the router sent it.
	newFlows := func(i int) float64 {
		v, err := s.Metric(i, `xlb_xdp_new_flows_total{listener="lb/tcp/7000"}`)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	stateless := 0.0
	for i := range s.Nodes {
		if perNode[i] == 0 {
			t.Errorf("the router sent none of 30 connections to %s: %v", s.Nodes[i].Host, perNode)
		}
		if got := newFlows(i); got != float64(perNode[i]) {
			t.Errorf("%s created %v connections, want the %d the router sent it", s.Nodes[i].Host, got, perNode[i])
		}
		v, err := s.Metric(i, `xlb_xdp_stateless_replies_total{listener="lb/tcp/7000"}`)
		if err != nil {
			t.Fatal(err)
		}
		stateless += v
	}
	// The backend side's router hashes the replies on their own: some
	// reached a node without the connection's state, which translated them.
	if stateless == 0 {
		t.Error("no reply was translated without state: the backends' replies all crossed their connection's node")
	}

	// The same 5-tuple through each node in turn (a policy rule on the
	// router pins the VIP to one node) reaches the same backend.
	backends := map[string]bool{}
	for sport := 43000; sport < 43012; sport++ {
		var first string
		for i := range s.Nodes {
			pinVIP(t, s, i)
			name, err := askUDP(ctx, s, sport)
			if err != nil {
				t.Fatalf("udp from port %d through %s: %v", sport, s.Nodes[i].Host, err)
			}
			if i == 0 {
				first = name
				backends[name] = true
			} else if name != first {
				t.Errorf("udp from port %d: %s through %s, %s through %s", sport, first, s.Nodes[0].Host, name, s.Nodes[i].Host)
			}
		}
	}
	unpinVIP(t, s)
	if len(backends) < 2 {
		t.Errorf("12 udp flows all went to %v: maglev should spread them", backends)
	}

	// Node death: the routers notice by BFD alone.
	victim := 0
	for i := range perNode {
		if perNode[i] > perNode[victim] {
			victim = i
		}
	}
	before := map[int]float64{}
	for i := range s.Nodes {
		before[i] = newFlows(i)
	}
	if err := s.KillNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitPaths(ctx, len(s.Nodes)-1, 5*time.Second); err != nil {
		t.Fatalf("after %s died: %v", s.Nodes[victim].Host, err)
	}
	// Every connection goes on, so each still reaches its backend (another
	// would answer its segments with a reset).
	for _, f := range flows {
		if err := echoWithin(f.conn, 10*time.Second); err != nil {
			t.Errorf("the connection from port %d to %s (through %s) broke when %s died: %v",
				f.sport, f.backend, s.Nodes[f.node].Host, s.Nodes[victim].Host, err)
		}
	}
	// The connections whose path changed were taken over (created again)
	// by their new node: the victim's, and those that the router's
	// hash-threshold split moved between the others when a path went away.
	changed, victims := 0, 0
	for _, f := range flows {
		now, err := s.NodeOf(ctx, "tcp", f.sport, labsvc.TCPPort)
		if err != nil {
			t.Fatal(err)
		}
		if now == victim {
			t.Errorf("the router still sends the connection from port %d to the dead %s", f.sport, s.Nodes[victim].Host)
		}
		if now != f.node {
			changed++
		}
		if f.node == victim {
			victims++
		}
	}
	taken := 0.0
	for i := range s.Nodes {
		if i != victim {
			taken += newFlows(i) - before[i]
		}
	}
	if taken != float64(changed) || changed < victims {
		t.Errorf("the nodes left took over %v connections, want the %d whose path changed (%d of them through %s)",
			taken, changed, victims, s.Nodes[victim].Host)
	}
	// New connections are served by the nodes left.
	for i := range 6 {
		c, err := s.Dial(ctx, "tcp", 44000+i, labsvc.TCPPort)
		if err != nil {
			t.Fatalf("a new connection after %s died: %v", s.Nodes[victim].Host, err)
		}
		_, err = whoAmI(ctx, c)
		c.Close()
		if err != nil {
			t.Fatalf("a new connection after %s died: %v", s.Nodes[victim].Host, err)
		}
	}
}

// echoWithin checks that c still echoes.
func echoWithin(c net.Conn, limit time.Duration) error {
	msg := []byte("still here\n")
	_ = c.SetDeadline(time.Now().Add(limit))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, msg) {
		return fmt.Errorf("echoed %q", buf)
	}
	return nil
}

func whoAmI(ctx context.Context, c net.Conn) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return serve.WhoAmITCP(ctx, c)
}

func askUDP(ctx context.Context, s *labsvc.ScaleOut, sport int) (string, error) {
	c, err := s.Dial(ctx, "udp", sport, labsvc.UDPPort)
	if err != nil {
		return "", err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return serve.WhoAmIUDP(ctx, c)
}

// pinVIP makes the router send the client's traffic to the VIP through
// node i only (a table and rule of its own: BIRD's route stays).
func pinVIP(t *testing.T, s *labsvc.ScaleOut, i int) {
	t.Helper()
	run := func(args ...string) {
		if out, err := s.Lab.Run(context.Background(), netlab.HostRouter, "ip", args...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	run("route", "replace", netlab.VIP+"/32", "via", netlab.NodeFrontIP(i+1), "table", "100")
	if out, _ := s.Lab.Run(context.Background(), netlab.HostRouter, "ip", "rule", "show", "pref", "100"); len(out) == 0 {
		run("rule", "add", "pref", "100", "iif", netlab.IfaceRouterDown, "lookup", "100")
	}
}

func unpinVIP(t *testing.T, s *labsvc.ScaleOut) {
	t.Helper()
	if out, err := s.Lab.Run(context.Background(), netlab.HostRouter, "ip", "rule", "del", "pref", "100"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}
