package serve

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func dialUDP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends p and returns the answer, or ok=false if none came within wait.
func exchange(t *testing.T, c net.Conn, p []byte, wait time.Duration) (answer []byte, ok bool) {
	t.Helper()
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 70000)
	n, err := c.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n], true
}

func TestUDPEcho(t *testing.T) {
	big := make([]byte, 60000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	type step struct {
		healthy bool
		send    string
		want    string
		noReply bool
	}
	steps := []step{
		{true, "hello", "hello", false},
		{true, "whoami", "udp-1", false},
		{true, "whoami\n", "whoami\n", false}, // only the exact datagram
		{true, "health", "ok", false},
		{true, "", "", false},
		{true, string(big), string(big), false},
		{false, "health", "", true}, // unhealthy: silence, so checks time out
		{false, "whoami", "udp-1", false},
		{false, "hello", "hello", false},
		{true, "health", "ok", false},
	}
	for _, cfg := range []struct {
		name    string
		workers int
		wrap    bool
	}{
		{"one worker", 0, false},
		{"three workers", 3, false},
		{"generic PacketConn", 2, true},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			s := &UDPEcho{Name: "udp-1", Workers: cfg.workers}
			r := startUDP(t, s, cfg.wrap)
			c := dialUDP(t, r.addr)
			var want Counters
			for _, st := range steps {
				s.SetHealthy(st.healthy)
				wait := 5 * time.Second
				if st.noReply {
					wait = 200 * time.Millisecond
				}
				got, ok := exchange(t, c, []byte(st.send), wait)
				want.DatagramsIn++
				want.BytesIn += uint64(len(st.send))
				switch {
				case st.noReply && ok:
					t.Errorf("healthy=%v %.20q: answered %.20q, want no answer", st.healthy, st.send, got)
				case !st.noReply && !ok:
					t.Errorf("healthy=%v %.20q: no answer, want %.20q", st.healthy, st.send, st.want)
				case !st.noReply && string(got) != st.want:
					t.Errorf("healthy=%v %.20q: answered %.20q, want %.20q", st.healthy, st.send, got, st.want)
				}
				if !st.noReply {
					want.DatagramsOut++
					want.BytesOut += uint64(len(st.want))
				}
			}
			waitCounters(t, s.Counters, want)
		})
	}
}

func TestWhoAmIUDP(t *testing.T) {
	s := NewUDPEcho("udp-2")
	r := startUDP(t, s, false)
	c := dialUDP(t, r.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name, err := WhoAmIUDP(ctx, c)
	if err != nil || name != "udp-2" {
		t.Fatalf("WhoAmIUDP = %q, %v, want udp-2", name, err)
	}

	t.Run("no answer", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never answers
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		c := dialUDP(t, pc.LocalAddr().String())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := WhoAmIUDP(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WhoAmIUDP against a silent peer = %v, want deadline exceeded", err)
		}
	})
}
