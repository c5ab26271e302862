package vipsock

import (
	"os"

	"context"
	"golang.org/x/sys/unix"
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

// A UDP listener takes bursts from many clients: its receive buffer is
// raised past the kernel's default (root may exceed rmem_max).
func TestUDPReceiveBuffer(t *testing.T) {
	u, err := ListenUDP(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	rc, err := u.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := rc.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	// The kernel reports twice the size set (its bookkeeping share).
	want := udpReadBuffer
	if os.Geteuid() != 0 {
		want = 0 // capped at rmem_max; only check it was not lowered
	}
	if got < want || got < 212992 {
		t.Errorf("SO_RCVBUF = %d, want at least %d", got, max(want, 212992))
	}
}
