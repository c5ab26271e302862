package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xlbproject/xlb/internal/netlab"
)

// xlbd announces its VIP in the kernel table the routing daemon exports
// while a backend can serve it, withdraws it when none can, and withdraws it
// first thing when it stops.
func TestAnnounceFollowsHealthAndShutdown(t *testing.T) {
	e := start(t, 2, nodeConfig(`{xdp_mode: off, announce: {mode: active_standby, route_table: 210, priority: 30}}`, `
      - {address: 198.19.0.11}
      - {address: 198.19.0.12}`, `
      - {protocol: tcp, port: 7000, health_check: `+fastTCPCheck+`}`))
	table := func() string {
		out, err := e.lab.Run(context.Background(), netlab.HostGateway, "ip", "route", "show", "table", "210")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	route := netlab.VIP + " dev lo proto 198 scope host metric 30"
	waitTable := func(what string, want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Contains(table(), route) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: table 210 is %q", what, table())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitTable("announced at start", true)
	if got := e.metric(`xlb_announce_vip{vip="` + netlab.VIP + `"}`); got != 1 {
		t.Errorf("xlb_announce_vip = %v, want 1", got)
	}

	// Both backends down: nothing to serve the VIP with.
	for _, be := range []string{"be1", "be2"} {
		if err := e.backends.ByName(be).StopTCP(); err != nil {
			t.Fatal(err)
		}
	}
	waitTable("withdrawn with no healthy backend", false)
	if err := e.backends.ByName("be2").StartTCP(); err != nil {
		t.Fatal(err)
	}
	waitTable("announced again with one backend back", true)

	// SIGTERM: withdrawn before xlbd exits.
	if err := e.xlbd.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.xlbd.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("xlbd did not stop")
	}
	if s := table(); strings.Contains(s, netlab.VIP) {
		t.Errorf("after stop, table 210 still has the VIP:\n%s", s)
	}
}
