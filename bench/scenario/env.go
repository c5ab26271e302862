package scenario

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/bench/peers"
	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// Env is one run's lab and settings, shared by the systems.
type Env struct {
	Lab      *netlab.Lab
	Backends *labsvc.Backends
	Opts     Options
	// tables are the nftables tables created in the run, to check at the
	// end that none is left.
	tables []string
	n      int // backends
	// keepers are the tick keepers' pids: ours, not noise.
	keepers []int
	// logf prints a progress line.
	logf func(format string, args ...any)
}

func (e *Env) systemDir(name string) string {
	d := filepath.Join(e.Opts.OutDir, name)
	_ = os.MkdirAll(d, 0o755)
	return d
}

// backendList is be1..beN on port.
func (e *Env) backendList(port int) []peers.Backend {
	bs := make([]peers.Backend, 0, e.n)
	for i := 1; i <= e.n; i++ {
		bs = append(bs, peers.Backend{Name: netlab.BackendHost(i), IP: netlab.BackendIP(i), Port: port})
	}
	return bs
}

// topology is the standard client -> gateway -> backends lab, tuned for
// connection-rate load: TIME_WAIT ports reused after a second and the whole
// ephemeral range, in the client (the generator connects) and the gateway
// (proxies connect to the backends). Without them a connect benchmark runs
// out of ports in seconds and measures that instead.
func topology(backends int) netlab.Topology {
	t := netlab.ClientGatewayBackends(backends)
	// Software TX checksums on every veth, for every system alike: the XDP
	// engine's redirects need complete checksums (see netlab.Topology).
	t.NoTxChecksum = true
	for _, h := range []string{netlab.HostClient, netlab.HostGateway} {
		t.Host(h).Sysctls = map[string]string{
			"net.ipv4.tcp_tw_reuse":        "1",
			"net.ipv4.ip_local_port_range": "1024 65535",
		}
	}
	return t
}

// steer sends the gateway's received packets to the gateway core and
// everyone else's to the load core, with receive packet steering on every
// veth. Without it a veth's receive work (for nftables: all of its NAT and
// forwarding) runs on whichever core sent the packet, the generator's: the
// gateway's cost would hide on the load core, and the core split would not
// hold.
func steer(ctx context.Context, lab *netlab.Lab, topo netlab.Topology, loadCPU, gwCPU int) error {
	mask := func(cpu int) string { return strconv.FormatUint(1<<cpu, 16) }
	for _, l := range topo.Links {
		for _, end := range []netlab.Endpoint{l.A, l.B} {
			m := mask(loadCPU)
			if end.Host == netlab.HostGateway {
				m = mask(gwCPU)
			}
			script := fmt.Sprintf("for q in /sys/class/net/%s/queues/rx-*; do echo %s > $q/rps_cpus; done", end.Name, m)
			if _, err := lab.Run(ctx, end.Host, "sh", "-c", script); err != nil {
				return fmt.Errorf("steering %s/%s: %w", end.Host, end.Name, err)
			}
		}
	}
	return nil
}

// keepTicking runs a spinner on cpu at the lowest priority (SCHED_IDLE,
// nice 19) so the core never enters tickless idle. The kernel charges CPU
// time to /proc/stat's columns by sampling at each timer tick, and an idle
// core stops its tick: packet processing that wakes it for a moment (a
// kernel-path data plane at a moderate rate) would then never be sampled
// and read as idle. The spinner yields to every other task at once, and
// its time is niced, which cputime's Busy leaves out.
func keepTicking(ctx context.Context, lab *netlab.Lab, cpu int, logPath string) (*peers.Proc, error) {
	return peers.Start(ctx, lab, netlab.HostGateway, "tick keeper", logPath,
		"taskset", "-c", strconv.Itoa(cpu), "chrt", "--idle", "0", "nice", "-n", "19", "sh", "-c", "while :; do :; done")
}

// pinSelf pins every thread of this process (the benchmark and the
// backends it serves) to cpu; threads started later inherit the mask. The
// returned function restores the previous mask.
func pinSelf(cpu int) (restore func(), err error) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("reading CPU affinity: %w", err)
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := setAllThreads(&set); err != nil {
		_ = setAllThreads(&old)
		return nil, fmt.Errorf("pinning to core %d: %w", cpu, err)
	}
	return func() { _ = setAllThreads(&old) }, nil
}

func setAllThreads(set *unix.CPUSet) error {
	// Twice: a thread started while the first pass ran copied the old mask.
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return err
			}
		}
	}
	return nil
}
