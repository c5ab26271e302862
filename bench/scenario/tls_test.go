package scenario

import "testing"

func TestTLSQuick(t *testing.T) {
	needTools(t, "haproxy", "nginx", "h2load")
	all := []string{"xlb", "haproxy", "nginx"}
	runQuick(t, "tls", map[string][]string{"handshakes": all, "h2": all, "h2load": all})
}
