package xdpgen

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// XDP verdicts (enum xdp_action).
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

// newTestGen loads xdp_gen in the test's own namespace with "lo" as the
// interface: BPF_PROG_TEST_RUN without live frames only runs the program.
func newTestGen(t testing.TB, cfg GeneratorConfig) *Generator {
	t.Helper()
	requireBPF(t)
	cfg.Dev = "lo"
	g, err := NewGenerator(CurrentNetNS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// runOnce runs xdp_gen once on frame (not live) and returns the verdict,
// the frame as the program left it, and the frame's sequence number (the
// per-CPU count of the CPU it ran on, before the run).
func (g *Generator) runOnce(t testing.TB, frame []byte) (uint32, []byte, uint64) {
	t.Helper()
	var before, after []xdpGenGenStats
	if err := g.objs.GenStatsMap.Lookup(uint32(0), &before); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(frame)+256)
	opts := ebpf.RunOptions{Data: frame, DataOut: out, Repeat: 1}
	ret, err := g.objs.XdpGen.Run(&opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := g.objs.GenStatsMap.Lookup(uint32(0), &after); err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	for i := range after {
		if after[i].Frames != before[i].Frames {
			seq = before[i].Frames
		}
	}
	return ret, opts.DataOut, seq
}

func TestGenVerdict(t *testing.T) {
	frame := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", UDP, 60))
	tests := []struct {
		name string
		cfg  GeneratorConfig
		want uint32
	}{
		{"redirect", GeneratorConfig{}, xdpRedirect},
		{"tx", GeneratorConfig{TX: true}, xdpTX},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Frame = frame
			g := newTestGen(t, tt.cfg)
			ret, out, _ := g.runOnce(t, frame)
			if ret != tt.want {
				t.Errorf("verdict %d, want %d", ret, tt.want)
			}
			if !bytes.Equal(out, frame) {
				t.Errorf("one flow: frame changed\n got %x\nwant %x", out, frame)
			}
			st, err := g.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Frames != 1 || st.Bytes != uint64(len(frame)) {
				t.Errorf("stats %+v, want 1 frame of %d bytes", st, len(frame))
			}
		})
	}
}

// TestGenFlows runs xdp_gen on frames that keep the previous run's
// rewrites (as recycled live-frame pages do) and checks each output with
// gopacket: source port (and address) rotate, checksums stay correct.
func TestGenFlows(t *testing.T) {
	tests := []struct {
		name     string
		spec     FrameSpec
		flows    int
		srcAddrs int
	}{
		{"udp4 ports", testSpec("10.0.0.1", "10.0.0.2", UDP, 60), 5, 0},
		{"syn4 ports", testSpec("10.0.0.1", "10.0.0.2", SYN, 60), 7, 0},
		{"udp6 ports", testSpec("fd00::1", "fd00::2", UDP, 128), 3, 0},
		{"syn6 ports", testSpec("fd00::1", "fd00::2", SYN, 0), 3, 0},
		{"udp4 ports and sources", testSpec("10.1.2.250", "10.0.0.2", UDP, 200), 3, 10},
		{"syn4 sources only", testSpec("10.1.2.3", "10.0.0.2", SYN, 60), 0, 4},
		{"top port", func() FrameSpec { s := testSpec("10.0.0.1", "10.0.0.2", UDP, 60); s.SrcPort = 65533; return s }(), 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := mustFrame(t, tt.spec)
			g := newTestGen(t, GeneratorConfig{Frame: frame, Flows: tt.flows, SrcAddrs: tt.srcAddrs})
			flows := max(tt.flows, 1)
			seen := map[[2]any]bool{}
			in := frame
			for range 3 * flows * max(tt.srcAddrs, 1) {
				ret, out, seq := g.runOnce(t, in)
				if ret != xdpRedirect {
					t.Fatalf("verdict %d", ret)
				}
				d := decode(t, out)
				if !d.checksumsCorrect {
					t.Fatalf("seq %d: checksums wrong", seq)
				}
				wantPort := tt.spec.SrcPort + uint16(seq%uint64(flows))
				wantSrc := tt.spec.Src
				if tt.srcAddrs > 1 {
					n := seq / uint64(flows) % uint64(tt.srcAddrs)
					b := tt.spec.Src.As4()
					v := binary.BigEndian.Uint32(b[:]) + uint32(n)
					wantSrc = netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, v)))
				}
				if d.sport != wantPort || d.src != wantSrc {
					t.Fatalf("seq %d: %s:%d, want %s:%d", seq, d.src, d.sport, wantSrc, wantPort)
				}
				if d.dst != tt.spec.Dst || d.dport != tt.spec.DstPort {
					t.Fatalf("destination changed: %s:%d", d.dst, d.dport)
				}
				seen[[2]any{d.src, d.sport}] = true
				in = out
			}
			if want := flows * max(tt.srcAddrs, 1); len(seen) != want {
				t.Errorf("%d distinct flows, want %d", len(seen), want)
			}
		})
	}
}

