package l7

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xlbproject/xlb/dataplane/acl"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// startRawServer runs handle on every connection of a loopback listener.
func startRawServer(t *testing.T, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func rawServer(a netip.AddrPort, weight int) pool.Server {
	return pool.Server{Addr: a.Addr(), Port: a.Port(), Weight: weight}
}

func do(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPRetriesOnlyIdempotent(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusedAddr(t)
	e := newEngine(t, Options{PassiveFailures: 100})
	l := testListener(t, rawServer(bad, 100), server(good, 100))
	e.apply(Config{Listeners: []Listener{l}})
	c := client(true)
	url := "http://" + l.Addr.String() + "/"
	for i := range 6 {
		if code, body := do(t, c, http.MethodGet, url, ""); code != 200 || body != "good\n" {
			t.Errorf("GET %d: %d %q, want 200 from good (retried past the refusing backend)", i, code, body)
		}
	}
	if got := good.Requests(); got != 6 {
		t.Errorf("good backend saw %d requests, want 6", got)
	}
	// POST is not idempotent: a refused connection is a 502, not a retry.
	// rr alternates, so two of four POSTs meet the refusing backend.
	failed := 0
	for range 4 {
		code, _ := do(t, c, http.MethodPost, url, "data")
		switch code {
		case 502:
			failed++
		case 200:
		default:
			t.Errorf("POST answered %d", code)
		}
	}
	if failed != 2 {
		t.Errorf("%d of 4 POSTs failed, want 2 (rr over a refusing and a good backend)", failed)
	}
	if got := good.Requests(); got != 6+2 {
		t.Errorf("good backend saw %d requests, want 8: failed POSTs must not be retried", got)
	}
	if got := e.counter("xlb_http_errors_total", "reason", "backend_connect"); got < 5 {
		t.Errorf("backend_connect errors = %v", got)
	}
}

func TestHTTPRetryOnStaleKeepAliveConnection(t *testing.T) {
	// A backend that closes each connection after answering, without
	// saying so: the pooled connection is found closed on its next use.
	var requests atomic.Int32
	addr := startRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		requests.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
	})
	e := newEngine(t, Options{})
	l := testListener(t, rawServer(addr, 100))
	e.apply(Config{Listeners: []Listener{l}})
	c := client(true)
	url := "http://" + l.Addr.String() + "/"
	for i := range 4 {
		time.Sleep(20 * time.Millisecond) // let the backend's FIN arrive
		if code, _ := do(t, c, http.MethodGet, url, ""); code != 200 {
			t.Errorf("GET %d over a stale pooled connection: %d", i, code)
		}
		// A POST checks its pooled connection before using it.
		if code, _ := do(t, c, http.MethodPost, url, "x"); code != 200 {
			t.Errorf("POST %d: %d", i, code)
		}
	}
	if got := requests.Load(); got != 8 {
		t.Errorf("backend answered %d requests, want 8", got)
	}
}

func TestHTTPBackendErrors(t *testing.T) {
	slow := startBackend(t, "slow")
	garbage := startRawServer(t, func(c net.Conn) {
		_, _ = bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n")
	})
	cut := startRawServer(t, func(c net.Conn) {
		_, _ = http.ReadRequest(bufio.NewReader(c))
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
	})
	e := newEngine(t, Options{})
	ls := []Listener{testListener(t, server(slow, 100)), testListener(t, rawServer(garbage, 100)), testListener(t, rawServer(cut, 100))}
	ls[0].Timeouts.Request = 200 * time.Millisecond
	ls[1].Name, ls[2].Name = "lb/http/garbage", "lb/http/cut"
	e.apply(Config{Listeners: ls})
	c := client(false)
	if code, body := do(t, c, http.MethodGet, "http://"+ls[0].Addr.String()+"/delay?ms=2000", ""); code != 504 || body != "gateway timeout\n" {
		t.Errorf("slow backend: %d %q, want 504", code, body)
	}
	if code, _ := do(t, c, http.MethodGet, "http://"+ls[1].Addr.String()+"/", ""); code != 502 {
		t.Errorf("garbage backend: %d, want 502", code)
	}
	resp, err := c.Get("http://" + ls[2].Addr.String() + "/")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("a body cut short by the backend reached the client as complete")
	}
	for _, tc := range []struct {
		listener, reason string
	}{{ls[0].Name, "backend_timeout"}, {ls[1].Name, "bad_gateway"}, {ls[2].Name, "bad_gateway"}} {
		if got := e.counter("xlb_http_errors_total", "listener", tc.listener, "reason", tc.reason); got != 1 {
			t.Errorf("%s %s errors = %v, want 1", tc.listener, tc.reason, got)
		}
	}
}

