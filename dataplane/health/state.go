package health

import (
	"net/netip"
	"time"
)

// State is a backend's health as the engines see it.
type State uint8

const (
	// Down: the backend gets no new connections or requests.
	Down State = iota + 1
	// Up: the backend is in rotation.
	Up
)

func (s State) String() string {
	switch s {
	case Down:
		return "down"
	case Up:
		return "up"
	default:
		return "unknown"
	}
}

// counter is HAProxy's rise/fall hysteresis, with runs that reset: Fall
// consecutive failures take an up backend down, Rise consecutive successes
// bring a down backend up, and any result of the other kind restarts the run.
type counter struct {
	rise, fall int
	state      State
	// Lengths of the current run of successes or failures (one is zero).
	successes, failures int
}

// observe records one check result and reports whether the state changed.
func (c *counter) observe(ok bool) bool {
	if ok {
		c.failures = 0
		c.successes++
		if c.state == Down && c.successes >= c.rise {
			c.state = Up
			return true
		}
		return false
	}
	c.successes = 0
	c.failures++
	if c.state == Up && c.failures >= c.fall {
		c.state = Down
		return true
	}
	return false
}

// Status is a checker's current view of a backend.
type Status struct {
	Key Key
	// Owners that registered this key, sorted.
	Owners []string
	State  State
	// Consecutive successful and failed checks so far (one is zero).
	Successes, Failures int
	// LastError is the last check's error; empty if it passed.
	LastError string
	// LastCheck is when the last check started; zero before the first.
	LastCheck time.Time
	// Since is when State was entered (the checker's creation for the
	// initial state).
	Since time.Time
}

// Event is one state change.
type Event struct {
	Key  Key
	Addr netip.AddrPort // Key.Addr, the backend
	// Owners that registered this key, sorted.
	Owners   []string
	Old, New State
	// Reason says why, in words, including the last error for a down.
	Reason    string
	LastError string
	Time      time.Time
}
