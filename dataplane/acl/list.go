package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// MaxEntries is the largest list New accepts: the configuration limit, and
// the size the XDP engine gives its LPM tries.
const MaxEntries = 300

// Mode says what a listed source means.
type Mode uint8

const (
	// Allow admits only the listed sources; an empty allow list admits no one.
	Allow Mode = iota + 1
	// Deny admits everyone but the listed sources.
	Deny
)

func (m Mode) String() string {
	switch m {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	default:
		return fmt.Sprintf("Mode(%d)", uint8(m))
	}
}

// List is a compiled, immutable access list. A nil *List is a disabled list
// and allows every source.
type List struct {
	mode    Mode
	entries []netip.Prefix
	// v4 and v6 are the entries of each family merged into sorted,
	// disjoint, non-adjacent address ranges: a lookup is one binary search.
	v4 []range4
	v6 []range6
}

type range4 struct{ lo, hi uint32 }

type range6 struct{ lo, hi uint128 }

// uint128 is an IPv6 address as two big-endian halves.
type uint128 struct{ hi, lo uint64 }

func (a uint128) less(b uint128) bool {
	return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo)
}

// next returns a+1 and whether it did not overflow.
func (a uint128) next() (uint128, bool) {
	if a.lo != ^uint64(0) {
		return uint128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return uint128{a.hi + 1, 0}, true
	}
	return uint128{}, false
}

// New compiles a list. Prefixes are normalised (see Entries); an invalid
// prefix, an unknown mode or more than MaxEntries prefixes is an error.
func New(mode Mode, prefixes []netip.Prefix) (*List, error) {
	if mode != Allow && mode != Deny {
		return nil, fmt.Errorf("acl mode %v: must be allow or deny", mode)
	}
	if len(prefixes) > MaxEntries {
		return nil, fmt.Errorf("acl has %d entries: at most %d allowed", len(prefixes), MaxEntries)
	}
	entries := make([]netip.Prefix, 0, len(prefixes))
	for i, p := range prefixes {
		if !p.IsValid() {
			return nil, fmt.Errorf("acl entry %d %q: %w", i, p.String(), errInvalidPrefix)
		}
		entries = append(entries, normalize(p))
	}
	slices.SortFunc(entries, comparePrefix)
	entries = slices.Compact(entries)

	l := &List{mode: mode, entries: entries}
	for _, p := range entries {
		if p.Addr().Is4() {
			l.v4 = append(l.v4, bounds4(p))
		} else {
			l.v6 = append(l.v6, bounds6(p))
		}
	}
	l.v4 = merge4(l.v4)
	l.v6 = merge6(l.v6)
	return l, nil
}

var errInvalidPrefix = errors.New("invalid prefix")

// normalize clears host bits and turns IPv4-mapped prefixes into IPv4 ones.
func normalize(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// comparePrefix orders IPv4 before IPv6, then by address, then shorter first.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func bounds4(p netip.Prefix) range4 {
	b := p.Addr().As4()
	lo := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	host := uint32(0)
	if p.Bits() < 32 {
		host = ^uint32(0) >> p.Bits()
	}
	return range4{lo, lo | host}
}

func bounds6(p netip.Prefix) range6 {
	lo := addr128(p.Addr())
	var host uint128
	switch bits := p.Bits(); {
	case bits == 0:
		host = uint128{^uint64(0), ^uint64(0)}
	case bits < 64:
		host = uint128{^uint64(0) >> bits, ^uint64(0)}
	case bits < 128:
		host = uint128{0, ^uint64(0) >> (bits - 64)}
	}
	return range6{lo, uint128{lo.hi | host.hi, lo.lo | host.lo}}
}

func addr128(a netip.Addr) uint128 {
	b := a.As16()
	var u uint128
	for i := 0; i < 8; i++ {
		u.hi = u.hi<<8 | uint64(b[i])
		u.lo = u.lo<<8 | uint64(b[i+8])
	}
	return u
}

func merge4(rs []range4) []range4 {
	slices.SortFunc(rs, func(a, b range4) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1].hi == ^uint32(0) || r.lo <= out[n-1].hi+1) {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

func merge6(rs []range6) []range6 {
	slices.SortFunc(rs, func(a, b range6) int {
		switch {
		case a.lo.less(b.lo):
			return -1
		case b.lo.less(a.lo):
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			after, ok := last.hi.next()
			if !ok || !after.less(r.lo) { // overlapping or adjacent
				if last.hi.less(r.hi) {
					last.hi = r.hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// Allowed reports whether a packet or connection from addr may pass. A nil
// list allows everyone. An invalid addr matches no entry.
func (l *List) Allowed(addr netip.Addr) bool {
	if l == nil {
		return true
	}
	return l.contains(addr) == (l.mode == Allow)
}

// contains reports whether addr falls in any entry of its family.
func (l *List) contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	switch {
	case addr.Is4():
		b := addr.As4()
		x := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		// Find the last range starting at or below x.
		lo, hi := 0, len(l.v4)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if l.v4[mid].lo <= x {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return lo > 0 && x <= l.v4[lo-1].hi
	case addr.Is6():
		x := addr128(addr)
		lo, hi := 0, len(l.v6)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if !x.less(l.v6[mid].lo) {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return lo > 0 && !l.v6[lo-1].hi.less(x)
	}
	return false
}

// Mode returns the list's mode. It must not be called on a nil list.
func (l *List) Mode() Mode { return l.mode }

// Len returns the number of normalised entries; 0 for a nil list.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.entries)
}

// Entries returns the normalised prefixes: host bits cleared, IPv4-mapped
// prefixes turned into IPv4, exact duplicates removed, IPv4 first, then by
// address and length. Overlapping prefixes are kept as given. These are the
// keys the XDP engine writes into its per-family LPM tries (a match in the
// trie means "listed"), so the kernel and the userspace engines enforce the
// same list. The caller gets its own copy.
func (l *List) Entries() []netip.Prefix {
	if l == nil {
		return nil
	}
	return slices.Clone(l.entries)
}
