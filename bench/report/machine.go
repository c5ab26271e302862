package report

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where a run happened.
type Machine struct {
	Cores  int    `json:"cores"`
	Model  string `json:"model"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	MemGiB int    `json:"mem_gib"`
}

// String is the one-line description RESULTS.md quotes.
func (m Machine) String() string {
	s := fmt.Sprintf("%d cores, %s", m.Cores, m.Model)
	if m.MemGiB > 0 {
		s += fmt.Sprintf(", %d GiB", m.MemGiB)
	}
	return s + fmt.Sprintf(", Linux %s, %s", m.Kernel, m.Go)
}

// ThisMachine reads the machine's description from /proc; a field it cannot
// read is left empty.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.Model = CPUModel(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemGiB = memGiB(string(b))
	}
	return m
}

// CPUModel returns the first "model name" of /proc/cpuinfo's text.
func CPUModel(cpuinfo string) string {
	for line := range strings.Lines(cpuinfo) {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

func memGiB(meminfo string) int {
	for line := range strings.Lines(meminfo) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err == nil {
				return int((kb + 512*1024) / (1024 * 1024))
			}
		}
	}
	return 0
}
