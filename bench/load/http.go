package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// HTTP proto names, for HTTPOptions.Proto and Result.Proto.
const (
	ProtoHTTP1  = "http1"
	ProtoH2C    = "h2c"
	ProtoH2     = "h2"
	ProtoCustom = "custom" // Result.Proto when HTTPOptions.RoundTripper is set
)

// HTTP runs an HTTP load test against o.URL and returns what it measured. Requests
// answered 4xx or 5xx count as errors (status_4xx, status_5xx), not as Ops. If ctx
// ends first, HTTP returns what it measured so far together with ctx's error.
//
// Bytes are counted on the wire (status line, headers and body) for http1, and as
// request and response bodies for h2c, h2 and a custom RoundTripper.
func HTTP(ctx context.Context, o HTTPOptions) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	u, err := parseHTTPURL(o.URL)
	if err != nil {
		return nil, err
	}
	proto := o.Proto
	if proto == "" {
		proto = ProtoHTTP1
	}
	timeout := orDefault(o.Timeout, DefaultTimeout)
	dial := o.Dial
	if dial == nil {
		dial = defaultDial
	}
	p := &plan{
		workers:  connectionsFor(o.Connections, o.Rate),
		rate:     o.Rate,
		duration: runDuration(o.Duration, o.Requests),
		warmup:   o.Warmup,
		limit:    o.Requests,
		progress: o.Progress,
		unit:     "req/s",
	}
	host := u.Host
	if v := o.Header.Get("Host"); v != "" {
		host = v
	}
	if o.Host != "" {
		host = o.Host
	}
	if err := checkHeaderValue("Host", host); err != nil {
		return nil, err
	}

	switch {
	case o.RoundTripper != nil:
		proto = ProtoCustom
		t := newRTTarget(&o, u, host, timeout)
		p.newWorker = func(ctx context.Context, _ int) worker {
			w := &rtWorker{t: t, ctx: ctx, rt: o.RoundTripper()}
			if o.NewConnPerRequest {
				w.newRT = o.RoundTripper
			}
			return w
		}
	case proto == ProtoHTTP1:
		t := &h1Target{
			addr:    hostPort(u),
			req:     buildH1Request(&o, u, host),
			head:    o.Method == http.MethodHead,
			newConn: o.NewConnPerRequest,
			reset:   o.Reset,
			timeout: timeout,
			dial:    dial,
		}
		if u.Scheme == "https" {
			t.tls = tlsConfig(o.TLSConfig, u, "http/1.1")
		}
		p.newWorker = func(ctx context.Context, _ int) worker { return newH1Worker(ctx, t) }
	case proto == ProtoH2C || proto == ProtoH2:
		if want := map[string]string{ProtoH2C: "http", ProtoH2: "https"}[proto]; u.Scheme != want {
			return nil, fmt.Errorf("http: proto %s needs an %s:// URL, not %q", proto, want, o.URL)
		}
		p.dials = new(dialCounter)
		newTransport := func() http.RoundTripper { return h2Transport(proto, dial, p.dials, tlsConfig(o.TLSConfig, u, "h2")) }
		// Streams share connections: at most h2StreamsPerConn streams per transport,
		// so a few connections carry many streams.
		transports := make([]http.RoundTripper, (p.workers+h2StreamsPerConn-1)/h2StreamsPerConn)
		for i := range transports {
			transports[i] = newTransport()
		}
		defer func() {
			for _, t := range transports {
				closeIdle(t)
			}
		}()
		t := newRTTarget(&o, u, host, timeout)
		p.newWorker = func(ctx context.Context, i int) worker {
			w := &rtWorker{t: t, ctx: ctx, rt: transports[i%len(transports)]}
			if o.NewConnPerRequest {
				w.newRT = newTransport
			}
			return w
		}
	default:
		return nil, fmt.Errorf("http: proto %q: want %s, %s or %s", proto, ProtoHTTP1, ProtoH2C, ProtoH2)
	}

	r := &Result{Kind: "http", Target: o.URL, Proto: proto, Offered: o.Rate}
	out := p.run(ctx)
	out.fill(r)
	return r, ctx.Err()
}

// h2StreamsPerConn is how many concurrent streams h2c and h2 put on one connection.
const h2StreamsPerConn = 100

func (o *HTTPOptions) check() error {
	switch {
	case o.URL == "":
		return errors.New("http: no URL")
	case o.Connections < 0, o.Rate < 0, math.IsNaN(o.Rate), math.IsInf(o.Rate, 0), o.Duration < 0, o.Warmup < 0, o.Timeout < 0:
		return errors.New("http: negative connections, rate, duration, warmup or timeout")
	}
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if !isToken(o.Method) {
		return fmt.Errorf("http: method %q is not a token", o.Method)
	}
	for name, values := range o.Header {
		if !isToken(name) {
			return fmt.Errorf("http: header name %q is not a token", name)
		}
		for _, v := range values {
			if err := checkHeaderValue(name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkHeaderValue(name, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("http: header %s: value %q holds CR, LF or NUL", name, v)
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("http: URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("http: URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("http: URL %q has no host", raw)
	}
	return u, nil
}

// hostPort is the address to dial for u.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func tlsConfig(base *tls.Config, u *url.URL, alpn string) *tls.Config {
	var c *tls.Config
	if base != nil {
		c = base.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = u.Hostname()
	}
	c.NextProtos = []string{alpn}
	return c
}

// buildH1Request renders the request once; every worker writes the same bytes.
func buildH1Request(o *HTTPOptions, u *url.URL, host string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", o.Method, u.RequestURI(), host)
	for _, name := range slices.Sorted(maps.Keys(o.Header)) {
		switch http.CanonicalHeaderKey(name) {
		case "Host", "Content-Length", "Transfer-Encoding":
			continue // ours
		}
		for _, v := range o.Header[name] {
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	if len(o.Body) > 0 || o.Method == http.MethodPost || o.Method == http.MethodPut || o.Method == http.MethodPatch {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(o.Body))
	}
	b.WriteString("\r\n")
	b.Write(o.Body)
	return []byte(b.String())
}

// connectionsFor applies the default: 10, or one connection per 1000 requests/s of
// an open loop, whichever is more.
func connectionsFor(n int, rate float64) int {
	if n > 0 {
		return n
	}
	return max(DefaultConnections, int(math.Ceil(rate/1000)))
}

func runDuration(d time.Duration, ops uint64) time.Duration {
	if d == 0 && ops == 0 {
		return DefaultDuration
	}
	return d
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
