package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

const udpBufferSize = 64 << 10

// UDPEcho is a UDP backend that echoes each datagram to its sender. The datagram
// "whoami" is answered with the name, and "health" with "ok" unless SetHealthy(false),
// in which case it gets no answer at all so that health checks time out. A UDPEcho must
// not be copied after first use.
type UDPEcho struct {
	Name string
	// Workers is the number of goroutines reading the socket, each with its own
	// buffer; zero means one.
	Workers int

	unhealthy    atomic.Bool
	datagramsIn  atomic.Uint64
	datagramsOut atomic.Uint64
	bytesIn      atomic.Uint64
	bytesOut     atomic.Uint64
}

// NewUDPEcho returns a UDP echo backend named name.
func NewUDPEcho(name string) *UDPEcho { return &UDPEcho{Name: name} }

// SetHealthy sets whether "health" datagrams are answered (true, the default).
func (s *UDPEcho) SetHealthy(ok bool) { s.unhealthy.Store(!ok) }

// Healthy reports whether "health" datagrams are answered.
func (s *UDPEcho) Healthy() bool { return !s.unhealthy.Load() }

// Counters returns a snapshot of the datagram and byte counters.
func (s *UDPEcho) Counters() Counters {
	return Counters{
		DatagramsIn:  s.datagramsIn.Load(),
		DatagramsOut: s.datagramsOut.Load(),
		BytesIn:      s.bytesIn.Load(),
		BytesOut:     s.bytesOut.Load(),
	}
}

// Serve echoes datagrams on pc until ctx ends, then closes pc and returns nil once its
// goroutines have stopped. A read error other than the close ends Serve with an error.
func (s *UDPEcho) Serve(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()

	answers := &udpAnswers{name: []byte(s.Name), ok: []byte("ok")}
	workers := max(s.Workers, 1)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var err error
			if uc, ok := pc.(*net.UDPConn); ok {
				err = s.loopUDP(uc, answers)
			} else {
				err = s.loop(pc, answers)
			}
			errs <- err
			pc.Close() // one worker failing stops the others
		})
	}
	wg.Wait()
	close(errs)
	if ctx.Err() != nil {
		return nil
	}
	for err := range errs {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("udp echo %q on %s: %w", s.Name, pc.LocalAddr(), err)
		}
	}
	return fmt.Errorf("udp echo %q on %s: %w", s.Name, pc.LocalAddr(), net.ErrClosed)
}

// udpAnswers are the fixed replies, made once per Serve.
type udpAnswers struct{ name, ok []byte }

// reply returns what to send back for the datagram p, and whether to send anything.
func (s *UDPEcho) reply(p []byte, a *udpAnswers) ([]byte, bool) {
	switch string(p) {
	case "whoami":
		return a.name, true
	case "health":
		return a.ok, s.Healthy()
	}
	return p, true
}

func (s *UDPEcho) count(in int) {
	s.datagramsIn.Add(1)
	s.bytesIn.Add(uint64(in))
}

func (s *UDPEcho) countOut(out int) {
	s.datagramsOut.Add(1)
	s.bytesOut.Add(uint64(out))
}

// loopUDP is the allocation-free loop for *net.UDPConn.
func (s *UDPEcho) loopUDP(uc *net.UDPConn, a *udpAnswers) error {
	buf := make([]byte, udpBufferSize)
	for {
		n, from, err := uc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		s.count(n)
		out, ok := s.reply(buf[:n], a)
		if !ok {
			continue
		}
		// A failed send (no route, buffer full) loses one datagram, like the network.
		if _, err := uc.WriteToUDPAddrPort(out, from); err == nil {
			s.countOut(len(out))
		}
	}
}

// loop serves any other net.PacketConn.
func (s *UDPEcho) loop(pc net.PacketConn, a *udpAnswers) error {
	buf := make([]byte, udpBufferSize)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		s.count(n)
		out, ok := s.reply(buf[:n], a)
		if !ok {
			continue
		}
		if _, err := pc.WriteTo(out, from); err == nil {
			s.countOut(len(out))
		}
	}
}
