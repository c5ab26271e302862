package vipsock

import (
	"context"
	"testing"
)

// A VIP that is on no interface of this host can still be bound: that is
// what IP_FREEBIND is for (TEST-NET-3 is never assigned here).
func TestBindsAnAddressNotOnThisHost(t *testing.T) {
	l, err := ListenTCP(context.Background(), "203.0.113.77:0")
	if err != nil {
		t.Fatalf("tcp: %v", err)
	}
	l.Close()
	u, err := ListenUDP(context.Background(), "203.0.113.77:0")
	if err != nil {
		t.Fatalf("udp: %v", err)
	}
	u.Close()
}
