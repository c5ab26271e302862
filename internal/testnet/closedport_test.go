package testnet

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestClosedTCPPortRefuses(t *testing.T) {
	addr := ClosedTCPPort(t)
	// Many connects, as a test's retries would make: every one is refused,
	// none connects to itself.
	for range 200 {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("connected to %s", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want connection refused", addr, err)
		}
	}
	// Nobody else can take the port meanwhile.
	if l, err := net.Listen("tcp", addr.String()); err == nil {
		l.Close()
		t.Fatalf("could listen on the reserved %s", addr)
	}
}
