package serve

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

func BenchmarkHTTPRootHandler(b *testing.B) {
	s := NewHTTP("bench")
	w := &discardWriter{h: make(http.Header)}
	req, err := http.NewRequest(http.MethodGet, "http://x/", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.ServeHTTP(w, req)
	}
}

// benchServe runs serve until the benchmark ends.
func benchServe(b *testing.B, serve func(ctx context.Context) error) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})
}

func BenchmarkHTTPRootLoopback(b *testing.B) {
	for _, proto := range []string{"http1", "h2c"} {
		b.Run(proto, func(b *testing.B) {
			s := NewHTTP("bench")
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			benchServe(b, func(ctx context.Context) error { return s.Serve(ctx, l) })
			tr := &http.Transport{}
			if proto == "h2c" {
				var p http.Protocols
				p.SetUnencryptedHTTP2(true)
				tr.Protocols = &p
			}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			url := "http://" + l.Addr().String() + "/"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

func BenchmarkTCPEcho(b *testing.B) {
	s := NewTCPEcho("bench")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, func(ctx context.Context) error { return s.Serve(ctx, l) })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 32<<10)
	got := make([]byte, len(msg))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUDPEcho(b *testing.B) {
	s := NewUDPEcho("bench")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, func(ctx context.Context) error { return s.Serve(ctx, pc) })
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	got := make([]byte, 2048)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(got); err != nil {
			b.Fatal(err)
		}
	}
}
