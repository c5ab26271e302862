package load

import (
	"context"
	"errors"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestUDPCountsMatchServer(t *testing.T) {
	tests := []struct {
		name string
		opts UDPOptions
	}{
		{"closed loop", UDPOptions{Concurrency: 4, Ops: 2000}},
		{"closed loop, duration", UDPOptions{Concurrency: 2, Duration: 200 * time.Millisecond, Payload: 500}},
		{"open loop", UDPOptions{Rate: 2000, Duration: 500 * time.Millisecond, Concurrency: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr := udpBackend(t)
			o := tt.opts
			o.Addr = addr
			r, err := UDP(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			got := settled(srv.Counters)
			if r.Sent == 0 || r.Sent != got.DatagramsIn || r.Ops != got.DatagramsOut || r.Ops != r.Sent || r.Loss != 0 {
				t.Errorf("sent %d, answered %d (loss %g); server in %d out %d", r.Sent, r.Ops, r.Loss, got.DatagramsIn, got.DatagramsOut)
			}
			if r.BytesSent != got.BytesIn || r.BytesReceived != got.BytesOut {
				t.Errorf("bytes sent %d received %d; server in %d out %d", r.BytesSent, r.BytesReceived, got.BytesIn, got.BytesOut)
			}
			if len(r.Errors) != 0 || r.Late != 0 {
				t.Errorf("errors %v, late %d", r.Errors, r.Late)
			}
			if o.Ops > 0 && r.Sent != o.Ops {
				t.Errorf("sent %d, want %d", r.Sent, o.Ops)
			}
			if o.Rate > 0 {
				checkOpenLoop(t, r, o.Rate, o.Duration)
			}
		})
	}
}

// dropEvery echoes datagrams but drops every nth, and echoes the one before it late
// by delay (when delay > 0).
func dropEvery(t *testing.T, n uint64, delay time.Duration) (addr string, dropped *atomic.Uint64) {
	t.Helper()
	pc := udpListen(t)
	dropped = new(atomic.Uint64)
	backend(t, func(ctx context.Context) error {
		stop := context.AfterFunc(ctx, func() { pc.Close() })
		defer stop()
		buf := make([]byte, 65536)
		for i := uint64(1); ; i++ {
			m, from, err := pc.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return nil
			} else if err != nil {
				return err
			}
			switch {
			case i%n == 0:
				dropped.Add(1)
				continue
			case delay > 0 && i%n == n-1:
				time.Sleep(delay)
			}
			pc.WriteToUDPAddrPort(buf[:m], from)
		}
	})
	return pc.LocalAddr().String(), dropped
}

func TestUDPLoss(t *testing.T) {
	for _, rate := range []float64{0, 1000} {
		addr, dropped := dropEvery(t, 4, 0)
		r, err := UDP(t.Context(), UDPOptions{Addr: addr, Concurrency: 1, Rate: rate, Ops: 100, Timeout: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if r.Sent != 100 || dropped.Load() != 25 || r.Ops != 75 || r.Loss != 0.25 || r.Errors[ErrTimeout] != 25 {
			t.Errorf("rate %g: sent %d, answered %d, loss %g, errors %v; server dropped %d", rate, r.Sent, r.Ops, r.Loss, r.Errors, dropped.Load())
		}
	}
}

// An answer that comes after its timeout is lost, counted late, and not mistaken
// for the answer to the next datagram.
func TestUDPLateAnswers(t *testing.T) {
	addr, _ := dropEvery(t, 1000, 60*time.Millisecond) // the 999th answer comes 60 ms late
	r, err := UDP(t.Context(), UDPOptions{Addr: addr, Concurrency: 1, Ops: 1000, Timeout: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 1000 || r.Ops != 998 || r.Late != 1 || r.Errors[ErrTimeout] != 2 {
		t.Errorf("sent %d, answered %d, late %d, errors %v; want 998 answered, 1 late, 2 timeouts", r.Sent, r.Ops, r.Late, r.Errors)
	}
}

// A closed UDP port answers with ICMP port unreachable, which the connected socket
// reports as refused: a connect error, not a timeout.
func TestUDPClosedPort(t *testing.T) {
	pc := udpListen(t)
	addr := pc.LocalAddr().String()
	pc.Close()
	r, err := UDP(t.Context(), UDPOptions{Addr: addr, Concurrency: 1, Ops: 20})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 0 || r.Errors[ErrConnect] != 20 || len(r.Errors) != 1 {
		t.Errorf("ops %d, errors %v: want 20 connect errors", r.Ops, r.Errors)
	}
}

func TestUDPBadOptions(t *testing.T) {
	for _, o := range []UDPOptions{{}, {Addr: "x:1", Payload: 70000}, {Addr: "x:1", Rate: math.Inf(1)}} {
		if _, err := UDP(t.Context(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
