package acl

import (
	"net/netip"
	"testing"
)

// naiveContains is the reference: a linear scan with the package's family
// rule (mapped clients and mapped entries count as IPv4) written out again.
func naiveContains(prefixes []netip.Prefix, addr netip.Addr) bool {
	if addr.Is4In6() {
		addr = addr.Unmap()
	}
	for _, p := range prefixes {
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// decodePrefixes turns fuzz bytes into prefixes: a tag byte picks the family
// (even: IPv4, odd: IPv6, tag%4==3: IPv4-mapped IPv6), then one length byte
// and the address bytes.
func decodePrefixes(data []byte) []netip.Prefix {
	var out []netip.Prefix
	for len(data) > 0 && len(out) < MaxEntries {
		tag := data[0]
		data = data[1:]
		if len(data) == 0 {
			break
		}
		bitsByte := data[0]
		data = data[1:]
		switch {
		case tag%2 == 0:
			var b [4]byte
			n := copy(b[:], data)
			data = data[n:]
			out = append(out, netip.PrefixFrom(netip.AddrFrom4(b), int(bitsByte)%33))
		case tag%4 == 3:
			var b [4]byte
			n := copy(b[:], data)
			data = data[n:]
			a := netip.AddrFrom16(netip.AddrFrom4(b).As16())
			out = append(out, netip.PrefixFrom(a, 96+int(bitsByte)%33))
		default:
			var b [16]byte
			n := copy(b[:], data)
			data = data[n:]
			out = append(out, netip.PrefixFrom(netip.AddrFrom16(b), int(bitsByte)%129))
		}
	}
	return out
}

// probes returns the fuzzed address plus the first and last address of every
// prefix and their neighbours, in native and mapped forms, where boundary
// bugs live.
func probes(prefixes []netip.Prefix, raw []byte) []netip.Addr {
	var out []netip.Addr
	switch len(raw) {
	case 4:
		out = append(out, netip.AddrFrom4([4]byte(raw)))
	case 16:
		out = append(out, netip.AddrFrom16([16]byte(raw)))
	}
	for _, p := range prefixes {
		p = p.Masked()
		first, last := p.Addr(), lastAddr(p)
		for _, a := range []netip.Addr{first, last, first.Prev(), last.Next()} {
			if a.IsValid() {
				out = append(out, a)
				if a.Is4() {
					out = append(out, netip.AddrFrom16(a.As16()))
				}
			}
		}
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func FuzzAllowed(f *testing.F) {
	f.Add([]byte{0, 24, 198, 51, 100, 0}, []byte{198, 51, 100, 7}, false)
	f.Add([]byte{0, 8, 10, 0, 0, 0, 0, 16, 10, 1, 0, 0, 0, 32, 11, 1, 1, 1}, []byte{10, 1, 2, 3}, true)
	f.Add([]byte{1, 32, 0x20, 0x01, 0x0d, 0xb8}, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, false)
	f.Add([]byte{3, 24, 203, 0, 113, 0}, []byte{203, 0, 113, 9}, true)
	f.Add([]byte{1, 0}, []byte{192, 0, 2, 1}, true)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 128, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, []byte{}, false)
	f.Add([]byte{0, 25, 10, 0, 0, 0, 0, 25, 10, 0, 0, 128, 0, 31, 10, 0, 1, 2}, []byte{10, 0, 1, 1}, false)
	f.Add([]byte{}, []byte{1, 2, 3, 4}, false)

	f.Fuzz(func(t *testing.T, entries, addr []byte, deny bool) {
		prefixes := decodePrefixes(entries)
		mode := Allow
		if deny {
			mode = Deny
		}
		l, err := New(mode, prefixes)
		if err != nil {
			t.Fatalf("New(%v): %v", prefixes, err)
		}
		for _, a := range probes(prefixes, addr) {
			want := naiveContains(prefixes, a) == !deny
			if got := l.Allowed(a); got != want {
				t.Fatalf("mode %v, entries %v: Allowed(%s) = %v, naive scan says %v", mode, prefixes, a, got, want)
			}
		}
	})
}
