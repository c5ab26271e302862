package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/xlbproject/xlb/bench/load"
)

// runHTTP is `xlb-bench http [flags] URL`.
func runHTTP(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("xlb-bench http", flag.ContinueOnError)
	var o load.HTTPOptions
	var headers headerFlag
	var body, bodyFile string
	var insecure bool
	fs.IntVar(&o.Connections, "c", 0, "concurrent connections (h2c/h2: concurrent streams); default 10, open loop max(10, rate/1000)")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop at this many requests/s (latency from each request's scheduled time); 0: closed loop")
	fs.DurationVar(&o.Duration, "d", 0, "measured duration (default 10s unless -n is given)")
	fs.Uint64Var(&o.Requests, "n", 0, "stop after this many requests (after the warmup)")
	fs.StringVar(&o.Proto, "proto", load.ProtoHTTP1, "http1, h2c (HTTP/2 prior knowledge) or h2 (TLS, ALPN h2)")
	fs.BoolVar(&o.NewConnPerRequest, "new-conn", false, "a new connection for every request (connection-rate test; the generator keeps the TIME_WAITs: set net.ipv4.tcp_tw_reuse=1 in its namespace for long runs off loopback)")
	fs.BoolVar(&o.Reset, "reset", false, "with -new-conn: close with a RST (no TIME_WAIT; faster, but an abortive close)")
	fs.StringVar(&o.Method, "m", "GET", "request method")
	fs.Var(&headers, "H", `request header "Name: value" (repeatable)`)
	fs.StringVar(&o.Host, "host", "", "Host header (default: the URL's host)")
	fs.StringVar(&body, "body", "", "request body")
	fs.StringVar(&bodyFile, "body-file", "", "read the request body from this file")
	fs.BoolVar(&insecure, "insecure", false, "https/h2: do not verify the server's certificate")
	x25519 := fs.Bool("x25519", false, "https/h2: offer only X25519 key exchange (Go otherwise also offers the post-quantum X25519MLKEM768, which a Go server picks and OpenSSL 3.0 peers cannot: a fair handshake comparison needs one exchange)")
	common := addCommonFlags(fs, &o.Warmup, &o.Timeout)
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: xlb-bench http [flags] URL")
	}
	o.URL = pos[0]
	o.Header = http.Header(headers)
	o.Body = []byte(body)
	if bodyFile != "" {
		if o.Body, err = os.ReadFile(bodyFile); err != nil {
			return fmt.Errorf("-body-file: %w", err)
		}
	}
	if insecure || *x25519 {
		o.TLSConfig = &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // asked for
		if *x25519 {
			o.TLSConfig.CurvePreferences = []tls.CurveID{tls.X25519}
		}
	}
	o.Progress = common.progressWriter(fs, o.Duration)
	r, err := load.HTTP(ctx, o)
	return common.report(r, err, stdout)
}

// runTCP is `xlb-bench tcp [flags] ADDR`.
func runTCP(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("xlb-bench tcp", flag.ContinueOnError)
	var o load.TCPOptions
	fs.StringVar(&o.Mode, "mode", load.TCPConnect, "connect (connect, echo -payload bytes, close: connections/s) or throughput (stream and read the echo back: bytes/s)")
	fs.IntVar(&o.Connections, "c", 0, "concurrent connections; default 10, open loop max(10, rate/1000)")
	fs.Float64Var(&o.Rate, "rate", 0, "connect mode: open loop at this many connections/s; 0: closed loop")
	fs.DurationVar(&o.Duration, "d", 0, "measured duration (default 10s unless -n is given)")
	fs.Uint64Var(&o.Ops, "n", 0, "stop after this many connections (connect) or echoed chunks (throughput)")
	fs.IntVar(&o.Payload, "payload", 0, fmt.Sprintf("bytes per connection (connect, default %d) or per write (throughput, default %d)", load.DefaultConnectPayload, load.DefaultThroughputPayload))
	fs.BoolVar(&o.Reset, "reset", false, "connect mode: close with a RST, leaving no TIME_WAIT in the generator (needed above ~28k connections a minute to one destination unless net.ipv4.tcp_tw_reuse=1)")
	common := addCommonFlags(fs, &o.Warmup, &o.Timeout)
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: xlb-bench tcp [flags] ADDR")
	}
	o.Addr = pos[0]
	o.Progress = common.progressWriter(fs, o.Duration)
	r, err := load.TCP(ctx, o)
	return common.report(r, err, stdout)
}

