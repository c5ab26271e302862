package scenario

import "testing"

func TestTLSQuick(t *testing.T) {
	needTools(t, "haproxy", "nginx")
	all := []string{"xlb", "haproxy", "nginx"}
	runQuick(t, "tls", map[string][]string{"handshakes": all, "h2": all})
}
