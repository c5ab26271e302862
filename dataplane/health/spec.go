package health

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// CheckType is the protocol a check speaks.
type CheckType uint8

const (
	// TCP passes when a connection is established within the timeout.
	TCP CheckType = iota + 1
	// HTTP passes when a GET answers with a status in the accepted classes.
	HTTP
	// UDP passes when the exact expected datagram comes back in time.
	UDP
)

func (t CheckType) String() string {
	switch t {
	case TCP:
		return "tcp"
	case HTTP:
		return "http"
	case UDP:
		return "udp"
	default:
		return fmt.Sprintf("CheckType(%d)", uint8(t))
	}
}

// Codes is a set of accepted HTTP status classes.
type Codes uint8

// The status classes of the configuration (http_2xx ... http_5xx).
const (
	HTTP2xx Codes = 1 << 2
	HTTP3xx Codes = 1 << 3
	HTTP4xx Codes = 1 << 4
	HTTP5xx Codes = 1 << 5

	allCodes = HTTP2xx | HTTP3xx | HTTP4xx | HTTP5xx
)

// Accepts reports whether status falls in one of the classes.
func (c Codes) Accepts(status int) bool {
	class := status / 100
	return class >= 2 && class <= 5 && c&(1<<class) != 0
}

func (c Codes) String() string {
	var parts []string
	for class := 2; class <= 5; class++ {
		if c&(1<<class) != 0 {
			parts = append(parts, fmt.Sprintf("http_%dxx", class))
		}
	}
	return strings.Join(parts, ",")
}

// Defaults applied by Normalize to zero fields, the same as the
// configuration's.
const (
	DefaultTimeout     = 5 * time.Second  // tcp, http
	DefaultUDPTimeout  = 10 * time.Second // udp
	DefaultInterval    = 2 * time.Second  // tcp, http
	DefaultUDPInterval = 5 * time.Second  // udp
	DefaultThreshold   = 3                // rise and fall
	DefaultCodes       = HTTP2xx | HTTP3xx
	DefaultPath        = "/"
)

// Spec is one check's settings. It is comparable: two targets with equal
// normalised specs on the same address share a checker.
type Spec struct {
	Type CheckType
	// Port, when non-zero, is checked instead of the target's port.
	Port uint16
	// HTTP only: Host header (default: the checked address and port),
	// request path with optional query (default "/"), accepted classes.
	Host  string
	Path  string
	Codes Codes
	// Timeout bounds one check; Interval is the pause between the end of a
	// check and the start of the next (±10% jitter). Neither has a minimum
	// here: the configuration's 1 s floor is the control plane's rule.
	Timeout  time.Duration
	Interval time.Duration
	// Rise consecutive successes bring a down backend up; Fall consecutive
	// failures take an up backend down.
	Rise, Fall int
	// UDP only: the datagram sent and the exact datagram required back.
	Request, Response string
}

// Normalize fills defaults and clears the fields the check type does not
// use, so equal checks compare equal.
func (s Spec) Normalize() Spec {
	switch s.Type {
	case TCP:
		s.Host, s.Path, s.Codes, s.Request, s.Response = "", "", 0, "", ""
	case HTTP:
		s.Request, s.Response = "", ""
		if s.Path == "" {
			s.Path = DefaultPath
		}
		if s.Codes == 0 {
			s.Codes = DefaultCodes
		}
	case UDP:
		s.Host, s.Path, s.Codes = "", "", 0
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
		if s.Type == UDP {
			s.Timeout = DefaultUDPTimeout
		}
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
		if s.Type == UDP {
			s.Interval = DefaultUDPInterval
		}
	}
	if s.Rise == 0 {
		s.Rise = DefaultThreshold
	}
	if s.Fall == 0 {
		s.Fall = DefaultThreshold
	}
	return s
}

// Validate reports the first problem of a normalised spec.
func (s Spec) Validate() error {
	switch s.Type {
	case TCP, HTTP, UDP:
	default:
		return fmt.Errorf("type %v: must be tcp, http or udp", s.Type)
	}
	if s.Timeout <= 0 {
		return fmt.Errorf("timeout %v: must be positive", s.Timeout)
	}
	if s.Interval <= 0 {
		return fmt.Errorf("interval %v: must be positive", s.Interval)
	}
	if s.Rise < 1 {
		return fmt.Errorf("rise %d: must be at least 1", s.Rise)
	}
	if s.Fall < 1 {
		return fmt.Errorf("fall %d: must be at least 1", s.Fall)
	}
	switch s.Type {
	case HTTP:
		if s.Codes&^allCodes != 0 {
			return fmt.Errorf("codes %#x: only http_2xx..http_5xx exist", uint8(s.Codes))
		}
		if _, err := parsePath(s.Path); err != nil {
			return err
		}
		if !validHost(s.Host) {
			return fmt.Errorf("host %q: not a valid Host header", s.Host)
		}
	case UDP:
		if s.Request == "" {
			return errors.New("request: required for udp checks")
		}
		if s.Response == "" {
			return errors.New("response: required for udp checks")
		}
	}
	return nil
}

func parsePath(p string) (*url.URL, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("path %q: must start with /", p)
	}
	u, err := url.ParseRequestURI(p)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", p, err)
	}
	if u.Host != "" || u.Scheme != "" {
		return nil, fmt.Errorf("path %q: must be a path, not a URL", p)
	}
	return u, nil
}

// validHost rejects what could split or corrupt the request header.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c == 0x7f || c == '/' || c == '\\' {
			return false
		}
	}
	return true
}

// Target asks for Addr to be checked with Spec on behalf of Owner (for
// example "lb-web/tcp:80/10.0.1.10:8080"). Targets with equal keys share one
// checker; the owners come back in Events and Status so an engine can find
// the backends a change concerns.
type Target struct {
	Owner string
	Addr  netip.AddrPort
	Spec  Spec
}

// Key identifies one checker: the backend address and the normalised spec.
type Key struct {
	Addr netip.AddrPort
	Spec Spec
}

// Key returns the target's checker key (the spec normalised).
func (t Target) Key() Key {
	s := t.Spec.Normalize()
	if s.Port == t.Addr.Port() {
		s.Port = 0 // an override naming the same port is no override
	}
	return Key{Addr: t.Addr, Spec: s}
}

// CheckAddr is the address the check connects to: Addr with the port
// override applied.
func (k Key) CheckAddr() netip.AddrPort {
	if k.Spec.Port != 0 {
		return netip.AddrPortFrom(k.Addr.Addr(), k.Spec.Port)
	}
	return k.Addr
}

func (k Key) String() string {
	s := k.Spec.Type.String() + "://" + k.CheckAddr().String()
	if k.Spec.Type == HTTP {
		s += k.Spec.Path
	}
	return s
}

func (k Key) validate() error {
	if !k.Addr.Addr().IsValid() {
		return errors.New("address: invalid")
	}
	if k.CheckAddr().Port() == 0 {
		return errors.New("port: 0 and no port override")
	}
	return k.Spec.Validate()
}
