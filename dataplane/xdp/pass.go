package xdp

import (
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// AttachPass attaches a program that passes every frame to ifname in the
// calling thread's namespace. A veth drops frames redirected into it unless
// its peer runs an XDP program, so labs put this on the veth ends facing
// xlb's gateway (real NICs need nothing of the kind). Close detaches it.
func AttachPass(ifname string) (link.Link, error) {
	prog, err := PassProgram()
	if err != nil {
		return nil, err
	}
	defer prog.Close() // the link holds its own reference
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index})
	if err != nil {
		return nil, fmt.Errorf("attaching the pass program to %s: %w", ifname, err)
	}
	return l, nil
}

// PassProgram loads the program that passes every frame; the caller closes
// it.
func PassProgram() (*ebpf.Program, error) {
	spec, err := loadLb()
	if err != nil {
		return nil, err
	}
	prog, err := ebpf.NewProgram(spec.Programs["xlb_pass"])
	if err != nil {
		return nil, fmt.Errorf("loading the pass program: %w", err)
	}
	return prog, nil
}
