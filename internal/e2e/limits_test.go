package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/xlbproject/xlb/bench/load"
	"github.com/xlbproject/xlb/internal/netlab"
)

// offer runs the load generator (xlb-bench's engine) from the client at
// rate for 4 s after a 1 s warmup that drains the limiter's burst, and
// returns what it got.
func (e *env) offer(port int, rate float64, newConn bool) *load.Result {
	e.t.Helper()
	res, err := load.HTTP(context.Background(), load.HTTPOptions{
		URL: fmt.Sprintf("http://%s:%d/", netlab.VIP, port), Rate: rate, Connections: 16,
		Duration: 4 * time.Second, Warmup: time.Second, NewConnPerRequest: newConn,
		Dial: load.Dialer(e.lab.Dialer(netlab.HostClient)), Timeout: 5 * time.Second,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// within fails unless got is within 10% of want.
func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if got < want*0.9 || got > want*1.1 {
		t.Errorf("%s: %.1f, want %.1f within 10%%", what, got, want)
	}
}

// Offered twice the limit, the load balancer accepts the limit: requests
// per second and new connections per second, refused ones answered 503
// and counted by reason.
func TestLimitsRequestsAndNewConnectionsPerSecond(t *testing.T) {
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: http, port: 80, backend_port: 8080}`, `
    limits: {requests_per_second: 200, new_connections_per_second: 100}
`))
	res := e.offer(80, 400, false)
	within(t, "requests/s accepted at 400 offered, limit 200", res.Rate, 200)
	if res.Errors[load.ErrStatus5xx] == 0 {
		t.Error("no 503 for the requests over the limit")
	}
	if got := e.metric(`xlb_limit_drops_total{lb="lb",reason="requests"}`); got <= 0 {
		t.Errorf("requests drops = %v, want > 0", got)
	}
	if got := e.metric(`xlb_http_errors_total{lb="lb",listener="lb/http/80",reason="limit_requests"}`); got <= 0 {
		t.Errorf("limit_requests errors = %v, want > 0", got)
	}

	time.Sleep(1100 * time.Millisecond) // the request bucket refills
	res = e.offer(80, 200, true)
	within(t, "new connections/s accepted at 200 offered, limit 100", res.Rate, 100)
	if got := e.metric(`xlb_limit_drops_total{lb="lb",reason="new_connections"}`); got <= 0 {
		t.Errorf("new_connections drops = %v, want > 0", got)
	}
}

// max_connections: of twice the limit of long-lived connections, exactly
// the limit is served; the rest get a 503 and are closed; closing one lets
// a new one in.
func TestLimitsMaxConnections(t *testing.T) {
	const limit = 10
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: http, port: 80, backend_port: 8080}`, fmt.Sprintf(`
    limits: {max_connections: %d}
`, limit)))
	get := func(c net.Conn) (int, error) {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var mu sync.Mutex
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	ok, refused := 0, 0
	for range 2 * limit {
		c, err := e.lab.Dial(context.Background(), netlab.HostClient, "tcp", fmt.Sprintf("%s:80", netlab.VIP))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		code, err := get(c)
		switch {
		case err == nil && code == 200:
			ok++
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
		case err != nil || code == 503:
			refused++
			c.Close()
		default:
			t.Fatalf("status %d", code)
		}
	}
	if ok != limit || refused != limit {
		t.Fatalf("%d served and %d refused of %d connections, limit %d", ok, refused, 2*limit, limit)
	}
	if got := e.metric(`xlb_limit_connections{lb="lb"}`); got != limit {
		t.Errorf("xlb_limit_connections = %v, want %d", got, limit)
	}
	if got := e.metric(`xlb_limit_drops_total{lb="lb",reason="max_connections"}`); got != limit {
		t.Errorf("max_connections drops = %v, want %d", got, limit)
	}
	// The open ones keep working; closing one admits one more.
	if code, err := get(open[0]); err != nil || code != 200 {
		t.Fatalf("a held connection: %d %v", code, err)
	}
	open[0].Close()
	e.waitMetric(`xlb_limit_connections{lb="lb"}`, limit-1, 5*time.Second)
	c, err := e.lab.Dial(context.Background(), netlab.HostClient, "tcp", fmt.Sprintf("%s:80", netlab.VIP))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if code, err := get(c); err != nil || code != 200 {
		t.Fatalf("after a close: %d %v", code, err)
	}
}

