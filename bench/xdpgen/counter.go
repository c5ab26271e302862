package xdpgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// AttachMode is how the counter's XDP program is attached.
type AttachMode uint8

// Attach modes.
const (
	// Driver (native) mode: needed on a veth for redirected live frames
	// to arrive, since it sets up the peer's XDP receive ring.
	Driver AttachMode = iota
	// Generic (SKB) mode: after the kernel built an skb; works on any
	// interface, slower, and on a veth does not receive redirected frames
	// (unless GRO is enabled on it).
	Generic
)

func (m AttachMode) String() string {
	if m == Generic {
		return "generic"
	}
	return "driver"
}

// ParseAttachMode accepts "driver" (or "native") and "generic" (or "skb").
func ParseAttachMode(s string) (AttachMode, error) {
	switch s {
	case "driver", "native", "":
		return Driver, nil
	case "generic", "skb":
		return Generic, nil
	}
	return 0, fmt.Errorf("unknown XDP mode %q (want driver or generic)", s)
}

// CounterConfig configures a Counter.
type CounterConfig struct {
	Mode AttachMode
	// Pass returns XDP_PASS (frames go on to the kernel) instead of
	// XDP_DROP.
	Pass bool
	// PassUnmatched passes the frames that do not match the filter and
	// drops only the matching ones: the receiver keeps answering ARP and
	// health checks while it sinks a flood.
	PassUnmatched bool
	// MatchProto (e.g. UDP) and MatchDstPort select the frames counted as
	// matched, so that a receiver's own background traffic (IPv6 router
	// solicitations, MLD) is not mistaken for generated frames. Zero
	// values match anything that parses.
	MatchProto   Proto
	MatchDstPort uint16
	// MatchSrc, if valid, also requires this IPv4 source: frames that
	// left a SNAT gateway translated.
	MatchSrc netip.Addr
}

// CounterStats are xdp_count's counters summed over CPUs, since attach.
type CounterStats struct {
	Packets        uint64 // every frame
	Bytes          uint64
	MatchedPackets uint64 // parsed and matching the filter
	MatchedBytes   uint64
}

// Counter is xdp_count attached to a receiving interface.
type Counter struct {
	objs   xdpCountObjects
	link   link.Link
	closed bool
}

// AttachCounter loads xdp_count and attaches it to dev in run's namespace.
// Close detaches it.
func AttachCounter(run NSRunner, dev string, cfg CounterConfig) (_ *Counter, err error) {
	c, err := LoadCounter(cfg)
	if err != nil {
		return nil, err
	}
	flags := link.XDPDriverMode
	if cfg.Mode == Generic {
		flags = link.XDPGenericMode
	}
	err = run(func() error {
		idx, _, err := ifindex(CurrentNetNS, dev)
		if err != nil {
			return err
		}
		c.link, err = link.AttachXDP(link.XDPOptions{Program: c.objs.XdpCount, Interface: idx, Flags: flags})
		return err
	})
	if err != nil {
		c.objs.Close()
		return nil, fmt.Errorf("counter: attach to %s (%v mode): %w", dev, cfg.Mode, err)
	}
	return c, nil
}

// Program is the counter's XDP program, for a caller that attaches it
// itself (LoadCounter), e.g. by replacing the program of an existing link.
func (c *Counter) Program() *ebpf.Program { return c.objs.XdpCount }

// LoadCounter loads xdp_count without attaching it (cfg.Mode is unused).
func LoadCounter(cfg CounterConfig) (*Counter, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("counter: raise memlock limit: %w", err)
	}
	spec, err := loadXdpCount()
	if err != nil {
		return nil, fmt.Errorf("counter: %w", err)
	}
	vars, err := counterVars(cfg)
	if err != nil {
		return nil, fmt.Errorf("counter: %w", err)
	}
	if err := setVars(spec, vars); err != nil {
		return nil, fmt.Errorf("counter: %w", err)
	}
	c := &Counter{}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		return nil, fmt.Errorf("counter: load xdp_count: %w", err)
	}
	return c, nil
}

// counterVars are xdp_count's load-time constants for cfg.
func counterVars(cfg CounterConfig) (map[string]any, error) {
	var proto uint8
	switch cfg.MatchProto {
	case 0:
	case UDP:
		proto = protoUDP
	case SYN:
		proto = protoTCP
	default:
		return nil, fmt.Errorf("match protocol %v", cfg.MatchProto)
	}
	b := func(v bool) uint32 {
		if v {
			return 1
		}
		return 0
	}
	var saddr uint32
	if cfg.MatchSrc.IsValid() {
		if !cfg.MatchSrc.Is4() {
			return nil, fmt.Errorf("match source %v: IPv4 only", cfg.MatchSrc)
		}
		a := cfg.MatchSrc.As4()
		saddr = binary.NativeEndian.Uint32(a[:]) // network order in memory
	}
	return map[string]any{
		xdpCountVarMatchSaddr:    saddr,
		xdpCountVarPass:          b(cfg.Pass),
		xdpCountVarPassUnmatched: b(cfg.PassUnmatched),
		xdpCountVarMatchProto:    proto,
		xdpCountVarMatchDport:    cfg.MatchDstPort,
	}, nil
}

// Read returns the counters.
func (c *Counter) Read() (CounterStats, error) {
	var per []xdpCountCountStats
	if err := c.objs.CountStatsMap.Lookup(uint32(0), &per); err != nil {
		return CounterStats{}, fmt.Errorf("counter: read: %w", err)
	}
	var s CounterStats
	for _, v := range per {
		s.Packets += v.Packets
		s.Bytes += v.Bytes
		s.MatchedPackets += v.MatchedPackets
		s.MatchedBytes += v.MatchedBytes
	}
	return s, nil
}

// WaitMatched polls until at least want frames matched or the matched
// count stayed unchanged for idle (frames still in flight after a send
// arrive within microseconds; a loss never arrives), and returns the last
// reading. It returns early with ctx's error.
func (c *Counter) WaitMatched(ctx context.Context, want uint64, idle time.Duration) (CounterStats, error) {
	const poll = 5 * time.Millisecond
	last, err := c.Read()
	if err != nil {
		return last, err
	}
	since := time.Now()
	for last.MatchedPackets < want {
		if time.Since(since) >= idle {
			return last, nil
		}
		if !sleepCtx(ctx, poll) {
			return last, ctx.Err()
		}
		s, err := c.Read()
		if err != nil {
			return last, err
		}
		if s.MatchedPackets != last.MatchedPackets {
			since = time.Now()
		}
		last = s
	}
	return last, nil
}

// Close detaches and unloads the program. It is idempotent.
func (c *Counter) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if c.link != nil {
		if err := c.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("counter: detach: %w", err))
		}
	}
	if err := c.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("counter: unload: %w", err))
	}
	return errors.Join(errs...)
}
