package scenario

import (
	"testing"

	"github.com/xlbproject/xlb/controlplane/config"
)

func TestSNATConfigIsValid(t *testing.T) {
	if _, err := config.Load([]byte(snatXlbConfig()), t.TempDir()); err != nil {
		t.Errorf("snat scenario config rejected: %v\n%s", err, snatXlbConfig())
	}
}

func TestSNATQuick(t *testing.T) {
	needTools(t, "nft")
	both := []string{"xlb-xdp", "nftables"}
	runQuick(t, "snat", map[string][]string{"tcp": both, "udp": both, "pps": both})
}
