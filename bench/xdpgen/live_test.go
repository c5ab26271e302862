package xdpgen

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/internal/netlab"
)

const (
	genMAC  = "02:00:00:00:01:01"
	sinkMAC = "02:00:00:00:01:02"
)

// genSinkLab is two namespaces joined by one veth: gen/eth0 <-> sink/eth0.
func genSinkLab(t *testing.T) (*netlab.Lab, NSRunner, NSRunner) {
	t.Helper()
	lab := netlab.New(t, netlab.Topology{
		Hosts: []netlab.Host{{Name: "gen"}, {Name: "sink"}},
		Links: []netlab.Link{{
			A: netlab.Endpoint{Host: "gen", Name: "eth0", MAC: genMAC, Addrs: []string{"10.99.0.1/24"}},
			B: netlab.Endpoint{Host: "sink", Name: "eth0", MAC: sinkMAC, Addrs: []string{"10.99.0.2/24"}},
		}},
	})
	in := func(host string) NSRunner {
		return func(fn func() error) error { return lab.Do(host, fn) }
	}
	return lab, in("gen"), in("sink")
}

func liveFrame(t *testing.T, proto Proto) []byte {
	t.Helper()
	src, _ := net.ParseMAC(genMAC)
	dst, _ := net.ParseMAC(sinkMAC)
	return mustFrame(t, FrameSpec{
		SrcMAC: src, DstMAC: dst,
		Src: netip.MustParseAddr("10.99.0.1"), Dst: netip.MustParseAddr("10.99.0.2"),
		SrcPort: 20000, DstPort: 9000, Proto: proto, Size: 60,
	})
}

// TestLiveExactCount sends exactly 200,000 frames gen -> sink in
// live-frame mode: the generator reports 200,000 and the counter on the
// sink sees exactly 200,000, for XDP_REDIRECT and XDP_TX.
func TestLiveExactCount(t *testing.T) {
	requireBPF(t)
	const n = 200_000
	tests := []struct {
		name  string
		proto Proto
		cfg   GeneratorConfig
	}{
		{"udp redirect 64 flows", UDP, GeneratorConfig{Flows: 64, HoldDev: "lo"}},
		{"syn tx", SYN, GeneratorConfig{TX: true, HoldDev: "lo"}},
		{"udp redirect not held", UDP, GeneratorConfig{}},
	}
	_, gen, sink := genSinkLab(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := AttachCounter(sink, "eth0", CounterConfig{MatchProto: tt.proto, MatchDstPort: 9000})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tt.cfg.Frame, tt.cfg.Dev = liveFrame(t, tt.proto), "eth0"
			g, err := NewGenerator(gen, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// Chunks smaller than n: the count spans several runs.
			res, err := g.Send(ctx, SendOptions{Count: n, Chunk: 30_000, BatchSize: 128})
			if err != nil {
				t.Fatal(err)
			}
			if res.Frames != n || res.Bytes != n*60 {
				t.Errorf("offered %d frames, %d bytes; want %d, %d", res.Frames, res.Bytes, n, n*60)
			}
			st, err := c.WaitMatched(ctx, n, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			// Let stragglers arrive: more than n would be a bug too.
			time.Sleep(100 * time.Millisecond)
			if st, err = c.Read(); err != nil {
				t.Fatal(err)
			}
			checkDelivered(t, "sink matched", st.MatchedPackets, n)
			if st.MatchedBytes != st.MatchedPackets*60 {
				t.Errorf("sink matched %d frames in %d bytes, want 60 bytes each (all: %d)", st.MatchedPackets, st.MatchedBytes, st.Packets)
			}
			t.Logf("offered %d frames in %v: %.2f Mpps; sink matched %d", res.Frames, res.Elapsed, res.Mpps(), st.MatchedPackets)
		})
	}
}

