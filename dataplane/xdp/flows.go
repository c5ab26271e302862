package xdp

import (
	"net/netip"
	"time"
)

// Flow is one tracked connection as the fast path sees it.
type Flow struct {
	Listener    string
	Protocol    Protocol
	Client      netip.AddrPort
	VIP         netip.AddrPort
	Backend     netip.AddrPort
	Established bool // tcp: both directions past the handshake
	Closing     bool // tcp: a FIN or RST passed
	Idle        time.Duration
}

// Flows lists the load balancer's tracked connections (one entry per
// connection).
func (e *Engine) Flows() ([]Flow, error) {
	all, err := dumpFlows(e.objs.Flows)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	names := map[uint32]string{}
	for _, x := range e.listeners {
		names[x.id] = x.cfg.Name
	}
	e.mu.Unlock()
	now := monotonicNow()
	var out []Flow
	for k, f := range all {
		if f.Flags&(ffReply|ffNAT) != 0 {
			continue // translations: see Translations
		}
		flags := f.Flags
		last := f.LastSeen
		if r, ok := all[reverseKey(k, f)]; ok {
			flags |= r.Flags
			last = max(last, r.LastSeen)
		}
		fl := Flow{
			Listener:    names[f.Listener],
			Protocol:    Protocol(k.Proto),
			Client:      netip.AddrPortFrom(addrOf(k.Saddr), portOf(k.Sport)),
			VIP:         netip.AddrPortFrom(addrOf(k.Daddr), portOf(k.Dport)),
			Backend:     netip.AddrPortFrom(addrOf(f.NewDaddr), portOf(f.NewDport)),
			Established: flags&ffEstablished != 0,
			Closing:     flags&(ffFin|ffRst) != 0,
		}
		if now > last {
			fl.Idle = time.Duration(now - last)
		}
		out = append(out, fl)
	}
	return out, nil
}
