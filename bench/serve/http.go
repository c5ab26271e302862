package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultGracePeriod is how long Serve lets in-flight requests finish after its context
// ends before it closes every connection.
const DefaultGracePeriod = time.Second

// HTTP is a test backend that answers every request with its Name and offers endpoints
// for the checks a load balancer test needs. It serves HTTP/1.1 with keep-alive and h2c
// with prior knowledge; over a TLS listener it also serves HTTP/2 when ALPN offers h2.
//
// The endpoints:
//
//	/                  (any other path) 200, body "<name>\n", header X-Backend: <name>
//	/health            200 "ok", or 503 "unhealthy" after SetHealthy(false)
//	/headers           200, JSON map[string][]string of the request headers plus the
//	                   keys "_host", "_remote_addr", "_proto" and "_uri"
//	/cookie?name=N&value=V[&max_age=S]  sets cookie N=V (Path=/), body "<name>\n"
//	/cookies           200, JSON map[string]string of the request cookies
//	/bytes?n=N[&type=T] N bytes (at most MaxBytes) of compressible text of type T
//	                   (default text/plain)
//	/echo              streams the request body back
//	/delay?ms=N        waits N ms (at most MaxDelay) then answers like /
//	/status/NNN        answers with status NNN (200-599)
//	/ws                WebSocket (RFC 6455) echo of text and binary messages
//
// Every response carries X-Backend: <name>. An HTTP must not be copied after first use,
// and Name must not change once it serves.
type HTTP struct {
	Name string
	// GracePeriod bounds the graceful shutdown when Serve's context ends; zero means
	// DefaultGracePeriod.
	GracePeriod time.Duration
	// ErrorLog receives net/http's connection errors; nil discards them.
	ErrorLog *log.Logger

	unhealthy   atomic.Bool
	requests    atomic.Uint64
	byPath      [NumPathClasses]atomic.Uint64
	connections atomic.Uint64

	once sync.Once
	// Precomputed header values and body for the hot path: assigning these shared
	// slices to the response header map avoids allocating per request. net/http only
	// reads header values, so sharing them is safe.
	hdrName    []string
	hdrPlain   []string
	hdrNameLen []string
	body       []byte
	filler     []byte // compressible text for /bytes
}

// Limits of the parameterised endpoints.
const (
	MaxBytes = 64 << 20         // /bytes?n= cap
	MaxDelay = 60 * time.Second // /delay?ms= cap
)

// NewHTTP returns an HTTP backend named name.
func NewHTTP(name string) *HTTP { return &HTTP{Name: name} }

func (s *HTTP) init() {
	s.once.Do(func() {
		s.body = []byte(s.Name + "\n")
		s.hdrName = []string{s.Name}
		s.hdrPlain = []string{"text/plain; charset=utf-8"}
		s.hdrNameLen = []string{strconv.Itoa(len(s.body))}
		s.filler = makeFiller(16 << 10)
	})
}

// SetHealthy sets what /health answers: 200 when true (the default), 503 when false.
func (s *HTTP) SetHealthy(ok bool) { s.unhealthy.Store(!ok) }

// Healthy reports what /health currently answers.
func (s *HTTP) Healthy() bool { return !s.unhealthy.Load() }

// Requests returns the number of requests received, all paths together.
func (s *HTTP) Requests() uint64 { return s.requests.Load() }

// Counters returns a snapshot of the request and connection counters.
func (s *HTTP) Counters() Counters {
	c := Counters{Requests: s.requests.Load(), Connections: s.connections.Load()}
	for i := range c.ByPath {
		c.ByPath[i] = s.byPath[i].Load()
	}
	return c
}

// Serve serves HTTP/1.1 and h2c on l until ctx ends, then shuts down gracefully: it
// stops accepting, lets in-flight requests finish for GracePeriod, then cancels the
// remaining requests (delays, WebSockets) and closes every connection. It returns nil
// after a shutdown caused by ctx, and only once every handler has returned.
func (s *HTTP) Serve(ctx context.Context, l net.Listener) error {
	s.init()
	// Requests get a context that outlives ctx by the grace period, so a cancelled ctx
	// does not abort in-flight requests before the graceful shutdown gives up on them.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()

	// Handlers hold inflight for reading while they run; Serve takes it for writing to
	// wait for the last one (hijacked WebSockets included, which http.Server forgets).
	var inflight sync.RWMutex
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	errorLog := s.ErrorLog
	if errorLog == nil {
		errorLog = log.New(io.Discard, "", 0)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !inflight.TryRLock() { // shutting down
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			defer inflight.RUnlock()
			s.ServeHTTP(w, r)
		}),
		Protocols:         &protocols,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ConnState:         s.connState,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errorLog,
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	var serveErr error
	select {
	case serveErr = <-served:
	case <-ctx.Done():
		grace := s.GracePeriod
		if grace <= 0 {
			grace = DefaultGracePeriod
		}
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		_ = srv.Shutdown(shutCtx) // a timeout only means requests were still running
		cancel()
		serveErr = <-served
	}
	_ = srv.Close()  // closes every connection but hijacked ones
	cancelRequests() // ends delays and WebSockets
	inflight.Lock()  // every handler has returned
	if ctx.Err() != nil && errors.Is(serveErr, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve http %q on %s: %w", s.Name, l.Addr(), serveErr)
}

func (s *HTTP) connState(_ net.Conn, state http.ConnState) {
	if state == http.StateNew {
		s.connections.Add(1)
	}
}

// ServeHTTP routes a request to its endpoint. It makes HTTP usable with any server
// (httptest, a TLS server); only Serve tracks hijacked WebSocket connections.
func (s *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	class := classify(r.URL.Path)
	s.requests.Add(1)
	s.byPath[class].Add(1)
	h := w.Header()
	h["X-Backend"] = s.hdrName
	switch class {
	case PathRoot:
		s.serveName(w)
	case PathHealth:
		s.serveHealth(w)
	case PathHeaders:
		s.serveHeaders(w, r)
	case PathCookie:
		s.serveCookie(w, r)
	case PathCookies:
		s.serveCookies(w, r)
	case PathBytes:
		s.serveBytes(w, r)
	case PathEcho:
		s.serveEcho(w, r)
	case PathDelay:
		s.serveDelay(w, r)
	case PathStatus:
		s.serveStatus(w, r)
	case PathWebSocket:
		s.serveWebSocket(w, r)
	}
}

func classify(path string) PathClass {
	switch path {
	case "/health":
		return PathHealth
	case "/headers":
		return PathHeaders
	case "/cookie":
		return PathCookie
	case "/cookies":
		return PathCookies
	case "/bytes":
		return PathBytes
	case "/echo":
		return PathEcho
	case "/delay":
		return PathDelay
	case "/ws":
		return PathWebSocket
	}
	if len(path) > len("/status/") && path[:len("/status/")] == "/status/" {
		return PathStatus
	}
	return PathRoot
}
