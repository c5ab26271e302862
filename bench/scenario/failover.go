package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xlbproject/xlb/bench/report"
	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// The failover scenario's traffic: udpFlows request/response flows and
// tcpConns echoing connections, each asking every probeInterval; after a
// second of steady traffic a node dies, and probing goes on for afterKill.
const (
	failoverNodes    = 3
	failoverBackends = 3
	udpFlows         = 240
	tcpConns         = 60
	probeInterval    = 20 * time.Millisecond
	beforeKill       = time.Second
	afterKill        = 5 * time.Second
	failoverTarget   = 3 * time.Second
)

func failover() Scenario {
	return Scenario{
		Name:  "failover",
		Title: "Failover: one of three xlbd nodes dies behind ECMP routers (BGP with BFD)",
		Description: fmt.Sprintf("Three xlbd nodes (XDP engine, maglev listeners, one configuration) between the client's router and "+
			"the backends' router (netlab.ScaleOut), each router running BIRD 2 with an eBGP session and BFD (100 ms x 3) to every "+
			"node and ECMP over the nodes that announce (the VIP on the client side, the way back on the backend side). "+
			"Continuous traffic: %d UDP request/response flows and %d TCP connections, each asking every %s. Each round one node "+
			"dies (its xlbd and BIRD are frozen, its links go down, then both are killed: nothing is withdrawn and the routers keep "+
			"their carrier, so only BFD can notice), "+
			"and every flow's longest wait for an answer is measured; the node is brought back before the next round.",
			udpFlows, tcpConns, probeInterval),
		Backends: failoverBackends,
		Custom:   runFailover,
		Method: []string{
			"A flow is through the dead node when the client's router sends its requests there, or the backends' router its " +
				"replies (both hash the 5-tuple; the scenario asks each router's kernel with `ip route get`). For every flow the " +
				"figure is its longest wait for an answer from half a second before the kill to the end of the round: for the flows " +
				"through the dead node, the time until they were served again (an answer already in flight at the kill does not " +
				"hide the outage), give or take one probe interval; for the others, how much the death disturbed them. TCP adds its own retransmission backoff to the network's recovery " +
				"(a segment lost at the kill is sent again after 200 ms, 400 ms, 800 ms...), so its figure is what an application " +
				"sees, and the UDP one the failover itself. A connection that breaks (its backend changed, or a reset) is counted.",
			"The routers' figures are when their kernel route lost the dead node's path (polled every 5 ms over netlink): BFD's detection, " +
				"BIRD's withdrawal and the kernel update. Every node translates the replies of flows it has no state for " +
				"(maglev NAT), and a flow that moves keeps its backend, so nothing but the paths has to change.",
		},
	}
}

const failoverXlbConfig = `node: {xdp_mode: native, interfaces: [up0, down0], announce: {mode: ecmp, route_table: 200}}
load_balancers:
  - id: lb
    address: ` + netlab.VIP + `
    servers:
      - {address: 198.19.0.11}
      - {address: 198.19.0.12}
      - {address: 198.19.0.13}
    listeners:
      - {protocol: tcp, port: 7000, scheduler: maglev, health_check: {type: tcp, interval: 1s, timeout: 1s}}
      - {protocol: udp, port: 7001, scheduler: maglev}
`

// probe is one flow of the failover traffic.
type probe struct {
	udp            bool
	sport          int
	backend        string
	viaReq, viaRep int         // the nodes its requests and its replies cross
	answers        []time.Time // when each answer came
	broke          error
}

// through reports whether the flow crosses node n either way.
func (p *probe) through(n int) bool { return p.viaReq == n || p.viaRep == n }

// failoverRound is one node's death.
type failoverRound struct {
	victim            int
	kill, end         time.Time
	rtrDrop, brtrDrop time.Duration // until the router's route lost the path
	probes            []*probe
}

func runFailover(ctx context.Context, o Options, r *report.Report) (err error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Log, "[failover] %s\n", fmt.Sprintf(format, args...))
	}
	if o.Xlbd == "" {
		return errors.New("the xlbd binary is required")
	}
	topo := netlab.ScaleOut(failoverNodes, failoverBackends)
	topo.NoTxChecksum = true
	lab, err := netlab.Build(ctx, topo)
	if err != nil {
		return err
	}
	r.Cleanup.LabPrefix = lab.Prefix()
	defer func() { err = errors.Join(err, lab.Close()) }()
	dir := filepath.Join(o.OutDir, "lab")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logf("lab %s: client -> rtr -> %d nodes -> brtr -> %d backends; starting BIRD and xlbd", lab.Prefix(), failoverNodes, failoverBackends)
	s, err := labsvc.StartScaleOut(ctx, lab, labsvc.ScaleOutConfig{Nodes: failoverNodes, Backends: failoverBackends,
		Xlbd: o.Xlbd, Config: failoverXlbConfig, Dir: dir})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()

	var rounds []failoverRound
	for i := range o.Rounds {
		victim := i % failoverNodes
		if i > 0 {
			prev := (i - 1) % failoverNodes
			logf("bringing %s back", s.Nodes[prev].Host)
			if err := s.ReviveNode(ctx, prev); err != nil {
				return err
			}
		}
		logf("round %d: %d udp flows and %d tcp connections, then %s dies", i+1, udpFlows, tcpConns, s.Nodes[victim].Host)
		rd, err := failoverOnce(ctx, s, victim, 30000+i*1000)
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		rounds = append(rounds, rd)
		logf("round %d: %s", i+1, roundLine(rd, s))
	}
	r.Body = failoverBody(rounds, s)
	return nil
}

