package xdp_test

import (
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/dataplane/limit"
	. "github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/netlab"
)

// BenchmarkProgram measures the program per packet with BPF_PROG_TEST_RUN
// inside the lab gateway (so the FIB lookup and redirect happen as live):
//   - established_tcp: one packet of a tracked flow run Repeat times in one
//     call in live-frame mode (BPF_F_TEST_XDP_LIVE_FRAMES: the kernel
//     restores the frame before each run; without it every run after the
//     first sees the previous run's rewritten frame, which matches no flow
//     and measures the pass path); the call's wall time over Repeat, which
//     includes transmitting the redirected frame (the lab's veth drops it);
//   - new_tcp_flow: first packets of distinct flows, one call each (backend
//     pick, two flow entries, counters), minus the per-call overhead
//     measured the same way with an established packet;
//   - established_tcp_limited: established_tcp with the load balancer's
//     limits, a bandwidth peak and flood protection on;
//   - snat_established_udp and snat_new_tcp_flow: the same for a SNAT
//     pool's host reaching the outside (new: the port search and claim).
func BenchmarkProgram(b *testing.B) {
	fx := newNATFixture(b)
	ingress := fx.upIndex
	run := func(frame []byte, repeat uint32) time.Duration {
		var d time.Duration
		err := fx.lab.Do(netlab.HostGateway, func() error {
			ctx := struct{ Data, DataEnd, DataMeta, IngressIfindex, RxQueue, EgressIfindex uint32 }{
				DataEnd: uint32(len(frame)), IngressIfindex: uint32(ingress)}
			opts := ebpf.RunOptions{Data: frame, Context: ctx, Repeat: repeat}
			if repeat > 1 {
				opts.Flags = unix.BPF_F_TEST_XDP_LIVE_FRAMES
			}
			start := time.Now()
			_, err := fx.e.Program().Run(&opts)
			d = time.Since(start)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	syn := frame(b, fx.fromClient(pkt{sport: 50000, dport: 7000, syn: true}))
	run(syn, 1) // creates the flow
	est := frame(b, fx.fromClient(pkt{sport: 50000, dport: 7000, ack: true, payload: make([]byte, 6)}))

	b.Run("established_tcp", func(b *testing.B) {
		b.ResetTimer()
		d := run(est, uint32(max(b.N, 2)))
		b.ReportMetric(float64(d.Nanoseconds())/float64(max(b.N, 2)), "ns/pkt")
	})
	next := uint16(10000)
	b.Run("new_tcp_flow", func(b *testing.B) {
		n := min(b.N, 300) // the fixture's flow table holds 1024 connections
		diffs := make([]time.Duration, 0, n)
		for range n {
			fr := frame(b, fx.fromClient(pkt{sport: next, dport: 7000, syn: true}))
			next++
			diffs = append(diffs, run(fr, 1)-run(est, 1))
		}
		slices.Sort(diffs)
		perEst := float64(run(est, 100000).Nanoseconds()) / 100000
		b.ReportMetric(float64(diffs[len(diffs)/2].Nanoseconds())+perEst, "ns/pkt")
	})

	ingress = fx.downIdx
	out := frame(b, fx.fromPrivate(pkt{udp: true, sport: 50000, dport: 53, payload: make([]byte, 6)}))
	run(out, 1) // creates the translation
	b.Run("snat_established_udp", func(b *testing.B) {
		b.ResetTimer()
		d := run(out, uint32(max(b.N, 2)))
		b.ReportMetric(float64(d.Nanoseconds())/float64(max(b.N, 2)), "ns/pkt")
	})
	nextSNAT := uint16(10000)
	b.Run("snat_new_tcp_flow", func(b *testing.B) {
		n := min(b.N, 300) // within be1's one 1024-port block
		diffs := make([]time.Duration, 0, n)
		for range n {
			fr := frame(b, fx.fromPrivate(pkt{sport: nextSNAT, dport: 80, syn: true}))
			nextSNAT++
			diffs = append(diffs, run(fr, 1)-run(out, 1))
		}
		slices.Sort(diffs)
		perEst := float64(run(out, 100000).Nanoseconds()) / 100000
		b.ReportMetric(float64(diffs[len(diffs)/2].Nanoseconds())+perEst, "ns/pkt")
	})

	// The same flow's packets under every limiter (a bandwidth peak no
	// packet reaches, a protected VIP in its normal state): the cost of
	// policing an established flow.
	lim := fx.natConfig(snatPublic)
	lim.Listeners = slices.Clone(lim.Listeners)
	for i := range lim.Listeners {
		lim.Listeners[i].LB = "lb"
	}
	lim.Limits = map[string]limit.Params{"lb": {MaxConnections: 1 << 20, NewConnsPerSecond: 1 << 20,
		BandwidthBps: 1 << 40, Peaks: map[string]uint64{"lb/tcp/7000": 1 << 39}}}
	lim.Floods = []Flood{{LB: "lb", VIP: vip, SYN: FloodRate{PerSourcePPS: 1 << 20, TotalPPS: 1 << 20}, CleanPPS: 1 << 40}}
	apply(b, fx.e, lim)
	ingress = fx.upIndex
	limSyn := frame(b, fx.fromClient(pkt{sport: 50001, dport: 7000, syn: true}))
	run(limSyn, 1)
	limEst := frame(b, fx.fromClient(pkt{sport: 50001, dport: 7000, ack: true, payload: make([]byte, 6)}))
	b.Run("established_tcp_limited", func(b *testing.B) {
		b.ResetTimer()
		d := run(limEst, uint32(max(b.N, 1)))
		b.ReportMetric(float64(d.Nanoseconds())/float64(max(b.N, 1)), "ns/pkt")
	})
}
