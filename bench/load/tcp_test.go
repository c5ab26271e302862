package load

import (
	"context"
	"testing"
	"time"
)

func TestTCPConnectCountsMatchServer(t *testing.T) {
	tests := []struct {
		name string
		opts TCPOptions
	}{
		{"closed loop", TCPOptions{Connections: 4, Ops: 500}},
		{"closed loop, duration", TCPOptions{Connections: 2, Duration: 200 * time.Millisecond, Payload: 1000}},
		{"open loop", TCPOptions{Rate: 400, Duration: 500 * time.Millisecond}},
		{"closed with RST", TCPOptions{Connections: 2, Ops: 200, Reset: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr := tcpBackend(t)
			o := tt.opts
			o.Addr = addr
			r, err := TCP(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			got := settled(srv.Counters)
			if r.Ops == 0 || r.Ops != got.Connections || r.Connections != r.Ops {
				t.Errorf("ops %d, connections %d, server counted %d connections", r.Ops, r.Connections, got.Connections)
			}
			if r.BytesSent != got.BytesIn || r.BytesReceived != got.BytesOut || r.BytesSent != r.Ops*uint64(orDefaultInt(o.Payload, DefaultConnectPayload)) {
				t.Errorf("bytes sent %d received %d, server in %d out %d", r.BytesSent, r.BytesReceived, got.BytesIn, got.BytesOut)
			}
			if len(r.Errors) != 0 || r.Kind != "tcp-connect" {
				t.Errorf("kind %s, errors %v", r.Kind, r.Errors)
			}
			if o.Ops > 0 && r.Ops != o.Ops {
				t.Errorf("ops %d, want %d", r.Ops, o.Ops)
			}
			if o.Rate > 0 {
				checkOpenLoop(t, r, o.Rate, o.Duration)
			}
		})
	}
}

func TestTCPThroughput(t *testing.T) {
	srv, addr := tcpBackend(t)
	r, err := TCP(t.Context(), TCPOptions{Addr: addr, Mode: TCPThroughput, Connections: 3, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := settled(srv.Counters)
	if r.BytesSent == 0 || r.BytesSent != got.BytesIn || r.BytesReceived != got.BytesOut || r.BytesReceived != r.BytesSent {
		t.Errorf("sent %d received %d, server in %d out %d", r.BytesSent, r.BytesReceived, got.BytesIn, got.BytesOut)
	}
	if r.Connections != 3 || got.Connections != 3 || len(r.Errors) != 0 {
		t.Errorf("connections %d (server %d), errors %v", r.Connections, got.Connections, r.Errors)
	}
	if r.Ops != r.BytesReceived/DefaultThroughputPayload || r.Latency.P50 <= 0 {
		t.Errorf("%d chunks echoed for %d bytes; latency %+v", r.Ops, r.BytesReceived, r.Latency)
	}
	if want := float64(r.BytesReceived) / r.Duration.Seconds(); r.Rate != want {
		t.Errorf("rate %.0f, want bytes/s %.0f", r.Rate, want)
	}

	// A chunk limit stops the run.
	r, err = TCP(t.Context(), TCPOptions{Addr: addr, Mode: TCPThroughput, Connections: 2, Ops: 100, Payload: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 100 || r.BytesReceived != 100_000 {
		t.Errorf("limit 100 chunks: %d ops, %d bytes", r.Ops, r.BytesReceived)
	}
}

func TestTCPErrors(t *testing.T) {
	r, err := TCP(t.Context(), TCPOptions{Addr: closedPort(t), Connections: 2, Ops: 30})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 0 || r.Errors[ErrConnect] != 30 {
		t.Errorf("ops %d, errors %v: want 30 connect errors", r.Ops, r.Errors)
	}
	// A server that accepts and closes at once: the echo never comes.
	r, err = TCP(t.Context(), TCPOptions{Addr: closingServer(t), Connections: 2, Ops: 30, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 0 || r.Errors[ErrEOF]+r.Errors[ErrReset] != 30 {
		t.Errorf("ops %d, errors %v: want 30 eof or reset", r.Ops, r.Errors)
	}
	r, err = TCP(t.Context(), TCPOptions{Addr: closedPort(t), Mode: TCPThroughput, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors[ErrConnect] == 0 || r.Ops != 0 {
		t.Errorf("throughput to a closed port: ops %d, errors %v", r.Ops, r.Errors)
	}
	for _, o := range []TCPOptions{{}, {Addr: "x:1", Mode: "bulk"}, {Addr: "x:1", Mode: TCPThroughput, Rate: 5}, {Addr: "x:1", Payload: -1}} {
		if _, err := TCP(t.Context(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// closingServer accepts connections and closes them at once.
func closingServer(t *testing.T) string {
	l := listen(t)
	backend(t, func(ctx context.Context) error {
		defer context.AfterFunc(ctx, func() { l.Close() })()
		for {
			c, err := l.Accept()
			if err != nil {
				return nil
			}
			c.Close()
		}
	})
	return l.Addr().String()
}
