package l4

import (
	"errors"
	"net/netip"
	"syscall"
)

// flowKey hashes a client's address and port for maglev; a fixed function so
// that every run maps a client the same way.
func flowKey(client netip.AddrPort) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	a := client.Addr().As16()
	for _, b := range a {
		h = (h ^ uint64(b)) * prime
	}
	p := client.Port()
	h = (h ^ uint64(p>>8)) * prime
	h = (h ^ uint64(p&0xff)) * prime
	return h
}

// isConnRefused reports an ICMP port unreachable seen on a connected UDP socket.
func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
