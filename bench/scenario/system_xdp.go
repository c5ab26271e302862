package scenario

import (
	"context"
	"errors"
	"fmt"
	"github.com/cilium/ebpf"

	"github.com/xlbproject/xlb/internal/labsvc"
	"github.com/xlbproject/xlb/internal/netlab"
)

// xlbXDP is xlbd with its XDP engine on the gateway's interfaces, serving
// the same VIP:7000 and VIP:7001 as the other L4 systems. XDP sees every
// packet the gateway receives, so it is attached only while it is measured:
// Enter starts xlbd, Leave stops it and detaches everything, and the other
// systems' traffic never runs through it.
type xlbXDP struct {
	xlbd
	lab *labsvc.XDPLab
}

func newXlbXDP(backends int) System {
	cfg := xlbConfig(fmt.Sprintf("native, interfaces: [%s, %s]", netlab.IfaceGatewayUp, netlab.IfaceGatewayDown), backends, l4Listeners)
	return &xlbXDP{xlbd: xlbd{name: "xlb-xdp", config: cfg, metrics: "127.0.0.1:9102", targets: l4Targets()}}
}

// SwapSwitchProgram replaces the lab's pass program on the switch's port
// facing the gateway while xlb-xdp is measured (see ownXDP).
func (s *xlbXDP) SwapSwitchProgram(prog *ebpf.Program) (func() error, error) {
	if s.lab == nil {
		return nil, errors.New("xlb-xdp is not entered")
	}
	return s.lab.SwapSwitchProgram(prog)
}

func (s *xlbXDP) Start(context.Context, *Env) error { return nil }

// CPUUnmeasured: on veth, XDP runs in the sender's NAPI context (the load
// core), so the gateway core's accounting cannot show its cost.
func (s *xlbXDP) CPUUnmeasured(string) bool { return true }

func (s *xlbXDP) Enter(ctx context.Context, e *Env) error {
	lab, err := labsvc.PrepareXDP(e.Lab)
	if err != nil {
		return err
	}
	s.lab = lab
	s.bpffs = lab.BPFFS
	if err := s.xlbd.Start(ctx, e); err != nil {
		return errors.Join(err, s.detach())
	}
	return nil
}

func (s *xlbXDP) Leave(ctx context.Context, e *Env) error {
	return errors.Join(s.procSystem.Stop(ctx, e), s.detach())
}

// Stop is Leave for a run that ends while the system is measured.
func (s *xlbXDP) Stop(ctx context.Context, e *Env) error { return s.Leave(ctx, e) }

func (s *xlbXDP) detach() error {
	if s.lab == nil {
		return nil
	}
	err := s.lab.Close() // unpins the links: XDP leaves the interfaces
	s.lab, s.proc = nil, nil
	return err
}
