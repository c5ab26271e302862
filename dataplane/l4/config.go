package l4

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/xlbproject/xlb/dataplane/acl"
	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// Protocol is a listener's transport.
type Protocol uint8

const (
	TCP Protocol = iota + 1
	UDP
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// DefaultMaxSessions caps the UDP sessions of one listener.
const DefaultMaxSessions = 100_000

// Config is the engine's whole desired state.
type Config struct {
	Listeners []Listener
}

// Listener is one tcp or udp listener as the control plane compiled it.
type Listener struct {
	// Name labels metrics and logs, e.g. "lb-web/tcp/7000".
	Name     string
	Protocol Protocol
	// Addr is the VIP and port. The socket is bound with IP_FREEBIND, so the
	// VIP need not be configured on the host yet.
	Addr netip.AddrPort
	// Registry holds the backends the pool is built from; listeners whose
	// health checks are identical share one, so they share health state.
	Registry *pool.Registry
	Pool     pool.Config
	// ACL filters client addresses; nil allows everyone.
	ACL *acl.List
	// Stopped listeners (or load balancers) keep their socket, refuse every
	// new connection or datagram and count it.
	Stopped        bool
	IdleTimeout    time.Duration
	ConnectTimeout time.Duration
	// MaxSessions caps UDP sessions; 0 means DefaultMaxSessions.
	MaxSessions int
	// Limits are the load balancer's, shared with its other listeners and
	// engines (a UDP session counts as a connection); nil: unlimited.
	Limits *limit.LB
	// BandwidthIn paces what clients send, BandwidthOut what they receive
	// (the listener's reservation or share); nil: unshaped.
	BandwidthIn, BandwidthOut *limit.Shaper
}

// key identifies a listener's socket across configurations.
type key struct {
	proto Protocol
	addr  netip.AddrPort
}

func (l *Listener) key() key { return key{l.Protocol, l.Addr} }

func (l *Listener) validate() error {
	if l.Protocol != TCP && l.Protocol != UDP {
		return fmt.Errorf("listener %s: protocol %v", l.Name, l.Protocol)
	}
	if !l.Addr.IsValid() || l.Addr.Port() == 0 {
		return fmt.Errorf("listener %s: address %v", l.Name, l.Addr)
	}
	if l.Registry == nil {
		return fmt.Errorf("listener %s: no backend registry", l.Name)
	}
	if err := l.Pool.Validate(); err != nil {
		return fmt.Errorf("listener %s: %w", l.Name, err)
	}
	return nil
}
