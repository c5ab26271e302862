package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/xlbproject/xlb/bench/xdpgen"
)

const xdpUsage = `xlb-bench xdp: send frames with BPF_PROG_TEST_RUN live frames (XDP)

  xlb-bench xdp --netns NS --dev IF --dst-mac MAC --src IP --dst IP
                [--sport N] [--dport N] [--proto udp|syn] [--size 60]
                (--count N | --duration D) [--rate PPS] [--flows N]
                [--sink-netns NS --sink-dev IF] [--json]

Without --rate the generator runs as fast as one core allows (about
17 Mpps of 60-byte frames into a veth whose peer drops in XDP, here); a
receiver that passes frames up the kernel stack overruns at that speed,
so pace it with --rate (bursts of rate*--pace-interval frames).

The frames leave IF in the named namespace (/run/netns/NS). With --sink-*
an XDP counter on the receiving interface reports what arrived. A veth
delivers redirected frames only while its peer has an XDP program (the
sink counter is one); without a sink, attach one yourself.
`

// xdpReport is the JSON output of xlb-bench xdp.
type xdpReport struct {
	Frame    xdpFrameReport `json:"frame"`
	Offered  xdpRate        `json:"offered"`
	Received *xdpReceived   `json:"received,omitempty"`
}

type xdpFrameReport struct {
	Proto    string  `json:"proto"`
	Size     int     `json:"size"`
	Flows    int     `json:"flows"`
	RatePPS  float64 `json:"rate_pps,omitempty"` // asked; 0: unpaced
	PaceUS   float64 `json:"pace_interval_us,omitempty"`
	Mode     string  `json:"mode"` // redirect or tx
	Batch    uint32  `json:"batch"`
	HoldDev  string  `json:"hold_dev,omitempty"`
	SendNS   string  `json:"netns,omitempty"`
	SendDev  string  `json:"dev"`
	SinkNS   string  `json:"sink_netns,omitempty"`
	SinkDev  string  `json:"sink_dev,omitempty"`
	SinkMode string  `json:"sink_mode,omitempty"`
}

type xdpRate struct {
	Frames  uint64  `json:"frames"`
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
	PPS     float64 `json:"pps"`
	Mpps    float64 `json:"mpps"`
}

type xdpReceived struct {
	xdpRate
	// AllFrames counts every frame the sink saw, including its own
	// background traffic; Frames only those matching the sent flow.
	AllFrames uint64  `json:"all_frames"`
	Loss      float64 `json:"loss"` // 1 - received/offered
}

func xdpRateOf(frames, bytes uint64, d time.Duration) xdpRate {
	r := xdpRate{Frames: frames, Bytes: bytes, Seconds: d.Seconds()}
	if d > 0 {
		r.PPS = float64(frames) / d.Seconds()
		r.Mpps = r.PPS / 1e6
	}
	return r
}