// DESIGN.md's bandwidth rule with three listeners on a 24 Mbit/s load
// balancer: the listener with an 8 Mbit/s peak gets its 8 and no more; the
// two without a peak share the other 16 equally while both download, and
// one alone gets all 16.
func TestLimitsBandwidthReservation(t *testing.T) {
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: http, port: 80, backend_port: 8080, bandwidth_mbps: 8}
      - {protocol: http, port: 81, backend_port: 8080}
      - {protocol: http, port: 82, backend_port: 8080}`, `
    bandwidth_mbps: 24
`))
	download := func(port int) float64 { return e.downloadMbps(port, 4*time.Second) }
	var got [3]float64
	var wg sync.WaitGroup
	for i, port := range []int{80, 81, 82} {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = download(port) }()
	}
	wg.Wait()
	t.Logf("together: peak listener %.1f Mbit/s, shared %.1f and %.1f", got[0], got[1], got[2])
	// Each stream may run 50 ms ahead of its rate: a few percent over 4 s.
	within(t, "the 8 Mbit/s peak listener", got[0], 8)
	within(t, "a sharing listener (of 16)", got[1], 8)
	within(t, "the other sharing listener (of 16)", got[2], 8)
	// Alone means the others have stopped: their cut-off responses end and
	// the share stops counting them (200 ms after their last byte).
	time.Sleep(time.Second)
	alone := download(81)
	t.Logf("alone: shared listener %.1f Mbit/s", alone)
	within(t, "a sharing listener alone", alone, 16)
	if got := e.metric(`xlb_bandwidth_delay_seconds_total{direction="out",lb="lb",listener="lb/http/80"}`); got <= 0 {
		t.Errorf("no shaping delay recorded for the peak listener: %v", got)
	}
}

// downloadMbps pulls large bodies from the VIP's port for window, over HTTP
// (through an http listener, or a tcp one to the backends' HTTP port), and
// returns the Mbit/s received.
func (e *env) downloadMbps(port int, window time.Duration) float64 {
	c := &http.Client{Transport: &http.Transport{DialContext: e.lab.Dialer(netlab.HostClient), DisableCompression: true}}
	deadline := time.Now().Add(window)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	total := int64(0)
	start := time.Now()
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d/bytes?n=%d", netlab.VIP, port, 8<<20), nil)
		resp, err := c.Do(req)
		if err != nil {
			break
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		total += n
	}
	return float64(total) * 8 / 1e6 / time.Since(start).Seconds()
}

// The userspace L4 engine (XDP off) holds a tcp listener to its 8 Mbit/s
// reservation of a 24 Mbit/s load balancer, and the one without a peak to
// the 16 left.
func TestLimitsBandwidthL4(t *testing.T) {
	e := start(t, 3, lbConfig(threeServers, `
      - {protocol: tcp, port: 7000, backend_port: 8080, bandwidth_mbps: 8}
      - {protocol: tcp, port: 7001, backend_port: 8080}`, `
    bandwidth_mbps: 24
`))
	var got [2]float64
	var wg sync.WaitGroup
	for i, port := range []int{7000, 7001} {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = e.downloadMbps(port, 4*time.Second) }()
	}
	wg.Wait()
	t.Logf("tcp listeners: reserved %.1f Mbit/s, sharing %.1f", got[0], got[1])
	within(t, "the 8 Mbit/s tcp listener", got[0], 8)
	within(t, "the tcp listener with the other 16", got[1], 16)
	if got := e.metric(`xlb_bandwidth_delay_seconds_total{direction="out",lb="lb",listener="lb/tcp/7000"}`); got <= 0 {
		t.Errorf("no shaping delay recorded for the tcp listener: %v", got)
	}
}
