package config

import (
	"fmt"
	"net/netip"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

// poolKind says what a list of servers belongs to: roles are only allowed
// (and required) in master_slave groups.
type poolKind int

const (
	defaultPool poolKind = iota
	vserverGroup
	masterSlaveGroup
)

func (v *validator) serverGroups(list []*xlbv1.ServerGroup) {
	seen := map[string]string{}
	for i, g := range list {
		p := index("server_groups", i)
		v.checkID(field(p, "id"), g.Id, seen)
		if _, dup := v.groups[g.Id]; !dup && g.Id != "" {
			v.groups[g.Id] = g
		}
		switch g.Type {
		case xlbv1.ServerGroup_vserver:
			v.servers(field(p, "servers"), g.Servers, vserverGroup)
		case xlbv1.ServerGroup_master_slave:
			v.servers(field(p, "servers"), g.Servers, masterSlaveGroup)
		default:
			v.add(field(p, "type"), "required: vserver or master_slave")
		}
	}
}

func (v *validator) servers(p string, list []*xlbv1.Server, kind poolKind) {
	seen := map[netip.AddrPort]int{}
	masters, slaves := 0, 0
	for i, s := range list {
		sp := index(p, i)
		addrOK := true
		a, err := parseIP(s.Address)
		switch {
		case s.Address == "":
			v.add(field(sp, "address"), "required")
			addrOK = false
		case err != nil:
			v.add(field(sp, "address"), "%v", err)
			addrOK = false
		}
		portOK := v.checkRange(field(sp, "port"), uint64(s.Port), 0, 65535)
		if s.Weight != nil {
			v.checkRange(field(sp, "weight"), uint64(*s.Weight), 0, 100)
		}
		switch {
		case kind == masterSlaveGroup && s.Role == xlbv1.Server_ROLE_UNSPECIFIED:
			v.add(field(sp, "role"), "required in a master_slave group: master or slave")
		case kind != masterSlaveGroup && s.Role != xlbv1.Server_ROLE_UNSPECIFIED:
			v.add(field(sp, "role"), "only servers of master_slave groups have a role")
		case s.Role == xlbv1.Server_master:
			masters++
		case s.Role == xlbv1.Server_slave:
			slaves++
		}
		if !addrOK || !portOK {
			continue
		}
		ap := netip.AddrPortFrom(a, uint16(s.Port))
		if first, dup := seen[ap]; dup {
			v.add(sp, "%s is already listed as servers[%d]", describeServer(ap), first)
			continue
		}
		seen[ap] = i
	}
	if kind == masterSlaveGroup {
		switch {
		case len(list) != 2:
			v.add(p, "a master_slave group has exactly 2 servers, a master and a slave; found %d", len(list))
		case masters != 1 || slaves != 1:
			v.add(p, "a master_slave group needs one master and one slave; found %d master(s) and %d slave(s)", masters, slaves)
		}
	}
}

func describeServer(ap netip.AddrPort) string {
	if ap.Port() == 0 {
		return fmt.Sprintf("%s (on the listener's backend_port)", ap.Addr())
	}
	return ap.String()
}
