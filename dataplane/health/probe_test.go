package health

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xlbproject/xlb/internal/testnet"
)

// runProbe runs one check of t's key with the spec's timeout.
func runProbe(t *testing.T, target Target) error {
	t.Helper()
	k := target.Key()
	if err := k.validate(); err != nil {
		t.Fatalf("invalid target: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.Spec.Timeout)
	defer cancel()
	return newProbe(k)(ctx)
}

func addrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	switch network {
	case "tcp":
		return testnet.ClosedTCPPort(t)
	default:
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return addrPort(t, pc.LocalAddr().String())
	}
}

// fullBacklog returns a TCP listener address whose accept queue is full, so
// a new connection is never established: the kernel drops its SYN.
func fullBacklog(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	// Fill the queue of one: this connection is never accepted.
	c, err := net.DialTimeout("tcp", ap.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ap
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	defer wg.Wait()
	defer ln.Close()
	open := addrPort(t, ln.Addr().String())
	closed := closedPort(t, "tcp")
	spec := Spec{Type: TCP, Timeout: 300 * time.Millisecond}

	tests := []struct {
		name   string
		target Target
		result string
	}{
		{"success", Target{Addr: open, Spec: spec}, resultSuccess},
		{"refused", Target{Addr: closed, Spec: spec}, resultFailure},
		{"never accepted", Target{Addr: fullBacklog(t), Spec: spec}, resultTimeout},
		{"port override to the open port", Target{Addr: closed, Spec: withPort(spec, open.Port())}, resultSuccess},
		{"port override to a closed port", Target{Addr: open, Spec: withPort(spec, closed.Port())}, resultFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := runProbe(t, tt.target)
			if got := resultOf(err); got != tt.result {
				t.Fatalf("result %s (err %v), want %s", got, err, tt.result)
			}
			if tt.result == resultFailure && time.Since(start) > 250*time.Millisecond {
				t.Errorf("a refused connection took %v: it should fail fast", time.Since(start))
			}
		})
	}
	if accepted.Load() == 0 {
		t.Error("the server saw no connection")
	}
}

func TestProbeIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("IPv6 loopback: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "v6.example" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	addr := addrPort(t, ln.Addr().String())
	for _, spec := range []Spec{
		{Type: TCP, Timeout: time.Second},
		{Type: HTTP, Host: "v6.example", Codes: HTTP2xx, Timeout: time.Second},
	} {
		if err := runProbe(t, Target{Addr: addr, Spec: spec}); err != nil {
			t.Errorf("%v check of %s: %v", spec.Type, addr, err)
		}
	}
}

func withPort(s Spec, port uint16) Spec {
	s.Port = port
	return s
}

// httpServer records what the health checker sent.
type httpServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	conns    atomic.Int32
}

func newHTTPServer(t *testing.T, h http.HandlerFunc) *httpServer {
	t.Helper()
	s := &httpServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Clone(context.Background()))
		s.mu.Unlock()
		h(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *httpServer) addr(t *testing.T) netip.AddrPort {
	return addrPort(t, s.Listener.Addr().String())
}

func (s *httpServer) seen() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.requests...)
}

func TestHTTPProbe(t *testing.T) {
	srv := newHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "fine")
		case "/big":
			w.Write(make([]byte, 1<<20))
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/missing":
			http.NotFound(w, r)
		case "/error":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	})
	addr := srv.addr(t)
	spec := func(path string, codes Codes) Spec {
		return Spec{Type: HTTP, Path: path, Codes: codes, Timeout: 300 * time.Millisecond}
	}
	tests := []struct {
		name   string
		target Target
		result string
		errHas string
	}{
		{"2xx accepted", Target{Addr: addr, Spec: spec("/ok", HTTP2xx)}, resultSuccess, ""},
		{"large body", Target{Addr: addr, Spec: spec("/big", HTTP2xx)}, resultSuccess, ""},
		{"redirect not followed, 3xx accepted", Target{Addr: addr, Spec: spec("/redirect", HTTP3xx)}, resultSuccess, ""},
		{"redirect not followed, only 2xx accepted", Target{Addr: addr, Spec: spec("/redirect", HTTP2xx)}, resultFailure, "unexpected status 302"},
		{"404 with default codes", Target{Addr: addr, Spec: spec("/missing", 0)}, resultFailure, "unexpected status 404"},
		{"404 accepted as 4xx", Target{Addr: addr, Spec: spec("/missing", HTTP4xx)}, resultSuccess, ""},
		{"503 is not 2xx", Target{Addr: addr, Spec: spec("/error", HTTP2xx|HTTP3xx|HTTP4xx)}, resultFailure, "unexpected status 503"},
		{"handler past the timeout", Target{Addr: addr, Spec: spec("/slow", 0)}, resultTimeout, ""},
		{"refused", Target{Addr: closedPort(t, "tcp"), Spec: spec("/ok", 0)}, resultFailure, "refused"},
		{"port override", Target{Addr: closedPort(t, "tcp"), Spec: withPort(spec("/ok", 0), addr.Port())}, resultSuccess, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runProbe(t, tt.target)
			if got := resultOf(err); got != tt.result {
				t.Fatalf("result %s (err %v), want %s", got, err, tt.result)
			}
			if tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q does not mention %q", err, tt.errHas)
			}
		})
	}
	// Two checks hit /redirect and two hit /ok directly: a followed
	// redirect would show up as more requests to /ok.
	paths := map[string]int{}
	for _, r := range srv.seen() {
		paths[r.URL.Path]++
	}
	if paths["/redirect"] != 2 || paths["/ok"] != 2 {
		t.Errorf("server saw %d requests to /redirect and %d to /ok, want 2 and 2", paths["/redirect"], paths["/ok"])
	}
}

