package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/bench/load"
	"github.com/xlbproject/xlb/bench/report"
	"github.com/xlbproject/xlb/bench/xdpgen"
	"github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/netlab"
)

// The packet-rate workload: 60-byte UDP frames from the live-frame
// generator (bench/xdpgen) in the client, to the system's "pps" target
// (VIP:FramesPort for a load balancer, an outside server's FramesPort for
// SNAT), forwarded by the gateway towards the backends. An XDP counter on the switch's port
// facing the gateway counts and drops them as they leave the gateway (the
// rest, ARP and health checks, goes on to the backends): what is measured
// is the gateway's forwarding, not the bridge's and the backends' kernels,
// which are slower than an XDP gateway. Delivered packets per second are
// what the counter saw; loss is 1 - delivered/sent.
const (
	FramesPort  = 7002
	framesFlows = 1024 // source ports rotated over, so rr spreads the flows
	// maxLoss is the loss under which a rate counts as delivered.
	maxLoss = 0.01
	// searchSteps halve (geometrically) the interval between a delivered
	// and an overrun rate, from 1/searchRange of the generator's full
	// speed up: 8 steps end within 3% of the highest delivered rate.
	searchSteps = 8
	searchRange = 1000
	// burstFrames bounds a paced burst: within one burst the generator
	// runs at its full speed (about 7 Mpps here), and a burst longer than
	// the receiving veth's 256-frame ring overflows it before a slower
	// receiver drains it. Bursts of 128 frames, spaced by spinning on the
	// load core, pace up to about 3 Mpps (each live-frame run costs about
	// 20 µs besides its frames).
	burstFrames = 128
)

// ppsSource is the target key of the source address a system's frames
// leave the gateway with, when it translates sources (SNAT).
const ppsSource = "pps-source"

// udpFrames is the packet-rate workload.
func udpFrames() Workload {
	return Workload{
		Name: "pps", Title: "UDP packet rate (60-byte frames, live-frame generator)", Short: "UDP packets",
		Unit: "packets/s", Op: "packet", CPUMethod: report.CPUGatewayCore, Connections: framesFlows,
		Run:   runFrames,
		Probe: probeFrames,
	}
}

// ownXDP is a system that attaches its own XDP program to the gateway's
// interfaces (xlb's XDP engine), with the lab's pass program on the
// switch's port, which the counter replaces while frames are sent. The
// others get a pass program on the gateway's client side (a veth delivers
// redirected frames only to a peer with an XDP program) and the counter
// attached to the switch's port.
type ownXDP interface {
	SwapSwitchProgram(prog *ebpf.Program) (restore func() error, err error)
}

// frameRig is what one packet-rate measurement sets up: the generator in
// the client, the counters on the backends, and the gateway's pass program
// when the system brings none.
type frameRig struct {
	gen     *xdpgen.Generator
	sink    *xdpgen.Counter
	closers []io.Closer
	undo    []func() error
}

func lnsRunner(lab *netlab.Lab, host string) xdpgen.NSRunner {
	return func(fn func() error) error { return lab.Do(host, fn) }
}

