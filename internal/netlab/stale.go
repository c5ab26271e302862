package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// lockDir holds one flock-ed file per live lab. The kernel drops the lock
// when the owning process dies, which is how CleanupStale tells a crashed
// run's leftovers from a lab in use by a concurrent test or program.
const lockDir = "/run/xlb-netlab"

// labPrefixRE matches the prefix of names Build makes.
var labPrefixRE = regexp.MustCompile(`^xlbt-[0-9a-f]{6}`)

type labLock struct {
	f    *os.File
	path string
}

// acquireLabLock creates <lockDir>/<prefix>.lock already locked: it is
// locked under a temporary name and then linked into place, so no one ever
// sees the final name unlocked. os.ErrExist means the prefix is taken.
func acquireLabLock(prefix string) (*labLock, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("lock dir: %w", err)
	}
	final := filepath.Join(lockDir, prefix+".lock")
	tmp, err := os.CreateTemp(lockDir, prefix+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("lock %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), final); err != nil {
		tmp.Close()
		return nil, err // os.ErrExist when the prefix is in use
	}
	return &labLock{f: tmp, path: final}, nil
}

func (lk *labLock) release() error {
	if lk == nil || lk.f == nil {
		return nil
	}
	err := os.Remove(lk.path)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	lk.f.Close() // drops the flock
	lk.f = nil
	return err
}

// tryLockStale locks prefix's lock file if it exists and no live lab holds
// it. It returns ok=false for a live lab, and a nil lock (ok=true) when
// there is no lock file at all.
func tryLockStale(prefix string) (lk *labLock, ok bool, err error) {
	path := filepath.Join(lockDir, prefix+".lock")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return &labLock{f: f, path: path}, true, nil
}

// CleanupStale deletes what crashed runs left behind: every namespace named
// "xlbt-*" in /run/netns and every /sys/fs/bpf/xlbt-* directory, after
// killing the processes still inside those namespaces. Labs that are still
// open, in this or another process, are left alone. Nothing without the
// "xlbt-" prefix is touched. It returns the names it removed (namespace
// names and BPFFS paths).
func CleanupStale(ctx context.Context) (removed []string, err error) {
	groups := map[string][]string{} // lab prefix -> namespaces
	var bpfDirs []string
	entries, err := os.ReadDir(netnsRunDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("netlab: list namespaces: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), Prefix) {
			p := labPrefix(e.Name())
			groups[p] = append(groups[p], e.Name())
		}
	}
	bpfEntries, err := os.ReadDir(bpffsRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("netlab: list %s: %w", bpffsRoot, err)
	}
	for _, e := range bpfEntries {
		if strings.HasPrefix(e.Name(), Prefix) {
			bpfDirs = append(bpfDirs, e.Name())
			if _, ok := groups[labPrefix(e.Name())]; !ok {
				groups[labPrefix(e.Name())] = nil
			}
		}
	}
	// A lock file is born locked, so one that can be locked is stale even
	// without namespaces (a reboot removed them).
	lockEntries, err := os.ReadDir(lockDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("netlab: list %s: %w", lockDir, err)
	}
	for _, e := range lockEntries {
		if p, ok := strings.CutSuffix(e.Name(), ".lock"); ok && strings.HasPrefix(p, Prefix) {
			if _, ok := groups[p]; !ok {
				groups[p] = nil
			}
		}
	}

	prefixes := make([]string, 0, len(groups))
	for p := range groups {
		prefixes = append(prefixes, p)
	}
	slices.Sort(prefixes)
	var errs []error
	for _, p := range prefixes {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		lk, stale, err := tryLockStale(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !stale {
			continue
		}
		names, err := removeStaleLab(groups[p], bpfDirs, p)
		removed = append(removed, names...)
		if err != nil {
			errs = append(errs, err)
		}
		if err := lk.release(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("netlab: cleanup stale: %w", err)
	}
	return removed, nil
}

func removeStaleLab(namespaces, bpfDirs []string, prefix string) ([]string, error) {
	var removed []string
	var errs []error
	ids := map[string]bool{}
	for _, ns := range namespaces {
		h, err := netns.GetFromPath(filepath.Join(netnsRunDir, ns))
		if err != nil {
			continue // e.g. a file that is not a namespace mount: just remove it
		}
		if id, err := nsInode(h); err == nil {
			ids[id] = true
		}
		h.Close()
	}
	if err := killNSProcesses(ids); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range namespaces {
		if err := deleteNamedNS(ns); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ns)
	}
	for _, d := range bpfDirs {
		if labPrefix(d) != prefix {
			continue
		}
		path := filepath.Join(bpffsRoot, d)
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// labPrefix returns "xlbt-<6 hex>" for names Build makes, and the whole name
// for any other "xlbt-" name (its own group, never locked, so removed).
func labPrefix(name string) string {
	if p := labPrefixRE.FindString(name); p != "" && (len(name) == len(p) || name[len(p)] == '-') {
		return p
	}
	return name
}
