package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// Validate checks a configuration that WithDefaults has filled in, and
// returns every broken rule as Errors (nil when there is none). It checks the
// PEM text it finds (Load reads the *_file fields into the *_pem fields
// first); it reads no file itself.
func Validate(cfg *xlbv1.Config) error {
	if cfg == nil {
		return nil
	}
	v := &validator{
		certs:  map[string]*xlbv1.Certificate{},
		groups: map[string]*xlbv1.ServerGroup{},
		vips:   map[netip.Addr]string{},
	}
	v.enums("", cfg.ProtoReflect())
	v.node("node", cfg.Node)
	v.certificates(cfg.Certificates)
	v.serverGroups(cfg.ServerGroups)
	v.loadBalancers(cfg.LoadBalancers)
	v.snatAndEIPs(cfg.SnatPools, cfg.Eips)
	return v.err()
}

// validator holds what one part of the configuration needs to know about
// the others (ids, addresses) while the errors accumulate.
type validator struct {
	errorList
	certs  map[string]*xlbv1.Certificate
	groups map[string]*xlbv1.ServerGroup
	vips   map[netip.Addr]string // VIP -> "load_balancers[i]"
}

// enums reports enum numbers the schema does not define; only a
// configuration built through the API, not YAML, can hold one.
func (v *validator) enums(path string, m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		p := field(path, string(fd.Name()))
		val := m.Get(fd)
		switch {
		case fd.IsMap():
			// Only map<string, string> in the schema.
		case fd.IsList():
			list := val.List()
			for j := 0; j < list.Len(); j++ {
				v.enumValue(index(p, j), fd, list.Get(j))
			}
		default:
			v.enumValue(p, fd, val)
		}
	}
}

func (v *validator) enumValue(path string, fd protoreflect.FieldDescriptor, val protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if fd.Enum().Values().ByNumber(val.Enum()) == nil {
			v.add(path, "%d is not one of %s", val.Enum(), strings.Join(enumNames(fd.Enum()), ", "))
		}
	case protoreflect.MessageKind:
		v.enums(path, val.Message())
	}
}

// checkID checks an object id and that it is unique among its kind.
func (v *validator) checkID(path, id string, seen map[string]string) {
	switch {
	case id == "":
		v.add(path, "required")
	case !validID(id):
		v.add(path, "%q is not a valid id: 1 to 64 letters, digits, '.', '_' or '-'", id)
	default:
		if first, dup := seen[id]; dup {
			v.add(path, "%q is already used by %s", id, first)
			return
		}
		seen[id] = parentPath(path)
	}
}

func validID(id string) bool {
	if len(id) < 1 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// checkDuration checks a set duration against lo..hi; nil (unset, no
// default) is not checked.
func (v *validator) checkDuration(path string, d *durationpb.Duration, lo, hi time.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		v.add(path, "invalid duration: %v", err)
		return
	}
	if x := d.AsDuration(); x < lo || x > hi {
		v.add(path, "%s is out of range %s..%s", protoDuration(x), shortDuration(lo), shortDuration(hi))
	}
}

// checkRange checks an unsigned value against lo..hi.
func (v *validator) checkRange(path string, x, lo, hi uint64) bool {
	if x < lo || x > hi {
		v.add(path, "%d is out of range %d..%d", x, lo, hi)
		return false
	}
	return true
}

// shortDuration writes a range bound the way a user would: 300s, 24h.
func shortDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= 10*time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return protoDuration(d)
}

// parseIP parses a plain IPv4 or IPv6 address (no zone).
func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has a zone; write the address without %%%s", s, a.Zone())
	}
	return a, nil
}

// parsePrefix parses an address or a CIDR; an address is its own /32 or
// /128. A CIDR with host bits set is refused: it is most likely a typo.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := parseIP(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; write %s", s, m)
	}
	return p, nil
}

// validHostname reports whether s is a DNS host name: dot-separated labels
// of letters, digits and inner hyphens, 63 bytes each, 253 in all.
func validHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validIfName follows the kernel's dev_valid_name: 1 to 15 bytes, not "."
// or "..", no '/', ':' or white space.
func validIfName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\r\v\f")
}

// checkHostPort checks HOST:PORT with a port 1..65535 and a host that is an
// IP, a host name or empty (all addresses).
func checkHostPort(s string) error {
	host, port, err := splitHostPort(s)
	if err != nil {
		return err
	}
	if host != "" {
		if _, err := parseIP(host); err != nil && !validHostname(host) {
			return fmt.Errorf("%q is not an IP address or host name", host)
		}
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d is out of range 1..65535", port)
	}
	return nil
}