// TestLivePaced paces a send and a timed send. The achieved rates are
// logged, not asserted (the machine is shared); the counts must agree.
func TestLivePaced(t *testing.T) {
	requireBPF(t)
	_, gen, sink := genSinkLab(t)
	c, err := AttachCounter(sink, "eth0", CounterConfig{MatchProto: UDP, MatchDstPort: 9000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, err := NewGenerator(gen, GeneratorConfig{Frame: liveFrame(t, UDP), Dev: "eth0", HoldDev: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const rate, n = 100_000, 30_000
	var progress int
	res, err := g.Send(ctx, SendOptions{Count: n, Rate: rate, Progress: func(Result) { progress++ }, ProgressEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames != n {
		t.Errorf("offered %d, want %d", res.Frames, n)
	}
	if progress == 0 {
		t.Error("no progress reports over a 0.3 s send")
	}
	t.Logf("paced at %d pps: offered %d in %v = %.0f pps (%d progress reports)", rate, res.Frames, res.Elapsed, res.PPS(), progress)
	if res.PPS() > 2*rate {
		t.Errorf("paced send ran at %.0f pps, far above the %d asked", res.PPS(), rate)
	}
	st, err := c.WaitMatched(ctx, n, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, "sink matched", st.MatchedPackets, n)

	// A timed send stops at its duration, and the counts still agree.
	before := st.MatchedPackets
	res, err = g.Send(ctx, SendOptions{Duration: 200 * time.Millisecond, Rate: 50_000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed < 200*time.Millisecond || res.Elapsed > 2*time.Second {
		t.Errorf("timed send took %v, want about 200ms", res.Elapsed)
	}
	st, err = c.WaitMatched(ctx, before+res.Frames, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, "timed send: sink matched", st.MatchedPackets-before, res.Frames)
	t.Logf("timed send at 50000 pps for 200ms: offered %d in %v", res.Frames, res.Elapsed)

	// A cancelled context ends a send early without error.
	cctx, ccancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer ccancel()
	res, err = g.Send(cctx, SendOptions{Rate: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed > 2*time.Second {
		t.Errorf("cancelled send ran %v", res.Elapsed)
	}
}

// TestGenHold checks the hold attachment: frames that really arrive on the
// hold device pass untouched and uncounted, the sending interface cannot be
// the hold device, and Close detaches the program.
func TestGenHold(t *testing.T) {
	requireBPF(t)
	lab, gen, _ := genSinkLab(t)
	frame := liveFrame(t, UDP)
	if _, err := NewGenerator(gen, GeneratorConfig{Frame: frame, Dev: "eth0", HoldDev: "eth0"}); err == nil {
		t.Fatal("hold device = sending interface accepted")
	}
	g, err := NewGenerator(gen, GeneratorConfig{Frame: frame, Dev: "eth0", HoldDev: "lo", Flows: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := lab.Run(ctx, "gen", "ip", "link", "show", "lo")
	if err != nil || !strings.Contains(string(out), "xdpgeneric") {
		t.Fatalf("lo shows no generic XDP program: %v\n%s", err, out)
	}
	err = gen(func() error {
		// As received on lo (ifindex 1 in every namespace).
		run := ebpf.RunOptions{Data: frame, DataOut: make([]byte, 256), Repeat: 1, Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: 1}}
		ret, err := g.objs.XdpGen.Run(&run)
		if err != nil {
			return err
		}
		if ret != xdpPass || !bytes.Equal(run.DataOut, frame) {
			t.Errorf("frame on lo: verdict %d, changed=%v; want passed unchanged", ret, !bytes.Equal(run.DataOut, frame))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := g.Stats(); err != nil || st != (GenStats{}) {
		t.Errorf("stats %+v, %v; want nothing counted", st, err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	out, err = lab.Run(ctx, "gen", "ip", "link", "show", "lo")
	if err != nil || strings.Contains(string(out), "xdp") {
		t.Fatalf("after Close lo still shows XDP: %v\n%s", err, out)
	}
}

// TestLiveExactUnderSignals interrupts the sending thread with signals
// while it is inside BPF_PROG_TEST_RUN. The kernel aborts the run with
// EINTR and cilium/ebpf repeats the whole run; in the last (here the only)
// run of a Send only the program's ticket limit keeps the count exact.
func TestLiveExactUnderSignals(t *testing.T) {
	requireBPF(t)
	_, gen, sink := genSinkLab(t)
	c, err := AttachCounter(sink, "eth0", CounterConfig{MatchProto: UDP, MatchDstPort: 9000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The thread that sends is the one Send's call of the runner uses.
	tids := make(chan int, 1)
	var sending atomic.Bool
	run := func(fn func() error) error {
		return gen(func() error {
			if sending.Load() {
				tids <- unix.Gettid()
			}
			return fn()
		})
	}
	g, err := NewGenerator(run, GeneratorConfig{Frame: liveFrame(t, UDP), Dev: "eth0", HoldDev: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sending.Store(true)

	const n = 2_000_000
	done := make(chan struct{})
	var sent int
	go func() {
		defer close(done)
		tid := <-tids
		time.Sleep(2 * time.Millisecond) // into the first run
		for range 20 {
			// SIGURG: the Go runtime's preemption signal, handled and
			// otherwise ignored.
			if unix.Tgkill(unix.Getpid(), tid, unix.SIGURG) == nil {
				sent++
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	res, err := g.Send(ctx, SendOptions{Count: n, Chunk: n})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d signals; offered %d in %v; %d frames dropped over the limit", sent, res.Frames, res.Elapsed, st.OverLimit)
	if res.Frames != n || st.Frames != n {
		t.Errorf("offered %d (program: %d), want %d", res.Frames, st.Frames, n)
	}
	if st.OverLimit == 0 {
		t.Error("no run was repeated after a signal: the test did not exercise the limit")
	}
	got, err := c.WaitMatched(ctx, n, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, "sink matched", got.MatchedPackets, n)
}

// checkDelivered fails unless got frames of the want offered reached the
// sink. A veth drops a redirected frame when its peer's ring is full,
// without telling the sender, so on a loaded host one in 10,000 may be lost
// between the rings; more than that, or more than offered, is the
// generator's fault.
func checkDelivered(t *testing.T, what string, got, want uint64) {
	t.Helper()
	if slack := want / 10_000; got > want || got+slack < want {
		t.Errorf("%s %d frames, want %d (at most %d lost in the veth)", what, got, want, slack)
	}
}
