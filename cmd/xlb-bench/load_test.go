package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xlbproject/xlb/bench/load"
	"github.com/xlbproject/xlb/bench/serve"
)

// serveBackends runs the three test backends on loopback until the test ends.
func serveBackends(t *testing.T) (httpURL, tcpAddr, udpAddr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ul, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 3)
	go func() { serve.NewHTTP("b1").Serve(ctx, hl); done <- struct{}{} }()
	go func() { serve.NewTCPEcho("b1").Serve(ctx, tl); done <- struct{}{} }()
	go func() { serve.NewUDPEcho("b1").Serve(ctx, ul); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("backend did not stop")
				return
			}
		}
	})
	return "http://" + hl.Addr().String() + "/", tl.Addr().String(), ul.LocalAddr().String()
}

func TestLoadCommands(t *testing.T) {
	httpURL, tcpAddr, udpAddr := serveBackends(t)
	tests := []struct {
		args []string
		kind string
		ops  uint64
	}{
		{[]string{"http", "-n", "50", "-c", "2", "-json", httpURL}, "http", 50},
		{[]string{"http", httpURL, "-n", "20", "-proto", "h2c", "-H", "X-A: 1", "-host", "h", "-json"}, "http", 20},
		{[]string{"http", "-n", "10", "-new-conn", "-m", "POST", "-body", "x", "-json", httpURL + "echo"}, "http", 10},
		{[]string{"http", "-n", "10", "-new-conn", "-reset", "-json", httpURL}, "http", 10},
		{[]string{"tcp", "-n", "30", "-payload", "10", "-json", tcpAddr}, "tcp-connect", 30},
		{[]string{"tcp", tcpAddr, "-mode", "connect", "-reset", "-n", "30", "-json"}, "tcp-connect", 30},
		{[]string{"tcp", "-mode", "throughput", "-n", "40", "-c", "2", "-json", tcpAddr}, "tcp-throughput", 40},
		{[]string{"udp", "-n", "100", "-rate", "1000", "-json", udpAddr}, "udp", 100},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(t.Context(), tt.args, &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			var r load.Result
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("output is not a result: %v\n%s", err, out.String())
			}
			if r.Kind != tt.kind || r.Ops != tt.ops || len(r.Errors) != 0 {
				t.Errorf("kind %s, ops %d, errors %v; want %s, %d ops", r.Kind, r.Ops, r.Errors, tt.kind, tt.ops)
			}
		})
	}
}

func TestLoadSummary(t *testing.T) {
	httpURL, _, _ := serveBackends(t)
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"http", "-n", "20", httpURL + "status/503"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"requests", "p99", "status_5xx 20"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestLoadCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"http"},
		{"http", "-c", "x", "http://127.0.0.1:1/"},
		{"http", "-H", "novalue", "http://127.0.0.1:1/"},
		{"http", "ftp://x/"},
		{"tcp", "-mode", "bulk", "127.0.0.1:1"},
		{"udp", "a:1", "b:2"},
	} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), args, &out, &errOut); code == 0 {
			t.Errorf("%q: exit 0", args)
		}
	}
}
