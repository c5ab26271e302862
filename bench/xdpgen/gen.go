package xdpgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Live-frame run limits.
const (
	// DefaultBatchSize is the kernel's default: frames per page-pool
	// batch, transmitted together before the redirect flush.
	DefaultBatchSize = 64
	// MaxBatchSize is the kernel's limit (TEST_XDP_MAX_BATCH).
	MaxBatchSize = 256
	// DefaultChunk is the frames per BPF_PROG_TEST_RUN call when not
	// pacing: tens of milliseconds, so ctx and progress are seen often.
	DefaultChunk = 1 << 16
	// DefaultPaceInterval is the burst period when pacing to a rate.
	DefaultPaceInterval = time.Millisecond
)

// GeneratorConfig configures a Generator.
type GeneratorConfig struct {
	// Frame is the template, e.g. from BuildFrame.
	Frame []byte
	// Dev is the sending interface, in the runner's namespace. The live
	// frames are run as if received on it, and XDP_TX sends them out of it.
	Dev string
	// RedirectDev is the XDP_REDIRECT target (same namespace); "" means Dev.
	RedirectDev string
	// TX returns XDP_TX (out of Dev) instead of redirecting.
	TX bool
	// Flows > 1 rotates the L4 source port over Flows values starting at
	// the frame's, one per frame.
	Flows int
	// HoldDev, if set, is an interface of the same namespace (typically
	// "lo") to which the program is attached in generic mode while the
	// Generator lives, passing every frame received there. It keeps the
	// program in the kernel's XDP dispatcher: without that, every
	// BPF_PROG_TEST_RUN with Repeat > 1 swaps the program into the
	// dispatcher and out again, an RCU grace period each way (about 25 ms
	// per run here), which caps short paced bursts at a few thousand
	// frames per second. Leave it empty to touch no other interface.
	HoldDev string
	// SrcAddrs > 1 also rotates the IPv4 source address over SrcAddrs
	// consecutive addresses starting at the frame's (after each full round
	// of ports). Flows*SrcAddrs distinct flows in all.
	SrcAddrs int

	// noRestore leaves frames as they come (no template restore): the
	// parser cross-check runs the program on arbitrary frames.
	noRestore bool
}

// Generator sends a template frame at high rate with BPF_PROG_TEST_RUN in
// live-frame mode (xdp_gen.c). It is not safe for concurrent Sends.
type Generator struct {
	run    NSRunner
	objs   xdpGenObjects
	hold   link.Link // nil without HoldDev
	frame  []byte
	ctx    xdpMD
	closed bool
}

// xdpMD is struct xdp_md, the run's context: only the frame end and the
// ingress interface are set (the kernel requires data_end == len(frame)).
type xdpMD struct {
	Data           uint32
	DataEnd        uint32
	DataMeta       uint32
	IngressIfindex uint32
	RxQueueIndex   uint32
	EgressIfindex  uint32
}

// GenStats are xdp_gen's counters summed over CPUs, since load.
type GenStats struct {
	Frames       uint64 // transmitted
	Bytes        uint64
	OverLimit    uint64 // dropped to keep a Count exact
	NotRewritten uint64 // flows requested but frame not TCP/UDP
}

