package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xlbproject/xlb/bench/load"
	"github.com/xlbproject/xlb/bench/report"
	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/internal/netlab"
)

// Workload is one kind of load a scenario measures (a report part).
type Workload struct {
	Name  string // "http", "tcp", "udp"; the plots' file prefix
	Title string
	Short string // for plot titles
	Unit  string // "req/s"
	Op    string // "request"
	// CPUMethod is report.CPUProcess or report.CPUGatewayCore.
	CPUMethod string
	// Connections is the generator's concurrency, the same closed and open
	// loop so both phases see the same connection count.
	Connections int
	// Args returns the generator's subcommand, flags and target for an
	// open-loop rate (0: closed loop), without -d, -warmup and -json.
	Args func(target string, rate float64, conns int) []string
	// Check sends one operation to target from the client host; nil when
	// the system answers it.
	Check func(ctx context.Context, lab *netlab.Lab, target string) error

	// Run and Probe replace Args and Check for load generated inside this
	// process (the live-frame generator): Run measures one window at rate
	// (0: the highest the system delivers), calling window when the
	// measured window starts and its result when it ends; Probe checks
	// that the system forwards the load at all.
	// Their parts report delivery and loss, not latency.
	Run   func(ctx context.Context, e *Env, sys System, rate float64, d time.Duration, window cpuWindow) (*load.Result, report.CPU, error)
	Probe func(ctx context.Context, e *Env, sys System) error
	// Latency marks a Run workload whose results carry latencies (an
	// external HTTP generator); the others report delivery and loss.
	Latency bool
}

// cpuWindow starts the CPU readings of a window that starts now and lasts
// the measurement's duration; the function it returns waits for them.
type cpuWindow func(start time.Time) func() (report.CPU, error)

func rateArgs(rate float64) []string {
	if rate <= 0 {
		return nil
	}
	return []string{"-rate", strconv.FormatFloat(rate, 'f', 0, 64)}
}

// httpKeepAlive is HTTP/1.1 with keep-alive connections and small
// responses (the backends' "/" answers their name).
func httpKeepAlive() Workload {
	return Workload{
		Name: "http", Title: "HTTP/1.1 keep-alive, small responses", Short: "HTTP/1.1 keep-alive", Unit: "req/s", Op: "request",
		CPUMethod: report.CPUProcess, Connections: 32,
		Args: func(target string, rate float64, conns int) []string {
			return append([]string{"http", "-proto", "http1", "-c", strconv.Itoa(conns), target}, rateArgs(rate)...)
		},
		Check: checkHTTP,
	}
}

// tcpConnect is the connection rate: connect, exchange 64 bytes, close.
func tcpConnect() Workload {
	return Workload{
		Name: "tcp", Title: "TCP connections (connect, 64-byte echo, close)", Short: "TCP connections", Unit: "conn/s", Op: "connection",
		CPUMethod: report.CPUGatewayCore, Connections: 32,
		Args: func(target string, rate float64, conns int) []string {
			return append([]string{"tcp", "-mode", "connect", "-c", strconv.Itoa(conns), "-payload", "64", target}, rateArgs(rate)...)
		},
		Check: checkTCP,
	}
}

// udpRequestResponse is 64-byte datagrams answered by the echo backends.
func udpRequestResponse() Workload {
	return Workload{
		Name: "udp", Title: "UDP request/response (64-byte datagrams)", Short: "UDP request/response", Unit: "datagrams/s", Op: "datagram",
		CPUMethod: report.CPUGatewayCore, Connections: 32,
		Args: func(target string, rate float64, conns int) []string {
			return append([]string{"udp", "-c", strconv.Itoa(conns), "-payload", "64", target}, rateArgs(rate)...)
		},
		Check: checkUDP,
	}
}

func checkHTTP(ctx context.Context, lab *netlab.Lab, url string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: lab.Dialer(netlab.HostClient), DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func checkTCP(ctx context.Context, lab *netlab.Lab, addr string) error {
	return checkWhoAmI(ctx, lab, "tcp", addr)
}

func checkUDP(ctx context.Context, lab *netlab.Lab, addr string) error {
	return checkWhoAmI(ctx, lab, "udp", addr)
}

// checkWhoAmI asks the echo backend behind addr for its name.
func checkWhoAmI(ctx context.Context, lab *netlab.Lab, network, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := lab.Dial(ctx, netlab.HostClient, network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var name string
	if network == "udp" {
		name, err = serve.WhoAmIUDP(ctx, c)
	} else {
		name, err = serve.WhoAmITCP(ctx, c)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", network, addr, err)
	}
	if name == "" {
		return fmt.Errorf("%s %s: empty answer", network, addr)
	}
	return nil
}

// waitReady retries check for up to timeout.
func waitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("not ready within %s", timeout), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