func newFrameRig(ctx context.Context, e *Env, sys System) (_ *frameRig, err error) {
	r := &frameRig{}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	dst, err := netip.ParseAddrPort(sys.Target("pps"))
	if err != nil {
		return r, fmt.Errorf("pps target of %s: %w", sys.Name(), err)
	}
	sinkCfg := xdpgen.CounterConfig{Mode: xdpgen.Driver, MatchProto: xdpgen.UDP, MatchDstPort: dst.Port(), PassUnmatched: true}
	// A SNAT system's frames count only translated (a frame the kernel
	// forwarded untranslated must not pass for one).
	if src := sys.Target(ppsSource); src != "" {
		if sinkCfg.MatchSrc, err = netip.ParseAddr(src); err != nil {
			return r, fmt.Errorf("pps source of %s: %w", sys.Name(), err)
		}
	}
	if o, ok := sys.(ownXDP); ok {
		if r.sink, err = xdpgen.LoadCounter(sinkCfg); err != nil {
			return r, err
		}
		restore, err := o.SwapSwitchProgram(r.sink.Program())
		if err != nil {
			return r, err
		}
		r.undo = append(r.undo, restore)
	} else {
		l, err := attachPass(ctx, e.Lab, netlab.HostGateway, netlab.IfaceGatewayUp)
		if err != nil {
			return r, fmt.Errorf("gateway pass program: %w", err)
		}
		r.closers = append(r.closers, l)
		if r.sink, err = xdpgen.AttachCounter(lnsRunner(e.Lab, netlab.HostSwitch), netlab.HostGateway, sinkCfg); err != nil {
			return r, err
		}
	}
	client := lnsRunner(e.Lab, netlab.HostClient)
	src, err := xdpgen.InterfaceMAC(client, netlab.IfaceClient)
	if err != nil {
		return r, err
	}
	gwMAC, err := xdpgen.InterfaceMAC(lnsRunner(e.Lab, netlab.HostGateway), netlab.IfaceGatewayUp)
	if err != nil {
		return r, err
	}
	frame, err := xdpgen.BuildFrame(xdpgen.FrameSpec{
		SrcMAC: src, DstMAC: gwMAC, Src: mustAddr(netlab.ClientIP), Dst: dst.Addr(),
		SrcPort: 20000, DstPort: dst.Port(), Proto: xdpgen.UDP, Size: xdpgen.MinFrameSize,
	})
	if err != nil {
		return r, err
	}
	r.gen, err = xdpgen.NewGenerator(client, xdpgen.GeneratorConfig{
		Frame: frame, Dev: netlab.IfaceClient, Flows: framesFlows, HoldDev: "lo",
	})
	return r, err
}

