package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// whoamiLine is the greeting that makes TCPEcho answer with its name.
const whoamiLine = "whoami\n"

// greetingWait bounds how long TCPEcho waits for the rest of a partial "whoami\n" before
// it treats the bytes as ordinary data and echoes them.
const greetingWait = 100 * time.Millisecond

const tcpBufferSize = 32 << 10

// TCPEcho is a TCP backend that echoes everything back. If a connection starts with
// exactly the line "whoami\n", it first answers "<name>\n" and then echoes the rest.
// After the client's FIN it finishes writing and closes its write side. A TCPEcho must
// not be copied after first use.
type TCPEcho struct {
	Name string

	connections atomic.Uint64
	bytesIn     atomic.Uint64
	bytesOut    atomic.Uint64
	buffers     sync.Pool // *[]byte of tcpBufferSize
}

// NewTCPEcho returns a TCP echo backend named name.
func NewTCPEcho(name string) *TCPEcho { return &TCPEcho{Name: name} }

// Counters returns a snapshot of the connection and byte counters.
func (s *TCPEcho) Counters() Counters {
	return Counters{
		Connections: s.connections.Load(),
		BytesIn:     s.bytesIn.Load(),
		BytesOut:    s.bytesOut.Load(),
	}
}

// Serve accepts and echoes connections on l until ctx ends, then closes l and every
// open connection and returns nil once all connection goroutines have stopped.
func (s *TCPEcho) Serve(ctx context.Context, l net.Listener) error {
	var (
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	defer func() {
		stop()
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // e.g. out of file descriptors
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("tcp echo %q accept on %s: %w", s.Name, l.Addr(), err)
		}
		backoff = 0
		s.connections.Add(1)
		mu.Lock()
		if ctx.Err() != nil { // the AfterFunc already ran and will not see c
			mu.Unlock()
			c.Close()
			return nil
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			s.handle(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		})
	}
}

func (s *TCPEcho) buffer() *[]byte {
	if b, ok := s.buffers.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, tcpBufferSize)
	return &b
}

// handle echoes one connection and closes it.
func (s *TCPEcho) handle(c net.Conn) {
	defer c.Close()
	bp := s.buffer()
	defer s.buffers.Put(bp)
	buf := *bp

	pending, err := s.greet(c, buf)
	for {
		if pending > 0 {
			w, werr := c.Write(buf[:pending])
			s.bytesOut.Add(uint64(w))
			if werr != nil {
				return
			}
		}
		if err != nil {
			break
		}
		pending, err = c.Read(buf)
		s.bytesIn.Add(uint64(pending))
	}
	// The client's FIN (io.EOF): everything read has been written, so close our side
	// too. Any other error just closes the connection.
	if cw, ok := c.(interface{ CloseWrite() error }); ok && errors.Is(err, io.EOF) {
		_ = cw.CloseWrite()
	}
}

// greet reads the first bytes of a connection. If they are "whoami\n" it writes the
// name and returns the bytes that followed the greeting; otherwise it returns the bytes
// read so far, to be echoed. A read error (io.EOF included) is returned with the bytes.
func (s *TCPEcho) greet(c net.Conn, buf []byte) (int, error) {
	defer c.SetReadDeadline(time.Time{}) //nolint:errcheck // only fails on a closed conn
	got := 0
	for {
		n, err := c.Read(buf[got:])
		got += n
		s.bytesIn.Add(uint64(n))
		m := min(got, len(whoamiLine))
		switch {
		case string(buf[:m]) != whoamiLine[:m]:
			return got, err // not a greeting: plain data
		case got >= len(whoamiLine):
			w, werr := c.Write([]byte(s.Name + "\n"))
			s.bytesOut.Add(uint64(w))
			if werr != nil {
				return 0, werr
			}
			return copy(buf, buf[len(whoamiLine):got]), err
		case errors.Is(err, os.ErrDeadlineExceeded):
			return got, nil // a partial greeting that never completed: plain data
		case err != nil:
			return got, err
		}
		if got > 0 { // a strict prefix of the greeting: wait briefly for the rest
			_ = c.SetReadDeadline(time.Now().Add(greetingWait))
		}
	}
}
