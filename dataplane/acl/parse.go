package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ParseEntries parses configuration entries: IPv4 or IPv6 addresses (a bare
// address is a /32 or /128 host entry) and CIDR prefixes. Host bits below the
// prefix length are accepted and cleared later by New. Every bad entry is
// reported, each error naming its index and value.
func ParseEntries(entries []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(entries))
	var errs []error
	for i, s := range entries {
		p, err := parseEntry(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("acl entry %d %q: %w", i, s, err))
			continue
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func parseEntry(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("empty entry")
	}
	if strings.Contains(s, "%") {
		// Zones are interface-local and mean nothing on the wire.
		return netip.Prefix{}, errors.New("IPv6 zones are not allowed")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR prefix: %w", err)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR prefix: %w", err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
