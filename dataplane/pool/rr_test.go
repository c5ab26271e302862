package pool

import "testing"

func TestRREqualTurns(t *testing.T) {
	// Weights do not matter to rr, except 0.
	p := newPool(t, nil, Config{Scheduler: RR, Servers: servers(100, 1, 50, 0)})
	if got, want := pickSeq(t, p, 9), "abcabcabc"; got != want {
		t.Errorf("picks = %s, want %s", got, want)
	}
	counts := countPicks(t, p, 3000)
	for i, want := range []int{1000, 1000, 1000, 0} {
		if counts[i] != want {
			t.Errorf("backend %d: %d picks, want %d", i, counts[i], want)
		}
	}
}

func TestRRSkipsIneligible(t *testing.T) {
	tests := []struct {
		name string
		set  func(b *Backend)
	}{
		{"down", func(b *Backend) { b.SetUp(false) }},
		{"drain", func(b *Backend) { b.SetAdmin(AdminDrain) }},
		{"disabled", func(b *Backend) { b.SetAdmin(AdminDisabled) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, nil, Config{Scheduler: RR, Servers: servers(1, 1, 1)})
			tt.set(member(p, 1))
			if got := pickSeq(t, p, 6); got != "acacac" && got != "cacaca" {
				t.Errorf("picks = %s, want a and c alternating", got)
			}
		})
	}
}