func failoverOnce(ctx context.Context, s *labsvc.ScaleOut, victim, base int) (failoverRound, error) {
	rd := failoverRound{victim: victim}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range udpFlows + tcpConns {
		p := &probe{udp: i < udpFlows, sport: base + i}
		network, port := "tcp", labsvc.TCPPort
		if p.udp {
			network, port = "udp", labsvc.UDPPort
		}
		c, err := s.Dial(ctx, network, p.sport, port)
		if err != nil {
			return rd, fmt.Errorf("%s from port %d: %w", network, p.sport, err)
		}
		conns = append(conns, c)
		if p.udp {
			// A datagram may be lost while a revived node resolves its
			// neighbours: ask again.
			for try := 0; try < 3; try++ {
				wctx, cancel := context.WithTimeout(ctx, time.Second)
				p.backend, err = serve.WhoAmIUDP(wctx, c)
				cancel()
				if err == nil {
					break
				}
			}
		} else {
			wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			p.backend, err = serve.WhoAmITCP(wctx, c)
			cancel()
		}
		if err != nil {
			return rd, fmt.Errorf("%s from port %d: %w", network, p.sport, err)
		}
		be, err := strconv.Atoi(strings.TrimPrefix(p.backend, "be"))
		if err != nil {
			return rd, fmt.Errorf("backend %q", p.backend)
		}
		if p.viaReq, err = s.NodeOf(ctx, network, p.sport, port); err != nil {
			return rd, err
		}
		if p.viaRep, err = s.ReplyNodeOf(ctx, network, netlab.BackendIP(be), port, p.sport); err != nil {
			return rd, err
		}
		rd.probes = append(rd.probes, p)
	}

	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for i, p := range rd.probes {
		wg.Add(1)
		go func() { defer wg.Done(); p.run(pctx, conns[i]) }()
	}
	// The routers are watched from before the steady half second, so that
	// its figures carry the watch's cost too.
	watch, err := watchPaths(pctx, s)
	if err != nil {
		stop()
		wg.Wait()
		return rd, err
	}
	time.Sleep(beforeKill)
	kill := time.Now()
	if err := s.KillNode(ctx, victim); err != nil {
		stop()
		wg.Wait()
		return rd, err
	}
	time.Sleep(afterKill)
	rd.kill, rd.end = kill, time.Now()
	stop()
	wg.Wait()
	drops := <-watch
	rd.rtrDrop, rd.brtrDrop = sub(drops[0], kill), sub(drops[1], kill)
	return rd, nil
}

func sub(t, from time.Time) time.Duration {
	if t.IsZero() {
		return -1
	}
	return t.Sub(from)
}

