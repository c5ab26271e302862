package l7

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/dataplane/pool"
	"github.com/xlbproject/xlb/internal/testnet"
)

// testBackend is a bench/serve HTTP backend on loopback.
type testBackend struct {
	*serve.HTTP
	addr netip.AddrPort
}

func startBackend(t *testing.T, name string) *testBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := serve.NewHTTP(name)
	s.GracePeriod = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("backend %s: %v", name, err)
		}
	})
	return &testBackend{HTTP: s, addr: l.Addr().(*net.TCPAddr).AddrPort()}
}

func server(b *testBackend, weight int) pool.Server {
	return pool.Server{Addr: b.addr.Addr(), Port: b.addr.Port(), Weight: weight}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// dialTest connects to addr for the test: closed at its end, and no read
// or write waits longer than 10 s.
func dialTest(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// refusedAddr is a loopback address that refuses connections until the
// test ends.
func refusedAddr(t testing.TB) netip.AddrPort { return testnet.ClosedTCPPort(t) }

type testEngine struct {
	*Engine
	t   *testing.T
	reg *prometheus.Registry
}

func newEngine(t *testing.T, opts Options) *testEngine {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(reg, zaptest.NewLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	te := &testEngine{Engine: e, t: t, reg: reg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Drain(ctx)
	})
	return te
}

func (te *testEngine) apply(cfg Config) {
	te.t.Helper()
	ch, err := te.Prepare(context.Background(), cfg)
	if err != nil {
		te.t.Fatal(err)
	}
	ch.Commit()
}

// listener returns a plain listener on a free loopback port.
func testListener(t *testing.T, servers ...pool.Server) Listener {
	return Listener{
		Name: "lb/http/test", LB: "lb", Addr: freeAddr(t),
		Registry: pool.NewRegistry(),
		Default:  pool.Config{Scheduler: pool.RR, Servers: servers},
	}
}

// counter reads a metric's value by name and label values.
func (te *testEngine) counter(name string, labels ...string) float64 {
	te.t.Helper()
	mfs, err := te.reg.Gather()
	if err != nil {
		te.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// client returns an HTTP/1.1 client without compression negotiation.
func client(keepAlive bool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: !keepAlive, DisableCompression: true, MaxIdleConnsPerHost: 16,
	}}
}

// get fetches url with optional headers (pairs) and returns status, body and response.
func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b), resp
}

// rawExchange writes raw request bytes on a fresh connection and returns
// everything read until the server closes or timeout.
func rawExchange(t *testing.T, addr netip.AddrPort, req string, timeout time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func bufioWriter(w io.Writer) *bufio.Writer { return bufio.NewWriter(w) }

func prometheusRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