func runXDP(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("xlb-bench xdp", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), xdpUsage, "\nFlags:\n"); fs.PrintDefaults() }
	netnsName := fs.String("netns", "", "sending network namespace (/run/netns/NAME); empty: the current one")
	dev := fs.String("dev", "", "sending interface")
	dstMAC := fs.String("dst-mac", "", "destination MAC address")
	srcMAC := fs.String("src-mac", "", "source MAC address (default: the sending interface's)")
	src := fs.String("src", "", "source IP address (IPv4 or IPv6)")
	dst := fs.String("dst", "", "destination IP address")
	sport := fs.Uint("sport", 20000, "source port (the first one with --flows)")
	dport := fs.Uint("dport", 9000, "destination port")
	protoName := fs.String("proto", "udp", "udp or syn (TCP SYN)")
	size := fs.Int("size", xdpgen.MinFrameSize, "frame size in bytes without FCS (60..1514)")
	count := fs.Uint64("count", 0, "frames to send, exactly")
	duration := fs.Duration("duration", 0, "how long to send")
	pps := fs.Float64("rate", 0, "pace to this many frames per second (0: as fast as possible)")
	paceEvery := fs.Duration("pace-interval", xdpgen.DefaultPaceInterval, "with --rate: one burst of rate*interval frames per interval (smaller: shorter bursts, more overhead)")
	spin := fs.Bool("spin", false, "with --rate: spin between bursts instead of sleeping (short --pace-interval on a core of its own)")
	flows := fs.Int("flows", 1, "rotate the source port over this many values, one per frame")
	srcAddrs := fs.Int("src-addrs", 1, "also rotate the IPv4 source over this many addresses")
	tx := fs.Bool("tx", false, "return XDP_TX instead of redirecting to --dev")
	batch := fs.Uint("batch", xdpgen.DefaultBatchSize, "live-frame batch size (1..256)")
	hold := fs.String("hold-dev", "lo", "interface in the sending namespace that holds the program in the XDP dispatcher (generic mode, passes all); empty: none, each run then costs two RCU grace periods")
	sinkNS := fs.String("sink-netns", "", "receiving namespace for the counter")
	sinkDev := fs.String("sink-dev", "", "receiving interface: attach the XDP counter there")
	sinkModeName := fs.String("sink-mode", "driver", "counter attach mode: driver or generic")
	sinkPass := fs.Bool("sink-pass", false, "counter returns XDP_PASS instead of XDP_DROP")
	sinkPassOthers := fs.Bool("sink-pass-unmatched", false, "counter drops only the sent flow and passes everything else (ARP, health checks)")
	jsonOut := fs.Bool("json", false, "print a JSON report")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("xdp: unexpected arguments %q", fs.Args())
	}

	var errs []error
	need := func(name, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("--%s is required", name))
		}
	}
	need("dev", *dev)
	need("dst-mac", *dstMAC)
	need("src", *src)
	need("dst", *dst)
	if *count == 0 && *duration <= 0 {
		errs = append(errs, errors.New("give --count or --duration"))
	}
	if *sport > 65535 || *dport > 65535 {
		errs = append(errs, errors.New("--sport and --dport are 0..65535"))
	}
	if *batch < 1 || *batch > xdpgen.MaxBatchSize {
		errs = append(errs, fmt.Errorf("--batch %d: want 1..%d", *batch, xdpgen.MaxBatchSize))
	}
	if (*sinkNS != "") && *sinkDev == "" {
		errs = append(errs, errors.New("--sink-netns needs --sink-dev"))
	}
	proto, err := xdpgen.ParseProto(*protoName)
	if err != nil {
		errs = append(errs, fmt.Errorf("--proto: %w", err))
	}
	sinkMode, err := xdpgen.ParseAttachMode(*sinkModeName)
	if err != nil {
		errs = append(errs, fmt.Errorf("--sink-mode: %w", err))
	}
	spec := xdpgen.FrameSpec{SrcPort: uint16(*sport), DstPort: uint16(*dport), Proto: proto, Size: *size}
	if *dstMAC != "" {
		if spec.DstMAC, err = net.ParseMAC(*dstMAC); err != nil {
			errs = append(errs, fmt.Errorf("--dst-mac: %w", err))
		}
	}
	if *srcMAC != "" {
		if spec.SrcMAC, err = net.ParseMAC(*srcMAC); err != nil {
			errs = append(errs, fmt.Errorf("--src-mac: %w", err))
		}
	}
	if *src != "" {
		if spec.Src, err = netip.ParseAddr(*src); err != nil {
			errs = append(errs, fmt.Errorf("--src: %w", err))
		}
	}
	if *dst != "" {
		if spec.Dst, err = netip.ParseAddr(*dst); err != nil {
			errs = append(errs, fmt.Errorf("--dst: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xdp: %w", err)
	}

	sendNS := xdpgen.NamedNetNS(*netnsName)
	if spec.SrcMAC == nil {
		if spec.SrcMAC, err = xdpgen.InterfaceMAC(sendNS, *dev); err != nil {
			return fmt.Errorf("xdp: --dev: %w", err)
		}
	}
	frame, err := xdpgen.BuildFrame(spec)
	if err != nil {
		return fmt.Errorf("xdp: %w", err)
	}

	var counter *xdpgen.Counter
	if *sinkDev != "" {
		counter, err = xdpgen.AttachCounter(xdpgen.NamedNetNS(*sinkNS), *sinkDev, xdpgen.CounterConfig{
			Mode: sinkMode, Pass: *sinkPass, PassUnmatched: *sinkPassOthers, MatchProto: proto, MatchDstPort: spec.DstPort,
		})
		if err != nil {
			return fmt.Errorf("xdp: sink: %w", err)
		}
		defer counter.Close()
	}
	gen, err := xdpgen.NewGenerator(sendNS, xdpgen.GeneratorConfig{
		Frame: frame, Dev: *dev, TX: *tx, Flows: *flows, SrcAddrs: *srcAddrs, HoldDev: *hold,
	})
	if err != nil {
		return fmt.Errorf("xdp: %w", err)
	}
	defer gen.Close()

	var before xdpgen.CounterStats
	if counter != nil {
		if before, err = counter.Read(); err != nil {
			return fmt.Errorf("xdp: %w", err)
		}
	}
	opts := xdpgen.SendOptions{Count: *count, Duration: *duration, Rate: *pps, PaceInterval: *paceEvery, Spin: *spin, BatchSize: uint32(*batch)}
	if !*jsonOut {
		opts.Progress = func(r xdpgen.Result) {
			fmt.Fprintf(stdout, "  %6.1fs  %d frames  %.3f Mpps\n", r.Elapsed.Seconds(), r.Frames, r.Mpps())
		}
	}
	res, err := gen.Send(ctx, opts)
	if err != nil {
		return fmt.Errorf("xdp: %w", err)
	}

	mode := "redirect"
	if *tx {
		mode = "tx"
	}
	rep := xdpReport{
		Frame: xdpFrameReport{
			Proto: proto.String(), Size: len(frame), Flows: max(*flows, 1), RatePPS: *pps, Mode: mode,
			Batch: uint32(*batch), HoldDev: *hold, SendNS: *netnsName, SendDev: *dev,
		},
		Offered: xdpRateOf(res.Frames, res.Bytes, res.Elapsed),
	}
	if *pps > 0 {
		rep.Frame.PaceUS = float64(paceEvery.Microseconds())
	}
	if counter != nil {
		// Frames still in flight arrive within microseconds; stop waiting
		// once the count is complete or stopped moving.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		after, err := counter.WaitMatched(wctx, before.MatchedPackets+res.Frames, 200*time.Millisecond)
		cancel()
		if err != nil {
			return fmt.Errorf("xdp: sink: %w", err)
		}
		got := after.MatchedPackets - before.MatchedPackets
		rcv := &xdpReceived{
			xdpRate:   xdpRateOf(got, after.MatchedBytes-before.MatchedBytes, res.Elapsed),
			AllFrames: after.Packets - before.Packets,
		}
		if res.Frames > 0 {
			rcv.Loss = 1 - float64(got)/float64(res.Frames)
		}
		rep.Received = rcv
		rep.Frame.SinkNS, rep.Frame.SinkDev, rep.Frame.SinkMode = *sinkNS, *sinkDev, sinkMode.String()
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	o := rep.Offered
	fmt.Fprintf(stdout, "offered:  %d frames of %d bytes (%s, %d flows) in %.3fs: %.3f Mpps\n",
		o.Frames, len(frame), proto, rep.Frame.Flows, o.Seconds, o.Mpps)
	if r := rep.Received; r != nil {
		fmt.Fprintf(stdout, "received: %d frames at %s/%s: %.3f Mpps, loss %.2f%% (%d frames in all)\n",
			r.Frames, *sinkNS, *sinkDev, r.Mpps, 100*r.Loss, r.AllFrames)
	}
	return nil
}
