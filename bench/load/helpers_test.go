package load

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/internal/testnet"
)

// TestMain fails the package if a generator or test server goroutine outlives the
// tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend runs fn (a Serve method) in the background until the test ends.
func backend(t testing.TB, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("backend: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("backend did not stop")
		}
	})
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// httpBackend starts a serve.HTTP on loopback and returns it and its base URL.
func httpBackend(t testing.TB) (*serve.HTTP, string) {
	t.Helper()
	s := serve.NewHTTP("b1")
	l := listen(t)
	backend(t, func(ctx context.Context) error { return s.Serve(ctx, l) })
	return s, "http://" + l.Addr().String()
}

// handlerBackend serves h with net/http on loopback and returns its base URL.
func handlerBackend(t *testing.T, h http.Handler) string {
	t.Helper()
	l := listen(t)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &protos}
	backend(t, func(ctx context.Context) error {
		stop := context.AfterFunc(ctx, func() { srv.Close() })
		defer stop()
		if err := srv.Serve(l); err != http.ErrServerClosed {
			return err
		}
		return nil
	})
	return "http://" + l.Addr().String()
}

func tcpBackend(t *testing.T) (*serve.TCPEcho, string) {
	t.Helper()
	s := serve.NewTCPEcho("b1")
	l := listen(t)
	backend(t, func(ctx context.Context) error { return s.Serve(ctx, l) })
	return s, l.Addr().String()
}

func udpListen(t *testing.T) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

func udpBackend(t *testing.T) (*serve.UDPEcho, string) {
	t.Helper()
	s := serve.NewUDPEcho("b1")
	pc := udpListen(t)
	backend(t, func(ctx context.Context) error { return s.Serve(ctx, pc) })
	return s, pc.LocalAddr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string { return testnet.ClosedTCPPort(t).String() }

// rawHTTP serves canned bytes: for every request read on a connection it writes
// answer; with keep it then waits for the next request, otherwise it closes. It
// returns the base URL.
func rawHTTP(t *testing.T, answer string, keep bool) string {
	t.Helper()
	l := listen(t)
	var wg sync.WaitGroup
	backend(t, func(ctx context.Context) error {
		stop := context.AfterFunc(ctx, func() { l.Close() })
		defer stop()
		var mu sync.Mutex
		var conns []net.Conn
		defer func() {
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return nil
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if !readRequest(br) {
						return
					}
					if _, err := c.Write([]byte(answer)); err != nil || !keep {
						return
					}
				}
			})
		}
	})
	return "http://" + l.Addr().String()
}

// readRequest reads a request head (the tests send no bodies).
func readRequest(br *bufio.Reader) bool {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return false
		}
		if bytes.Equal(line, []byte("\r\n")) {
			return true
		}
	}
}

// settled returns a backend's counters once they stop moving: a server counts an
// answer after writing it, so the generator can be done a moment before.
func settled(counters func() serve.Counters) serve.Counters {
	c := counters()
	for range 50 {
		time.Sleep(10 * time.Millisecond)
		next := counters()
		if next == c {
			return c
		}
		c = next
	}
	return c
}
