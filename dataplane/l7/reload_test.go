package l7

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xlbproject/xlb/dataplane/pool"
)

// keepAliveConn is a raw client connection sending requests one at a time.
type keepAliveConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAliveConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &keepAliveConn{t: t, conn: conn, br: bufio.NewReader(conn)}
}

func (k *keepAliveConn) get(path, host string) (*http.Response, string, error) {
	_ = k.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(k.conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func TestHTTPReloadSwapsStateKeepsConnections(t *testing.T) {
	b1, b2 := startBackend(t, "be1"), startBackend(t, "be2")
	e := newEngine(t, Options{})
	l := testListener(t, server(b1, 100))
	e.apply(Config{Listeners: []Listener{l}})
	addr := l.Addr.String()

	ka := dialKeepAlive(t, addr)
	if _, body, err := ka.get("/", "a"); err != nil || body != "be1\n" {
		t.Fatalf("before the reload: %q %v", body, err)
	}
	inflight := make(chan string, 1)
	go func() {
		resp, err := client(false).Get("http://" + addr + "/delay?ms=700")
		if err != nil {
			inflight <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	waitFor(t, 2*time.Second, "the slow request to reach be1", func() bool { return b1.Requests() == 2 })

	// New rules: the default pool is be2, and host "one" goes to be1.
	l2 := l
	l2.Default = pool.Config{Scheduler: pool.RR, Servers: []pool.Server{server(b2, 100)}}
	l2.Groups = map[string]pool.Config{"one": {Servers: []pool.Server{server(b1, 100)}}}
	l2.Rules = []Rule{{Domain: "one", Group: "one"}}
	e.apply(Config{Listeners: []Listener{l2}})

	if _, body, err := ka.get("/", "a"); err != nil || body != "be2\n" {
		t.Errorf("the kept connection's next request: %q %v, want be2 (new rules)", body, err)
	}
	if _, body, err := ka.get("/", "one"); err != nil || body != "be1\n" {
		t.Errorf("rule after reload: %q %v, want be1", body, err)
	}
	if got := <-inflight; got != "200 be1\n" {
		t.Errorf("the request in flight across the reload: %q, want 200 be1", got)
	}
}

func TestHTTPReloadRemovesListener(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	keep, gone := testListener(t, server(b, 100)), testListener(t, server(b, 100))
	gone.Name = "lb/http/gone"
	e.apply(Config{Listeners: []Listener{keep, gone}})

	idle := dialKeepAlive(t, gone.Addr.String())
	if _, _, err := idle.get("/", "a"); err != nil {
		t.Fatal(err)
	}
	busy := dialKeepAlive(t, gone.Addr.String())
	_ = busy.conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(busy.conn, "GET /delay?ms=500 HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(t, 2*time.Second, "the slow request to arrive", func() bool { return b.Requests() == 2 })

	e.apply(Config{Listeners: []Listener{keep}})

	// The idle connection is closed at once.
	_ = idle.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := idle.br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection of the removed listener: read %v %v, want EOF", n, err)
	}
	// The busy one gets its answer, marked as the last, then closes.
	resp, err := http.ReadResponse(busy.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "be1\n" || !resp.Close {
		t.Errorf("request in flight on the removed listener: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if _, err := busy.br.ReadByte(); err != io.EOF {
		t.Errorf("after its last answer: %v, want EOF", err)
	}
	if c, err := net.DialTimeout("tcp", gone.Addr.String(), time.Second); err == nil {
		c.Close()
		t.Error("the removed listener still accepts")
	}
	if code, _, _ := get(t, client(false), "http://"+keep.Addr.String()+"/"); code != 200 {
		t.Errorf("the kept listener: %d", code)
	}
}

func TestHTTPReloadUnderLoadLosesNothing(t *testing.T) {
	b1, b2, b3 := startBackend(t, "be1"), startBackend(t, "be2"), startBackend(t, "be3")
	e := newEngine(t, Options{})
	base := testListener(t, server(b1, 100), server(b2, 100))
	cfgs := []Listener{base, base, base}
	cfgs[1].Default = pool.Config{Scheduler: pool.WRR, Servers: []pool.Server{server(b2, 100), server(b3, 50)}}
	cfgs[2].Groups = map[string]pool.Config{"three": {Servers: []pool.Server{server(b3, 100)}}}
	cfgs[2].Rules = []Rule{{Path: "/three", Group: "three"}}
	e.apply(Config{Listeners: []Listener{cfgs[0]}})
	url := "http://" + base.Addr.String()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client(i != 0) // one client opens a connection per request
			for ctx.Err() == nil {
				resp, err := c.Get(url + "/three")
				if err != nil {
					failed.Add(1)
					t.Errorf("request failed during reloads: %v", err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Errorf("status %d during reloads", resp.StatusCode)
				}
				ok.Add(1)
			}
		}()
	}
	for i := range 12 {
		time.Sleep(30 * time.Millisecond)
		e.apply(Config{Listeners: []Listener{cfgs[(i+1)%3]}})
	}
	time.Sleep(30 * time.Millisecond)
	cancel()
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 50 {
		t.Errorf("%d requests ok, %d failed across 12 reloads", ok.Load(), failed.Load())
	}
	// The last configuration (index 0 after 12 steps) has no /three rule.
	if _, body, _ := get(t, client(false), url+"/three"); strings.TrimSpace(body) == "be3" {
		t.Errorf("after the last reload /three went to be3")
	}
}

func TestHTTPPrepareAbortLeavesNoTrace(t *testing.T) {
	b := startBackend(t, "be1")
	e := newEngine(t, Options{})
	l := testListener(t, server(b, 100))
	ch, err := e.Prepare(context.Background(), Config{Listeners: []Listener{l}})
	if err != nil {
		t.Fatal(err)
	}
	ch.Abort()
	// The port is free again and nothing serves.
	ln, err := net.Listen("tcp", l.Addr.String())
	if err != nil {
		t.Fatalf("Abort kept the socket: %v", err)
	}
	// A Prepare that cannot bind fails and changes nothing.
	other := testListener(t, server(b, 100))
	if _, err := e.Prepare(context.Background(), Config{Listeners: []Listener{other, l}}); err == nil {
		t.Error("Prepare succeeded on a port in use")
	}
	ln.Close()
	if c, err := net.DialTimeout("tcp", other.Addr.String(), time.Second); err == nil {
		c.Close()
		t.Error("a failed Prepare left a listener serving")
	}
	bad := testListener(t, server(b, 100))
	bad.Rules = []Rule{{Path: "/x", Group: "missing"}}
	if _, err := e.Prepare(context.Background(), Config{Listeners: []Listener{bad}}); err == nil ||
		!strings.Contains(err.Error(), "missing") {
		t.Errorf("rule naming an unknown group: %v", err)
	}
}

func TestHTTPDrainFinishesRequestsAndStopsEverything(t *testing.T) {
	b := startBackend(t, "be1")
	direct := client(false)
	if code, _, _ := get(t, direct, "http://"+b.addr.String()+"/health"); code != 200 { // the backend's goroutines run
		t.Fatal(code)
	}
	ignore := goleak.IgnoreCurrent()
	e, err := New(prometheusRegistry(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := testListener(t, server(b, 100))
	ch, err := e.Prepare(context.Background(), Config{Listeners: []Listener{l}})
	if err != nil {
		t.Fatal(err)
	}
	ch.Commit()
	addr := l.Addr.String()
	idle := dialKeepAlive(t, addr)
	if _, _, err := idle.get("/", "a"); err != nil {
		t.Fatal(err)
	}
	ws := dialWebSocket(t, addr)
	h2 := h2cClient()
	if resp, err := h2.Get("http://" + addr + "/"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	slow := make(chan string, 1)
	go func() {
		resp, err := client(false).Get("http://" + addr + "/delay?ms=400")
		if err != nil {
			slow <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(body)
	}()
	waitFor(t, 2*time.Second, "the slow request to arrive", func() bool { return b.Requests() == 5 })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	e.Drain(ctx)
	if got := <-slow; got != "be1\n" {
		t.Errorf("request in flight during Drain: %q", got)
	}
	// The websocket was cut when the drain deadline came.
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("Drain returned after %v with a websocket open, want it to wait for its deadline", d)
	}
	_ = ws.conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, _, err := ws.recv(); err == nil {
		t.Error("websocket still open after Drain")
	}
	if e.ActiveConnections() != 0 {
		t.Errorf("%d connections after Drain", e.ActiveConnections())
	}
	h2.CloseIdleConnections()
	idle.conn.Close()
	goleak.VerifyNone(t, ignore)
}
