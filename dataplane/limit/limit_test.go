package limit

import (
	"sync"
	"testing"
	"time"
)

const sec = int64(time.Second)

// Offering twice a rate for ten seconds admits the rate, within the one
// second of burst it allows.
func TestRateAdmitsTheRate(t *testing.T) {
	for _, perSec := range []uint64{1, 100, 3000, 100000} {
		r := NewRate(perSec)
		offered := 2 * perSec * 10
		step := 10 * sec / int64(offered)
		admitted := uint64(0)
		for i := int64(0); i < int64(offered); i++ {
			if r.Allow(i * step) {
				admitted++
			}
		}
		want := perSec * 10
		if admitted < want || admitted > want+perSec+1 {
			t.Errorf("%d/s: admitted %d of %d offered over 10 s, want %d (+ at most a second's burst)", perSec, admitted, offered, want)
		}
	}
}

func TestRateUnlimitedAndNil(t *testing.T) {
	var nilRate *Rate
	r := NewRate(0)
	for i := range int64(1000) {
		if !r.Allow(i) || !nilRate.Allow(i) {
			t.Fatal("an unlimited rate refused")
		}
	}
}

// Set changes a live rate; lowering it refuses at once.
func TestRateSet(t *testing.T) {
	r := NewRate(1000)
	n := 0
	for i := range int64(1000) {
		if r.Allow(i * sec / 1000) {
			n++
		}
	}
	if n != 1000 {
		t.Fatalf("admitted %d at the rate, want all 1000", n)
	}
	r.Set(10)
	if got := r.PerSecond(); got != 10 {
		t.Fatalf("PerSecond = %d", got)
	}
	n = 0
	for i := range int64(1000) {
		if r.Allow(sec + i*sec/1000) {
			n++
		}
	}
	if n > 21 {
		t.Errorf("admitted %d in the second after lowering to 10/s", n)
	}
}

// Concurrent callers never overshoot the rate (the CAS loop).
func TestRateConcurrent(t *testing.T) {
	r := NewRate(1000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := range int64(10000) {
				// Eight callers interleaved over one simulated second.
				if r.Allow((i*8 + int64(g)) * sec / 80000) {
					n++
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total < 1000 || total > 2001 {
		t.Errorf("admitted %d in one second at 1000/s with a second's burst, want 1000..2001", total)
	}
}

func TestGauge(t *testing.T) {
	g := NewGauge(3)
	for i := range 3 {
		if !g.Acquire() {
			t.Fatalf("refused #%d under the bound", i+1)
		}
	}
	if g.Acquire() {
		t.Fatal("admitted a fourth")
	}
	g.Release()
	if !g.Acquire() {
		t.Fatal("refused after a release")
	}
	g.Set(1) // lowered: the three open stay, new ones wait
	g.Release()
	if g.Acquire() || g.InUse() != 2 {
		t.Fatalf("in use %d after lowering to 1", g.InUse())
	}
	g.Set(0)
	if !g.Acquire() {
		t.Fatal("unlimited refused")
	}
	var nilGauge *Gauge
	if !nilGauge.Acquire() {
		t.Fatal("nil refused")
	}
	nilGauge.Release()
}

// sent simulates a sender that honours the shaper's waits for d and
// returns the bytes it moved.
func sent(s *Shaper, chunk int, start, d int64) int64 {
	now, total := start, int64(0)
	for now < start+d {
		total += int64(chunk)
		now += int64(s.Take(chunk, now)) + 1000 // a microsecond per write
	}
	return total
}

func TestShaperRate(t *testing.T) {
	s := NewShaper(1 << 20) // 1 MiB/s
	got := sent(s, 16<<10, 0, 10*sec)
	want := int64(10 << 20)
	if got < want*95/100 || got > want*105/100 {
		t.Errorf("moved %d bytes in 10 s at 1 MiB/s, want %d within 5%%", got, want)
	}
	if s.Waited() <= 0 {
		t.Error("no delay recorded")
	}
}

// DESIGN.md's bandwidth rule with three listeners: a peak is a
// reservation, never exceeded; the listeners without one share the rest,
// equally while both send, wholly when alone.
func TestBandwidthReservationAndShare(t *testing.T) {
	const mb = 125000 // 1 Mbit/s in bytes per second
	r := NewRegistry()
	l := r.LB("lb")
	r.Set(map[string]Params{"lb": {BandwidthBps: 30 * mb, Peaks: map[string]uint64{"a": 10 * mb}}})
	aIn, aOut := l.Bandwidth("a", 10*mb)
	_, bOut := l.Bandwidth("b", 0)
	_, cOut := l.Bandwidth("c", 0)
	if aIn == nil || aIn == aOut {
		t.Fatal("want distinct in and out shapers")
	}
	// All three send flat out for 10 s, interleaved.
	var got [3]int64
	shapers := []*Shaper{aOut, bOut, cOut}
	next := [3]int64{}
	for now := int64(0); now < 10*sec; {
		i := 0
		for j := range next {
			if next[j] < next[i] {
				i = j
			}
		}
		now = next[i]
		got[i] += 16 << 10
		next[i] = now + int64(shapers[i].Take(16<<10, now)) + 1000
	}
	within := func(name string, v, want int64) {
		if v < want*90/100 || v > want*110/100 {
			t.Errorf("%s moved %.1f Mbit/s, want %.1f within 10%%", name, float64(v)/10/mb, float64(want)/10/mb)
		}
	}
	within("a (peak 10)", got[0], 100*mb)
	within("b (shares 20 with c)", got[1], 100*mb)
	within("c (shares 20 with b)", got[2], 100*mb)

	// b alone gets the whole rest.
	alone := sent(bOut, 16<<10, 20*sec, 10*sec)
	within("b alone", alone, 200*mb)
	// a alone never gets more than its peak.
	within("a alone", sent(aOut, 16<<10, 40*sec, 10*sec), 100*mb)
}

// Reloads keep the objects: counts survive, a changed peak applies.
func TestRegistrySetKeepsState(t *testing.T) {
	r := NewRegistry()
	l := r.LB("lb")
	r.Set(map[string]Params{"lb": {MaxConnections: 2, Peaks: map[string]uint64{"a": 1000}, BandwidthBps: 5000}})
	l.Conns.Acquire()
	l.Conns.Acquire()
	in, _ := l.Bandwidth("a", 1000)
	r.Set(map[string]Params{"lb": {MaxConnections: 3, Peaks: map[string]uint64{"a": 2000}, BandwidthBps: 5000}})
	if r.LB("lb") != l || l.Conns.InUse() != 2 || !l.Conns.Acquire() || l.Conns.Acquire() {
		t.Fatalf("after reload: in use %d, max %d", l.Conns.InUse(), l.Conns.Max())
	}
	if in2, _ := l.Bandwidth("a", 2000); in2 != in || in.bps.Load() != 2000 {
		t.Errorf("peak not applied in place: same=%v bps=%d", in2 == in, in.bps.Load())
	}
	r.Set(nil) // the load balancer is gone: unlimited, not exported
	if !l.Conns.Acquire() {
		t.Error("a removed load balancer still limits")
	}
	n := 0
	r.each(func(*LB) { n++ })
	if n != 0 {
		t.Errorf("%d load balancers exported after removal", n)
	}
}
