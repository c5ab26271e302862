package l7

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/xlbproject/xlb/dataplane/acl"
	"github.com/xlbproject/xlb/dataplane/certs"
	"github.com/xlbproject/xlb/dataplane/limit"
	"github.com/xlbproject/xlb/dataplane/pool"
)

// Config is the engine's whole desired state.
type Config struct {
	Listeners []Listener
}

// Listener is one http listener as the control plane compiled it.
//
// An https listener has TLS settings (and HTTP/3 optionally); everything
// after the handshake (routing, persistence, headers, gzip, metrics) is the
// same code, which takes the scheme from the listener.
type Listener struct {
	// Name labels metrics and logs, e.g. "lb-web/http/80".
	Name string
	// LB is the load balancer's id: the lb metrics label and X-LB-ID.
	LB string
	// Addr is the VIP and port; its address is X-LB-IP. The socket is bound
	// with IP_FREEBIND, so the VIP need not be on the host yet.
	Addr netip.AddrPort
	// Registry holds the backends the pools are built from; listeners whose
	// health checks are identical share one, so they share health state.
	Registry *pool.Registry
	// Default is where requests that match no rule go: the listener's
	// server group, or else the load balancer's default pool.
	Default pool.Config
	// Groups are the pools the rules name, by server group id.
	Groups map[string]pool.Config
	// Rules route by domain and path; see Rule for the precedence.
	Rules       []Rule
	Persistence Persistence
	Headers     Headers
	// Gzip compresses text responses for clients that accept it.
	Gzip bool
	// ACL filters client addresses; nil allows everyone.
	ACL *acl.List
	// Stopped listeners (or load balancers) keep their socket and answer
	// every request with 503, counted.
	Stopped bool
	// RedirectHTTPS, when set, answers every request with a redirect to
	// the https listener instead of proxying it.
	RedirectHTTPS *Redirect
	// TLS makes the listener https: TLS is terminated on accept and ALPN
	// picks HTTP/2 or HTTP/1.1. nil: plain http (h2c by prior knowledge).
	// NextProtos is set by the engine.
	TLS *certs.Settings
	// HTTP3 also serves the listener over QUIC on the same port (UDP), and
	// advertises it with Alt-Svc on the HTTP/1.1 and HTTP/2 answers. Needs TLS.
	HTTP3    bool
	Timeouts Timeouts
	// Limits are the load balancer's (shared with its other listeners and
	// engines); nil: unlimited. Bandwidth paces the listener's client
	// traffic in and out; nil: unshaped.
	Limits                    *limit.LB
	BandwidthIn, BandwidthOut *limit.Shaper
}

// Rule sends the requests matching Domain and Path to the server group
// Group. Precedence: an exact domain beats a wildcard (a longer wildcard
// suffix beats a shorter one); within a domain, domain+path beats domain
// only and the longest path prefix wins; rules with only a path apply to
// any domain after every domain rule; no match: the listener's Default.
type Rule struct {
	// Domain is exact ("www.example.com") or a wildcard ("*.example.com",
	// one or more labels); empty: any domain. Compared case-insensitively.
	Domain string
	// Path is a prefix starting with "/"; empty: any path.
	Path string
	// Group is a key of Listener.Groups.
	Group string
}

// PersistenceMode is how a client is kept on one backend.
type PersistenceMode uint8

const (
	// PersistNone picks every request afresh.
	PersistNone PersistenceMode = iota
	// InsertCookie sets the balancer's own cookie naming the backend.
	InsertCookie
	// RewriteCookie prefixes the backend's own cookie with the backend's id.
	RewriteCookie
)

func (m PersistenceMode) String() string {
	switch m {
	case PersistNone:
		return "none"
	case InsertCookie:
		return "insert_cookie"
	case RewriteCookie:
		return "rewrite_cookie"
	}
	return fmt.Sprintf("PersistenceMode(%d)", uint8(m))
}

// DefaultCookie is insert_cookie's cookie name when none is configured.
const DefaultCookie = "XLBSERVERID"

// Persistence is cookie-based session persistence.
type Persistence struct {
	Mode PersistenceMode
	// Cookie is the inserted cookie's name (InsertCookie, default
	// DefaultCookie) or the backend's cookie to rewrite (RewriteCookie).
	Cookie string
	// Timeout is the inserted cookie's Max-Age (InsertCookie); 0: a session
	// cookie.
	Timeout time.Duration
}

