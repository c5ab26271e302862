package labsvc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/dataplane/xdp"
	"github.com/xlbproject/xlb/internal/netlab"
)

// XDPInterfaces are the gateway interfaces xlbd attaches XDP to in the
// standard ClientGatewayBackends lab: the client side and the backend side.
var XDPInterfaces = []string{netlab.IfaceGatewayUp, netlab.IfaceGatewayDown}

// XDPLab is what a lab needs for xlbd's XDP engine: a bpffs of its own
// (nothing is pinned in the host's /sys/fs/bpf) and a pass program on the
// veth ends facing the gateway, which drop redirected frames without one.
type XDPLab struct {
	BPFFS   string // the pin directory to give xlbd (--bpffs)
	mount   string
	closers []io.Closer
	// toBackends is the pass program on the switch's port facing the
	// gateway, which a benchmark may swap for a counting sink.
	toBackends link.Link
	pinDirs    []string // PinDir's, cleaned by Close
}

// PinDir returns a pin directory (--bpffs) of its own for one of several
// xlbd in the lab, such as one per gateway node; Close cleans it up too.
func (x *XDPLab) PinDir(name string) string {
	d := filepath.Join(x.mount, name)
	x.pinDirs = append(x.pinDirs, d)
	return d
}

// PrepareXDP readies lab (built with Topology.NoTxChecksum) for XDP on the
// gateway of ClientGatewayBackends. Close undoes it.
func PrepareXDP(lab *netlab.Lab) (*XDPLab, error) {
	return PrepareXDPPeers(lab, []Iface{{netlab.HostClient, netlab.IfaceClient}, {netlab.HostSwitch, netlab.HostGateway}})
}

// Iface is an interface of a lab host.
type Iface struct{ Host, Name string }

// PrepareXDPPeers mounts the lab's bpffs and attaches the pass program to
// peers: the veth ends facing the interfaces xlbd attaches XDP to. The
// first peer in the switch (sw) is the one SwapSwitchProgram replaces.
func PrepareXDPPeers(lab *netlab.Lab, peers []Iface) (*XDPLab, error) {
	dir, err := os.MkdirTemp("", "xlb-bpffs-")
	if err != nil {
		return nil, err
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("mounting a bpffs for the lab: %w", err)
	}
	x := &XDPLab{BPFFS: filepath.Join(dir, "xlb"), mount: dir}
	for _, p := range peers {
		err := lab.Do(p.Host, func() error {
			l, err := xdp.AttachPass(p.Name)
			if err == nil {
				x.closers = append(x.closers, l)
				if p.Host == netlab.HostSwitch && x.toBackends == nil {
					x.toBackends = l
				}
			}
			return err
		})
		if err != nil {
			_ = x.Close()
			return nil, fmt.Errorf("%s/%s: %w", p.Host, p.Name, err)
		}
	}
	return x, nil
}

// SwapSwitchProgram runs prog instead of the pass program on the switch's
// port facing the gateway (where every frame the gateway sends to the
// backends arrives) until restore puts the pass program back.
func (x *XDPLab) SwapSwitchProgram(prog *ebpf.Program) (restore func() error, err error) {
	if x.toBackends == nil {
		return nil, errors.New("no pass program on the switch")
	}
	if err := x.toBackends.Update(prog); err != nil {
		return nil, fmt.Errorf("replacing the switch's pass program: %w", err)
	}
	return func() error {
		pass, err := xdp.PassProgram()
		if err != nil {
			return err
		}
		defer pass.Close()
		return x.toBackends.Update(pass)
	}, nil
}

// Close detaches the pass programs, removes every pin and unmounts the bpffs.
func (x *XDPLab) Close() error {
	var errs []error
	for _, c := range x.closers {
		errs = append(errs, c.Close())
	}
	for _, d := range append([]string{x.BPFFS}, x.pinDirs...) {
		_, err := xdp.Cleanup(d)
		errs = append(errs, err)
	}
	errs = append(errs, unix.Unmount(x.mount, unix.MNT_DETACH))
	errs = append(errs, os.Remove(x.mount))
	return errors.Join(errs...)
}