func TestHTTPPassiveHealthEjects(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusedAddr(t)
	e := newEngine(t, Options{PassiveFailures: 3, PassiveCooldown: time.Hour})
	l := testListener(t, rawServer(bad, 100), server(good, 100))
	e.apply(Config{Listeners: []Listener{l}})
	c := client(true)
	url := "http://" + l.Addr.String() + "/"
	failed := 0
	for range 20 {
		if code, _ := do(t, c, http.MethodPost, url, "x"); code != 200 {
			failed++
		}
	}
	if failed != 3 {
		t.Errorf("%d of 20 POSTs failed, want 3: the refusing backend is ejected after 3 failures", failed)
	}
	if got := e.counter("xlb_http_backend_ejections_total", "backend", bad.String()); got != 1 {
		t.Errorf("ejections = %v, want 1", got)
	}
	// Shared health state is not touched: passive health is this engine's.
	if !l.Registry.Lookup(bad.String()).Up() {
		t.Error("passive health flipped the shared health state")
	}
}

func TestHTTPClientErrors(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	l.Timeouts.Header = 300 * time.Millisecond
	e.apply(Config{Listeners: []Listener{l}})
	tests := []struct {
		name, req, wantPrefix string
	}{
		{"malformed", "GARBAGE\r\n\r\n", "HTTP/1.1 400 "},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
		{"smuggling attempt", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 "},
		{"too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", MaxHeadBytes) + "\r\n\r\n", "HTTP/1.1 431 "},
		{"slow head", "GET / HTTP/1.1\r\nHost: a\r\n", "HTTP/1.1 408 "},
		{"connect", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "HTTP/1.1 405 "},
		{"http/2 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/1.1 505 "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := rawExchange(t, l.Addr, tc.req, 5*time.Second)
			if !strings.HasPrefix(out, tc.wantPrefix) || !strings.Contains(out, "Connection: close") {
				t.Errorf("answer %q, want %q and close", out, tc.wantPrefix)
			}
		})
	}
	if got := e.counter("xlb_http_errors_total", "reason", "bad_request"); got != float64(len(tests)) {
		t.Errorf("bad_request errors = %v, want %d", got, len(tests))
	}
	if b.Requests() != 0 {
		t.Errorf("%d bad requests reached the backend", b.Requests())
	}
	// The engine still serves.
	if code, _, _ := get(t, client(false), "http://"+l.Addr.String()+"/"); code != 200 {
		t.Errorf("after bad input: %d", code)
	}
}

