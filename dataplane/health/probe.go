package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// maxBodyRead bounds how much of an HTTP check's body is read (and thrown
// away) before the connection is closed.
const maxBodyRead = 4 << 10

// probeFunc runs one check. It returns nil on success. ctx carries the
// check's timeout.
type probeFunc func(ctx context.Context) error

// errUnexpectedStatus and errUnexpectedResponse mark answers that arrived but
// were wrong.
var (
	errUnexpectedStatus   = errors.New("unexpected status")
	errUnexpectedResponse = errors.New("unexpected response")
)

// newProbe builds the check for a validated key.
func newProbe(k Key) probeFunc {
	addr := k.CheckAddr().String()
	var d net.Dialer
	switch k.Spec.Type {
	case TCP:
		return func(ctx context.Context) error {
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return conn.Close()
		}
	case HTTP:
		u, _ := parsePath(k.Spec.Path) // validated
		target := &url.URL{Scheme: "http", Host: addr, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
		return func(ctx context.Context) error { return probeHTTP(ctx, &d, target, k.Spec.Host, k.Spec.Codes) }
	case UDP:
		req, want := []byte(k.Spec.Request), []byte(k.Spec.Response)
		return func(ctx context.Context) error { return probeUDP(ctx, &d, addr, req, want) }
	}
	panic("health: probe for unvalidated key " + k.String())
}

// withConn dials network/addr and arranges for ctx's deadline and
// cancellation to interrupt every read and write on the connection.
func withConn(ctx context.Context, d *net.Dialer, network, addr string, f func(net.Conn) error) error {
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fmt.Errorf("set deadline: %w", err)
		}
	}
	// A deadline in the past fails pending I/O at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	return f(conn)
}

func probeHTTP(ctx context.Context, d *net.Dialer, u *url.URL, host string, codes Codes) error {
	return withConn(ctx, d, "tcp", u.Host, func(conn net.Conn) error {
		// A hand-written exchange instead of http.Client: one request per
		// connection, no redirects, no proxies from the environment, and
		// nothing left running after the check.
		req := &http.Request{
			Method:     http.MethodGet,
			URL:        u,
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     http.Header{"User-Agent": {"xlb-health-check"}, "Accept": {"*/*"}},
			Host:       host,
			Close:      true,
		}
		if err := req.Write(conn); err != nil {
			return fmt.Errorf("write request: %w", err)
		}
		resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), req)
		if err != nil {
			return fmt.Errorf("read response: %w", err)
		}
		_, _ = io.CopyN(io.Discard, resp.Body, maxBodyRead)
		_ = resp.Body.Close()
		if !codes.Accepts(resp.StatusCode) {
			return fmt.Errorf("%w %d, want %v", errUnexpectedStatus, resp.StatusCode, codes)
		}
		return nil
	})
}

func probeUDP(ctx context.Context, d *net.Dialer, addr string, req, want []byte) error {
	// A connected socket: an ICMP port unreachable fails the read at once
	// instead of waiting for the timeout.
	return withConn(ctx, d, "udp", addr, func(conn net.Conn) error {
		if _, err := conn.Write(req); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		// One byte more than expected tells a longer answer from the right one.
		buf := make([]byte, len(want)+1)
		n, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		if !bytes.Equal(buf[:n], want) {
			return fmt.Errorf("%w %q", errUnexpectedResponse, truncate(buf[:n]))
		}
		return nil
	})
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
