package labsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/xlbproject/xlb/bench/serve"
	"github.com/xlbproject/xlb/internal/netlab"
)

// Standard backend ports, the same as configs/demo.yaml's.
const (
	HTTPPort = 8080
	TCPPort  = 7000
	UDPPort  = 7001
)

// Backend is one backend host's servers.
type Backend struct {
	Name string // also the host name in the lab ("be1")
	IP   string
	HTTP *serve.HTTP
	TCP  *serve.TCPEcho
	UDP  *serve.UDPEcho

	mu      sync.Mutex
	stopTCP context.CancelFunc
	tcpDone chan error
	lab     *netlab.Lab
	ctx     context.Context
}

// Backends are the servers of every backend host of a lab.
type Backends struct {
	List   []*Backend
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
}

// StartBackends runs HTTP, TCP echo and UDP echo servers on be1..beN, named
// after their host. Close stops them.
func StartBackends(ctx context.Context, lab *netlab.Lab, n int) (*Backends, error) {
	ctx, cancel := context.WithCancel(ctx)
	bs := &Backends{cancel: cancel}
	for i := 1; i <= n; i++ {
		b := &Backend{
			Name: netlab.BackendHost(i), IP: netlab.BackendIP(i),
			HTTP: serve.NewHTTP(netlab.BackendHost(i)),
			TCP:  serve.NewTCPEcho(netlab.BackendHost(i)),
			UDP:  serve.NewUDPEcho(netlab.BackendHost(i)),
			lab:  lab, ctx: ctx,
		}
		hl, err := lab.Listen(b.Name, "tcp", net.JoinHostPort(b.IP, strconv.Itoa(HTTPPort)))
		if err != nil {
			bs.Close()
			return nil, fmt.Errorf("%s http: %w", b.Name, err)
		}
		pc, err := lab.ListenPacket(b.Name, "udp", net.JoinHostPort(b.IP, strconv.Itoa(UDPPort)))
		if err != nil {
			_ = hl.Close()
			bs.Close()
			return nil, fmt.Errorf("%s udp: %w", b.Name, err)
		}
		bs.run(func() error { return b.HTTP.Serve(ctx, hl) })
		bs.run(func() error { return b.UDP.Serve(ctx, pc) })
		if err := b.StartTCP(); err != nil {
			bs.Close()
			return nil, err
		}
		bs.List = append(bs.List, b)
	}
	return bs, nil
}

func (bs *Backends) run(fn func() error) {
	bs.wg.Add(1)
	go func() {
		defer bs.wg.Done()
		if err := fn(); err != nil {
			bs.errMu.Lock()
			bs.err = errors.Join(bs.err, err)
			bs.errMu.Unlock()
		}
	}()
}

// ByName returns the backend called name, or nil.
func (bs *Backends) ByName(name string) *Backend {
	for _, b := range bs.List {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// Close stops every server and returns what any of them failed with.
func (bs *Backends) Close() error {
	bs.cancel()
	for _, b := range bs.List {
		_ = b.StopTCP()
	}
	bs.wg.Wait()
	bs.errMu.Lock()
	defer bs.errMu.Unlock()
	return bs.err
}

// StartTCP (re)starts the TCP echo server, so tests and the demo can take a
// backend's TCP service away and bring it back like a crashed process.
func (b *Backend) StartTCP() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopTCP != nil {
		return nil
	}
	l, err := b.lab.Listen(b.Name, "tcp", net.JoinHostPort(b.IP, strconv.Itoa(TCPPort)))
	if err != nil {
		return fmt.Errorf("%s tcp: %w", b.Name, err)
	}
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- b.TCP.Serve(ctx, l) }()
	b.stopTCP, b.tcpDone = cancel, done
	return nil
}

// StopTCP stops the TCP echo server: new connections are refused and open
// ones are closed.
func (b *Backend) StopTCP() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopTCP == nil {
		return nil
	}
	b.stopTCP()
	err := <-b.tcpDone
	b.stopTCP, b.tcpDone = nil, nil
	return err
}
