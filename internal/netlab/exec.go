package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Command returns a command that runs name in host's namespace through
// `ip netns exec` (which also mounts the namespace's /sys). It runs in its
// own process group; cancelling ctx kills the group, and Close kills the
// group of every such command still running. The command also gets SIGKILL
// when the OS thread that started it exits (Pdeathsig), so a crashed run
// leaves no process pinning a namespace; Go keeps its threads until the
// process ends, except a locked thread whose goroutine exits locked (do not
// Start from such a goroutine). If host is unknown or the lab is closed,
// Start returns the error.
func (l *Lab) Command(ctx context.Context, host, name string, args ...string) *exec.Cmd {
	h, err := l.host(host)
	if err != nil {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Err = err
		return cmd
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	// Pdeathsig: if this process dies without Close, the command goes too
	// and does not pin the namespace.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		cmd.Err = errors.New("netlab: lab is closed")
		return cmd
	}
	l.cmds[cmd] = struct{}{}
	return cmd
}

// Run runs the command to completion and returns its combined output; on
// failure the error includes the output.
func (l *Lab) Run(ctx context.Context, host, name string, args ...string) ([]byte, error) {
	cmd := l.Command(ctx, host, name, args...)
	// A leftover grandchild holding the output pipe must not block Run.
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	l.mu.Lock()
	delete(l.cmds, cmd)
	l.mu.Unlock()
	if err != nil {
		return out, fmt.Errorf("netlab: %s: %s %s: %w: %s", host, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// killGroup kills the process group of a started command whose leader has
// not been reaped (so its pid, the group id, cannot have been reused).
func killGroup(cmd *exec.Cmd) {
	p := cmd.Process
	if p == nil {
		return
	}
	if err := p.Signal(syscall.Signal(0)); errors.Is(err, os.ErrProcessDone) {
		return
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}
