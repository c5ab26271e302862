package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	xlbv1 "github.com/xlbproject/xlb/controlplane/api/xlb/v1"
)

const (
	minFlows = 1024
	maxFlows = 64 << 20
	// maxSocketPath is sun_path's size less the terminating NUL.
	maxSocketPath = 107
)

func (v *validator) node(p string, n *xlbv1.Node) {
	if n == nil {
		return
	}
	seen := map[string]int{}
	for i, name := range n.Interfaces {
		ip := index(field(p, "interfaces"), i)
		if !validIfName(name) {
			v.add(ip, "%q is not a valid interface name: 1 to 15 characters, no '/', ':' or white space", name)
			continue
		}
		if first, dup := seen[name]; dup {
			v.add(ip, "%q is already listed as interfaces[%d]", name, first)
			continue
		}
		seen[name] = i
	}
	if c := n.Control; c != nil {
		v.control(field(p, "control"), c)
	}
	if m := n.Metrics; m != nil && m.Listen != "off" {
		if err := checkHostPort(m.Listen); err != nil {
			v.add(field(p, "metrics.listen"), "%v: write HOST:PORT (127.0.0.1:9100) or off", err)
		}
	}
	if n.StateDir != "" && !filepath.IsAbs(n.StateDir) {
		v.add(field(p, "state_dir"), "%q is not an absolute path", n.StateDir)
	}
	if ct := n.Conntrack; ct != nil {
		cp := field(p, "conntrack")
		v.checkRange(field(cp, "max_flows"), uint64(ct.MaxFlows), minFlows, maxFlows)
		v.checkDuration(field(cp, "tcp_established_timeout"), ct.TcpEstablishedTimeout, time.Second, 168*time.Hour)
		v.checkDuration(field(cp, "tcp_closing_timeout"), ct.TcpClosingTimeout, time.Second, 24*time.Hour)
		v.checkDuration(field(cp, "udp_timeout"), ct.UdpTimeout, time.Second, 24*time.Hour)
	}
	if a := n.Announce; a != nil {
		// 253..255 are the kernel's default, main and local tables.
		rt := field(p, "announce.route_table")
		if v.checkRange(rt, uint64(a.RouteTable), 1, 1<<32-1) && a.RouteTable >= 253 && a.RouteTable <= 255 {
			v.add(rt, "%d is a table the kernel reserves (253 default, 254 main, 255 local)", a.RouteTable)
		}
	}
}

func (v *validator) control(p string, c *xlbv1.Control) {
	lp := field(p, "listen")
	tcp := false
	if path, ok := strings.CutPrefix(c.Listen, "unix://"); ok {
		switch {
		case !filepath.IsAbs(path):
			v.add(lp, "%q: unix:// takes an absolute path, as in unix:///run/xlb/xlb.sock", c.Listen)
		case len(path) > maxSocketPath:
			v.add(lp, "socket path is %d bytes; a unix socket path has at most %d", len(path), maxSocketPath)
		}
	} else if hp, ok := strings.CutPrefix(c.Listen, "tcp://"); ok {
		tcp = true
		if err := checkHostPort(hp); err != nil {
			v.add(lp, "%q: %v", c.Listen, err)
		}
	} else {
		v.add(lp, "%q is not unix://PATH or tcp://HOST:PORT", c.Listen)
	}
	tp := field(p, "tls")
	switch {
	case tcp && c.Tls == nil:
		v.add(tp, "required with a tcp:// listener: the control port is served over mutual TLS only")
	case tcp:
		for _, f := range []struct{ name, val string }{
			{"cert_file", c.Tls.CertFile}, {"key_file", c.Tls.KeyFile}, {"client_ca_file", c.Tls.ClientCaFile},
		} {
			if f.val == "" {
				v.add(field(tp, f.name), "required with a tcp:// listener")
			}
		}
	case c.Tls != nil:
		v.add(tp, "only a tcp:// listener uses tls; a unix socket is guarded by file permissions")
	}
}

// splitHostPort splits HOST:PORT and parses the port.
func splitHostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not HOST:PORT", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port %q is not a number", s, port)
	}
	return host, n, nil
}
