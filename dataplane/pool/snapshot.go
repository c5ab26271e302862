package pool

// Member is one configured server of a pool: the shared Backend and this
// group's weight and role for it.
type Member struct {
	Backend *Backend
	Weight  int
	Role    Role
}

// Eligible reports whether the member may get new picks: up, enabled and
// weighted.
func (m Member) Eligible() bool {
	return m.Weight > 0 && m.Backend.Up() && m.Backend.Admin() == AdminEnabled
}

// Snapshot is an immutable view of a pool: its configuration and the
// eligible set at one version, with the scheduler built over it. Engines
// that keep their own tables (XDP) read one Snapshot and copy from it, so
// backends, table and version always agree.
type Snapshot struct {
	version  uint64
	typ      Type
	kind     Kind
	members  []Member
	eligible []Member
	byID     map[string]*Backend // eligible, for persistence checks
	sched    Scheduler
}

// Version increases with every rebuild of the pool (config or eligibility).
func (s *Snapshot) Version() uint64 { return s.version }

// Type returns the group type.
func (s *Snapshot) Type() Type { return s.typ }

// Scheduler returns the scheduling algorithm.
func (s *Snapshot) Scheduler() Kind { return s.kind }

// Members returns a copy of the configured members, in configuration order.
func (s *Snapshot) Members() []Member { return append([]Member(nil), s.members...) }

// Eligible returns a copy of the members that may get new picks, in
// configuration order (for master_slave: the master or the slave or none).
// Table indices refer to this slice.
func (s *Snapshot) Eligible() []Member { return append([]Member(nil), s.eligible...) }

// MaglevTable returns a copy of the maglev lookup table: slot i holds an
// index into Eligible(); a flow goes to Eligible()[table[key % len(table)]].
// It is nil unless the scheduler is maglev and something is eligible.
func (s *Snapshot) MaglevTable() []int32 {
	if m, ok := s.sched.(*maglev); ok {
		return append([]int32(nil), m.table...)
	}
	return nil
}

// WRRSequence returns a copy of one period of the smooth WRR order, as
// indices into Eligible(), for the wrr and wlc schedulers (nil otherwise).
func (s *Snapshot) WRRSequence() []int32 {
	switch sc := s.sched.(type) {
	case *weightedRoundRobin:
		return append([]int32(nil), sc.seq...)
	case *leastConn:
		return append([]int32(nil), sc.wrr.seq...)
	}
	return nil
}

// Pick picks among this snapshot's eligible backends; nil when none is.
func (s *Snapshot) Pick(key uint64) *Backend { return s.sched.Pick(key) }

// Lookup returns the eligible backend with this ID, or nil if there is none
// (unknown, or not eligible in this snapshot).
func (s *Snapshot) Lookup(id string) *Backend { return s.byID[id] }