// watchPaths reports when each router's route first has fewer paths than
// nodes (zero time: never, until ctx ends), polling over netlink.
func watchPaths(ctx context.Context, s *labsvc.ScaleOut) (<-chan [2]time.Time, error) {
	pc, err := s.NewPathCounter()
	if err != nil {
		return nil, err
	}
	out := make(chan [2]time.Time, 1)
	go func() {
		defer pc.Close()
		var at [2]time.Time
		defer func() { out <- at }()
		for ctx.Err() == nil && (at[0].IsZero() || at[1].IsZero()) {
			toVIP, toClient, err := pc.Count()
			now := time.Now()
			if err == nil {
				if at[0].IsZero() && toVIP < failoverNodes {
					at[0] = now
				}
				if at[1].IsZero() && toClient < failoverNodes {
					at[1] = now
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return out, nil
}

// run asks every probeInterval until ctx ends, recording each answer.
func (p *probe) run(ctx context.Context, c net.Conn) {
	msg := []byte("probe-" + strconv.Itoa(p.sport) + "\n")
	buf := make([]byte, 256)
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		if _, err := c.Write(msg); err != nil && !p.udp {
			p.broke = err
			return
		}
		if p.udp {
			// Read answers until the next tick.
			next := time.Now().Add(probeInterval)
			for {
				_ = c.SetReadDeadline(next)
				if _, err := c.Read(buf); err != nil {
					break
				}
				p.answers = append(p.answers, time.Now())
			}
		} else {
			_ = c.SetReadDeadline(time.Now().Add(afterKill + time.Second))
			if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
				if ctx.Err() == nil {
					p.broke = err
				}
				return
			}
			p.answers = append(p.answers, time.Now())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// longestGap is the longest wait for an answer from half a second before
// the kill to the end: for a flow through the dead node, its outage (an
// answer in flight at the kill does not hide it), give or take one probe
// interval; for the others, how much the death disturbed them.
func (p *probe) longestGap(kill, end time.Time) time.Duration {
	prev := kill.Add(-beforeKill / 2)
	var gap time.Duration
	for _, a := range p.answers {
		if a.Before(prev) {
			continue
		}
		if a.After(end) {
			break
		}
		gap = max(gap, a.Sub(prev))
		prev = a
	}
	return max(gap, end.Sub(prev))
}

// steadyGap is the longest wait for an answer in the half second before
// the kill: the lab's own jitter, to read the other figures against.
func (p *probe) steadyGap(kill time.Time) time.Duration { return p.longestGap(kill, kill) }

// recovered reports whether the flow was answered in its last second.
func (p *probe) recovered(end time.Time) bool {
	return len(p.answers) > 0 && end.Sub(p.answers[len(p.answers)-1]) < time.Second
}

// stats of one kind of flow in a round.
type flowStats struct {
	through, others int
	again           []time.Duration // longest gaps of the flows through the dead node
	gaps            []time.Duration // of the others
	steady          []time.Duration // every flow's steadyGap
	lost, broke     int             // not answered at the end; broken connections
}

func statsOf(rd failoverRound, udp bool) flowStats {
	var st flowStats
	for _, p := range rd.probes {
		if p.udp != udp {
			continue
		}
		if p.broke != nil {
			st.broke++
		} else if !p.recovered(rd.end) {
			st.lost++
		}
		st.steady = append(st.steady, p.steadyGap(rd.kill))
		gap := p.longestGap(rd.kill, rd.end)
		if p.through(rd.victim) {
			st.through++
			st.again = append(st.again, gap)
		} else {
			st.others++
			st.gaps = append(st.gaps, gap)
		}
	}
	return st
}

func medianMax(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

func fmtSeconds(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func roundLine(rd failoverRound, s *labsvc.ScaleOut) string {
	u, t := statsOf(rd, true), statsOf(rd, false)
	_, um := medianMax(u.again)
	_, tm := medianMax(t.again)
	return fmt.Sprintf("%s dead: rtr %s, brtr %s; udp flows through it served again within %s (%d never), tcp within %s (%d broken)",
		s.Nodes[rd.victim].Host, fmtSeconds(rd.rtrDrop), fmtSeconds(rd.brtrDrop), fmtSeconds(um), u.lost, fmtSeconds(tm), t.broke)
}

func failoverBody(rounds []failoverRound, s *labsvc.ScaleOut) string {
	var b strings.Builder
	b.WriteString("| round | dead node | rtr drops its path | brtr drops its path | flows | through the dead node | served again after, median / max | the others' longest gap, median / max | before the kill: longest gap, median / max | not served at the end | broken |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	var worstUDP, worstTCP time.Duration
	failed := 0
	for i, rd := range rounds {
		for _, udp := range []bool{true, false} {
			st := statsOf(rd, udp)
			kind := fmt.Sprintf("%d tcp", st.through+st.others)
			if udp {
				kind = fmt.Sprintf("%d udp", st.through+st.others)
			}
			am, ax := medianMax(st.again)
			gm, gx := medianMax(st.gaps)
			sm, sx := medianMax(st.steady)
			if udp {
				worstUDP = max(worstUDP, ax)
			} else {
				worstTCP = max(worstTCP, ax)
			}
			failed += st.lost + st.broke
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %d | %s / %s | %s / %s | %s / %s | %d | %d |\n", i+1, s.Nodes[rd.victim].Host,
				fmtSeconds(rd.rtrDrop), fmtSeconds(rd.brtrDrop), kind, st.through, fmtSeconds(am), fmtSeconds(ax),
				fmtSeconds(gm), fmtSeconds(gx), fmtSeconds(sm), fmtSeconds(sx), st.lost, st.broke)
		}
	}
	verdict := "met"
	if worstUDP >= failoverTarget || worstTCP >= failoverTarget || failed > 0 {
		verdict = "NOT met"
	}
	fmt.Fprintf(&b, "\nOver %d round(s) the flows of the dead node were served again within %s (UDP) and %s (TCP, with its "+
		"retransmission backoff); %d flow(s) never recovered or broke. Target under %s: %s (the managed product's zone "+
		"failover: 30 s).\n", len(rounds), fmtSeconds(worstUDP), fmtSeconds(worstTCP), failed, fmtSeconds(failoverTarget), verdict)
	return b.String()
}
