package config

import (
	"net/netip"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

const maxACLEntries = 300

// acl checks an access control list. An enabled allow list with no entry is
// legal: it denies everyone.
func (v *validator) acl(p string, a *xlbv1.Acl) {
	if a == nil {
		return
	}
	if a.GetEnabled() && a.Mode == xlbv1.Acl_MODE_UNSPECIFIED {
		v.add(field(p, "mode"), "required: allow or deny")
	}
	cp := field(p, "cidrs")
	if n := len(a.Cidrs); n > maxACLEntries {
		v.add(cp, "%d entries; an access control list has at most %d", n, maxACLEntries)
	}
	seen := map[netip.Prefix]int{}
	for i, s := range a.Cidrs {
		ip := index(cp, i)
		pfx, err := parsePrefix(s)
		if err != nil {
			v.add(ip, "%v", err)
			continue
		}
		if first, dup := seen[pfx]; dup {
			v.add(ip, "%q duplicates cidrs[%d] (%q): both are %s", s, first, a.Cidrs[first], pfx)
			continue
		}
		seen[pfx] = i
	}
}