func TestHTTPProbeRequest(t *testing.T) {
	srv := newHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {})
	target := Target{Addr: srv.addr(t), Spec: Spec{Type: HTTP, Host: "www.example.com", Path: "/health/deep?verbose=1", Timeout: time.Second}}
	for range 2 {
		if err := runProbe(t, target); err != nil {
			t.Fatal(err)
		}
	}
	seen := srv.seen()
	if len(seen) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(seen))
	}
	for _, r := range seen {
		if r.Method != http.MethodGet || r.Host != "www.example.com" || r.URL.Path != "/health/deep" || r.URL.RawQuery != "verbose=1" {
			t.Errorf("server saw %s Host %q %s?%s, want GET Host www.example.com /health/deep?verbose=1", r.Method, r.Host, r.URL.Path, r.URL.RawQuery)
		}
		if !r.Close {
			t.Error("request did not ask to close the connection")
		}
	}
	if got := srv.conns.Load(); got != 2 {
		t.Errorf("2 checks used %d connections: no keep-alive between checks", got)
	}

	// Without a Host, the checked address is the Host header.
	noHost := Target{Addr: srv.addr(t), Spec: Spec{Type: HTTP, Timeout: time.Second}}
	if err := runProbe(t, noHost); err != nil {
		t.Fatal(err)
	}
	if r := srv.seen()[2]; r.Host != srv.addr(t).String() || r.URL.Path != "/" {
		t.Errorf("default request: Host %q path %q, want %q and /", r.Host, r.URL.Path, srv.addr(t))
	}
}

// udpServer answers each datagram through reply; nil means stay silent.
func udpServer(t *testing.T, reply func(req []byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := reply(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return addrPort(t, pc.LocalAddr().String())
}

func TestUDPProbe(t *testing.T) {
	echoPong := udpServer(t, func(req []byte) []byte {
		if string(req) == "ping" {
			return []byte("pong")
		}
		return []byte("what?")
	})
	silent := udpServer(t, func([]byte) []byte { return nil })
	longer := udpServer(t, func([]byte) []byte { return []byte("pong and more") })
	spec := func(req, resp string) Spec {
		return Spec{Type: UDP, Request: req, Response: resp, Timeout: 300 * time.Millisecond}
	}
	tests := []struct {
		name   string
		target Target
		result string
		errHas string
	}{
		{"expected response", Target{Addr: echoPong, Spec: spec("ping", "pong")}, resultSuccess, ""},
		{"wrong response", Target{Addr: echoPong, Spec: spec("hello", "pong")}, resultFailure, `unexpected response "what?"`},
		{"longer response", Target{Addr: longer, Spec: spec("ping", "pong")}, resultFailure, "unexpected response"},
		{"no answer is a timeout", Target{Addr: silent, Spec: spec("ping", "pong")}, resultTimeout, ""},
		{"port unreachable fails fast", Target{Addr: closedPort(t, "udp"), Spec: spec("ping", "pong")}, resultFailure, "refused"},
		{"port override", Target{Addr: silent, Spec: withPort(spec("ping", "pong"), echoPong.Port())}, resultSuccess, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := runProbe(t, tt.target)
			if got := resultOf(err); got != tt.result {
				t.Fatalf("result %s (err %v), want %s", got, err, tt.result)
			}
			if tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q does not mention %q", err, tt.errHas)
			}
			if tt.result == resultFailure && time.Since(start) > 250*time.Millisecond {
				t.Errorf("took %v: should fail before the timeout", time.Since(start))
			}
		})
	}
}

func TestProbeStopsOnCancel(t *testing.T) {
	silent := udpServer(t, func([]byte) []byte { return nil })
	k := Target{Addr: silent, Spec: Spec{Type: UDP, Request: "a", Response: "b", Timeout: time.Minute}}.Key()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := newProbe(k)(ctx)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("probe returned %v after %v; cancel should end it at once", err, time.Since(start))
	}
}
