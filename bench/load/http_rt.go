package load

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/net/http2"
)

// rtTarget is the request every rtWorker of a run sends.
type rtTarget struct {
	method  string
	url     *url.URL
	host    string
	header  http.Header
	body    []byte
	timeout time.Duration
}

func newRTTarget(o *HTTPOptions, u *url.URL, host string, timeout time.Duration) *rtTarget {
	h := o.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Del("Host")
	return &rtTarget{method: o.Method, url: u, host: host, header: h, body: o.Body, timeout: timeout}
}

// rtWorker sends requests through an http.RoundTripper: net/http's HTTP/2 transport
// for h2c and h2, or the caller's.
type rtWorker struct {
	t     *rtTarget
	ctx   context.Context
	rt    http.RoundTripper
	newRT func() http.RoundTripper // set: a new transport (connection) per request
}

func (w *rtWorker) op(st *stats) errKind {
	ctx, cancel := context.WithTimeout(w.ctx, w.t.timeout)
	defer cancel()
	req := (&http.Request{
		Method:     w.t.method,
		URL:        w.t.url,
		Host:       w.t.host,
		Header:     w.t.header, // transports only read it
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}).WithContext(ctx)
	if len(w.t.body) > 0 {
		req.ContentLength = int64(len(w.t.body))
		req.Body = io.NopCloser(bytes.NewReader(w.t.body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(w.t.body)), nil }
	}
	rt := w.rt
	if w.newRT != nil {
		rt = w.newRT()
		defer closeIdle(rt)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return classifyRT(err)
	}
	st.sentBytes(len(w.t.body))
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	st.recvBytes(int(n))
	if err != nil {
		return classify(err, true)
	}
	return statusKind(resp.StatusCode)
}

func (w *rtWorker) close() {}

// classifyRT classifies a RoundTrip error: failing to dial or to shake hands is a
// connect error.
func classifyRT(err error) errKind {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return kindConnect
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) {
		return kindConnect
	}
	return classify(err, false)
}

func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// h2Transport returns an HTTP/2-only transport: with prior knowledge over cleartext
// for h2c, over TLS with ALPN h2 for h2. x/net's transport shares one dial among the
// requests that wait for a connection, so concurrent streams share one connection
// instead of racing to open one each.
func h2Transport(proto string, dial Dialer, dials *dialCounter, tc *tls.Config) *http2.Transport {
	return &http2.Transport{
		AllowHTTP:          proto == ProtoH2C,
		TLSClientConfig:    tc,
		DisableCompression: true,
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, &net.OpError{Op: "dial", Net: network, Err: err}
			}
			dials.count()
			if proto == ProtoH2C {
				return c, nil
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, &net.OpError{Op: "dial", Net: network, Err: err}
			}
			if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
				tc.Close()
				return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("server negotiated %q, not h2", p)}
			}
			return tc, nil
		},
	}
}