func (r *frameRig) Close() error {
	var errs []error
	if r.gen != nil {
		errs = append(errs, r.gen.Close())
	}
	// Undo in reverse: the switch's pass program goes back before the
	// counter it replaced is unloaded.
	for _, u := range slices.Backward(r.undo) {
		errs = append(errs, u())
	}
	if r.sink != nil {
		errs = append(errs, r.sink.Close())
	}
	for _, c := range r.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// delivered reads the counter's matched frames and bytes.
func (r *frameRig) delivered() (frames, bytes uint64, err error) {
	st, err := r.sink.Read()
	return st.MatchedPackets, st.MatchedBytes, err
}

// attachPass attaches the pass program to host's dev, retrying while the
// device is busy: the previous system's XDP link may still be on its way
// out (the kernel releases an unpinned link from a work queue).
func attachPass(ctx context.Context, lab *netlab.Lab, host, dev string) (io.Closer, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		var l io.Closer
		err := lab.Do(host, func() (err error) {
			l, err = xdp.AttachPass(dev)
			return err
		})
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return l, err
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// send offers frames at rate (0: as fast as the generator goes) for d and
// returns what was sent and what arrived, after the frames in flight
// settled.
func (r *frameRig) send(ctx context.Context, rate float64, d time.Duration) (sent xdpgen.Result, got, gotBytes uint64, err error) {
	f0, b0, err := r.delivered()
	if err != nil {
		return sent, 0, 0, err
	}
	opts := xdpgen.SendOptions{Duration: d}
	if rate > 0 {
		opts.Rate, opts.Spin = rate, true
		// A millisecond's frames per burst, at most burstFrames.
		burst := min(max(math.Round(rate/1000), 1), burstFrames)
		opts.PaceInterval = time.Duration(burst / rate * float64(time.Second))
	}
	sent, err = r.gen.Send(ctx, opts)
	if err != nil {
		return sent, 0, 0, err
	}
	// Frames in flight arrive within microseconds; a loss never does.
	last, stable := uint64(0), time.Now()
	for time.Since(stable) < 100*time.Millisecond {
		f, b, err := r.delivered()
		if err != nil {
			return sent, 0, 0, err
		}
		got, gotBytes = f-f0, b-b0
		if got >= sent.Frames {
			break
		}
		if got != last {
			last, stable = got, time.Now()
		}
		if !sleepCtx(ctx, 5*time.Millisecond) {
			return sent, got, gotBytes, ctx.Err()
		}
	}
	return sent, got, gotBytes, nil
}

func rateName(r float64) string {
	if r == 0 {
		return "unpaced"
	}
	return fmt.Sprintf("%.0f", r)
}

func lossOf(sent, got uint64) float64 {
	if sent == 0 {
		return 1
	}
	return max(0, 1-float64(got)/float64(sent))
}

// probeFrames checks that the system forwards the frames at all: a
// modest rate, and a tenth delivered, since a proxy's first packet of each
// of the 1024 flows opens a session and may be late.
func probeFrames(ctx context.Context, e *Env, sys System) error {
	r, err := newFrameRig(ctx, e, sys)
	if err != nil {
		return err
	}
	defer r.Close()
	sent, got, _, err := r.send(ctx, 5000, 400*time.Millisecond)
	if err != nil {
		return err
	}
	if l := lossOf(sent.Frames, got); l > 0.9 {
		return fmt.Errorf("%d of %d frames delivered to the backends", got, sent.Frames)
	}
	return nil
}

// runFrames measures one window. At a fixed rate it offers that rate; for
// the highest rate (rate 0) it first finds the highest offered rate that
// arrives with under 1% loss: the generator's full speed if the system
// keeps up with it, else by bisection between a rate that was delivered
// and one that was not (a kernel-path gateway fed faster than it forwards
// overruns its receive ring and delivers almost nothing, so the unpaced
// figure would measure the overload, not the capacity). The window is then
// measured at that rate; the CPU readings bracket it like a generator
// process's.
func runFrames(ctx context.Context, e *Env, sys System, rate float64, d time.Duration, window cpuWindow) (*load.Result, report.CPU, error) {
	r, err := newFrameRig(ctx, e, sys)
	if err != nil {
		return nil, report.CPU{}, err
	}
	defer r.Close()
	if rate == 0 {
		if rate, err = highestDelivered(ctx, r, e.Opts.Warmup+d/4, func(offered float64, sent xdpgen.Result, got uint64) {
			e.logf("pps search     %-9s offered %s/s: sent %.0f/s, delivered %.0f/s, loss %.2f%%", sys.Name(), rateName(offered),
				sent.PPS(), float64(got)/sent.Elapsed.Seconds(), 100*lossOf(sent.Frames, got))
		}); err != nil {
			return nil, report.CPU{}, err
		}
	}
	if e.Opts.Warmup > 0 {
		if _, _, _, err := r.send(ctx, rate, e.Opts.Warmup); err != nil {
			return nil, report.CPU{}, err
		}
	}
	done := window(time.Now())
	sent, got, gotBytes, err := r.send(ctx, rate, d)
	cpu, rerr := done()
	if err = errors.Join(err, rerr); err != nil {
		return nil, cpu, err
	}
	secs := sent.Elapsed.Seconds()
	res := &load.Result{
		Kind: "frames", Target: sys.Target("pps"), Duration: sent.Elapsed, Offered: rate,
		Ops: got, Rate: float64(got) / secs, Connections: framesFlows,
		BytesSent: sent.Bytes, BytesReceived: gotBytes, Sent: sent.Frames, Loss: lossOf(sent.Frames, got),
		Errors: map[string]uint64{},
	}
	return res, cpu, nil
}

// highestDelivered returns the highest rate delivered with under maxLoss,
// probing each rate for d (0 means the generator's full speed).
func highestDelivered(ctx context.Context, r *frameRig, d time.Duration, logf func(offered float64, sent xdpgen.Result, got uint64)) (float64, error) {
	sent, got, _, err := r.send(ctx, 0, d)
	if err != nil {
		return 0, err
	}
	logf(0, sent, got)
	if lossOf(sent.Frames, got) < maxLoss {
		return 0, nil
	}
	bad := sent.PPS()
	ok := bad / searchRange
	for range searchSteps {
		mid := math.Sqrt(ok * bad)
		s, g, _, err := r.send(ctx, mid, d)
		if err != nil {
			return 0, err
		}
		logf(mid, s, g)
		if lossOf(s.Frames, g) < maxLoss {
			ok = mid
		} else {
			bad = mid
		}
	}
	if ok == sent.PPS()/searchRange {
		// Never confirmed: the search's floor must deliver too.
		s, g, _, err := r.send(ctx, ok, d)
		if err != nil {
			return 0, err
		}
		logf(ok, s, g)
		if lossOf(s.Frames, g) >= maxLoss {
			return 0, fmt.Errorf("no rate down to %.0f frames/s was delivered with under %.0f%% loss", ok, 100*maxLoss)
		}
	}
	return math.Round(ok), nil
}

// sleepCtx sleeps d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
