// Package netlab builds network-namespace labs for tests, benchmarks and the
// demo: hosts are named network namespaces ("xlbt-<6 hex>-<host>", visible to
// `ip netns exec`), joined by veth pairs whose ends are created directly in
// their namespaces, so the host's own links are never touched.
//
// Tests call New, which skips (or, with CI=true, fails) when namespaces are
// unavailable and closes the lab in t.Cleanup. Programs call Build and must
// call Close on every exit path: defer it (Close is idempotent and safe in
// a deferred call during a panic) and handle SIGINT/SIGTERM by cancelling
// the context and returning normally, e.g. with signal.NotifyContext. A run
// that died anyway (SIGKILL, crash) leaves namespaces that CleanupStale
// removes.
package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Prefix starts the name of every object a lab creates.
const Prefix = "xlbt-"

// bpffsRoot is where BPF objects are pinned.
const bpffsRoot = "/sys/fs/bpf"

// ErrUnsupported reports that network namespaces cannot be used here (not
// root, or no kernel support).
var ErrUnsupported = errors.New("netlab: network namespaces unavailable")

// Lab is a built topology. Its methods are safe for concurrent use, except
// that Close must not race with Start of a command from Lab.Command.
type Lab struct {
	prefix string // "xlbt-1a2b3c"
	lock   *labLock

	mu     sync.RWMutex
	closed bool
	hosts  map[string]*labHost
	order  []*labHost
	cmds   map[*exec.Cmd]struct{}

	closeOnce sync.Once
	closeErr  error

	// udpPort is the last source port Dial gave a UDP socket (see Dial).
	udpPort atomic.Uint32
}

type labHost struct {
	name string
	ns   string // namespace name
	fd   netns.NsHandle
	nl   *netlink.Handle
}

// Build creates the topology. On error everything created so far is
// removed. ctx bounds the build only, not the lab's lifetime.
func Build(ctx context.Context, topo Topology) (_ *Lab, err error) {
	if err := topo.Validate(); err != nil {
		return nil, fmt.Errorf("netlab: invalid topology: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: not running as root", ErrUnsupported)
	}
	if err := ensureNetnsRunDir(); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	l, err := newLab()
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	built := false
	defer func() {
		// Also runs during a panic: nothing is left behind either way.
		if !built {
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("netlab: cleanup after failed build: %w", cerr))
			}
		}
	}()
	if err := l.build(ctx, topo); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	built = true
	return l, nil
}

func newLab() (*Lab, error) {
	for range 10 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		prefix := Prefix + hex.EncodeToString(b[:])
		lock, err := acquireLabLock(prefix)
		if errors.Is(err, os.ErrExist) {
			continue // prefix in use: draw again
		}
		if err != nil {
			return nil, err
		}
		return &Lab{
			prefix: prefix,
			lock:   lock,
			hosts:  map[string]*labHost{},
			cmds:   map[*exec.Cmd]struct{}{},
		}, nil
	}
	return nil, errors.New("no free lab prefix")
}

// Prefix returns the lab's unique prefix, "xlbt-<6 hex>".
func (l *Lab) Prefix() string { return l.prefix }

// NetNS returns the namespace name of host, for `ip netns exec NAME`, or ""
// if the lab has no such host.
func (l *Lab) NetNS(host string) string {
	h, err := l.host(host)
	if err != nil {
		return ""
	}
	return h.ns
}

// NetNSPath returns /run/netns/NAME for host, or "" for an unknown host.
func (l *Lab) NetNSPath(host string) string {
	ns := l.NetNS(host)
	if ns == "" {
		return ""
	}
	return filepath.Join(netnsRunDir, ns)
}

// Hosts returns the lab's host names in topology order.
func (l *Lab) Hosts() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	names := make([]string, 0, len(l.order))
	for _, h := range l.order {
		names = append(names, h.name)
	}
	return names
}

// BPFFSDir returns /sys/fs/bpf/<prefix>, the directory for the lab's pinned
// BPF objects. Callers create it when they need it; Close removes it.
func (l *Lab) BPFFSDir() string { return filepath.Join(bpffsRoot, l.prefix) }

func (l *Lab) host(name string) (*labHost, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, errors.New("netlab: lab is closed")
	}
	h, ok := l.hosts[name]
	if !ok {
		return nil, fmt.Errorf("netlab: unknown host %q", name)
	}
	return h, nil
}

// Close kills the processes started with Command and any other process
// left in the lab's namespaces, deletes the namespaces (and so their
// veths) and the BPFFS directory. It is idempotent; a nil Lab is fine.
// Sockets made with Listen, ListenPacket or Dial keep their (now unnamed)
// namespace alive until they are closed.
func (l *Lab) Close() error {
	if l == nil {
		return nil
	}
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	cmds := l.cmds
	l.cmds = nil
	hosts := l.order
	l.mu.Unlock()

	var errs []error
	for cmd := range cmds {
		killGroup(cmd)
	}
	ids := map[string]bool{}
	for _, h := range hosts {
		if id, err := nsInode(h.fd); err == nil {
			ids[id] = true
		}
	}
	if err := killNSProcesses(ids); err != nil {
		errs = append(errs, err)
	}
	for _, h := range hosts {
		if h.nl != nil {
			h.nl.Close()
		}
		h.fd.Close()
		if err := deleteNamedNS(h.ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(l.BPFFSDir()); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", l.BPFFSDir(), err))
	}
	if err := l.lock.release(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netlab: close %s: %w", l.prefix, err)
	}
	return nil
}
