package scenario

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// One node dies under traffic: every flow through it is served again (the
// figures themselves are the benchmark's, not the test's), none breaks,
// and the lab is gone afterwards.
func TestFailoverQuick(t *testing.T) {
	needTools(t, "bird", "birdc", "ip")
	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := Run(ctx, "failover", Options{Quick: true, OutDir: t.TempDir(), Bench: benchBin, Xlbd: xlbdBin, Log: &log, Command: "test failover"})
	t.Logf("progress:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 1 | n1 |", "240 udp", "60 tcp", "0 flow(s) never recovered or broke"} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("the report lacks %q:\n%s", want, r.Body)
		}
	}
	ns, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if r.Cleanup.LabPrefix == "" || strings.Contains(string(ns), r.Cleanup.LabPrefix) {
		t.Errorf("lab %q left behind:\n%s", r.Cleanup.LabPrefix, ns)
	}
}