// NewGenerator loads xdp_gen configured for cfg. run is the namespace
// that owns cfg.Dev; Send runs there too.
func NewGenerator(run NSRunner, cfg GeneratorConfig) (*Generator, error) {
	pkt, v := Parse(cfg.Frame)
	switch {
	case len(cfg.Frame) < MinFrameSize || len(cfg.Frame) > MaxFrameSize:
		return nil, fmt.Errorf("generator: frame of %d bytes: want %d to %d", len(cfg.Frame), MinFrameSize, MaxFrameSize)
	case cfg.Flows < 0 || cfg.SrcAddrs < 0:
		return nil, errors.New("generator: negative flows or source addresses")
	case (cfg.Flows > 1 || cfg.SrcAddrs > 1) && (v != ParseOK || (pkt.L4Proto != protoUDP && pkt.L4Proto != protoTCP)):
		return nil, fmt.Errorf("generator: flows need a TCP or UDP frame (parse: %v)", v)
	case cfg.Flows > 1 && int(pkt.SrcPort)+cfg.Flows-1 > math.MaxUint16:
		return nil, fmt.Errorf("generator: %d flows from source port %d pass 65535", cfg.Flows, pkt.SrcPort)
	case cfg.SrcAddrs > 1 && pkt.EtherType != etherTypeIPv4:
		return nil, errors.New("generator: source address rotation is IPv4 only")
	}
	var srcBase uint32
	if cfg.SrcAddrs > 1 {
		a, _ := netip.AddrFromSlice(cfg.Frame[pkt.L3Off+ipv4SrcOff : pkt.L3Off+ipv4SrcOff+4])
		b := a.As4()
		srcBase = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if uint64(srcBase)+uint64(cfg.SrcAddrs)-1 > math.MaxUint32 {
			return nil, fmt.Errorf("generator: %d source addresses from %s pass 255.255.255.255", cfg.SrcAddrs, a)
		}
	}

	ingress, _, err := ifindex(run, cfg.Dev)
	if err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	target := 0
	if !cfg.TX {
		target = ingress
		if cfg.RedirectDev != "" && cfg.RedirectDev != cfg.Dev {
			if target, _, err = ifindex(run, cfg.RedirectDev); err != nil {
				return nil, fmt.Errorf("generator: redirect target: %w", err)
			}
		}
	}

	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("generator: raise memlock limit: %w", err)
	}
	spec, err := loadXdpGen()
	if err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	// The template's headers, restored into every frame (xdp_gen.c).
	var tmpl [16]uint64
	n := min(len(cfg.Frame), len(tmpl)*8) &^ 7
	if cfg.noRestore {
		n = 0
	}
	for i := 0; i < n/8; i++ {
		tmpl[i] = binary.NativeEndian.Uint64(cfg.Frame[i*8:])
	}
	consts := map[string]any{
		xdpGenVarTmpl:            tmpl,
		xdpGenVarTmplLen:         uint32(n),
		xdpGenVarGenIfindex:      uint32(ingress),
		xdpGenVarRedirectIfindex: uint32(target),
		xdpGenVarFlows:           uint32(max(cfg.Flows, 1)),
		xdpGenVarSportBase:       pkt.SrcPort,
		xdpGenVarSrcAddrs:        uint32(max(cfg.SrcAddrs, 1)),
		xdpGenVarSrcBase:         srcBase,
	}
	if err := setVars(spec, consts); err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	g := &Generator{
		run:   run,
		frame: append([]byte(nil), cfg.Frame...),
		ctx:   xdpMD{DataEnd: uint32(len(cfg.Frame)), IngressIfindex: uint32(ingress)},
	}
	if err := spec.LoadAndAssign(&g.objs, nil); err != nil {
		return nil, fmt.Errorf("generator: load xdp_gen: %w", err)
	}
	if cfg.HoldDev != "" {
		if err := g.holdIn(cfg.HoldDev, ingress); err != nil {
			g.objs.Close()
			return nil, fmt.Errorf("generator: %w", err)
		}
	}
	return g, nil
}

// holdIn attaches the program to dev in generic mode (see HoldDev).
func (g *Generator) holdIn(dev string, ingress int) error {
	return g.run(func() error {
		idx, _, err := ifindex(CurrentNetNS, dev)
		if err != nil {
			return fmt.Errorf("hold device: %w", err)
		}
		if idx == ingress {
			return fmt.Errorf("hold device %s is the sending interface", dev)
		}
		g.hold, err = link.AttachXDP(link.XDPOptions{Program: g.objs.XdpGen, Interface: idx, Flags: link.XDPGenericMode})
		if err != nil {
			return fmt.Errorf("attach to hold device %s: %w", dev, err)
		}
		return nil
	})
}

func setVars(spec *ebpf.CollectionSpec, vars map[string]any) error {
	for name, v := range vars {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("variable %s missing from the object", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

// Close detaches the program from the hold device and unloads it. It is
// idempotent.
func (g *Generator) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	var errs []error
	if g.hold != nil {
		if err := g.hold.Close(); err != nil {
			errs = append(errs, fmt.Errorf("generator: detach from hold device: %w", err))
		}
	}
	if err := g.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("generator: unload: %w", err))
	}
	return errors.Join(errs...)
}

// Stats reads xdp_gen's counters.
func (g *Generator) Stats() (GenStats, error) {
	var per []xdpGenGenStats
	if err := g.objs.GenStatsMap.Lookup(uint32(0), &per); err != nil {
		return GenStats{}, fmt.Errorf("generator: read counters: %w", err)
	}
	var s GenStats
	for _, c := range per {
		s.Frames += c.Frames
		s.Bytes += c.Bytes
		s.OverLimit += c.OverLimit
		s.NotRewritten += c.NotRewritten
	}
	return s, nil
}

// SendOptions bound and pace a Send. With neither Count nor Duration,
// Send runs until ctx ends.
type SendOptions struct {
	// Count is the exact number of frames to send; 0: no limit.
	Count uint64
	// Duration bounds the send; 0: no limit.
	Duration time.Duration
	// Rate paces the send to this many frames per second: bursts of
	// Rate*PaceInterval frames, then a sleep. 0: as fast as possible
	// (which overruns receivers that pass frames to the kernel stack).
	Rate float64
	// PaceInterval is the pacing period; 0: DefaultPaceInterval.
	PaceInterval time.Duration
	// Spin waits between paced bursts by spinning on the clock instead of
	// sleeping: a sleep wakes tens of microseconds late, so short bursts
	// (a PaceInterval of tens of microseconds, which a receiver's 256-frame
	// veth ring absorbs) are only possible on a core given to the sender.
	Spin bool
	// BatchSize is the kernel's live-frame batch (1..MaxBatchSize);
	// 0: DefaultBatchSize.
	BatchSize uint32
	// Chunk is the frames per run when not pacing; 0: DefaultChunk.
	Chunk uint32
	// Progress, if set, is called about every ProgressEvery (default 1 s)
	// with the totals so far. It runs on the sending thread, inside the
	// namespace: keep it short and namespace-neutral.
	Progress      func(Result)
	ProgressEvery time.Duration
}