func TestHTTPACLAndStopped(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	deny, err := acl.New(acl.Deny, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	if err != nil {
		t.Fatal(err)
	}
	denied := testListener(t, server(b, 100))
	denied.ACL = deny
	stopped := testListener(t, server(b, 100))
	stopped.Name, stopped.Stopped = "lb/http/stopped", true
	e.apply(Config{Listeners: []Listener{denied, stopped}})
	if conn, err := net.Dial("tcp", denied.Addr.String()); err == nil {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if out, _ := io.ReadAll(conn); len(out) != 0 {
			t.Errorf("denied client got %q", out)
		}
		conn.Close()
	}
	if got := e.counter("xlb_http_errors_total", "listener", denied.Name, "reason", "acl"); got != 1 {
		t.Errorf("acl errors = %v, want 1", got)
	}
	if code, body, _ := get(t, client(false), "http://"+stopped.Addr.String()+"/"); code != 503 || body != "service unavailable\n" {
		t.Errorf("stopped listener: %d %q", code, body)
	}
	if got := e.counter("xlb_http_errors_total", "listener", stopped.Name, "reason", "stopped"); got != 1 {
		t.Errorf("stopped errors = %v, want 1", got)
	}
	if b.Requests() != 0 {
		t.Errorf("backend got %d requests", b.Requests())
	}
}

func TestHTTPMetricsCountRequests(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{AccessLog: true})
	l := testListener(t, server(b, 100))
	e.apply(Config{Listeners: []Listener{l}})
	c := client(true)
	for _, p := range []string{"/", "/status/404", "/status/500", "/bytes?n=1000"} {
		get(t, c, "http://"+l.Addr.String()+p)
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"xlb_http_requests_total", []string{"lb", "lb", "listener", l.Name, "code_class", "2xx"}, 2},
		{"xlb_http_requests_total", []string{"code_class", "4xx"}, 1},
		{"xlb_http_requests_total", []string{"code_class", "5xx"}, 1},
		{"xlb_http_upstream_responses_total", []string{"code_class", "5xx"}, 1},
		{"xlb_http_request_duration_seconds", nil, 4},
		{"xlb_http_upstream_duration_seconds", nil, 4},
		{"xlb_http_active_connections", nil, 1},
	}
	for _, ck := range checks {
		if got := e.counter(ck.name, ck.labels...); got != ck.want {
			t.Errorf("%s%v = %v, want %v", ck.name, ck.labels, got, ck.want)
		}
	}
	if out := e.counter("xlb_http_bytes_total", "direction", "out"); out < 1000 {
		t.Errorf("bytes out = %v, want at least the 1000-byte body", out)
	}
	if in := e.counter("xlb_http_bytes_total", "direction", "in"); in < 4*30 {
		t.Errorf("bytes in = %v", in)
	}
}

func TestHTTPTimeouts(t *testing.T) {
	b := startBackend(t, "be1")
	// A backend whose accept queue is full drops new SYNs: connecting to it
	// hangs until the proxy's connect timeout.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
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
	sa, _ := syscall.Getsockname(fd)
	full := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port))
	for range 2 { // fill the queue
		if c, err := net.DialTimeout("tcp", full.String(), 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	e := newEngine(t, Options{})
	idle := testListener(t, server(b, 100))
	idle.Timeouts.Idle = 200 * time.Millisecond
	conn := testListener(t, rawServer(full, 100))
	conn.Name = "lb/http/connect"
	conn.Timeouts.Connect = 300 * time.Millisecond
	e.apply(Config{Listeners: []Listener{idle, conn}})

	ka := dialKeepAlive(t, idle.Addr.String())
	if _, _, err := ka.get("/", "a"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = ka.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ka.br.ReadByte(); err != io.EOF {
		t.Errorf("idle keep-alive connection: %v, want EOF", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle connection closed after %v, want about 200ms", d)
	}

	start = time.Now()
	if code, body := do(t, client(false), http.MethodGet, "http://"+conn.Addr.String()+"/", ""); code != 504 {
		t.Errorf("backend that does not accept: %d %q, want 504", code, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("connect timeout took %v", d)
	}
	if got := e.counter("xlb_http_errors_total", "listener", conn.Name, "reason", "backend_timeout"); got < 1 {
		t.Errorf("backend_timeout errors = %v", got)
	}
}

func TestHTTPCloseDelimitedAndTrailerResponses(t *testing.T) {
	old := startRawServer(t, func(c net.Conn) {
		_, _ = http.ReadRequest(bufio.NewReader(c))
		_, _ = io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
	})
	trailers := startRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
				"4\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Sum: 7\r\n\r\n")
		}
	})
	e := newEngine(t, Options{})
	a, b := testListener(t, rawServer(old, 100)), testListener(t, rawServer(trailers, 100))
	b.Name = "lb/http/trailers"
	e.apply(Config{Listeners: []Listener{a, b}})
	c := client(true)
	for range 2 {
		code, body, resp := get(t, c, "http://"+a.Addr.String()+"/")
		if code != 200 || body != "until the end" || len(resp.TransferEncoding) == 0 {
			t.Errorf("close-delimited backend answer: %d %q %v", code, body, resp.TransferEncoding)
		}
		code, body, _ = get(t, c, "http://"+b.Addr.String()+"/")
		if code != 200 || body != "abcdefg" {
			t.Errorf("chunked answer with trailers: %d %q", code, body)
		}
	}
}