func TestGenUDPZeroChecksum(t *testing.T) {
	frame := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", UDP, 60))
	frame[14+20+6], frame[14+20+7] = 0, 0 // "no checksum", allowed over IPv4
	g := newTestGen(t, GeneratorConfig{Frame: frame, Flows: 4, SrcAddrs: 2})
	for range 8 {
		_, out, _ := g.runOnce(t, frame)
		if c := be16(out[40:]); c != 0 {
			t.Fatalf("UDP checksum %#x, want it left 0", c)
		}
		if Checksum(out[14:34], 0) != 0 {
			t.Fatalf("IPv4 header checksum wrong: %x", out[14:34])
		}
	}
}

// TestGenRestoresTemplate: a recycled frame comes back as its receiver
// left it (a load balancer rewrote its addresses and MACs); the generator
// sends the template again, with its own rewrite only.
func TestGenRestoresTemplate(t *testing.T) {
	good := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", UDP, 60))
	g := newTestGen(t, GeneratorConfig{Frame: good, Flows: 4})
	rewritten := edit(good, func(f []byte) {
		copy(f[0:12], []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 1, 2, 3, 4, 5, 6}) // MACs
		copy(f[30:34], []byte{198, 19, 0, 11})                                      // destination
		f[22]--                                                                     // TTL
	})
	for i := range 8 {
		ret, out, seq := g.runOnce(t, rewritten)
		want := edit(good, func(f []byte) {
			binary.BigEndian.PutUint16(f[34:], 40000+uint16(seq%4))
		})
		// The UDP checksum is the program's; the sum below judges it.
		copy(want[40:42], out[40:42])
		if ret != xdpRedirect || !bytes.Equal(out, want) {
			t.Fatalf("run %d: verdict %d\n got %x\nwant %x", i, ret, out, want)
		}
		if d := decode(t, out); !d.checksumsCorrect {
			t.Fatalf("run %d: bad checksums: %+v", i, d)
		}
	}
}

