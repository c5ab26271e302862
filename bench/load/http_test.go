package load

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// The generator's counts must equal what the server counted, in every mode.
func TestHTTPCountsMatchServer(t *testing.T) {
	tests := []struct {
		name string
		opts HTTPOptions
		// conns is how many connections the server should see; -1: as many as requests.
		conns uint64
	}{
		{"closed loop, request limit", HTTPOptions{Connections: 4, Requests: 2000}, 4},
		{"closed loop, duration", HTTPOptions{Connections: 3, Duration: 300 * time.Millisecond}, 3},
		{"open loop", HTTPOptions{Connections: 5, Rate: 1000, Duration: time.Second}, 5},
		{"new connection per request", HTTPOptions{Connections: 2, Requests: 300, NewConnPerRequest: true}, math.MaxUint64},
		{"new connection per request, RST", HTTPOptions{Connections: 2, Requests: 300, NewConnPerRequest: true, Reset: true}, math.MaxUint64},
		{"h2c closed loop", HTTPOptions{Proto: ProtoH2C, Connections: 8, Requests: 1000}, 1},
		{"h2c open loop", HTTPOptions{Proto: ProtoH2C, Connections: 8, Rate: 500, Duration: 500 * time.Millisecond}, 1},
		{"h2c new connection per request", HTTPOptions{Proto: ProtoH2C, Connections: 2, Requests: 100, NewConnPerRequest: true}, math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, base := httpBackend(t)
			o := tt.opts
			o.URL = base + "/"
			r, err := HTTP(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			got := settled(srv.Counters)
			if r.Ops == 0 || r.Ops != got.Requests {
				t.Errorf("generator counted %d requests, server %d", r.Ops, got.Requests)
			}
			if len(r.Errors) != 0 {
				t.Errorf("errors: %v", r.Errors)
			}
			if o.Requests > 0 && r.Ops != o.Requests {
				t.Errorf("ops %d, want the %d requested", r.Ops, o.Requests)
			}
			want := tt.conns
			if want == math.MaxUint64 {
				want = r.Ops
			}
			if r.Connections != want || got.Connections != want {
				t.Errorf("connections: generator %d, server %d, want %d", r.Connections, got.Connections, want)
			}
			if o.Rate > 0 {
				checkOpenLoop(t, r, o.Rate, o.Duration)
			}
			if r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 || (o.Proto == "" && r.BytesSent == 0) || r.BytesReceived == 0 {
				t.Errorf("implausible result: %+v", r)
			}
		})
	}
}

// checkOpenLoop checks an open-loop run's accounting: every slot scheduled in the
// window was either sent or reported unsent, and the achieved rate is the offered one
// unless the generator fell behind (a starved test machine can stall it).
func checkOpenLoop(t *testing.T, r *Result, rate float64, d time.Duration) {
	t.Helper()
	scheduled := uint64(rate * d.Seconds())
	attempted := r.Ops + r.ErrorCount()
	if r.Kind == "udp" {
		attempted = r.Sent
	}
	if r.Offered != rate || attempted+r.Unsent != scheduled {
		t.Errorf("offered %.0f/s: %d sent + %d unsent, want the %d scheduled", r.Offered, attempted, r.Unsent, scheduled)
	}
	if r.Unsent > 0 {
		t.Logf("the generator fell behind: %d unsent", r.Unsent)
		return
	}
	if math.Abs(r.Rate-rate) > 0.05*rate {
		t.Errorf("achieved %.0f/s, want about %.0f", r.Rate, rate)
	}
}

