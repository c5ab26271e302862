package peers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Proc is a peer process running in a lab namespace, in its own process
// group (the lab's commands are), so Stop also ends its workers.
type Proc struct {
	Name string
	// Log is the file that holds its stdout and stderr.
	Log string

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// Start runs argv in host's namespace, in its own process group, with its
// output to logPath. The caller stops it with Stop.
func Start(ctx context.Context, lab Lab, host, name, logPath string, argv ...string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := lab.Command(ctx, host, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process's id. `ip netns exec` and taskset exec the peer, so
// this is the peer itself (NGINX's master; its workers are its children).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its exit error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, waits up to grace, then kills
// the group. Whatever the leader did, every member gets SIGKILL at the end,
// so no worker outlives the benchmark. It is safe to call more than once.
func (p *Proc) Stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	// The leader is reaped by now or about to be; its workers may not be.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing %s: %w", p.Name, err)
	}
	<-p.done
	return nil
}
