package cputime

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseProc(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Proc
		wantErr string
	}{
		{
			name: "nginx worker",
			line: "4242 (nginx) S 4241 4241 4241 0 -1 4194624 1200 0 0 0 150 75 3 2 20 0 1 0 12345 1000000 500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0",
			want: Proc{PID: 4242, PPID: 4241, Comm: "nginx", UTime: 150, STime: 75, CUTime: 3, CSTime: 2},
		},
		{
			name: "comm with spaces and parentheses",
			line: "7 (a b) (c)) R 1 7 7 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 1 1 1",
			want: Proc{PID: 7, PPID: 1, Comm: "a b) (c)", UTime: 10, STime: 20},
		},
		{name: "no comm", line: "7 R 1 2 3", wantErr: "no (comm)"},
		{name: "short", line: "7 (x) R 1 2 3", wantErr: "fields after comm"},
		{name: "bad tick", line: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 ten 20 0 0 20", wantErr: "bad tick count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProc(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestProcTotalCountsReapedChildren(t *testing.T) {
	p := Proc{UTime: 100, STime: 50, CUTime: 7, CSTime: 3}
	if got, want := p.Total(), 1600*time.Millisecond; got != want {
		t.Errorf("Total = %v, want %v", got, want)
	}
}

func TestTreeOfSumsDescendantsOnly(t *testing.T) {
	procs := []Proc{
		{PID: 1, PPID: 0, UTime: 1000},
		{PID: 10, PPID: 1, UTime: 100, STime: 100},  // master
		{PID: 11, PPID: 10, UTime: 300, STime: 200}, // worker
		{PID: 12, PPID: 11, UTime: 5},               // worker's helper
		{PID: 20, PPID: 1, UTime: 999},              // unrelated
	}
	got, err := TreeOf(procs, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := 7050 * time.Millisecond; got != want {
		t.Errorf("tree of 10 = %v, want %v", got, want)
	}
	if _, err := TreeOf(procs, 99); err == nil {
		t.Error("tree of a missing pid: no error")
	}
}

const procStat = `cpu  98872 0 14416 289834 1019 0 341 37 0 0
cpu0 48109 0 6811 146998 174 0 99 15 0 0
cpu1 50763 77 7604 142835 844 3 241 21 0 0
intr 1234 0 0
ctxt 99
softirq 5 1 2
`

func TestParseSystem(t *testing.T) {
	s, err := ParseSystem(procStat)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cores) != 2 {
		t.Fatalf("%d cores, want 2", len(s.Cores))
	}
	c1, ok := s.Core(1)
	want := CPU{Name: "cpu1", User: 50763, Nice: 77, System: 7604, Idle: 142835, IOWait: 844, IRQ: 3, SoftIRQ: 241, Steal: 21}
	if !ok || c1 != want {
		t.Errorf("cpu1 = %+v, want %+v", c1, want)
	}
	// Busy: user+system+irq+softirq+steal, not nice, idle or iowait.
	if got, want := c1.Busy(), time.Duration(50763+7604+3+241+21)*10*time.Millisecond; got != want {
		t.Errorf("cpu1 busy = %v, want %v", got, want)
	}
	if _, ok := s.Core(2); ok {
		t.Error("Core(2) exists on a 2-core reading")
	}

	later, err := ParseSystem(strings.Replace(procStat, "cpu1 50763 77 7604 142835 844 3 241", "cpu1 50863 999 7654 142835 844 3 291", 1))
	if err != nil {
		t.Fatal(err)
	}
	d := later.Sub(s)
	if got, want := d.Cores[1].Busy(), 2*time.Second; got != want {
		t.Errorf("cpu1 busy delta = %v, want %v", got, want)
	}
	if got, want := d.Cores[1].SoftIRQTime(), 500*time.Millisecond; got != want {
		t.Errorf("cpu1 softirq delta = %v, want %v", got, want)
	}
	if d.Cores[0].Busy() != 0 {
		t.Errorf("cpu0 delta = %v, want 0", d.Cores[0].Busy())
	}
}

func TestParseSystemErrors(t *testing.T) {
	for _, text := range []string{
		"intr 1 2\n",
		"cpu 1 2 3\ncpu0 1 2 3 4 5 6 7 8\n",
		"cpu 1 2 3 4 5 6 7 8\ncpu0 1 2 x 4 5 6 7 8\n",
		"cpu 1 2 3 4 5 6 7 8\ncpu1 1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n",
	} {
		if _, err := ParseSystem(text); err == nil {
			t.Errorf("ParseSystem(%q): no error", text)
		}
	}
}

func TestReadLiveCounters(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc")
	}
	before, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU so that at least a few ticks are charged to us.
	deadline := time.Now().Add(100 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	after, err := Tree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU time did not grow while spinning: %v then %v", before, after)
	}
	s, err := ReadSystem()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Cores) == 0 || s.Total.Busy() == 0 {
		t.Errorf("system reading %+v has no busy time", s.Total)
	}
}

func TestOthers(t *testing.T) {
	before := []Proc{
		{PID: 1, Comm: "init", UTime: 10},
		{PID: 2, Comm: "gen", UTime: 100},
		{PID: 3, Comm: "go", UTime: 50, STime: 50},
		{PID: 4, Comm: "old", UTime: 7},
	}
	after := []Proc{
		{PID: 1, Comm: "init", UTime: 11},
		{PID: 2, Comm: "gen", UTime: 200},                  // excluded
		{PID: 3, Comm: "go", UTime: 80, STime: 60},         // +40
		{PID: 4, Comm: "reused", UTime: 3},                 // a new process: all 3
		{PID: 5, Comm: "cc1", UTime: 20, CUTime: 1000},     // new: 20, reaped children ignored
		{PID: 6, PPID: 2, Comm: "ksoftirqd/1", STime: 500}, // kernel thread: not counted
	}
	if got, want := Others(before, after, map[int]bool{2: true}), 640*time.Millisecond; got != want {
		t.Errorf("Others = %v, want %v", got, want)
	}
	if got := Descendants([]Proc{{PID: 1}, {PID: 2, PPID: 1}, {PID: 3, PPID: 2}, {PID: 4}}, 1); len(got) != 3 {
		t.Errorf("Descendants = %v, want 1 2 3", got)
	}
}