func TestHTTPWarmupIsNotRecorded(t *testing.T) {
	srv, base := httpBackend(t)
	r, err := HTTP(t.Context(), HTTPOptions{URL: base + "/", Connections: 2, Warmup: 200 * time.Millisecond, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := settled(srv.Counters)
	if r.WarmupOps == 0 || r.Ops == 0 || r.Ops+r.WarmupOps != got.Requests {
		t.Errorf("ops %d + warmup %d, server counted %d", r.Ops, r.WarmupOps, got.Requests)
	}
	if r.Connections+r.WarmupConnections != got.Connections || r.WarmupConnections != 2 {
		t.Errorf("connections %d + warmup %d, server %d", r.Connections, r.WarmupConnections, got.Connections)
	}
	if d := r.Duration; d != 200*time.Millisecond {
		t.Errorf("window %v, want 200ms", d)
	}
}

// stallOnce answers at once, except that the request that finds requests done
// already starts a pause of stall: it and every request arriving during the pause are
// answered only when it ends, like a server frozen by a GC pause.
type stallOnce struct {
	after int
	stall time.Duration

	mu    sync.Mutex
	seen  int
	until time.Time
}

func (s *stallOnce) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.seen++
	if s.seen == s.after {
		s.until = time.Now().Add(s.stall)
	}
	wait := time.Until(s.until)
	s.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
	w.Write([]byte("ok\n"))
}

// In open loop a stall is charged to every request scheduled during it, not only to
// the one that hit it.
func TestHTTPOpenLoopChargesQueueing(t *testing.T) {
	const stall = 300 * time.Millisecond
	base := handlerBackend(t, &stallOnce{after: 60, stall: stall})
	var progress bytes.Buffer
	r, err := HTTP(t.Context(), HTTPOptions{URL: base + "/", Rate: 200, Duration: 1200 * time.Millisecond, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) != 0 {
		t.Fatalf("errors %v", r.Errors)
	}
	if r.Latency.Max < stall-10*time.Millisecond || r.Latency.P99 < stall/2 {
		t.Errorf("max %v, p99 %v: the %v stall is not charged", r.Latency.Max, r.Latency.P99, stall)
	}
	// About 60 requests were scheduled during the stall, 40 of them more than 100 ms
	// before its end: that is 1 in 6 of the 240.
	if over := countAbove(r, 100*time.Millisecond); over < 25 {
		t.Errorf("%d requests above 100ms, want about 40 (the ones scheduled during the stall); latency %+v", over, r.Latency)
	}
	if !strings.Contains(progress.String(), "req/s") {
		t.Errorf("no progress line in %q", progress.String())
	}
}

// countAbove estimates from the exported distribution how many requests took more
// than d.
func countAbove(r *Result, d time.Duration) uint64 {
	var below uint64
	for _, b := range r.Histogram {
		if b.Value <= d {
			below = b.Count
		}
	}
	return r.Ops - below
}

func TestHTTPErrorKinds(t *testing.T) {
	_, base := httpBackend(t)
	tests := []struct {
		name string
		url  string
		opts HTTPOptions
		kind string
	}{
		{"closed port", "http://" + closedPort(t) + "/", HTTPOptions{}, ErrConnect},
		{"503", base + "/status/503", HTTPOptions{}, ErrStatus5xx},
		{"404", base + "/status/404", HTTPOptions{}, ErrStatus4xx},
		{"h2c 503", base + "/status/503", HTTPOptions{Proto: ProtoH2C}, ErrStatus5xx},
		{"h2c closed port", "http://" + closedPort(t) + "/", HTTPOptions{Proto: ProtoH2C}, ErrConnect},
		{"garbage", rawHTTP(t, "SSH-2.0-OpenSSH\r\n", true), HTTPOptions{}, ErrProtocol},
		{"bad content-length", rawHTTP(t, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true), HTTPOptions{}, ErrProtocol},
		{"bad chunk", rawHTTP(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true), HTTPOptions{}, ErrProtocol},
		{"closed without answer", rawHTTP(t, "", false), HTTPOptions{}, ErrEOF},
		{"body cut short", rawHTTP(t, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false), HTTPOptions{}, ErrShortRead},
		{"headers cut short", rawHTTP(t, "HTTP/1.1 200 OK\r\nContent-Le", false), HTTPOptions{}, ErrShortRead},
		{"no answer", rawHTTP(t, "HTTP/1.1 200 OK\r\n", true), HTTPOptions{Timeout: 50 * time.Millisecond}, ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.URL, o.Connections, o.Requests = tt.url, 2, 20
			r, err := HTTP(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Ops != 0 || r.Errors[tt.kind] != 20 || len(r.Errors) != 1 {
				t.Errorf("ops %d, errors %v: want 20 %s", r.Ops, r.Errors, tt.kind)
			}
		})
	}
}

// A kept-alive connection that the server closed while idle is not an error: the
// request goes again on a new connection.
func TestHTTPIdleCloseIsRetried(t *testing.T) {
	// The server answers one request per connection but claims keep-alive, then
	// closes: every second request finds the connection closed.
	base := rawHTTP(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false)
	r, err := HTTP(t.Context(), HTTPOptions{URL: base + "/", Connections: 1, Requests: 20})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 20 || len(r.Errors) != 0 || r.Connections != 20 {
		t.Errorf("ops %d, errors %v, connections %d; want 20 ops on 20 connections", r.Ops, r.Errors, r.Connections)
	}
}

// Responses framed every legal way are read whole, and keep-alive is honoured.
func TestHTTPResponseFraming(t *testing.T) {
	tests := []struct {
		name   string
		answer string
		keep   bool
		method string
		conns  uint64 // for 10 requests
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true, "", 1},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", true, "", 1},
		{"100 continue first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, "", 1},
		{"204 without length", "HTTP/1.1 204 No Content\r\n\r\n", true, "", 1},
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, http.MethodHead, 1},
		{"LF only", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", true, "", 1},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, "", 10},
		{"body to EOF", "HTTP/1.1 200 OK\r\n\r\nuntil the end", false, "", 10},
		{"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, "", 10},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := rawHTTP(t, tt.answer, tt.keep)
			r, err := HTTP(t.Context(), HTTPOptions{URL: base + "/", Method: tt.method, Connections: 1, Requests: 10})
			if err != nil {
				t.Fatal(err)
			}
			if r.Ops != 10 || len(r.Errors) != 0 || r.Connections != tt.conns {
				t.Errorf("ops %d, errors %v, connections %d; want 10 ops, %d connections", r.Ops, r.Errors, r.Connections, tt.conns)
			}
		})
	}
}

func TestHTTPRequestSent(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies []string
	base := handlerBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := new(bytes.Buffer)
		b.ReadFrom(r.Body)
		mu.Lock()
		got = append(got, r)
		bodies = append(bodies, b.String())
		mu.Unlock()
	}))
	for _, proto := range []string{ProtoHTTP1, ProtoH2C} {
		got, bodies = nil, nil
		_, err := HTTP(t.Context(), HTTPOptions{
			URL: base + "/p?q=1", Method: http.MethodPost, Body: []byte("hi"), Proto: proto,
			Header: http.Header{"X-A": {"1"}}, Host: "example.test", Connections: 1, Requests: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("%s: %d requests", proto, len(got))
		}
		r := got[0]
		if r.Method != "POST" || r.URL.RequestURI() != "/p?q=1" || r.Host != "example.test" || r.Header.Get("X-A") != "1" || bodies[0] != "hi" {
			t.Errorf("%s: got %s %s host %q header %v body %q", proto, r.Method, r.URL, r.Host, r.Header, bodies[0])
		}
	}
}

