package pool

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestWRRSmoothSequence(t *testing.T) {
	tests := []struct {
		weights []int
		want    string // one period
	}{
		{[]int{5, 1, 1}, "aabacaa"},
		{[]int{2, 1}, "aba"},
		{[]int{4, 2}, "aba"}, // same ratio, same sequence
		{[]int{3, 2}, "ababa"},
		{[]int{1, 1, 1}, "abc"},
		{[]int{100, 100}, "ab"},
		{[]int{5, 0, 1, 1}, "aacadaa"}, // weight 0 never picked
		{[]int{1}, "a"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			p := newPool(t, nil, Config{Scheduler: WRR, Servers: servers(tt.weights...)})
			// Three periods: the sequence repeats exactly.
			if got, want := pickSeq(t, p, 3*len(tt.want)), strings.Repeat(tt.want, 3); got != want {
				t.Errorf("picks = %s, want %s", got, want)
			}
		})
	}
}

func TestWRRProportions(t *testing.T) {
	const picks = 7000
	tests := [][]int{
		{100, 50},
		{5, 1, 1},
		{1, 2, 3, 4},
		{100, 1},
		{7, 0, 3},
		{33, 67, 0, 100, 1},
	}
	for _, weights := range tests {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			p := newPool(t, nil, Config{Scheduler: WRR, Servers: servers(weights...)})
			counts := countPicks(t, p, picks)
			sum := 0
			for _, w := range weights {
				sum += w
			}
			for i, w := range weights {
				want := float64(picks) * float64(w) / float64(sum)
				// Smooth WRR stays within one pick of the exact share.
				if math.Abs(float64(counts[i])-want) > 1 {
					t.Errorf("backend %d (weight %d): %d picks, want %.1f", i, w, counts[i], want)
				}
				if w == 0 && counts[i] != 0 {
					t.Errorf("weight 0 backend picked %d times", counts[i])
				}
			}
		})
	}
}

// Groups too large for an exact sequence are scaled: shares stay close.
func TestWRRLargeGroupScaled(t *testing.T) {
	weights := make([]int, 600)
	sum := 0
	for i := range weights {
		weights[i] = 1 + (i*37)%100
		sum += weights[i]
	}
	p := newPool(t, nil, Config{Scheduler: WRR, Servers: servers(weights...)})
	seq := p.Snapshot().WRRSequence()
	if len(seq) > maxSequence+len(weights) {
		t.Fatalf("sequence length %d above bound %d", len(seq), maxSequence+len(weights))
	}
	counts := make([]int, len(weights))
	for _, i := range seq {
		counts[i]++
	}
	for i, w := range weights {
		want := float64(len(seq)) * float64(w) / float64(sum)
		if d := math.Abs(float64(counts[i]) - want); d > 1 && d/want > 0.02 {
			t.Errorf("backend %d (weight %d): %d of %d, want %.1f", i, w, counts[i], len(seq), want)
		}
	}
}
