//go:build linux

package load

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// timerfdSleeper sleeps on a timerfd read through the netpoller: the fd becomes
// readable when the timer fires, whatever the poller's timeout granularity.
type timerfdSleeper struct {
	fd     int
	f      *os.File
	buf    [8]byte
	unhook func() bool
}

// newSleeper returns a timerfd sleeper, or a timer one if timerfds are unavailable.
func newSleeper(ctx context.Context) sleeper {
	s, err := newTimerfdSleeper(ctx)
	if err != nil {
		return newTimerSleeper(ctx)
	}
	return s
}

func newTimerfdSleeper(ctx context.Context) (*timerfdSleeper, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	s := &timerfdSleeper{fd: fd, f: os.NewFile(uintptr(fd), "timerfd")}
	s.unhook = context.AfterFunc(ctx, func() { s.f.SetReadDeadline(time.Unix(1, 0)) }) //nolint:errcheck
	return s, nil
}

func (s *timerfdSleeper) sleep(d time.Duration) bool {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	if err := unix.TimerfdSettime(s.fd, 0, &spec, nil); err != nil {
		return false
	}
	_, err := s.f.Read(s.buf[:])
	return err == nil
}

func (s *timerfdSleeper) close() {
	s.unhook()
	s.f.Close()
}