func TestHTTPBadOptions(t *testing.T) {
	for _, o := range []HTTPOptions{
		{},
		{URL: "ftp://x/"},
		{URL: "http:///nohost"},
		{URL: "http://x/", Method: "GE T"},
		{URL: "http://x/", Header: http.Header{"X": {"a\r\nb"}}},
		{URL: "http://x/", Host: "a\nb"},
		{URL: "http://x/", Proto: "spdy"},
		{URL: "https://x/", Proto: ProtoH2C},
		{URL: "http://x/", Rate: -1},
		{URL: "http://x/", Rate: math.NaN()},
	} {
		if _, err := HTTP(t.Context(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestHTTPCancel(t *testing.T) {
	_, base := httpBackend(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	r, err := HTTP(ctx, HTTPOptions{URL: base + "/delay?ms=5000", Connections: 3, Duration: time.Minute})
	if err == nil || r == nil {
		t.Fatalf("want the partial result and the context's error, got %v, %v", r, err)
	}
	if len(r.Errors) != 0 || r.Duration > time.Second {
		t.Errorf("aborted requests counted as errors %v, or window %v too long", r.Errors, r.Duration)
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	_, base := httpBackend(t)
	r, err := HTTP(t.Context(), HTTPOptions{URL: base + "/status/503", Requests: 5, Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := HTTP(t.Context(), HTTPOptions{URL: base + "/", Requests: 50, Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	r.Histogram, r.Latency = r2.Histogram, r2.Latency
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*r, back) {
		t.Errorf("round trip changed the result:\n%+v\n%+v", *r, back)
	}
	if !strings.Contains(string(b), `"status_5xx": 5`) {
		t.Errorf("JSON lacks the error count:\n%s", b)
	}
}
