package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsRunDir is where iproute2 looks for named namespaces.
const netnsRunDir = "/run/netns"

// ensureNetnsRunDir prepares /run/netns like `ip netns add` does: a shared
// mount point, so namespaces mounted or unmounted later propagate into the
// mount namespaces that `ip netns exec` children already made.
func ensureNetnsRunDir() error {
	if err := os.MkdirAll(netnsRunDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", netnsRunDir, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", netnsRunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s a shared mount: %w", netnsRunDir, err)
		}
		// EINVAL: not a mount point yet; bind it onto itself first.
		if err := unix.Mount(netnsRunDir, netnsRunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", netnsRunDir, err)
		}
	}
}

// createNamedNS creates a network namespace and bind-mounts it at
// /run/netns/name, without moving the calling thread.
func createNamedNS(name string) error {
	path := filepath.Join(netnsRunDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	err = onLockedThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount namespace at %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			err = fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		return err
	}
	return nil
}

// deleteNamedNS unmounts and removes /run/netns/name; the kernel frees the
// namespace (and its veths) once no process or socket holds it.
func deleteNamedNS(name string) error {
	path := filepath.Join(netnsRunDir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// doInNS runs fn on a fresh, locked OS thread switched into target.
func doInNS(target netns.NsHandle, fn func() error) error {
	return onLockedThread(func() error {
		if err := netns.Set(target); err != nil {
			return fmt.Errorf("enter namespace: %w", err)
		}
		return fn()
	})
}

// onLockedThread runs fn on its own goroutine locked to an OS thread and
// restores the thread's network namespace afterwards. If restoring fails,
// the goroutine exits still locked, so the runtime destroys the thread
// instead of reusing it in the wrong namespace. A panic in fn is re-raised
// in the caller; fn must not call runtime.Goexit (t.FailNow).
func onLockedThread(fn func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("get current namespace: %w", err)}
			return
		}
		defer orig.Close()
		var res result
		returned := false
		defer func() {
			if !returned {
				if v := recover(); v != nil {
					res.panicked, res.value = true, v
				} else {
					res.err = errors.New("netlab: function called runtime.Goexit")
				}
			}
			if err := netns.Set(orig); err != nil {
				res.err = errors.Join(res.err, fmt.Errorf("restore namespace (thread discarded): %w", err))
				done <- res
				return // still locked: the thread dies with this goroutine
			}
			runtime.UnlockOSThread()
			done <- res
		}()
		res.err = fn()
		returned = true
	}()
	res := <-done
	if res.panicked {
		panic(res.value)
	}
	return res.err
}

// nsInode identifies a namespace the way /proc/PID/ns/net links show it.
func nsInode(h netns.NsHandle) (string, error) {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(h), &fs); err != nil {
		return "", fmt.Errorf("statfs namespace: %w", err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return "", errors.New("not a namespace file")
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil {
		return "", fmt.Errorf("stat namespace: %w", err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino), nil
}

// killNSProcesses SIGKILLs every process (other than this one) whose
// network namespace is one of nsIDs, repeating briefly so that children
// forked meanwhile are caught as well.
func killNSProcesses(nsIDs map[string]bool) error {
	if len(nsIDs) == 0 {
		return nil
	}
	self := os.Getpid()
	deadline := time.Now().Add(2 * time.Second)
	for {
		found := 0
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return fmt.Errorf("read /proc: %w", err)
		}
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net"))
			if err != nil || !nsIDs[link] {
				continue
			}
			found++
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill %d: %w", pid, err)
			}
		}
		if found == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still in the lab namespaces", found)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
