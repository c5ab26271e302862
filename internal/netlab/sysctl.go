package netlab

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
)

// sysctl is one write under /proc/sys; optional ones are skipped when the
// file does not exist (IPv6 disabled).
type sysctl struct {
	key      string // relative to /proc/sys, slash form
	value    string
	optional bool
}

// sysctlPath turns a dotted or slash key into a path relative to
// /proc/sys, accepting only the network tree (per namespace).
func sysctlPath(key string) (string, error) {
	p := key
	if !strings.Contains(p, "/") {
		p = strings.ReplaceAll(p, ".", "/")
	}
	clean := path.Clean(p)
	if clean != p || !strings.HasPrefix(p, "net/") {
		return "", fmt.Errorf("sysctl %q: only keys under net are allowed", key)
	}
	return p, nil
}

// writeSysctls writes s in order from inside h's namespace: /proc/sys/net
// shows the namespace of the thread that opens it.
func (l *Lab) writeSysctls(h *labHost, s []sysctl) error {
	if len(s) == 0 {
		return nil
	}
	return doInNS(h.fd, func() error {
		for _, c := range s {
			f, err := os.OpenFile("/proc/sys/"+c.key, os.O_WRONLY, 0)
			if c.optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("host %s: sysctl %s: %w", h.name, c.key, err)
			}
			_, err = f.WriteString(c.value)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("host %s: sysctl %s=%s: %w", h.name, c.key, c.value, err)
			}
		}
		return nil
	})
}