// runUDP is `xlb-bench udp [flags] ADDR`.
func runUDP(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("xlb-bench udp", flag.ContinueOnError)
	var o load.UDPOptions
	fs.IntVar(&o.Concurrency, "c", 0, "sockets; default 10 closed loop, max(1, rate/50000) open loop")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop at this many datagrams/s; 0: each socket waits for its answer")
	fs.DurationVar(&o.Duration, "d", 0, "measured duration (default 10s unless -n is given)")
	fs.Uint64Var(&o.Ops, "n", 0, "stop after this many datagrams sent")
	fs.IntVar(&o.Payload, "payload", load.DefaultUDPPayload, "datagram size in bytes (at least 24)")
	common := addCommonFlags(fs, &o.Warmup, &o.Timeout)
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: xlb-bench udp [flags] ADDR")
	}
	o.Addr = pos[0]
	if o.Timeout == 0 {
		o.Timeout = load.DefaultUDPTimeout
	}
	o.Progress = common.progressWriter(fs, o.Duration)
	r, err := load.UDP(ctx, o)
	return common.report(r, err, stdout)
}

// commonFlags are the flags every generator has.
type commonFlags struct {
	json     bool
	progress bool
	warmup   *time.Duration
}

func addCommonFlags(fs *flag.FlagSet, warmup, timeout *time.Duration) *commonFlags {
	c := &commonFlags{warmup: warmup}
	fs.BoolVar(&c.json, "json", false, "print the result as JSON instead of the summary")
	fs.BoolVar(&c.progress, "progress", false, "a progress line each second on stderr (default: on a terminal, for runs of 5s or more)")
	fs.DurationVar(warmup, "warmup", 0, "run this long before measuring")
	fs.DurationVar(timeout, "timeout", 0, "per-operation timeout (default 10s; udp 1s)")
	return c
}

// progressWriter returns stderr when progress is wanted: -progress, or by default
// when stderr is a terminal and the run lasts 5 s or more.
func (c *commonFlags) progressWriter(fs *flag.FlagSet, d time.Duration) io.Writer {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "progress" })
	on := c.progress
	if !set {
		total := d + *c.warmup
		if d == 0 {
			total = load.DefaultDuration + *c.warmup // unless -n ends it sooner
		}
		on = term.IsTerminal(int(os.Stderr.Fd())) && total >= 5*time.Second
	}
	if on {
		return os.Stderr
	}
	return nil
}

// report prints a result, even a partial one after Ctrl-C.
func (c *commonFlags) report(r *load.Result, err error, stdout io.Writer) error {
	if r == nil {
		return err
	}
	if errors.Is(err, context.Canceled) {
		err = nil // interrupted: the partial result is the answer
	}
	if c.json {
		b, jerr := r.JSON()
		if jerr != nil {
			return jerr
		}
		if _, werr := fmt.Fprintf(stdout, "%s\n", b); werr != nil {
			return werr
		}
		return err
	}
	if werr := r.WriteSummary(stdout); werr != nil {
		return werr
	}
	return err
}

// parseInterleaved parses flags placed before and after the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err // flag.ErrHelp after -h: usage printed
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// headerFlag collects -H "Name: value" lines.
type headerFlag http.Header

func (h *headerFlag) String() string { return "" }

func (h *headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("header %q: want \"Name: value\"", v)
	}
	if *h == nil {
		*h = headerFlag{}
	}
	http.Header(*h).Add(textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value))
	return nil
}
