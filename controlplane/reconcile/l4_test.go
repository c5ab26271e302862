package reconcile

import (
	"strings"
	"testing"

	"github.com/xlbproject/xlb/controlplane/config"
	"github.com/xlbproject/xlb/dataplane/limit"
)

// TestCompileL4Bandwidth: a userspace tcp or udp listener gets the shapers
// of its load balancer's bandwidth, its own reservation or a member of the
// share, the same the HTTP proxy's listeners get; none without a bandwidth.
func TestCompileL4Bandwidth(t *testing.T) {
	cfg, err := config.Load([]byte(`
node: {xdp_mode: off}
load_balancers:
  - id: lb-game
    address: 203.0.113.40
    bandwidth_mbps: 100
    servers: [{address: 10.0.1.10}]
    listeners:
      - {protocol: tcp, port: 7000, bandwidth_mbps: 40}
      - {protocol: udp, port: 7001}
  - id: lb-free
    address: 203.0.113.41
    servers: [{address: 10.0.1.10}]
    listeners:
      - {protocol: tcp, port: 7000}
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := limit.NewRegistry()
	l4cfg, err := CompileL4(cfg, NewBackends(), Placement{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	if len(l4cfg.Listeners) != 3 {
		t.Fatalf("%d listeners, want 3", len(l4cfg.Listeners))
	}
	for _, l := range l4cfg.Listeners {
		switch {
		case strings.HasPrefix(l.Name, "lb-free"):
			if l.BandwidthIn != nil || l.BandwidthOut != nil {
				t.Errorf("%s: shaped without a bandwidth", l.Name)
			}
		default:
			in, out := reg.LB("lb-game").Bandwidth(l.Name, map[bool]uint64{true: 40 * bytesPerMbit}[l.Addr.Port() == 7000])
			if l.BandwidthIn == nil || l.BandwidthIn != in || l.BandwidthOut != out {
				t.Errorf("%s: shapers %p %p, want the load balancer's %p %p", l.Name, l.BandwidthIn, l.BandwidthOut, in, out)
			}
		}
	}
}
