package load

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"time"
)

// Dialer dials a connection, like net.Dialer.DialContext; netlab's Lab.Dialer returns
// one that dials from inside a network namespace.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// defaultDial dials without TCP keep-alive, which Go otherwise turns on with four
// setsockopt calls per connection: a measurable share of a connection-rate test,
// and no use to connections that live for one run.
func defaultDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{KeepAlive: -1}
	return d.DialContext(ctx, network, addr)
}

// Defaults applied when an option is zero.
const (
	DefaultConnections = 10
	DefaultDuration    = 10 * time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultUDPTimeout  = time.Second
)

// HTTPOptions configures HTTP.
type HTTPOptions struct {
	URL    string
	Method string // default GET
	Body   []byte
	Header http.Header
	Host   string // overrides the Host header
	// Proto is "http1" (the default), "h2c" (HTTP/2 over cleartext with prior
	// knowledge) or "h2" (TLS, ALPN h2).
	Proto string
	// Connections is the number of concurrent connections for http1, or of concurrent
	// streams for h2c and h2, which share a few connections (one per 100 streams).
	// Default 10 closed loop, max(10, Rate/1000) open loop.
	Connections int
	// Rate > 0 runs open loop at this many requests/s, latency measured from each
	// request's scheduled send time.
	Rate float64
	// Duration and Requests stop the run at whichever comes first; 0 is unused. With
	// both 0, Duration is DefaultDuration. Requests counts requests started after the
	// warmup.
	Duration time.Duration
	Requests uint64
	Warmup   time.Duration // requests during warmup are not recorded
	// NewConnPerRequest opens a connection for every request and closes it after
	// the response: a connection-rate test. The generator always closes first (it
	// sends no "Connection: close"), so the TIME_WAIT sockets stay with it, where
	// the kernel can reuse them safely; past about 28,000 connections a minute to
	// one destination (the ephemeral port range) that reuse is needed, and the
	// default net.ipv4.tcp_tw_reuse=2 allows it on loopback only: set it to 1 in
	// the generator's network namespace. (When the server closes first, the
	// generator soon reuses ports whose 4-tuples the server still holds in
	// TIME_WAIT, and SYNs stall for a second: wrk -H "Connection: close" shows it.)
	NewConnPerRequest bool
	// Reset closes NewConnPerRequest connections with a RST (SO_LINGER 0) instead
	// of a FIN: no TIME_WAIT anywhere, so connects stay cheap (about 40% more
	// connections/s on loopback here), at the price of an abortive close that a
	// server or proxy under test may count as a client reset. http1 only.
	Reset     bool
	Dial      Dialer        // default net.Dialer without TCP keep-alive
	TLSConfig *tls.Config   // for https URLs and h2; ALPN is set by Proto
	Timeout   time.Duration // per request, connecting included; default 10 s
	Progress  io.Writer     // a one-line report each second when non-nil
	// RoundTripper, when set, makes every worker send its requests through the
	// transport it returns (called once per worker, or once per request with
	// NewConnPerRequest) instead of the built-in clients; it overrides Proto.
	RoundTripper func() http.RoundTripper
}

// TCPOptions configures TCP.
type TCPOptions struct {
	Addr string
	// Mode "connect" (the default): each op connects, sends Payload bytes, reads the
	// echo and closes. Mode "throughput": Connections connections stream Payload-sized
	// writes and read the echo back; Result.Rate is then bytes/s received.
	Mode        string
	Connections int     // concurrent connections; default 10 (open loop max(10, Rate/1000))
	Rate        float64 // connect mode: >0 runs open loop at this many connections/s
	Duration    time.Duration
	Ops         uint64        // stop after this many ops (connect cycles or echoed chunks)
	Warmup      time.Duration // ops during warmup are not recorded
	Payload     int           // bytes per op or per write; default 64 (connect), 16 KiB (throughput)
	Dial        Dialer
	Timeout     time.Duration
	Progress    io.Writer
	// Reset closes connect-mode connections with a RST (SO_LINGER 0) instead of a
	// FIN. The echo server never closes first, so with FIN the generator keeps every
	// connection in TIME_WAIT for a minute: past about 28,000 connections a minute to
	// one destination (the ephemeral port range), connects fail unless the kernel may
	// reuse them (net.ipv4.tcp_tw_reuse=1; the default 2 covers loopback only).
	Reset bool
}

// UDPOptions configures UDP.
type UDPOptions struct {
	Addr string
	// Rate > 0 sends open loop at this many datagrams/s in total, spread over the
	// sockets; otherwise each socket sends its next datagram when the previous one is
	// answered or timed out.
	Rate float64
	// Concurrency is the number of sockets, each with its own worker; default 10
	// closed loop, max(1, Rate/50000) open loop.
	Concurrency int
	Duration    time.Duration
	Ops         uint64        // stop after this many datagrams sent
	Warmup      time.Duration // datagrams sent during warmup are not recorded
	// Payload is the datagram size, at least udpHeaderLen (24) bytes, which carry the
	// sequence number and send time; default 64.
	Payload  int
	Timeout  time.Duration // how long to wait for each answer; default 1 s
	Dial     Dialer
	Progress io.Writer
}