// Result is what a Send offered.
type Result struct {
	Frames  uint64
	Bytes   uint64
	Elapsed time.Duration
}

// PPS is the offered rate in frames per second.
func (r Result) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Frames) / r.Elapsed.Seconds()
}

// Mpps is PPS in millions.
func (r Result) Mpps() float64 { return r.PPS() / 1e6 }

// Send transmits frames until opts.Count frames went out, opts.Duration
// passed or ctx ended, whichever comes first, and reports what was sent
// (counted by the program itself). Ending by ctx is not an error.
func (g *Generator) Send(ctx context.Context, opts SendOptions) (Result, error) {
	if opts.BatchSize > MaxBatchSize {
		return Result{}, fmt.Errorf("generator: batch size %d above %d", opts.BatchSize, MaxBatchSize)
	}
	if opts.Rate < 0 || math.IsNaN(opts.Rate) || math.IsInf(opts.Rate, 0) {
		return Result{}, fmt.Errorf("generator: invalid rate %v", opts.Rate)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.Chunk == 0 {
		opts.Chunk = DefaultChunk
	}
	if opts.PaceInterval <= 0 {
		opts.PaceInterval = DefaultPaceInterval
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = time.Second
	}
	if err := g.armLimit(opts.Count); err != nil {
		return Result{}, err
	}
	var res Result
	err := g.run(func() (err error) {
		res, err = g.send(ctx, opts)
		return err
	})
	return res, err
}

// armLimit makes the program stop transmitting after count more frames
// (0: never), so that a run the kernel repeats after a signal cannot
// overshoot.
func (g *Generator) armLimit(count uint64) error {
	limit := uint64(0)
	if count > 0 {
		var t uint64
		if err := g.objs.Tickets.Get(&t); err != nil {
			return fmt.Errorf("generator: read tickets: %w", err)
		}
		limit = t + count
	}
	if err := g.objs.Limit.Set(limit); err != nil {
		return fmt.Errorf("generator: set limit: %w", err)
	}
	return nil
}

// send is the chunk loop; it runs on a thread in the sending namespace.
func (g *Generator) send(ctx context.Context, opts SendOptions) (Result, error) {
	chunk := uint64(opts.Chunk)
	if opts.Rate > 0 {
		chunk = uint64(math.Ceil(opts.Rate * opts.PaceInterval.Seconds()))
		chunk = min(max(chunk, 1), uint64(opts.Chunk))
	}
	base, err := g.Stats()
	if err != nil {
		return Result{}, err
	}
	run := ebpf.RunOptions{
		Data:      g.frame,
		Context:   g.ctx,
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		BatchSize: opts.BatchSize,
	}
	start := time.Now()
	var deadline time.Time
	if opts.Duration > 0 {
		deadline = start.Add(opts.Duration)
	}
	nextProgress := start.Add(opts.ProgressEvery)
	var res Result
	for {
		now := time.Now()
		res.Elapsed = now.Sub(start)
		if ctx.Err() != nil || (!deadline.IsZero() && !now.Before(deadline)) {
			break
		}
		if opts.Count > 0 && res.Frames >= opts.Count {
			break
		}
		n := chunk
		if opts.Count > 0 {
			n = min(n, opts.Count-res.Frames)
		}
		run.Repeat = uint32(n)
		if _, err := g.objs.XdpGen.Run(&run); err != nil {
			return res, fmt.Errorf("generator: live-frame run: %w", err)
		}
		st, err := g.Stats()
		if err != nil {
			return res, err
		}
		sent := st.Frames - base.Frames
		if sent == res.Frames {
			return res, errors.New("generator: a run transmitted nothing (limit reached or program failing)")
		}
		res.Frames, res.Bytes = sent, st.Bytes-base.Bytes
		now = time.Now()
		res.Elapsed = now.Sub(start)
		if opts.Progress != nil && !now.Before(nextProgress) {
			opts.Progress(res)
			nextProgress = now.Add(opts.ProgressEvery)
		}
		if opts.Rate > 0 {
			// Sleep until the schedule catches up with what was sent;
			// when behind, go on at once (no catch-up burst beyond a chunk).
			due := start.Add(time.Duration(float64(res.Frames) / opts.Rate * float64(time.Second)))
			if wait := due.Sub(now); wait > 0 {
				if !deadline.IsZero() && due.After(deadline) {
					wait = deadline.Sub(now)
				}
				if opts.Spin {
					if !spinUntil(ctx, now.Add(wait)) {
						break
					}
				} else if !sleepCtx(ctx, wait) {
					break
				}
			}
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// spinUntil spins until t or until ctx ends; it reports whether ctx is
// still live.
func spinUntil(ctx context.Context, t time.Time) bool {
	for time.Now().Before(t) {
		if ctx.Err() != nil {
			return false
		}
	}
	return ctx.Err() == nil
}

// sleepCtx sleeps d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
