package pool

import "sync/atomic"

// Scheduler picks one backend among a snapshot's eligible backends. key is
// the flow hash (maglev uses it; the others ignore it). Pick returns nil only
// when there is nothing to pick. Implementations are immutable once built,
// except for atomic counters, so Pick is safe for concurrent use and does
// not allocate.
type Scheduler interface {
	Pick(key uint64) *Backend
}

// newScheduler builds kind over the eligible members (all have weight > 0).
// cursor is the pool's rotation counter: it outlives snapshots so a rebuild
// does not restart the rotation at the first backend. tableSize is maglev's
// table size, derived from the configured (not eligible) member count so
// health changes never resize the table.
func newScheduler(kind Kind, eligible []Member, cursor *atomic.Uint64, tableSize int) Scheduler {
	if len(eligible) == 0 {
		return noBackend{}
	}
	bs := make([]*Backend, len(eligible))
	ws := make([]int, len(eligible))
	for i, m := range eligible {
		bs[i], ws[i] = m.Backend, m.Weight
	}
	switch kind {
	case RR:
		return &roundRobin{backends: bs, cursor: cursor}
	case WLC:
		return newLeastConn(bs, ws, cursor)
	case Maglev:
		return newMaglev(bs, ws, tableSize)
	default:
		return newWeightedRoundRobin(bs, ws, cursor)
	}
}

type noBackend struct{}

func (noBackend) Pick(uint64) *Backend { return nil }
