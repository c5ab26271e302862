package limit

import (
	"sync/atomic"
	"time"
)

// shaperBurst is how far a shaped stream may run ahead of its rate: 50 ms
// of traffic, so TCP's windows do not stall at every write.
const shaperBurst = int64(50 * time.Millisecond)

// activeWindow is how recently a member of a share must have sent to count
// as contending for it.
const activeWindow = int64(200 * time.Millisecond)

// Shaper paces a byte stream (one listener's direction) to a rate: its own
// (a reserved peak), or an equal part of a Share among the members that
// are sending. A nil *Shaper, or one without a rate, never waits.
type Shaper struct {
	bps   atomic.Uint64 // bytes per second; 0 with no share: unlimited
	share *Share
	tat   atomic.Int64 // theoretical time the stream has used up to
	last  atomic.Int64 // last Take, for the share's contention count
	// waited sums the delays imposed, for the metrics.
	waited atomic.Int64
}

// NewShaper returns a shaper at bytesPerSecond (0: unlimited).
func NewShaper(bytesPerSecond uint64) *Shaper {
	s := &Shaper{}
	s.bps.Store(bytesPerSecond)
	return s
}

// Set changes the shaper's own rate.
func (s *Shaper) Set(bytesPerSecond uint64) { s.bps.Store(bytesPerSecond) }

// rate is the bytes per second the stream may use now; 0: unlimited.
func (s *Shaper) rate(now int64) uint64 {
	if s.share == nil {
		return s.bps.Load()
	}
	return s.share.part(s, now)
}

// Take accounts n bytes sent or received at now (monotonic nanoseconds)
// and returns how long the caller should wait before moving more: pacing
// the reads and writes of a connection is what holds its TCP peer to the
// rate, without dropping anything.
func (s *Shaper) Take(n int, now int64) time.Duration {
	if s == nil || n <= 0 {
		return 0
	}
	s.last.Store(now)
	bps := s.rate(now)
	if bps == 0 {
		return 0
	}
	cost := int64(float64(n) * float64(time.Second) / float64(bps))
	for {
		tat := s.tat.Load()
		next := max(tat, now) + cost
		if s.tat.CompareAndSwap(tat, next) {
			wait := next - now - shaperBurst
			if wait <= 0 {
				return 0
			}
			s.waited.Add(wait)
			return time.Duration(wait)
		}
	}
}

// Waited is the total delay the shaper imposed.
func (s *Shaper) Waited() time.Duration {
	if s == nil {
		return 0
	}
	return time.Duration(s.waited.Load())
}

// Share is bandwidth that several streams split equally while they
// contend: the part of a load balancer's total left after its listeners'
// reserved peaks. A member alone gets all of it.
type Share struct {
	bps     atomic.Uint64
	members atomic.Pointer[[]*Shaper]
}

// NewShare returns a share of bytesPerSecond (0: unlimited).
func NewShare(bytesPerSecond uint64) *Share {
	sh := &Share{}
	sh.bps.Store(bytesPerSecond)
	sh.members.Store(&[]*Shaper{})
	return sh
}

// Set changes the share's total.
func (sh *Share) Set(bytesPerSecond uint64) { sh.bps.Store(bytesPerSecond) }

// Member returns a new shaper drawing on the share. Members are added at
// configuration time, never on the data path.
func (sh *Share) Member() *Shaper {
	s := &Shaper{share: sh}
	for {
		old := sh.members.Load()
		next := append(append([]*Shaper(nil), *old...), s)
		if sh.members.CompareAndSwap(old, &next) {
			return s
		}
	}
}

// part is s's equal part of the share: the total divided among the
// members that sent within activeWindow (s among them).
func (sh *Share) part(s *Shaper, now int64) uint64 {
	total := sh.bps.Load()
	if total == 0 {
		return 0
	}
	active := uint64(0)
	for _, m := range *sh.members.Load() {
		if m == s || now-m.last.Load() < activeWindow {
			active++
		}
	}
	return total / max(active, 1)
}
