package xdp

import (
	"net/netip"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xlbproject/xlb/dataplane/snat"
)

func TestWarnAbove80PercentOfAHostsPorts(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	e := &Engine{log: zap.New(core)}
	plan, err := snat.New(snat.Config{PublicIPs: []netip.Addr{netip.MustParseAddr("203.0.113.20")},
		Sources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/27")}})
	if err != nil {
		t.Fatal(err)
	}
	x := &xpool{cfg: SNATPool{Name: "egress"}, plan: plan, warned: map[snat.HostKey]bool{}}
	host := snat.HostKey{Addr: netip.MustParseAddr("10.0.0.1"), Proto: snat.TCP}
	busy := func(n int) *natUsage {
		u := newNATUsage()
		u.busiest[host] = n
		return u
	}
	e.warnBusyHosts(x, busy(819)) // 80.0% of 1024: not above
	if logs.Len() != 0 {
		t.Fatalf("warned at 819 of 1024 ports: %v", logs.All())
	}
	e.warnBusyHosts(x, busy(820))
	e.warnBusyHosts(x, busy(900)) // still above: once is enough
	if logs.Len() != 1 {
		t.Fatalf("%d warnings above 80%%, want 1", logs.Len())
	}
	w := logs.All()[0].ContextMap()
	if w["host"] != "10.0.0.1" || w["pool"] != "egress" || w["in_use"] != int64(820) || w["allocated"] != int64(1024) {
		t.Errorf("warning fields %v", w)
	}
	e.warnBusyHosts(x, busy(700)) // under 70%: armed again
	e.warnBusyHosts(x, busy(1000))
	if logs.Len() != 2 {
		t.Errorf("%d warnings after falling under 70%% and rising again, want 2", logs.Len())
	}
}
