package pool

import (
	"fmt"
	"net/netip"
	"time"
)

// Type is the server group type.
type Type uint8

const (
	// VServer groups share load among all eligible servers (the default).
	VServer Type = iota
	// MasterSlave groups have one master and one slave: the master while it
	// is eligible, else the slave.
	MasterSlave
)

func (t Type) String() string {
	switch t {
	case VServer:
		return "vserver"
	case MasterSlave:
		return "master_slave"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Kind is the scheduling algorithm. The zero value is WRR, as in the schema.
type Kind uint8

const (
	WRR    Kind = iota // smooth weighted round robin
	RR                 // equal turns
	WLC                // weighted least connections
	Maglev             // weighted consistent hash on the flow key
)

func (k Kind) String() string {
	switch k {
	case WRR:
		return "wrr"
	case RR:
		return "rr"
	case WLC:
		return "wlc"
	case Maglev:
		return "maglev"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Role is a server's role in a master_slave group.
type Role uint8

const (
	RoleNone Role = iota // vserver groups
	Master
	Slave
)

func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case Master:
		return "master"
	case Slave:
		return "slave"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// MaxWeight is the largest server weight.
const MaxWeight = 100

// Server is one configured member: plain values compiled by the control
// plane (ports already resolved from the listener's backend_port, weight
// defaults already applied).
type Server struct {
	Addr   netip.Addr
	Port   uint16
	Weight int // 0..MaxWeight; 0 gets no new connections or requests
	Role   Role
}

// Config is a pool's configuration: one server group as one listener uses it.
type Config struct {
	Type      Type
	Scheduler Kind
	Servers   []Server
	// Persistence is the source-IP persistence timeout for PickSticky;
	// 0 turns persistence off.
	Persistence time.Duration
}

// Validate reports the first problem, naming the field.
func (c *Config) Validate() error {
	if c.Type > MasterSlave {
		return fmt.Errorf("type: unknown %v", c.Type)
	}
	if c.Scheduler > Maglev {
		return fmt.Errorf("scheduler: unknown %v", c.Scheduler)
	}
	if c.Persistence < 0 {
		return fmt.Errorf("persistence: negative timeout %v", c.Persistence)
	}
	seen := make(map[string]int, len(c.Servers))
	var masters, slaves int
	for i, s := range c.Servers {
		if !s.Addr.IsValid() {
			return fmt.Errorf("servers[%d].address: missing", i)
		}
		if s.Port == 0 {
			return fmt.Errorf("servers[%d].port: 0 (resolve the listener's backend_port first)", i)
		}
		if s.Weight < 0 || s.Weight > MaxWeight {
			return fmt.Errorf("servers[%d].weight: %d out of range 0..%d", i, s.Weight, MaxWeight)
		}
		id := BackendID(s.Addr, s.Port)
		if j, dup := seen[id]; dup {
			return fmt.Errorf("servers[%d]: %s duplicates servers[%d]", i, id, j)
		}
		seen[id] = i
		switch s.Role {
		case RoleNone:
			if c.Type == MasterSlave {
				return fmt.Errorf("servers[%d].role: master_slave servers need master or slave", i)
			}
		case Master, Slave:
			if c.Type != MasterSlave {
				return fmt.Errorf("servers[%d].role: %v only in master_slave groups", i, s.Role)
			}
			if s.Role == Master {
				masters++
			} else {
				slaves++
			}
		default:
			return fmt.Errorf("servers[%d].role: unknown %v", i, s.Role)
		}
	}
	if c.Type == MasterSlave && (len(c.Servers) != 2 || masters != 1 || slaves != 1) {
		return fmt.Errorf("servers: master_slave needs exactly one master and one slave, got %d servers (%d master, %d slave)",
			len(c.Servers), masters, slaves)
	}
	return nil
}
