package serve

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

func TestTCPEchoHalfClose(t *testing.T) {
	s := NewTCPEcho("tcp-1")
	r := startTCP(t, s)
	big, err := io.ReadAll(&patternReader{n: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		send []byte
		want []byte
	}{
		{"nothing", nil, nil},
		{"short", []byte("hello"), []byte("hello")},
		{"4 MiB", big, big},
		{"whoami", []byte("whoami\n"), []byte("tcp-1\n")},
		{"whoami then data", []byte("whoami\nrest of it"), []byte("tcp-1\nrest of it")},
		{"whoami twice", []byte("whoami\nwhoami\n"), []byte("tcp-1\nwhoami\n")},
		{"whoami not first", []byte("x whoami\n"), []byte("x whoami\n")},
		{"whoami without newline", []byte("whoami"), []byte("whoami")},
		{"whoami prefix", []byte("who"), []byte("who")},
		{"whoami other case", []byte("WHOAMI\n"), []byte("WHOAMI\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Counters()
			c := dialTCP(t, r.addr)
			// Write concurrently: the echo comes back while we still send.
			writeErr := make(chan error, 1)
			go func() {
				_, err := c.Write(tc.send)
				if err == nil {
					err = c.CloseWrite()
				}
				writeErr <- err
			}()
			got, err := io.ReadAll(c) // ends only when the server closes its side
			if err != nil {
				t.Fatalf("read after %d bytes: %v", len(got), err)
			}
			if err := <-writeErr; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got %d bytes %.40q, want %d bytes %.40q", len(got), got, len(tc.want), tc.want)
			}
			c.Close()
			// The server counts after its writes; wait for the connection to finish.
			want := Counters{Connections: 1, BytesIn: uint64(len(tc.send)), BytesOut: uint64(len(tc.want))}
			waitCounters(t, func() Counters { return s.Counters().Sub(before) }, want)
		})
	}
}

// waitCounters polls until get returns want (the server updates counters after the
// client may already have its answer), failing after a second.
func waitCounters(t *testing.T, get func() Counters, want Counters) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		got := get()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters = %+v, want %+v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTCPEchoPartialGreeting(t *testing.T) {
	s := NewTCPEcho("tcp-2")
	r := startTCP(t, s)
	c := dialTCP(t, r.addr)
	// A prefix of the greeting that stops is plain data once the server stops waiting.
	steps := []struct{ send, want string }{
		{"who", "who"},
		{"ami\n", "ami\n"},
		{"whoami\n", "whoami\n"}, // no longer the first bytes
	}
	for _, st := range steps {
		if _, err := c.Write([]byte(st.send)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(st.want))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("after sending %q: %v", st.send, err)
		}
		if string(got) != st.want {
			t.Errorf("sent %q, got %q, want %q", st.send, got, st.want)
		}
	}
}

func TestWhoAmITCP(t *testing.T) {
	s := NewTCPEcho("tcp-3")
	r := startTCP(t, s)
	c := dialTCP(t, r.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name, err := WhoAmITCP(ctx, c)
	if err != nil || name != "tcp-3" {
		t.Fatalf("WhoAmITCP = %q, %v, want tcp-3", name, err)
	}
	// The connection goes on echoing, with no deadline left behind.
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo after whoami: %q, %v", got, err)
	}

	t.Run("silent peer", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c := dialTCP(t, l.Addr().String())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := WhoAmITCP(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WhoAmITCP against a silent peer = %v, want deadline exceeded", err)
		}
	})
}
