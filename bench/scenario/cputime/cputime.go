// Package cputime reads the CPU time Linux accounts to processes
// (/proc/<pid>/stat) and to each core (/proc/stat), for the benchmarks'
// CPU-per-request figures.
//
// Both files count in clock ticks (USER_HZ), which is 100 on every Linux
// architecture Go supports: a 5 s window is resolved to 10 ms, 0.2 % of a
// core.
package cputime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tick is one USER_HZ clock tick.
const tick = 10 * time.Millisecond

func ticks(n uint64) time.Duration { return time.Duration(n) * tick }

// Proc is the CPU accounting of one process from /proc/<pid>/stat.
type Proc struct {
	PID, PPID int
	Comm      string
	// Ticks of the process's own threads in user and kernel mode, and of its
	// children that exited and were waited for.
	UTime, STime, CUTime, CSTime uint64
}

// Total is the process's CPU time including its waited-for children, so a
// sum over a process tree stays monotonic when a worker exits and is reaped.
func (p Proc) Total() time.Duration {
	return ticks(p.UTime + p.STime + p.CUTime + p.CSTime)
}

// ParseProc parses the single line of /proc/<pid>/stat. The command name is
// in parentheses and may itself contain spaces and parentheses, so fields
// are counted from the last ')'.
func ParseProc(line string) (Proc, error) {
	open := strings.IndexByte(line, '(')
	end := strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return Proc{}, fmt.Errorf("proc stat %q: no (comm)", trunc(line))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return Proc{}, fmt.Errorf("proc stat %q: pid: %w", trunc(line), err)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(line[end+1:])
	if len(f) < 15 {
		return Proc{}, fmt.Errorf("proc stat %q: %d fields after comm, want at least 15", trunc(line), len(f))
	}
	p := Proc{PID: pid, Comm: line[open+1 : end]}
	if p.PPID, err = strconv.Atoi(f[1]); err != nil {
		return Proc{}, fmt.Errorf("proc stat %q: ppid: %w", trunc(line), err)
	}
	for i, dst := range []*uint64{&p.UTime, &p.STime, &p.CUTime, &p.CSTime} {
		// cutime and cstime are signed in the kernel; never negative in practice.
		v, err := strconv.ParseInt(f[11+i], 10, 64)
		if err != nil || v < 0 {
			return Proc{}, fmt.Errorf("proc stat %q: field %d: bad tick count %q", trunc(line), 14+i, f[11+i])
		}
		*dst = uint64(v)
	}
	return p, nil
}

// ReadProc reads /proc/<pid>/stat.
func ReadProc(pid int) (Proc, error) {
	return readProc(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
}

func readProc(path string) (Proc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Proc{}, err
	}
	return ParseProc(strings.TrimSpace(string(b)))
}

// Process returns the CPU time of one process (all its threads, and its
// reaped children).
func Process(pid int) (time.Duration, error) {
	p, err := ReadProc(pid)
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return p.Total(), nil
}

// Tree returns the CPU time of pid and every live descendant, such as an
// NGINX master and its workers.
func Tree(pid int) (time.Duration, error) {
	procs, err := All()
	if err != nil {
		return 0, err
	}
	return TreeOf(procs, pid)
}

// Descendants returns pid and the pids of its live descendants among procs.
func Descendants(procs []Proc, pid int) []int {
	children := map[int][]int{}
	for _, p := range procs {
		children[p.PPID] = append(children[p.PPID], p.PID)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// Others returns the CPU time (user and system, not reaped children) that
// processes other than those in exclude accrued between two readings of
// All: a measure of what else ran on the machine. A process that started
// after the first reading counts with all of its time; one that exited
// before the second is missed. Kernel threads (kthreadd, pid 2, and its
// children) are not counted: ksoftirqd runs the very packet processing a
// benchmark measures.
func Others(before, after []Proc, exclude map[int]bool) time.Duration {
	was := make(map[int]Proc, len(before))
	for _, p := range before {
		was[p.PID] = p
	}
	var total uint64
	for _, p := range after {
		if exclude[p.PID] || p.PID == 2 || p.PPID == 2 {
			continue
		}
		now := p.UTime + p.STime
		if b, ok := was[p.PID]; ok && b.Comm == p.Comm {
			prev := b.UTime + b.STime
			if now < prev {
				continue // pid reused
			}
			now -= prev
		}
		total += now
	}
	return ticks(total)
}

// TreeOf sums the CPU time of pid and its descendants among procs.
func TreeOf(procs []Proc, pid int) (time.Duration, error) {
	byPID := map[int]Proc{}
	for _, p := range procs {
		byPID[p.PID] = p
	}
	if _, ok := byPID[pid]; !ok {
		return 0, fmt.Errorf("cpu time of pid %d: no such process", pid)
	}
	var total time.Duration
	for _, p := range Descendants(procs, pid) {
		total += byPID[p].Total()
	}
	return total, nil
}

// All reads /proc/<pid>/stat of every process.
func All() ([]Proc, error) {
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	procs := make([]Proc, 0, len(paths))
	for _, path := range paths {
		p, err := readProc(path)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // exited while we looked
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		procs = append(procs, p)
	}
	return procs, nil
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
