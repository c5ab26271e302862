package xdp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// bpffsMagic is the statfs f_type of a bpffs mount.
const bpffsMagic = 0xcafe4a11

// ensureBPFFS makes dir exist on a bpffs mount. When dir lies under
// /sys/fs/bpf and nothing is mounted there, it mounts bpffs (as systemd
// does at boot on most distributions).
func ensureBPFFS(dir string) error {
	if !onBPFFS(filepath.Dir(dir)) && strings.HasPrefix(filepath.Clean(dir)+"/", "/sys/fs/bpf/") && !onBPFFS("/sys/fs/bpf") {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mounting bpffs at /sys/fs/bpf: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pin directory: %w", err)
	}
	if !onBPFFS(dir) {
		return fmt.Errorf("pin directory %s is not on a bpffs mount (mount -t bpf bpf DIR)", dir)
	}
	return nil
}

func onBPFFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && uint32(st.Type) == bpffsMagic
}

// loadObjects loads the program and its maps, reusing the maps pinned in
// dir by an earlier xlbd (their contents: flows, listeners, backends) and
// pinning new ones there.
func loadObjects(dir string, maxFlows uint32) (*lbObjects, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("memlock: %w", err)
	}
	spec, err := loadLb()
	if err != nil {
		return nil, fmt.Errorf("loading the XDP object: %w", err)
	}
	spec.Maps[lbMapFlows].MaxEntries = 2 * maxFlows
	for _, m := range spec.Maps {
		if !strings.HasPrefix(m.Name, ".") {
			m.Pinning = ebpf.PinByName
		}
	}
	var objs lbObjects
	err = spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, fmt.Errorf("the maps pinned in %s do not fit this xlbd (conntrack.max_flows changed, or another xlb version): "+
			"`xlbd cleanup --bpffs %s` removes them and every tracked flow: %w", dir, dir, err)
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("the kernel's verifier refused the XDP program: %+v", ve)
		}
		return nil, fmt.Errorf("loading the XDP program: %w", err)
	}
	return &objs, nil
}

// Cleanup detaches the program from every interface it was pinned to and
// removes every pinned map: what `xlbd cleanup` does. Tracked flows are lost.
func Cleanup(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		// Unpinning a link detaches it once no fd holds it.
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}
