package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xlbproject/xlb/internal/netlab"
)

// TestXDPCommand runs `xlb-bench xdp` between two lab namespaces and reads
// its JSON report: exactly --count frames offered and received.
func TestXDPCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("xlb-bench xdp needs root, and CI runs as root")
		}
		t.Skip("xlb-bench xdp needs root")
	}
	lab := netlab.New(t, netlab.Topology{
		Hosts: []netlab.Host{{Name: "gen"}, {Name: "sink"}},
		Links: []netlab.Link{{
			A: netlab.Endpoint{Host: "gen", Name: "veth0", MAC: "02:00:00:00:02:01", Addrs: []string{"10.98.0.1/24"}},
			B: netlab.Endpoint{Host: "sink", Name: "veth0", MAC: "02:00:00:00:02:02", Addrs: []string{"10.98.0.2/24"}},
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []string{
		"--netns", lab.NetNS("gen"), "--dev", "veth0", "--dst-mac", "02:00:00:00:02:02",
		"--src", "10.98.0.1", "--dst", "10.98.0.2", "--dport", "7777",
		"--sink-netns", lab.NetNS("sink"), "--sink-dev", "veth0", "--json",
	}
	tests := []struct {
		name  string
		args  []string
		count uint64
	}{
		{"udp", []string{"--count", "100000", "--flows", "100"}, 100000},
		{"syn paced", []string{"--proto", "syn", "--size", "128", "--count", "5000", "--rate", "50000"}, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := runXDP(ctx, append(append([]string{}, base...), tt.args...), &out); err != nil {
				t.Fatal(err)
			}
			var rep xdpReport
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if rep.Offered.Frames != tt.count || rep.Received == nil || rep.Received.Frames != tt.count || rep.Received.Loss != 0 {
				t.Errorf("report: %s", out.String())
			}
			if rep.Offered.Mpps <= 0 || rep.Received.Mpps <= 0 {
				t.Errorf("rates missing: %s", out.String())
			}
			t.Logf("offered %.3f Mpps, received %.3f Mpps", rep.Offered.Mpps, rep.Received.Mpps)
		})
	}

	t.Run("errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"--dev", "veth0"},
			append(append([]string{}, base[:10]...), "--count", "1", "--proto", "icmp"),
			append(append([]string{}, base[:10]...), "--count", "1", "--size", "20"),
			append(append([]string{}, base[:10]...), "--count", "1", "--netns", "xlbt-no-such-ns"),
		} {
			err := runXDP(ctx, args, &bytes.Buffer{})
			t.Logf("%q: %v", args[len(args)-2:], err)
			if err == nil || !strings.HasPrefix(err.Error(), "xdp: ") {
				t.Errorf("%q: err = %v", args, err)
			}
		}
	})
}
