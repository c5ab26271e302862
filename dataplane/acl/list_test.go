package acl

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func mustList(t testing.TB, mode Mode, entries ...string) *List {
	t.Helper()
	ps, err := ParseEntries(entries)
	if err != nil {
		t.Fatalf("ParseEntries(%q): %v", entries, err)
	}
	l, err := New(mode, ps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

func TestAllowed(t *testing.T) {
	type probe struct {
		addr string
		want bool
	}
	tests := []struct {
		name    string
		mode    Mode
		entries []string
		probes  []probe
	}{
		{
			name:    "allow v4 cidr",
			mode:    Allow,
			entries: []string{"198.51.100.0/24"},
			probes: []probe{
				{"198.51.100.0", true}, {"198.51.100.255", true}, {"198.51.100.7", true},
				{"198.51.99.255", false}, {"198.51.101.0", false}, {"10.0.0.1", false},
				{"2001:db8::1", false},
			},
		},
		{
			name:    "deny v4 cidr",
			mode:    Deny,
			entries: []string{"198.51.100.0/24"},
			probes: []probe{
				{"198.51.100.9", false}, {"198.51.101.9", true}, {"2001:db8::1", true},
			},
		},
		{
			name:    "host entries",
			mode:    Allow,
			entries: []string{"192.0.2.1", "2001:db8::5"},
			probes: []probe{
				{"192.0.2.1", true}, {"192.0.2.2", false}, {"192.0.2.0", false},
				{"2001:db8::5", true}, {"2001:db8::4", false}, {"2001:db8::6", false},
			},
		},
		{
			name:    "allow v6 cidr",
			mode:    Allow,
			entries: []string{"2001:db8:1::/48"},
			probes: []probe{
				{"2001:db8:1::", true}, {"2001:db8:1:ffff:ffff:ffff:ffff:ffff", true},
				{"2001:db8:2::", false}, {"2001:db8:0:ffff::1", false}, {"198.51.100.1", false},
			},
		},
		{
			name:    "overlapping prefixes",
			mode:    Allow,
			entries: []string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "11.0.0.0/8", "2001:db8::/32", "2001:db8:ff::/48"},
			probes: []probe{
				{"10.1.2.3", true}, {"10.200.0.1", true}, {"11.255.255.255", true},
				{"12.0.0.0", false}, {"9.255.255.255", false},
				{"2001:db8:ff::1", true}, {"2001:db8:1::1", true}, {"2001:db9::", false},
			},
		},
		{
			name:    "adjacent prefixes",
			mode:    Deny,
			entries: []string{"10.0.0.0/25", "10.0.0.128/25", "10.0.2.0/24"},
			probes: []probe{
				{"10.0.0.0", false}, {"10.0.0.127", false}, {"10.0.0.128", false}, {"10.0.0.255", false},
				{"10.0.1.0", true}, {"10.0.2.200", false}, {"10.0.3.0", true},
			},
		},
		{
			name:    "mapped client matches v4 entry",
			mode:    Allow,
			entries: []string{"198.51.100.0/24"},
			probes: []probe{
				{"::ffff:198.51.100.20", true}, {"::ffff:198.51.101.20", false},
			},
		},
		{
			name:    "mapped entry is a v4 entry",
			mode:    Deny,
			entries: []string{"::ffff:203.0.113.0/120"},
			probes: []probe{
				{"203.0.113.77", false}, {"::ffff:203.0.113.77", false}, {"203.0.112.1", true},
			},
		},
		{
			name:    "v6 catch-all does not cover v4",
			mode:    Deny,
			entries: []string{"::/0"},
			probes: []probe{
				{"2001:db8::1", false}, {"::1", false}, {"192.0.2.1", true}, {"::ffff:192.0.2.1", true},
			},
		},
		{
			name:    "whole v4 space and host bits set",
			mode:    Allow,
			entries: []string{"0.0.0.0/0", "2001:db8::1/64"},
			probes: []probe{
				{"0.0.0.0", true}, {"255.255.255.255", true}, {"2001:db8::ffff", true}, {"2001:db9::", false},
			},
		},
		{
			name:    "top of the address space",
			mode:    Allow,
			entries: []string{"255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "255.255.255.0/24"},
			probes: []probe{
				{"255.255.255.255", true}, {"255.255.255.1", true}, {"255.255.254.255", false},
				{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", false},
			},
		},
		{
			name:    "empty allow list denies everyone",
			mode:    Allow,
			entries: nil,
			probes:  []probe{{"192.0.2.1", false}, {"2001:db8::1", false}, {"::ffff:10.0.0.1", false}},
		},
		{
			name:    "empty deny list allows everyone",
			mode:    Deny,
			entries: nil,
			probes:  []probe{{"192.0.2.1", true}, {"2001:db8::1", true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustList(t, tt.mode, tt.entries...)
			for _, p := range tt.probes {
				a := netip.MustParseAddr(p.addr)
				if got := l.Allowed(a); got != p.want {
					t.Errorf("Allowed(%s) = %v, want %v", p.addr, got, p.want)
				}
			}
		})
	}
}

func TestAllowedZonedAndInvalid(t *testing.T) {
	l := mustList(t, Allow, "fe80::/10")
	if !l.Allowed(netip.MustParseAddr("fe80::1%eth0")) {
		t.Error("zoned link-local client not matched by fe80::/10")
	}
	if l.Allowed(netip.Addr{}) {
		t.Error("invalid address allowed by an allow list")
	}
	d := mustList(t, Deny, "0.0.0.0/0", "::/0")
	if !d.Allowed(netip.Addr{}) {
		t.Error("invalid address matched a deny entry")
	}
}

func TestNilListAllowsAll(t *testing.T) {
	var l *List
	for _, s := range []string{"192.0.2.1", "2001:db8::1"} {
		if !l.Allowed(netip.MustParseAddr(s)) {
			t.Errorf("nil list denied %s", s)
		}
	}
	if l.Len() != 0 || l.Entries() != nil {
		t.Errorf("nil list: Len %d, Entries %v", l.Len(), l.Entries())
	}
}

func TestEntriesNormalised(t *testing.T) {
	l := mustList(t, Deny,
		"2001:db8::1/32", "10.1.2.3/8", "::ffff:192.0.2.0/120", "10.0.0.0/8", "192.0.2.9", "10.0.0.0/16")
	var got []string
	for _, p := range l.Entries() {
		got = append(got, p.String())
	}
	want := []string{"10.0.0.0/8", "10.0.0.0/16", "192.0.2.0/24", "192.0.2.9/32", "2001:db8::/32"}
	if !slices.Equal(got, want) {
		t.Errorf("Entries() = %v, want %v", got, want)
	}
	if l.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", l.Len(), len(want))
	}
	// The caller's copy must not alias the list.
	e := l.Entries()
	e[0] = netip.MustParsePrefix("0.0.0.0/0")
	if !l.Allowed(netip.MustParseAddr("11.0.0.1")) {
		t.Error("mutating Entries() changed the list")
	}
}

func TestNewErrors(t *testing.T) {
	many := make([]netip.Prefix, MaxEntries+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)
	}
	tests := []struct {
		name     string
		mode     Mode
		prefixes []netip.Prefix
		want     string
	}{
		{"unknown mode", 0, nil, "must be allow or deny"},
		{"invalid prefix", Allow, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}, "acl entry 1"},
		{"too many", Deny, many, "at most 300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.mode, tt.prefixes)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := New(Allow, many[:MaxEntries]); err != nil {
		t.Errorf("New with %d entries: %v", MaxEntries, err)
	}
}

func TestParseEntries(t *testing.T) {
	got, err := ParseEntries([]string{"192.0.2.1", "2001:db8::1", "10.0.0.0/8", "2001:db8::/32", "::ffff:1.2.3.4"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1/32", "2001:db8::1/128", "10.0.0.0/8", "2001:db8::/32", "::ffff:1.2.3.4/128"}
	var gotS []string
	for _, p := range got {
		gotS = append(gotS, p.String())
	}
	if !slices.Equal(gotS, want) {
		t.Errorf("ParseEntries = %v, want %v", gotS, want)
	}

	bad := []struct {
		in   string
		want string
	}{
		{"", `acl entry 1 "": empty entry`},
		{"10.0.0.256", `acl entry 1 "10.0.0.256"`},
		{"10.0.0.0/33", `acl entry 1 "10.0.0.0/33"`},
		{"2001:db8::/129", `acl entry 1 "2001:db8::/129"`},
		{"fe80::1%eth0", "zones are not allowed"},
		{"example.com", `acl entry 1 "example.com"`},
		{" 10.0.0.1", `acl entry 1 " 10.0.0.1"`},
	}
	for _, b := range bad {
		t.Run(b.in, func(t *testing.T) {
			_, err := ParseEntries([]string{"10.0.0.1", b.in})
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Fatalf("ParseEntries error = %v, want it to contain %q", err, b.want)
			}
		})
	}

	_, err = ParseEntries([]string{"x", "10.0.0.0/8", "y/2"})
	if err == nil || !strings.Contains(err.Error(), `entry 0 "x"`) || !strings.Contains(err.Error(), `entry 2 "y/2"`) {
		t.Errorf("every bad entry should be reported, got %v", err)
	}
}

// BenchmarkAllowed looks up addresses in 300-entry lists of each family.
func BenchmarkAllowed(b *testing.B) {
	var v4, v6 []string
	for i := range MaxEntries {
		v4 = append(v4, fmt.Sprintf("10.%d.%d.0/%d", i/16, (i%16)*16, 20+i%13))
		v6 = append(v6, fmt.Sprintf("2001:db8:%x::/%d", i*7, 48+i%81))
	}
	cases := []struct {
		name  string
		list  *List
		addrs []netip.Addr
	}{
		{"v4", mustList(b, Allow, v4...), []netip.Addr{
			netip.MustParseAddr("10.3.48.7"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.18.200.1"),
		}},
		{"v6", mustList(b, Deny, v6...), []netip.Addr{
			netip.MustParseAddr("2001:db8:15::1"), netip.MustParseAddr("2001:db9::1"), netip.MustParseAddr("2001:db8:400::9"),
		}},
		{"mapped", mustList(b, Allow, v4...), []netip.Addr{netip.MustParseAddr("::ffff:10.3.48.7")}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for i := 0; b.Loop(); i++ {
				if c.list.Allowed(c.addrs[i%len(c.addrs)]) {
					n++
				}
			}
			_ = n
		})
	}
}
