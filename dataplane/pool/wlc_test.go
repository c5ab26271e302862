package pool

import (
	"sync"
	"testing"
)

func TestWLCLeastActivePerWeight(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		active  []int
		want    int
	}{
		{"fewest active", []int{1, 1, 1}, []int{3, 1, 2}, 1},
		{"per weight", []int{100, 10}, []int{9, 1}, 0},            // 9/100 < 1/10
		{"per weight other way", []int{100, 10}, []int{11, 1}, 1}, // 11/100 > 1/10
		{"heavy backend busier", []int{100, 1}, []int{99, 1}, 0},
		{"weight 0 never", []int{0, 1}, []int{0, 50}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, nil, Config{Scheduler: WLC, Servers: servers(tt.weights...)})
			for i, n := range tt.active {
				for range n {
					member(p, i).Acquire()
				}
			}
			for range 5 { // no Acquire between picks: the answer must not move
				b, err := p.Pick(0)
				if err != nil {
					t.Fatal(err)
				}
				if b != member(p, tt.want) {
					t.Fatalf("picked %v, want %v", b, member(p, tt.want))
				}
			}
		})
	}
}

// With every backend idle, every pick ties: wrr's order decides.
func TestWLCTiesFollowWRR(t *testing.T) {
	p := newPool(t, nil, Config{Scheduler: WLC, Servers: servers(5, 1, 1)})
	if got, want := pickSeq(t, p, 14), "aabacaaaabacaa"; got != want {
		t.Errorf("picks = %s, want %s", got, want)
	}
}

// Goroutines open one connection per tick and hold it for its backend's
// service time; b is three times slower than a. Least connections feeds the
// slow backend less, keeping active counts at the weights' 2:1 (round robin
// by weight would end at 2:3). Ticks are simulated: no sleeps.
func TestWLCBalancesConcurrentConnections(t *testing.T) {
	const (
		workers = 4
		ticks   = 3000
	)
	p := newPool(t, nil, Config{Scheduler: WLC, Servers: servers(100, 50)})
	a, b := member(p, 0), member(p, 1)
	lifetime := map[*Backend]int{a: 20, b: 60}
	type conn struct {
		be  *Backend
		end int
	}
	held := make([][]conn, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tick := range ticks {
				open := held[w][:0]
				for _, c := range held[w] {
					if c.end <= tick {
						c.be.Release()
					} else {
						open = append(open, c)
					}
				}
				held[w] = open
				be, err := p.Pick(0)
				if err != nil {
					t.Error(err)
					return
				}
				be.Acquire()
				held[w] = append(held[w], conn{be, tick + lifetime[be]})
			}
		}()
	}
	wg.Wait()
	t.Logf("active after %d ticks: a=%d b=%d", ticks, a.Active(), b.Active())
	if ratio := float64(a.Active()) / float64(b.Active()); ratio < 1.8 || ratio > 2.2 {
		t.Errorf("active a:b = %d:%d (%.2f), want 2:1 within 10%%", a.Active(), b.Active(), ratio)
	}
	for _, cs := range held {
		for _, c := range cs {
			c.be.Release()
		}
	}
	if a.Active() != 0 || b.Active() != 0 {
		t.Errorf("active after all released: %d, %d", a.Active(), b.Active())
	}
}
