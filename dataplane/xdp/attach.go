package xdp

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// attachAll attaches prog to every interface, adopting the links an earlier
// xlbd pinned (the program is swapped in place: no packet sees a detached
// interface). Links stay pinned when xlbd exits, so traffic keeps flowing
// during a restart.
func attachAll(prog *ebpf.Program, dir string, ifaces []string, mode Mode) ([]link.Link, error) {
	var links []link.Link
	for _, name := range ifaces {
		l, err := attachOne(prog, dir, name, mode)
		if err != nil {
			for _, l := range links {
				_ = l.Close()
			}
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

func attachOne(prog *ebpf.Program, dir, name string, mode Mode) (link.Link, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	pin := filepath.Join(dir, "link_"+name)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := l.Update(prog); err == nil {
			return l, nil
		}
		// A stale pin (the interface was re-created): start afresh.
		_ = l.Unpin()
		_ = l.Close()
	}
	var l link.Link
	switch mode {
	case Native:
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
	case Generic:
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPGenericMode})
	default:
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
		if err != nil {
			l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPGenericMode})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("attaching XDP to %s: %w", name, err)
	}
	if err := l.Pin(pin); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("pinning the XDP link of %s: %w", name, errors.Join(err))
	}
	return l, nil
}
