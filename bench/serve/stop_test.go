package serve

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestServeStopsOnCancel cancels each backend while clients hold connections in every
// state, and checks that Serve returns nil promptly, that clients see their connections
// end, and that no backend goroutine is left.
func TestServeStopsOnCancel(t *testing.T) {
	tests := []struct {
		name string
		// setup starts a backend and opens client activity; it returns the backend and
		// a check run after Serve returned.
		setup func(t *testing.T) (*running, func(t *testing.T))
	}{
		{"http", func(t *testing.T) (*running, func(t *testing.T)) {
			s := &HTTP{Name: "stop-http", GracePeriod: 100 * time.Millisecond}
			r := startHTTP(t, s)
			do(t, newClient(t), http.MethodGet, "http://"+r.addr+"/", nil)    // idle keep-alive
			do(t, newH2CClient(t), http.MethodGet, "http://"+r.addr+"/", nil) // idle h2c
			ws, resp := dialWS(t, r.addr)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("ws status %d", resp.StatusCode)
			}
			delayed := make(chan error, 1)
			go func() {
				resp, err := newClient(t).Get("http://" + r.addr + "/delay?ms=30000")
				if err == nil {
					resp.Body.Close()
				}
				delayed <- err
			}()
			pr, pw := io.Pipe() // an upload that never ends
			echoed := make(chan error, 1)
			go func() {
				resp, err := newClient(t).Post("http://"+r.addr+"/echo", "text/plain", pr)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				echoed <- err
			}()
			if _, err := pw.Write([]byte("streaming")); err != nil {
				t.Fatal(err)
			}
			waitRequests(t, s, 5)
			return r, func(t *testing.T) {
				if _, err := ws.r.ReadByte(); err == nil {
					t.Error("WebSocket still open after Serve returned")
				}
				if err := <-delayed; err == nil {
					t.Error("a 30 s delay answered normally after Serve returned")
				}
				pw.Close()
				if err := <-echoed; err == nil {
					t.Error("an unfinished upload was echoed in full after Serve returned")
				}
			}
		}},
		{"tcp", func(t *testing.T) (*running, func(t *testing.T)) {
			s := NewTCPEcho("stop-tcp")
			r := startTCP(t, s)
			idle := dialTCP(t, r.addr)
			busy := dialTCP(t, r.addr)
			if _, err := busy.Write([]byte("abc")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(busy, make([]byte, 3)); err != nil {
				t.Fatal(err)
			}
			waitCounters(t, s.Counters, Counters{Connections: 2, BytesIn: 3, BytesOut: 3})
			return r, func(t *testing.T) {
				for _, c := range []net.Conn{idle, busy} {
					if _, err := c.Read(make([]byte, 1)); err == nil {
						t.Error("connection still open after Serve returned")
					}
				}
			}
		}},
		{"udp", func(t *testing.T) (*running, func(t *testing.T)) {
			s := &UDPEcho{Name: "stop-udp", Workers: 2}
			r := startUDP(t, s, false)
			c := dialUDP(t, r.addr)
			if _, ok := exchange(t, c, []byte("x"), 5*time.Second); !ok {
				t.Fatal("no echo")
			}
			return r, func(t *testing.T) {
				// The port is closed: the write or read fails (ICMP refused) or times out.
				_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := c.Write([]byte("x")); err == nil {
					if n, err := c.Read(make([]byte, 10)); err == nil {
						t.Errorf("echo of %d bytes after Serve returned", n)
					}
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, check := tc.setup(t)
			begin := time.Now()
			if err := r.stop(t); err != nil {
				t.Fatalf("Serve = %v after cancel, want nil", err)
			}
			if took := time.Since(begin); took > 5*time.Second {
				t.Errorf("Serve took %v to return after cancel", took)
			}
			if g := waitServerGoroutinesGone(time.Second); g != "" {
				t.Fatalf("backend goroutines left after Serve returned:\n%s", g)
			}
			check(t)
		})
	}
}

func waitRequests(t *testing.T, s *HTTP, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Requests() < n {
		if time.Now().After(deadline) {
			t.Fatalf("server saw %d requests, want %d", s.Requests(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestServeListenerFailure checks that Serve reports a listener that fails under it
// (here: closed by someone else) instead of returning nil.
func TestServeListenerFailure(t *testing.T) {
	tests := []struct {
		name  string
		serve func(ctx context.Context, l net.Listener) error
	}{
		{"http", NewHTTP("h").Serve},
		{"tcp", NewTCPEcho("t").Serve},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- tc.serve(context.Background(), l) }()
			time.Sleep(20 * time.Millisecond)
			l.Close()
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Serve = %v, want an error wrapping net.ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return after its listener closed")
			}
		})
	}
	t.Run("udp", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- NewUDPEcho("u").Serve(context.Background(), pc) }()
		time.Sleep(20 * time.Millisecond)
		pc.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Serve = %v, want an error wrapping net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after its socket closed")
		}
	})
}

// TestHTTPGracefulShutdown checks that a request in flight when ctx ends still gets its
// answer if it finishes within the grace period (were it cut off, the client would see
// an error instead).
func TestHTTPGracefulShutdown(t *testing.T) {
	s := &HTTP{Name: "graceful", GracePeriod: 5 * time.Second}
	r := startHTTP(t, s)
	type result struct {
		res httpResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := newClient(t).Get("http://" + r.addr + "/delay?ms=300")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{httpResult{status: resp.StatusCode, body: string(b)}, err}
	}()
	waitRequests(t, s, 1)
	if err := r.stop(t); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	select {
	case res := <-got:
		if res.err != nil || res.res.status != 200 || res.res.body != "graceful\n" {
			t.Errorf("in-flight request got %d %q, %v; want 200 %q", res.res.status, res.res.body, res.err, "graceful\n")
		}
	case <-time.After(5 * time.Second):
		t.Error("the in-flight request got no answer")
	}
}