func TestGenNotRewritten(t *testing.T) {
	good := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", UDP, 60))
	g := newTestGen(t, GeneratorConfig{Frame: good, Flows: 4, noRestore: true})
	frames := map[string][]byte{
		"arp":      edit(good, func(f []byte) { f[12], f[13] = 0x08, 0x06 }),
		"fragment": edit(good, func(f []byte) { f[20] = 0x20 }),
		"icmp":     edit(good, func(f []byte) { f[23] = protoICMP }),
	}
	for name, f := range frames {
		ret, out, _ := g.runOnce(t, f)
		if ret != xdpRedirect || !bytes.Equal(out, f) {
			t.Errorf("%s: verdict %d, changed=%v; want sent unchanged", name, ret, !bytes.Equal(out, f))
		}
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.NotRewritten != uint64(len(frames)) {
		t.Errorf("not_rewritten = %d, want %d", st.NotRewritten, len(frames))
	}
}

// TestGenLimit checks the exact-count guard: past the limit, frames are
// dropped and counted as over the limit.
func TestGenLimit(t *testing.T) {
	frame := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", UDP, 60))
	g := newTestGen(t, GeneratorConfig{Frame: frame})
	if err := g.armLimit(3); err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for range 5 {
		ret, _, _ := g.runOnce(t, frame)
		got = append(got, ret)
	}
	want := []uint32{xdpRedirect, xdpRedirect, xdpRedirect, xdpDrop, xdpDrop}
	if !slicesEqual(got, want) {
		t.Errorf("verdicts %v, want %v", got, want)
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Frames != 3 || st.OverLimit != 2 {
		t.Errorf("stats %+v, want 3 frames and 2 over the limit", st)
	}
	// A new limit counts from the tickets already used.
	if err := g.armLimit(1); err != nil {
		t.Fatal(err)
	}
	if ret, _, _ := g.runOnce(t, frame); ret != xdpRedirect {
		t.Errorf("after re-arming: verdict %d", ret)
	}
	if ret, _, _ := g.runOnce(t, frame); ret != xdpDrop {
		t.Errorf("after re-arming, second frame: verdict %d", ret)
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewGeneratorErrors(t *testing.T) {
	requireBPF(t)
	udp := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", UDP, 60))
	top := testSpec("10.0.0.1", "10.0.0.2", UDP, 60)
	top.SrcPort = 65000
	tests := []struct {
		name string
		cfg  GeneratorConfig
	}{
		{"short frame", GeneratorConfig{Frame: udp[:59], Dev: "lo"}},
		{"flows on arp", GeneratorConfig{Frame: edit(udp, func(f []byte) { f[12], f[13] = 8, 6 }), Dev: "lo", Flows: 2}},
		{"ports overflow", GeneratorConfig{Frame: mustFrame(t, top), Dev: "lo", Flows: 1000}},
		{"sources on ipv6", GeneratorConfig{Frame: mustFrame(t, testSpec("fd00::1", "fd00::2", UDP, 0)), Dev: "lo", SrcAddrs: 2}},
		{"no such device", GeneratorConfig{Frame: udp, Dev: "xlbt-nonexist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGenerator(CurrentNetNS, tt.cfg)
			if err == nil {
				g.Close()
				t.Fatal("accepted")
			}
			t.Log(err)
		})
	}
}

func TestCount(t *testing.T) {
	requireBPF(t)
	udp := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", UDP, 60))
	syn := mustFrame(t, testSpec("10.0.0.1", "10.0.0.2", SYN, 100))
	otherPort := edit(udp, func(f []byte) { f[36], f[37] = 0, 53 })
	arp := edit(udp, func(f []byte) { f[12], f[13] = 0x08, 0x06 })
	frames := [][]byte{udp, syn, otherPort, arp, udp}
	total := uint64(0)
	for _, f := range frames {
		total += uint64(len(f))
	}
	tests := []struct {
		name        string
		cfg         CounterConfig
		wantVerdict uint32
		perFrame    []uint32 // verdicts frame by frame, when they differ
		wantMatched uint64
		wantBytes   uint64
	}{
		{"drop, match all", CounterConfig{}, xdpDrop, nil, 4, 60 + 100 + 60 + 60},
		{"pass", CounterConfig{Pass: true}, xdpPass, nil, 4, 280},
		{"udp", CounterConfig{MatchProto: UDP}, xdpDrop, nil, 3, 180},
		{"udp to 9000", CounterConfig{MatchProto: UDP, MatchDstPort: 9000}, xdpDrop, nil, 2, 120},
		{"syn to 9000", CounterConfig{MatchProto: SYN, MatchDstPort: 9000}, xdpDrop, nil, 1, 100},
		// A backend sinking a flood: only the flood is dropped; ARP and
		// other traffic still reach its kernel.
		{"udp to 9000, pass the rest", CounterConfig{MatchProto: UDP, MatchDstPort: 9000, PassUnmatched: true}, 0,
			[]uint32{xdpDrop, xdpPass, xdpPass, xdpPass, xdpDrop}, 2, 120},
		{"pass wins", CounterConfig{MatchProto: UDP, Pass: true, PassUnmatched: true}, xdpPass, nil, 3, 180},
		// A SNAT gateway's output: only frames with the translated source.
		{"from 10.0.0.1", CounterConfig{MatchProto: UDP, MatchSrc: netip.MustParseAddr("10.0.0.1")}, xdpDrop, nil, 3, 180},
		{"from 10.0.0.9", CounterConfig{MatchProto: UDP, MatchSrc: netip.MustParseAddr("10.0.0.9")}, xdpDrop, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loadCounter(t, tt.cfg)
			for i, f := range frames {
				ret, err := c.objs.XdpCount.Run(&ebpf.RunOptions{Data: f, Repeat: 1})
				if err != nil {
					t.Fatal(err)
				}
				want := tt.wantVerdict
				if tt.perFrame != nil {
					want = tt.perFrame[i]
				}
				if ret != want {
					t.Errorf("frame %d: verdict %d, want %d", i, ret, want)
				}
			}
			st, err := c.Read()
			if err != nil {
				t.Fatal(err)
			}
			want := CounterStats{Packets: uint64(len(frames)), Bytes: total, MatchedPackets: tt.wantMatched, MatchedBytes: tt.wantBytes}
			if st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
		})
	}
}

// loadCounter loads xdp_count without attaching it, for fixture runs.
func loadCounter(t testing.TB, cfg CounterConfig) *Counter {
	t.Helper()
	spec, err := loadXdpCount()
	if err != nil {
		t.Fatal(err)
	}
	vars, err := counterVars(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := setVars(spec, vars); err != nil {
		t.Fatal(err)
	}
	c := &Counter{}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
