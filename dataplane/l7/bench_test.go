package l7

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xlbproject/xlb/dataplane/pool"
)

// rawBackend is a minimal keep-alive HTTP/1.1 server that allocates nothing
// per request, so a benchmark's allocations are the proxy's.
type rawBackend struct {
	l    net.Listener
	wg   sync.WaitGroup
	resp []byte
}

const rawBackendBody = "hello from the backend\n"

func startRawBackend(tb testing.TB) *rawBackend {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	rb := &rawBackend{l: l, resp: []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n\r\n" + rawBackendBody)}
	rb.wg.Add(1)
	go func() {
		defer rb.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			rb.wg.Add(1)
			go func() {
				defer rb.wg.Done()
				rb.serve(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		_ = l.Close()
		rb.wg.Wait()
	})
	return rb
}

func (rb *rawBackend) serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16<<10)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if err != nil {
			return
		}
		n += m
		for {
			i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			if _, err := c.Write(rb.resp); err != nil {
				return
			}
			n = copy(buf, buf[i+4:n])
		}
		if n == len(buf) {
			return
		}
	}
}

func (rb *rawBackend) addr() netip.AddrPort { return rb.l.Addr().(*net.TCPAddr).AddrPort() }

// rawClient sends keep-alive GETs and reads Content-Length responses
// without allocating.
type rawClient struct {
	c   net.Conn
	req []byte
	buf []byte
}

func dialRaw(tb testing.TB, addr netip.AddrPort) *rawClient {
	tb.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &rawClient{c: c, buf: make([]byte, 16<<10),
		req: []byte("GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")}
}

var errShort = errors.New("short response")

func (rc *rawClient) do() error {
	if _, err := rc.c.Write(rc.req); err != nil {
		return err
	}
	n := 0
	for {
		m, err := rc.c.Read(rc.buf[n:])
		if err != nil {
			return err
		}
		n += m
		i := bytes.Index(rc.buf[:n], []byte("\r\n\r\n"))
		if i < 0 {
			continue
		}
		// The benchmark's backend answers a fixed body.
		if n >= i+4+len(rawBackendBody) {
			if !bytes.HasPrefix(rc.buf, []byte("HTTP/1.1 200")) {
				return errShort
			}
			return nil
		}
	}
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProxyKeepAlive proxies keep-alive GETs over loopback to a
// minimal backend. allocs/op is the proxy's (client and backend allocate
// nothing); cpu-us/op is the whole process's CPU (client, proxy, backend).
func BenchmarkProxyKeepAlive(b *testing.B) {
	all := Headers{XForwardedFor: true, XForwardedProto: true, LBIP: true, LBID: true}
	b.Run("direct", func(b *testing.B) {
		// The client straight to the backend: subtract its cpu-us/op from
		// the others' to get the proxy's own.
		rb := startRawBackend(b)
		rc := dialRaw(b, rb.addr())
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cpuTime()
		for range b.N {
			if err := rc.do(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
	})
	for _, bc := range []struct {
		name      string
		headers   Headers
		conns     int
		accessLog bool
	}{
		{"plain", Headers{}, 1, false},
		{"headers", all, 1, false},
		{"headers-accesslog", all, 1, true},
		{"headers-4conns", all, 4, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rb := startRawBackend(b)
			log := zap.NewNop()
			if bc.accessLog {
				// JSON to a discarding sink: the cost of building the entry.
				log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
					zapcore.AddSync(io.Discard), zapcore.InfoLevel))
			}
			addr := benchProxy(b, rb, log, Options{AccessLog: bc.accessLog}, bc.headers)
			clients := make([]*rawClient, bc.conns)
			for i := range clients {
				clients[i] = dialRaw(b, addr)
				for range 10 { // warm: pooled backend connection, buffers
					if err := clients[i].do(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			if bc.conns == 1 {
				for range b.N {
					if err := clients[0].do(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				var wg sync.WaitGroup
				per := b.N / bc.conns
				for i, rc := range clients {
					n := per
					if i == 0 {
						n += b.N % bc.conns
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range n {
							if err := rc.do(); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

// benchProxy runs an engine with one listener in front of rb until the
// benchmark ends, and returns the listener's address.
func benchProxy(b *testing.B, rb *rawBackend, log *zap.Logger, opts Options, h Headers) netip.AddrPort {
	b.Helper()
	e, err := New(prometheus.NewRegistry(), log, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Drain(ctx)
	})
	l := Listener{Name: "bench", LB: "lb", Addr: freeAddr(b), Registry: pool.NewRegistry(),
		Default: pool.Config{Scheduler: pool.WRR, Servers: []pool.Server{{Addr: rb.addr().Addr(), Port: rb.addr().Port(), Weight: 100}}},
		Headers: h}
	ch, err := e.Prepare(context.Background(), Config{Listeners: []Listener{l}})
	if err != nil {
		b.Fatal(err)
	}
	ch.Commit()
	return l.Addr
}
