package xdp

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/xlbproject/xlb/dataplane/acl"
	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// Mode is how the program attaches.
type Mode uint8

const (
	// Auto tries driver mode, then generic mode.
	Auto Mode = iota
	Native
	Generic
)

// Protocol of a listener.
type Protocol uint8

const (
	TCP Protocol = 6
	UDP Protocol = 17
)

func (p Protocol) String() string {
	if p == TCP {
		return "tcp"
	}
	return "udp"
}

// Options are fixed for the engine's life (changing them needs a restart).
type Options struct {
	// Interfaces the program attaches to: the client side (uplinks) and the
	// backend side, since replies come back through the gateway.
	Interfaces []string
	Mode       Mode
	// BPFFS is the directory the maps and links are pinned under, on a
	// bpffs mount; it is created (and bpffs mounted at /sys/fs/bpf when
	// that is where it lives and nothing is mounted) when missing.
	BPFFS    string
	MaxFlows uint32
	Timeouts Timeouts
	// SweepInterval is how often expired flows are removed (default 1s).
	SweepInterval time.Duration
	// FloodInterval is how often flood protection measures each VIP's
	// rates and decides its state, and the bandwidth shares are split
	// again among the listeners sending (default 100ms).
	FloodInterval time.Duration
}

// Timeouts of idle flows.
type Timeouts struct {
	TCPEstablished, TCPClosing, UDP time.Duration
}

func (o *Options) defaults() {
	if o.MaxFlows == 0 {
		o.MaxFlows = 1 << 20
	}
	if o.Timeouts.TCPEstablished == 0 {
		o.Timeouts.TCPEstablished = 900 * time.Second
	}
	if o.Timeouts.TCPClosing == 0 {
		o.Timeouts.TCPClosing = 10 * time.Second
	}
	if o.Timeouts.UDP == 0 {
		o.Timeouts.UDP = 300 * time.Second
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Second
	}
	if o.FloodInterval == 0 {
		o.FloodInterval = 100 * time.Millisecond
	}
}

// Config is the engine's desired listeners, SNAT pools and elastic IPs.
type Config struct {
	Listeners []Listener
	SNATPools []SNATPool
	EIPs      []EIP
	// Limits are the load balancers' limits by id (Listener.LB): max
	// connections and new connections per second on the new-flow path,
	// bandwidth policed per listener and direction (docs/limits.md).
	Limits map[string]limit.Params
	// Floods are the protected VIPs (docs/limits.md, flood protection).
	Floods []Flood
}

// Flood is one VIP's flood protection; zero rates and thresholds are off.
type Flood struct {
	LB             string // for logs and metrics
	VIP            netip.Addr
	SYN, UDP, ICMP FloodRate
	// Above CleanPPS packets or CleanBPS bits per second to the VIP, a
	// source's packets beyond its per-source rate are dropped (with
	// neither set, always); above BlackholePPS or BlackholeBPS everything
	// to the VIP is, for BlackholeHold (default 60s).
	CleanPPS, CleanBPS, BlackholePPS, BlackholeBPS uint64
	BlackholeHold                                  time.Duration
	// Exempt sources are never dropped by flood protection: the allow
	// lists of the VIP's listeners.
	Exempt []netip.Prefix
}

// FloodRate bounds one class of packets (SYN, UDP, ICMP) to a VIP, per
// source and in all, in packets per second.
type FloodRate struct {
	PerSourcePPS, TotalPPS uint64
}

// SNATPool translates its private hosts' connections to its public IPs,
// with port blocks planned by dataplane/snat (docs/snat.md).
type SNATPool struct {
	Name      string
	PublicIPs []netip.Addr
	Sources   []netip.Prefix
	// Interface is the uplink the pool's traffic leaves by; empty: the FIB
	// with the public IP as source decides.
	Interface string
	Timeouts  SNATTimeouts
}

// SNATTimeouts release a translation's port: after both FINs, after a
// RST, after idling. Zero values take the defaults (240 s, 15 s, 240 s).
type SNATTimeouts struct {
	TCPFin, TCPRst, Idle time.Duration
}

func (t *SNATTimeouts) defaults() {
	if t.TCPFin == 0 {
		t.TCPFin = 240 * time.Second
	}
	if t.TCPRst == 0 {
		t.TCPRst = 15 * time.Second
	}
	if t.Idle == 0 {
		t.Idle = 240 * time.Second
	}
}

// EIP maps a public IPv4 address 1:1 to a private one in both directions.
type EIP struct {
	Public, Private netip.Addr
	// Interface is the uplink the address belongs to: connections the
	// private host starts leave by it (replies to inbound connections
	// leave by the interface those came in on). Empty: the FIB with the
	// public address as source decides.
	Interface string
}

// Listener is one tcp or udp listener (or an http/https one: Pass).
type Listener struct {
	// Name is also the key of the listener's peak in its load balancer's
	// limit.Params.Peaks.
	Name string
	// LB is the id of the load balancer whose limits (Config.Limits) the
	// listener's flows count against; empty: none.
	LB       string
	Protocol Protocol
	VIP      netip.Addr
	Port     uint16
	// Pass: an http/https listener; XDP applies its ACL and passes the
	// packets to the kernel, where the proxy serves them.
	Pass     bool
	Registry *pool.Registry
	Pool     pool.Config
	ACL      *acl.List
	Stopped  bool
	// FullNAT rewrites the source too, to SNATAddr and a port claimed per
	// connection, so replies return to the gateway whatever the backends'
	// routes; backends no longer see the client's address. An invalid
	// SNATAddr means the gateway's source address towards the backends.
	FullNAT  bool
	SNATAddr netip.Addr
}

type listenerKey struct {
	proto Protocol
	vip   netip.Addr
	port  uint16
}

func (l *Listener) key() listenerKey { return listenerKey{l.Protocol, l.VIP, l.Port} }

func (l *Listener) validate() error {
	if !l.VIP.Is4() {
		return fmt.Errorf("listener %s: the XDP engine serves IPv4 VIPs, not %v", l.Name, l.VIP)
	}
	if l.Protocol != TCP && l.Protocol != UDP {
		return fmt.Errorf("listener %s: protocol %d", l.Name, l.Protocol)
	}
	if l.Pass {
		return nil
	}
	if l.Registry == nil {
		return fmt.Errorf("listener %s: no backend registry", l.Name)
	}
	for i, s := range l.Pool.Servers {
		if !s.Addr.Is4() {
			return fmt.Errorf("listener %s: servers[%d] %v: NAT mode needs IPv4 backends for an IPv4 VIP", l.Name, i, s.Addr)
		}
	}
	if err := l.Pool.Validate(); err != nil {
		return fmt.Errorf("listener %s: %w", l.Name, err)
	}
	return nil
}
