// Package acl matches client addresses against an allow or deny list of
// IPv4/IPv6 addresses and CIDR prefixes.
//
// A List is compiled once from validated runtime values (the control plane
// parses the configuration) and is then read-only, so it is safe for
// concurrent use and cheap to swap atomically. The userspace engines call
// Allowed per connection or request; the XDP engine compiles Entries into its
// LPM trie maps, so both paths enforce the same list.
//
// Address families are matched separately, as the XDP path does with one trie
// per family: an IPv4 client (or an IPv4-mapped IPv6 client, ::ffff:a.b.c.d)
// is matched against the IPv4 entries only, a native IPv6 client against the
// IPv6 entries only. An IPv4-mapped entry (::ffff:a.b.c.d/96+n) is stored as
// the IPv4 entry a.b.c.d/n.
package acl
