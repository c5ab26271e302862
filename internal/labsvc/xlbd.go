package labsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/internal/netlab"
)

// MetricsAddr is where xlbd serves /metrics inside the gateway namespace.
const MetricsAddr = "127.0.0.1:9100"

// Xlbd is an xlbd process running in a lab namespace.
type Xlbd struct {
	cmd  *exec.Cmd
	lab  *netlab.Lab
	host string
	done chan struct{}
	err  error
}

// StartXlbd runs `xlbd run` with args in host and waits until /readyz says
// ready. Its output goes to log (may be nil).
func StartXlbd(ctx context.Context, lab *netlab.Lab, host, binary string, log io.Writer, args ...string) (*Xlbd, error) {
	full := append([]string{"run", "--metrics-listen", MetricsAddr}, args...)
	cmd := lab.Command(context.Background(), host, binary, full...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting xlbd: %w", err)
	}
	x := &Xlbd{cmd: cmd, lab: lab, host: host, done: make(chan struct{})}
	go func() {
		x.err = cmd.Wait()
		close(x.done)
	}()
	if err := x.waitReady(ctx); err != nil {
		_ = x.Stop(2 * time.Second)
		return nil, err
	}
	return x, nil
}

// Client returns an HTTP client whose connections are made in the lab host
// xlbd runs in, for its metrics endpoint.
func (x *Xlbd) Client() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: x.lab.Dialer(x.host), DisableKeepAlives: true},
	}
}

func (x *Xlbd) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c := x.Client()
	for {
		resp, err := c.Get("http://" + MetricsAddr + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-x.done:
			return fmt.Errorf("xlbd exited before it was ready: %v", x.err)
		case <-ctx.Done():
			return fmt.Errorf("xlbd not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Metrics returns the /metrics text.
func (x *Xlbd) Metrics() (string, error) {
	resp, err := x.Client().Get("http://" + MetricsAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Signal sends sig to xlbd.
func (x *Xlbd) Signal(sig os.Signal) error { return x.cmd.Process.Signal(sig) }

// Done is closed when xlbd has exited.
func (x *Xlbd) Done() <-chan struct{} { return x.done }

// Stop sends SIGTERM (drain), waits up to grace, then kills. It returns the
// exit error, nil for a clean exit.
func (x *Xlbd) Stop(grace time.Duration) error {
	_ = x.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-x.done:
	case <-time.After(grace):
		_ = x.cmd.Process.Kill()
		<-x.done
		return errors.New("xlbd did not stop within the grace period: killed")
	}
	var ee *exec.ExitError
	if errors.As(x.err, &ee) {
		return fmt.Errorf("xlbd exited: %w", x.err)
	}
	return x.err
}

// Kill stops xlbd at once (SIGKILL), as a crash would: nothing is
// withdrawn or detached, and waits for it to exit.
func (x *Xlbd) Kill() {
	_ = x.cmd.Process.Kill()
	<-x.done
}
