package l4

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/xlbproject/xlb/dataplane/limit"
)

// spliceChunk bounds one splice call so byte counters and the idle clock
// advance during long transfers. (*net.TCPConn).ReadFrom still splices when
// the source is an *io.LimitedReader around a *net.TCPConn.
const spliceChunk = 1 << 20

// activity is the last time either direction of a connection moved bytes, in
// unix nanoseconds. The idle timeout is measured against it, so a download
// whose upstream direction is silent is not idle.
type activity struct{ last atomic.Int64 }

func (a *activity) touch()                       { a.last.Store(time.Now().UnixNano()) }
func (a *activity) since() time.Duration         { return time.Since(time.Unix(0, a.last.Load())) }
func newActivity() *activity                     { a := &activity{}; a.touch(); return a }
func (a *activity) idleFor(d time.Duration) bool { return a.since() >= d }

// shapedChunk bounds one splice call of a shaped direction: the pacing
// sleeps follow each chunk, so smaller chunks pace more smoothly.
const shapedChunk = 64 << 10

// shaping paces one direction of a connection to a listener's bandwidth;
// a nil sh never waits.
type shaping struct {
	sh  *limit.Shaper
	now func() int64
}

// pace sleeps off what n more bytes ran ahead of the rate: TCP's flow
// control then holds the sender to it, and nothing is dropped.
func (s shaping) pace(n int) {
	if s.sh == nil {
		return
	}
	if d := s.sh.Take(n, s.now()); d > 0 {
		time.Sleep(d)
	}
}

// pipe copies src to dst until src ends, then half-closes dst so the peer sees
// the end of this direction while the other direction goes on. It returns the
// bytes copied and the error that ended the copy (nil on a clean EOF).
func pipe(dst, src *net.TCPConn, idle time.Duration, act *activity, count func(int64), shape shaping) (int64, error) {
	var total int64
	lr := &io.LimitedReader{R: src}
	chunk := int64(spliceChunk)
	if shape.sh != nil {
		chunk = shapedChunk
	}
	for {
		if idle > 0 {
			_ = src.SetReadDeadline(time.Now().Add(idle))
		}
		lr.N = chunk
		n, err := dst.ReadFrom(lr)
		if n > 0 {
			total += n
			act.touch()
			count(n)
			shape.pace(int(n))
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !act.idleFor(idle) {
				continue // the other direction is busy: not idle
			}
			return total, err
		}
		if lr.N > 0 { // ReadFrom stopped before the chunk was used up: EOF
			_ = dst.CloseWrite()
			return total, nil
		}
	}
}
