package cputime

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU is one "cpu" or "cpuN" line of /proc/stat, in ticks.
type CPU struct {
	Name                                                  string // "cpu" (all cores) or "cpu0", "cpu1", ...
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Busy is the time the core worked for anything but niced processes:
// user, system, hard and soft interrupts (where a kernel-path data plane
// such as nftables spends its time) and steal. Guest time is already
// inside user. Niced time (processes with nice > 0) is left out, so a
// benchmark can keep a core out of tickless idle with a niced spinner
// without counting it.
func (c CPU) Busy() time.Duration {
	return ticks(c.User + c.System + c.IRQ + c.SoftIRQ + c.Steal)
}

// SoftIRQTime is the time in soft interrupts alone.
func (c CPU) SoftIRQTime() time.Duration { return ticks(c.SoftIRQ) }

// IRQTime is the time in hard interrupts.
func (c CPU) IRQTime() time.Duration { return ticks(c.IRQ) }

// Sub returns the counters accrued since an earlier reading.
func (c CPU) Sub(before CPU) CPU {
	return CPU{
		Name: c.Name, User: c.User - before.User, Nice: c.Nice - before.Nice,
		System: c.System - before.System, Idle: c.Idle - before.Idle,
		IOWait: c.IOWait - before.IOWait, IRQ: c.IRQ - before.IRQ,
		SoftIRQ: c.SoftIRQ - before.SoftIRQ, Steal: c.Steal - before.Steal,
	}
}

// System is one reading of /proc/stat: the all-cores line and each core.
type System struct {
	Total CPU
	Cores []CPU // index i is cpu i
}

// Core returns core i's counters, or false when there is no such core.
func (s System) Core(i int) (CPU, bool) {
	if i < 0 || i >= len(s.Cores) {
		return CPU{}, false
	}
	return s.Cores[i], true
}

// Sub returns the counters accrued since before (same cores).
func (s System) Sub(before System) System {
	d := System{Total: s.Total.Sub(before.Total)}
	for i, c := range s.Cores {
		if i < len(before.Cores) {
			d.Cores = append(d.Cores, c.Sub(before.Cores[i]))
		}
	}
	return d
}

// ParseSystem parses the text of /proc/stat; lines other than cpu lines
// are ignored. Cores appear in ascending order, as the kernel writes them.
func ParseSystem(text string) (System, error) {
	var s System
	seenTotal := false
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if len(f) < 9 {
			return System{}, fmt.Errorf("/proc/stat %s: %d fields, want at least 9", f[0], len(f))
		}
		c := CPU{Name: f[0]}
		for i, dst := range []*uint64{&c.User, &c.Nice, &c.System, &c.Idle, &c.IOWait, &c.IRQ, &c.SoftIRQ, &c.Steal} {
			v, err := strconv.ParseUint(f[1+i], 10, 64)
			if err != nil {
				return System{}, fmt.Errorf("/proc/stat %s field %d: %w", f[0], 1+i, err)
			}
			*dst = v
		}
		if f[0] == "cpu" {
			s.Total, seenTotal = c, true
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(f[0], "cpu"))
		if err != nil || n < len(s.Cores) || n > 4096 {
			return System{}, fmt.Errorf("/proc/stat: unexpected line %q after cpu%d", f[0], len(s.Cores)-1)
		}
		// An offline core has no line: its slot stays zero.
		for len(s.Cores) < n {
			s.Cores = append(s.Cores, CPU{Name: "cpu" + strconv.Itoa(len(s.Cores))})
		}
		s.Cores = append(s.Cores, c)
	}
	if !seenTotal || len(s.Cores) == 0 {
		return System{}, fmt.Errorf("/proc/stat: no cpu lines")
	}
	return s, nil
}

// ReadSystem reads /proc/stat.
func ReadSystem() (System, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return System{}, err
	}
	return ParseSystem(string(b))
}
