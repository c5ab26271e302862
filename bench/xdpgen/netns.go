package xdpgen

import (
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// NSRunner runs fn on an OS thread inside the network namespace that owns
// an interface and returns fn's error. Interface indexes, XDP attachment and
// BPF_PROG_TEST_RUN's ingress interface are resolved in the calling thread's
// namespace, so everything that names an interface goes through one.
// (*netlab.Lab).Do bound to a host is one:
//
//	run := func(fn func() error) error { return lab.Do("gen", fn) }
type NSRunner func(fn func() error) error

// CurrentNetNS runs fn in the caller's own namespace, on a locked thread.
func CurrentNetNS(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return fn()
}

// NamedNetNS returns a runner for the namespace /run/netns/name (as made by
// `ip netns add`); "" means the current namespace.
func NamedNetNS(name string) NSRunner {
	if name == "" {
		return CurrentNetNS
	}
	return func(fn func() error) error {
		target, err := netns.GetFromName(name)
		if err != nil {
			return fmt.Errorf("network namespace %q: %w", name, err)
		}
		defer target.Close()
		return inNetNS(target, fn)
	}
}

// inNetNS runs fn on a fresh goroutine locked to its thread, switched into
// target and back. If switching back fails the goroutine exits still
// locked, so the runtime ends the thread instead of reusing it in the
// wrong namespace.
func inNetNS(target netns.NsHandle, fn func() error) error {
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		var res result
		func() {
			defer func() { res.panic = recover() }()
			res.err = fn()
		}()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		done <- res
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

// ifindex resolves dev in run's namespace.
func ifindex(run NSRunner, dev string) (int, net.HardwareAddr, error) {
	var iface *net.Interface
	err := run(func() (err error) {
		iface, err = net.InterfaceByName(dev)
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("interface %q: %w", dev, err)
	}
	return iface.Index, iface.HardwareAddr, nil
}

// InterfaceMAC returns dev's hardware address in run's namespace, for a
// frame's source MAC.
func InterfaceMAC(run NSRunner, dev string) (net.HardwareAddr, error) {
	_, mac, err := ifindex(run, dev)
	return mac, err
}