// Headers selects the headers added to proxied requests.
type Headers struct {
	XForwardedFor   bool // append the client's address
	XForwardedProto bool // the listener's scheme
	LBIP            bool // X-LB-IP: the VIP
	LBID            bool // X-LB-ID: the load balancer's id
}

// Redirect answers plain http requests with a redirect to https.
type Redirect struct {
	Port   uint16 // the https listener's port
	Status int    // 301 or 308
}

// Timeouts of one listener; zero fields take the defaults below.
type Timeouts struct {
	// Idle closes a client's keep-alive connection after this long without
	// a request (and bounds body transfers that make no progress).
	Idle time.Duration
	// Connect bounds a backend connection attempt.
	Connect time.Duration
	// Request bounds the wait for a backend's response headers.
	Request time.Duration
	// Header bounds a client's sending of one request's headers once it
	// has started: the slowloris guard.
	Header time.Duration
}

// Timeout defaults.
const (
	DefaultIdleTimeout    = 60 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultRequestTimeout = 60 * time.Second
	DefaultHeaderTimeout  = 10 * time.Second
)

func (t Timeouts) withDefaults() Timeouts {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&t.Idle, DefaultIdleTimeout)
	set(&t.Connect, DefaultConnectTimeout)
	set(&t.Request, DefaultRequestTimeout)
	set(&t.Header, DefaultHeaderTimeout)
	return t
}

func (l *Listener) validate() error {
	if !l.Addr.IsValid() || l.Addr.Port() == 0 {
		return fmt.Errorf("listener %s: address %v", l.Name, l.Addr)
	}
	if l.Registry == nil {
		return fmt.Errorf("listener %s: no backend registry", l.Name)
	}
	if err := l.Default.Validate(); err != nil {
		return fmt.Errorf("listener %s: default pool: %w", l.Name, err)
	}
	for id, g := range l.Groups {
		if err := g.Validate(); err != nil {
			return fmt.Errorf("listener %s: group %s: %w", l.Name, id, err)
		}
	}
	for i, r := range l.Rules {
		if r.Domain == "" && r.Path == "" {
			return fmt.Errorf("listener %s: rules[%d]: neither domain nor path", l.Name, i)
		}
		if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
			return fmt.Errorf("listener %s: rules[%d].path %q: must start with /", l.Name, i, r.Path)
		}
		if strings.Contains(strings.TrimPrefix(r.Domain, "*."), "*") {
			return fmt.Errorf("listener %s: rules[%d].domain %q: only a leading *. label", l.Name, i, r.Domain)
		}
		if _, ok := l.Groups[r.Group]; !ok {
			return fmt.Errorf("listener %s: rules[%d].group %q: not in Groups", l.Name, i, r.Group)
		}
	}
	switch l.Persistence.Mode {
	case PersistNone, InsertCookie:
	case RewriteCookie:
		if l.Persistence.Cookie == "" {
			return fmt.Errorf("listener %s: persistence: rewrite_cookie needs a cookie name", l.Name)
		}
	default:
		return fmt.Errorf("listener %s: persistence: unknown mode %v", l.Name, l.Persistence.Mode)
	}
	if !validCookieName(l.cookieName()) && l.Persistence.Mode != PersistNone {
		return fmt.Errorf("listener %s: persistence: %q is not a cookie name", l.Name, l.cookieName())
	}
	if l.HTTP3 && l.TLS == nil {
		return fmt.Errorf("listener %s: http3 needs TLS", l.Name)
	}
	if l.RedirectHTTPS != nil && l.TLS != nil {
		return fmt.Errorf("listener %s: redirect_https is for plain http listeners", l.Name)
	}
	if r := l.RedirectHTTPS; r != nil && (r.Port == 0 || (r.Status != 301 && r.Status != 308)) {
		return fmt.Errorf("listener %s: redirect_https: port %d status %d", l.Name, r.Port, r.Status)
	}
	return nil
}

func (l *Listener) cookieName() string {
	if l.Persistence.Cookie == "" && l.Persistence.Mode == InsertCookie {
		return DefaultCookie
	}
	return l.Persistence.Cookie
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
