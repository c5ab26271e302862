package serve

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the package if any server goroutine outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitServerGoroutinesGone(2 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "server goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// serverFrames mark a goroutine as belonging to a backend (not to a test client).
var serverFrames = []string{
	"serve.(*HTTP).",
	"serve.(*TCPEcho).",
	"serve.(*UDPEcho).",
	"serve.wsEcho",
	"net/http.(*conn).serve",
	"net/http.(*Server).Serve",
	"net/http.(*http2serverConn)",
}

// serverGoroutines returns the stacks of running backend goroutines, skipping the
// caller's own.
func serverGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // this goroutine
		}
		for _, f := range serverFrames {
			if strings.Contains(g, f) {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}

// waitServerGoroutinesGone polls until no backend goroutine runs, returning the
// stragglers' stacks if some remain after d.
func waitServerGoroutinesGone(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		g := serverGoroutines()
		if g == "" || time.Now().After(deadline) {
			return g
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running is a backend serving in the background for one test.
type running struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// stop cancels the backend and returns Serve's result, failing the test if Serve does
// not return promptly.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // stop may be called again by cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10s of cancel")
		return nil
	}
}

func start(t *testing.T, serve func(ctx context.Context) error, addr string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{addr: addr, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- serve(ctx) }()
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("Serve returned %v after cancel, want nil", err)
		}
	})
	return r
}

func startHTTP(t *testing.T, s *HTTP) *running {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return start(t, func(ctx context.Context) error { return s.Serve(ctx, l) }, l.Addr().String())
}

func startTCP(t *testing.T, s *TCPEcho) *running {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return start(t, func(ctx context.Context) error { return s.Serve(ctx, l) }, l.Addr().String())
}

func startUDP(t *testing.T, s *UDPEcho, wrap bool) *running {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	if wrap { // hide the *net.UDPConn type to exercise the generic loop
		pc = struct{ net.PacketConn }{pc}
	}
	return start(t, func(ctx context.Context) error { return s.Serve(ctx, pc) }, addr)
}

// patternReader yields n deterministic, not trivially repeating bytes without holding
// them all in memory.
type patternReader struct {
	n, off int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		x := uint64(p.off) + uint64(i)
		b[i] = byte(x ^ x>>8 ^ x>>16 ^ x>>24*7)
	}
	p.off += int64(len(b))
	return len(b), nil
}
